//! Module management at run time: adding a module while running (a card whose ATR names a
//! module that is not loaded yet), asking whether a module sees a PC/SC reader, and
//! re-initialising one module (`C_Finalize` + `C_Initialize`, PKCS#11 v2.40 §5.4) so it sees
//! readers plugged in after its `C_Initialize` — while the other modules' tokens keep working.
//!
//! Kept apart from the signing path: nothing here runs per operation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::{Inner, ModuleHandle, TokenHandle, TokenService, lock};
use crate::token::error::TokenError;
use crate::token::module::{self, ModuleSpec};

impl Inner {
    /// The loaded modules now (a cheap copy of the list; modules are only ever appended).
    pub(super) fn modules(&self) -> Vec<Arc<ModuleHandle>> {
        lock(&self.modules).clone()
    }
}

/// Canonical path of a module file, for telling modules apart.
fn canonical(path: &std::path::Path) -> std::path::PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Every worker of the paused pools waits here until the re-initialisation is done.
#[derive(Default)]
struct Pause {
    state: Mutex<(usize, bool)>,
    changed: Condvar,
}

impl Pause {
    /// Run on a worker: count in, then wait until released.
    fn hold(&self) {
        let mut state = lock(&self.state);
        state.0 += 1;
        self.changed.notify_all();
        while !state.1 {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// Wait until `workers` workers are held, or `limit` passed; returns how many are held.
    fn wait_for(&self, workers: usize, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        let mut state = lock(&self.state);
        while state.0 < workers {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        state.0
    }

    fn release(&self) {
        lock(&self.state).1 = true;
        self.changed.notify_all();
    }
}

impl TokenService {
    /// Load and add a module while running (blocking; not on an async thread). Returns `false`
    /// when the same module file is loaded already. Its tokens appear at the next scan.
    pub fn add_module(&self, spec: &ModuleSpec) -> Result<bool, TokenError> {
        let key = canonical(&spec.path);
        if self
            .inner
            .modules()
            .iter()
            .any(|m| canonical(&m.loaded.spec.path) == key)
        {
            return Ok(false);
        }
        let loaded = module::load(spec)?;
        let mut modules = lock(&self.inner.modules);
        // Another thread may have added it while we loaded; the second copy is dropped (the
        // module stays initialised for the first).
        if modules
            .iter()
            .any(|m| canonical(&m.loaded.spec.path) == key)
        {
            return Ok(false);
        }
        tracing::info!(module = %spec.path.display(), "module added");
        modules.push(Arc::new(ModuleHandle {
            loaded,
            generation: AtomicU64::new(0),
            reinit: Mutex::new(()),
        }));
        Ok(true)
    }

    /// Whether the module at `path` has a slot for the PC/SC reader `reader` (PKCS#11 slot
    /// descriptions of PC/SC-based modules are the reader names, cut to 64 bytes). `None` when
    /// the module is not loaded.
    pub fn module_sees_reader(
        &self,
        path: &std::path::Path,
        reader: &str,
    ) -> Result<Option<bool>, TokenError> {
        let key = canonical(path);
        let Some(module) = self
            .inner
            .modules()
            .into_iter()
            .find(|m| canonical(&m.loaded.spec.path) == key)
        else {
            return Ok(None);
        };
        let ctx = &module.loaded.ctx;
        let cut: String = {
            let mut end = reader.len().min(64);
            while !reader.is_char_boundary(end) {
                end -= 1;
            }
            reader[..end].trim_end().to_owned()
        };
        for slot in ctx.get_all_slots()? {
            let description = ctx
                .get_slot_info(slot)?
                .slot_description()
                .trim()
                .to_owned();
            if description == cut || description.starts_with(cut.as_str()) {
                return Ok(Some(true));
            }
        }
        Ok(Some(false))
    }

    /// Re-initialise the module at `path` (blocking): its workers finish the job they are
    /// running and then wait (jobs queued meanwhile run afterwards, on new sessions); a worker
    /// still busy after `grace` is not waited for — its operation may then fail with a
    /// device error. Tokens of other modules are not touched. Returns `false` when no such
    /// module is loaded.
    pub fn reinitialise_module(
        &self,
        path: &std::path::Path,
        grace: Duration,
    ) -> Result<bool, TokenError> {
        let key = canonical(path);
        let modules = self.inner.modules();
        let Some((index, module)) = modules
            .iter()
            .enumerate()
            .find(|(_, m)| canonical(&m.loaded.spec.path) == key)
        else {
            return Ok(false);
        };
        let handles: Vec<Arc<TokenHandle>> = lock(&self.inner.tokens)
            .iter()
            .filter(|(r, _)| r.module == index)
            .map(|(_, h)| Arc::clone(h))
            .collect();
        let pause = Arc::new(Pause::default());
        let mut workers = 0;
        for handle in &handles {
            for _ in 0..handle.workers {
                let pause = Arc::clone(&pause);
                // The reply is not needed: the job only parks its worker.
                drop(handle.pool.submit(move |_| {
                    pause.hold();
                    Ok(())
                }));
                workers += 1;
            }
        }
        let held = pause.wait_for(workers, grace);
        if held < workers {
            tracing::warn!(
                module = %path.display(),
                busy = workers - held,
                "re-initialising while operations are still running on this module"
            );
        }
        let result = module.reinitialise(module.generation.load(Ordering::SeqCst));
        pause.release();
        result.map(|()| true)
    }
}
