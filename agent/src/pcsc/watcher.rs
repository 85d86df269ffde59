//! The PC/SC watcher: one thread that follows pcscd — readers appearing and disappearing (the
//! PnP pseudo-reader `\\?PnP?\Notification`), cards inserted and removed with their ATR, and
//! pcscd itself going away or being restarted (reconnect with backoff; never panics).
//!
//! State is kept as a [`Snapshot`] (what `segel readers` prints) and every change is broadcast
//! as a [`PcscEvent`] (what the daemon forwards to the extension, and what triggers a PKCS#11
//! slot refresh). No PC/SC call runs anywhere but on this thread.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use pcsc::{Context, Error as PcscError, ReaderState, Scope, State};
use serde::Serialize;
use tokio::sync::broadcast;

/// A change seen by the watcher.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum PcscEvent {
    /// pcscd answered (first time, or again after it was gone).
    ServiceUp,
    /// pcscd is not reachable; the watcher keeps retrying.
    ServiceDown {
        reason: String,
    },
    ReaderAdded {
        reader: String,
    },
    ReaderRemoved {
        reader: String,
    },
    CardInserted {
        reader: String,
        atr: Vec<u8>,
    },
    CardRemoved {
        reader: String,
    },
}

/// Whether pcscd is reachable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ServiceState {
    /// No answer yet.
    Starting,
    Up,
    Down {
        reason: String,
    },
}

/// One reader as last seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReaderStatus {
    pub name: String,
    pub card_present: bool,
    /// The card's ATR (empty without a card).
    pub atr: Vec<u8>,
}

/// Everything the watcher knows now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    pub service: ServiceState,
    pub readers: Vec<ReaderStatus>,
    /// Increases with every completed scan (tests and callers wait on it).
    pub scans: u64,
}

/// Timing of the watcher.
#[derive(Clone, Debug)]
pub struct WatcherOptions {
    /// First wait before reconnecting to pcscd; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Longest blocking wait for a change (the stop flag is checked in between).
    pub poll: Duration,
}

impl Default for WatcherOptions {
    fn default() -> Self {
        WatcherOptions {
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            poll: Duration::from_millis(500),
        }
    }
}

struct Shared {
    snapshot: Mutex<Snapshot>,
    changed: Condvar,
    events: broadcast::Sender<PcscEvent>,
    stop: AtomicBool,
    /// The current context, so `Drop` can cancel a blocking wait.
    context: Mutex<Option<Context>>,
}

/// A running watcher; stops its thread on drop.
pub struct Watcher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("snapshot", &*lock(&self.shared.snapshot))
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Watcher {
    /// Starts the watcher thread.
    pub fn start(options: WatcherOptions) -> std::io::Result<Self> {
        let (events, _) = broadcast::channel(256);
        let shared = Arc::new(Shared {
            snapshot: Mutex::new(Snapshot {
                service: ServiceState::Starting,
                readers: Vec::new(),
                scans: 0,
            }),
            changed: Condvar::new(),
            events,
            stop: AtomicBool::new(false),
            context: Mutex::new(None),
        });
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("segel-pcsc".to_owned())
            .spawn(move || run(&thread_shared, &options))?;
        Ok(Watcher {
            shared,
            thread: Some(thread),
        })
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<PcscEvent> {
        self.shared.events.subscribe()
    }

    /// The current state.
    pub fn snapshot(&self) -> Snapshot {
        lock(&self.shared.snapshot).clone()
    }

    /// Waits until `done(snapshot)` holds or `timeout` passes; returns the last snapshot and
    /// whether it held.
    pub fn wait_until(
        &self,
        timeout: Duration,
        done: impl Fn(&Snapshot) -> bool,
    ) -> (Snapshot, bool) {
        let guard = lock(&self.shared.snapshot);
        let (guard, _) = self
            .shared
            .changed
            .wait_timeout_while(guard, timeout, |s| !done(s))
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let ok = done(&guard);
        (guard.clone(), ok)
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(ctx) = lock(&self.shared.context).as_ref() {
            let _ = ctx.cancel();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(shared: &Shared, options: &WatcherOptions) {
    let mut backoff = options.min_backoff;
    let mut announced_down: Option<String> = None;
    while !shared.stop.load(Ordering::SeqCst) {
        let result = Context::establish(Scope::User).and_then(|ctx| {
            *lock(&shared.context) = Some(ctx.clone());
            // A context can be established while pcscd is not answering yet; is_valid asks it.
            ctx.is_valid()?;
            backoff = options.min_backoff;
            announced_down = None;
            set_service(shared, ServiceState::Up, Some(PcscEvent::ServiceUp));
            watch(shared, &ctx, options)
        });
        *lock(&shared.context) = None;
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let reason = match result {
            Ok(()) => continue,
            Err(e) => describe(e),
        };
        // Every reader is gone with pcscd; ServiceDown is sent once per outage.
        clear_readers(shared);
        if announced_down.is_none() {
            tracing::warn!("PC/SC: {reason}; retrying");
            let event = PcscEvent::ServiceDown {
                reason: reason.clone(),
            };
            set_service(
                shared,
                ServiceState::Down {
                    reason: reason.clone(),
                },
                Some(event),
            );
            announced_down = Some(reason);
        } else {
            // Same outage, maybe another symptom: keep the snapshot current, no new event.
            set_service(shared, ServiceState::Down { reason }, None);
        }
        sleep_unless_stopped(shared, backoff);
        backoff = (backoff * 2).min(options.max_backoff);
    }
}

fn describe(e: PcscError) -> String {
    match e {
        PcscError::NoService | PcscError::ServiceStopped => {
            "the PC/SC service (pcscd) is not running".to_owned()
        }
        other => format!("PC/SC error: {other}"),
    }
}

fn sleep_unless_stopped(shared: &Shared, total: Duration) {
    let step = Duration::from_millis(50);
    let mut slept = Duration::ZERO;
    while slept < total && !shared.stop.load(Ordering::SeqCst) {
        std::thread::sleep(step);
        slept += step;
    }
}

/// Follows readers and cards until the context fails (pcscd gone) or the watcher stops.
fn watch(shared: &Shared, ctx: &Context, options: &WatcherOptions) -> Result<(), PcscError> {
    let pnp = pcsc::PNP_NOTIFICATION().to_owned();
    let mut states: Vec<ReaderState> = vec![ReaderState::new(pnp.clone(), State::UNAWARE)];
    let mut known: BTreeMap<CString, ReaderStatus> = BTreeMap::new();
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        sync_reader_list(shared, ctx, &pnp, &mut states, &mut known)?;
        for s in &mut states {
            s.sync_current_state();
        }
        match ctx.get_status_change(options.poll, &mut states) {
            Ok(()) => {}
            Err(PcscError::Timeout) => {}
            Err(PcscError::Cancelled) => return Ok(()),
            // A reader vanished between listing and waiting: list again.
            Err(PcscError::UnknownReader) | Err(PcscError::ReaderUnavailable) => {}
            Err(e) => return Err(e),
        }
        for s in states.iter().filter(|s| s.name() != pnp.as_c_str()) {
            let event = s.event_state();
            if event.intersects(State::UNKNOWN | State::IGNORE) {
                continue;
            }
            let present = event.contains(State::PRESENT) && !event.contains(State::MUTE);
            let name = s.name().to_owned();
            if let Some(status) = known.get_mut(&name) {
                let atr = if present {
                    s.atr().to_vec()
                } else {
                    Vec::new()
                };
                if status.card_present != present || status.atr != atr {
                    let reader = status.name.clone();
                    let ev = if present {
                        PcscEvent::CardInserted {
                            reader,
                            atr: atr.clone(),
                        }
                    } else {
                        PcscEvent::CardRemoved { reader }
                    };
                    // A different card swapped in between two looks: removed, then inserted.
                    if present && status.card_present {
                        let _ = shared.events.send(PcscEvent::CardRemoved {
                            reader: status.name.clone(),
                        });
                    }
                    status.card_present = present;
                    status.atr = atr;
                    let _ = shared.events.send(ev);
                }
            }
        }
        publish(shared, &known);
    }
}

/// Brings `states` and `known` in line with the readers pcscd lists now.
fn sync_reader_list(
    shared: &Shared,
    ctx: &Context,
    pnp: &CString,
    states: &mut Vec<ReaderState>,
    known: &mut BTreeMap<CString, ReaderStatus>,
) -> Result<(), PcscError> {
    let names = match ctx.list_readers_owned() {
        Ok(n) => n,
        Err(PcscError::NoReadersAvailable) => Vec::new(),
        Err(e) => return Err(e),
    };
    let gone: Vec<CString> = known
        .keys()
        .filter(|k| !names.contains(k))
        .cloned()
        .collect();
    for name in gone {
        if let Some(status) = known.remove(&name) {
            if status.card_present {
                let _ = shared.events.send(PcscEvent::CardRemoved {
                    reader: status.name.clone(),
                });
            }
            let _ = shared.events.send(PcscEvent::ReaderRemoved {
                reader: status.name,
            });
        }
        states.retain(|s| s.name() != name.as_c_str());
    }
    for name in names {
        if name == *pnp || known.contains_key(&name) {
            continue;
        }
        let display = name.to_string_lossy().into_owned();
        let _ = shared.events.send(PcscEvent::ReaderAdded {
            reader: display.clone(),
        });
        known.insert(
            name.clone(),
            ReaderStatus {
                name: display,
                card_present: false,
                atr: Vec::new(),
            },
        );
        states.push(ReaderState::new(name, State::UNAWARE));
    }
    Ok(())
}

fn publish(shared: &Shared, known: &BTreeMap<CString, ReaderStatus>) {
    let mut snap = lock(&shared.snapshot);
    snap.readers = known.values().cloned().collect();
    snap.scans += 1;
    shared.changed.notify_all();
}

fn set_service(shared: &Shared, state: ServiceState, event: Option<PcscEvent>) {
    {
        let mut snap = lock(&shared.snapshot);
        snap.service = state;
        snap.scans += 1;
    }
    shared.changed.notify_all();
    if let Some(ev) = event {
        let _ = shared.events.send(ev);
    }
}

fn clear_readers(shared: &Shared) {
    let removed: Vec<ReaderStatus> = std::mem::take(&mut lock(&shared.snapshot).readers);
    for r in removed {
        if r.card_present {
            let _ = shared.events.send(PcscEvent::CardRemoved {
                reader: r.name.clone(),
            });
        }
        let _ = shared
            .events
            .send(PcscEvent::ReaderRemoved { reader: r.name });
    }
}
