//! From card events to token events: on every PC/SC change the [`TokenFollower`] rescans the
//! PKCS#11 slots (`TokenService::tokens`, which runs on its own scan thread and does not block
//! operations on other tokens) and reports which tokens appeared or went away — what the daemon
//! pushes to the extension as "token inserted / removed".
//!
//! It reacts only to events the watcher sends once pcscd has powered a card and read its ATR:
//! touching OpenSC earlier can hang it (see docs/architecture.md, "Smart cards over PC/SC").
//!
//! Before rescanning it brings the modules up to date ([`FollowOptions`]): a card whose ATR
//! names a module that is not loaded gets it loaded (`TokenService::add_module`), and a
//! PC/SC-based module that has no slot for a reader plugged in after its `C_Initialize` is
//! re-initialised (`TokenService::reinitialise_module`: only that module's workers pause).

use std::collections::BTreeMap;
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::broadcast;

use super::atr::AtrTable;
use super::watcher::{PcscEvent, Watcher};
use crate::token::{ModuleSource, ModuleSpec, TokenDescription, TokenService};

/// How the follower keeps modules current and which tokens it reports.
#[derive(Clone, Debug)]
pub struct FollowOptions {
    /// How long to let more PC/SC events arrive before rescanning (one rescan per burst, and
    /// a moment for the card to settle before a module touches it).
    pub settle: Duration,
    /// The ATR table: modules for inserted cards are loaded from it (when `load_by_atr`), and
    /// with `only_pcsc_modules` it says which modules are PC/SC-based.
    pub table: Option<AtrTable>,
    pub load_by_atr: bool,
    /// Report only tokens of modules the table names (the daemon polls the others).
    pub only_pcsc_modules: bool,
    /// How long a module re-initialisation waits for that module's running operations.
    pub reinit_grace: Duration,
}

impl Default for FollowOptions {
    fn default() -> Self {
        FollowOptions {
            settle: Duration::from_millis(250),
            table: None,
            load_by_atr: false,
            only_pcsc_modules: false,
            reinit_grace: Duration::from_secs(30),
        }
    }
}

/// A token that appeared or went away.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TokenEvent {
    TokenInserted { token: TokenDescription },
    TokenRemoved { token: TokenDescription },
}

/// A subscription to token events.
pub type TokenEvents = broadcast::Receiver<TokenEvent>;

/// Follows a [`Watcher`] and rescans tokens on each change; ends when the watcher stops.
#[derive(Debug)]
pub struct TokenFollower {
    events: broadcast::Sender<TokenEvent>,
    thread: Option<JoinHandle<()>>,
}

/// Tokens are told apart by module, serial and label (slot IDs can change on re-initialisation).
type Key = (std::path::PathBuf, String, String);

impl TokenFollower {
    /// Starts following `watcher` with `service`; the first scan reports the tokens present now
    /// as inserted. `settle` is how long to let more PC/SC events arrive before rescanning.
    pub fn start(
        watcher: &Watcher,
        service: TokenService,
        settle: Duration,
    ) -> std::io::Result<Self> {
        Self::start_with(
            watcher,
            service,
            FollowOptions {
                settle,
                ..FollowOptions::default()
            },
        )
    }

    /// [`Self::start`] with all options.
    pub fn start_with(
        watcher: &Watcher,
        service: TokenService,
        options: FollowOptions,
    ) -> std::io::Result<Self> {
        let settle = options.settle;
        let (events, _) = broadcast::channel(64);
        let mut pcsc = watcher.subscribe();
        let sender = events.clone();
        let thread = std::thread::Builder::new()
            .name("segel-token-follow".to_owned())
            .spawn(move || {
                let mut known: BTreeMap<Key, TokenDescription> = BTreeMap::new();
                rescan(&service, &options, &mut known, &sender);
                loop {
                    let mut batch = match pcsc.blocking_recv() {
                        Ok(event) if is_slot_change(&event) => vec![event],
                        // Missed events: a rescan still brings the token list up to date.
                        Err(broadcast::error::RecvError::Lagged(_)) => Vec::new(),
                        Ok(_) => continue,
                        Err(broadcast::error::RecvError::Closed) => return,
                    };
                    std::thread::sleep(settle);
                    // Everything that arrived meanwhile is covered by this one rescan.
                    while let Ok(event) = pcsc.try_recv() {
                        batch.push(event);
                    }
                    update_modules(&service, &options, &batch);
                    rescan(&service, &options, &mut known, &sender);
                }
            })?;
        Ok(TokenFollower {
            events,
            thread: Some(thread),
        })
    }

    /// Token events from now on.
    pub fn subscribe(&self) -> TokenEvents {
        self.events.subscribe()
    }
}

impl Drop for TokenFollower {
    fn drop(&mut self) {
        // The thread ends when the watcher's channel closes; do not wait for it here.
        drop(self.thread.take());
    }
}

/// Whether the module at `path` reaches its tokens through PC/SC readers: the ATR table names
/// it, or it was loaded for a card's ATR. (SoftHSM, Segel's key-file module, p11-kit's client
/// are not: the daemon polls those.)
pub fn is_pcsc_module(table: &AtrTable, loaded: &[ModuleSpec], path: &std::path::Path) -> bool {
    table.names_module(path)
        || loaded
            .iter()
            .any(|m| m.path == path && m.source == ModuleSource::Atr)
}

fn is_slot_change(event: &PcscEvent) -> bool {
    match event {
        PcscEvent::CardInserted { .. }
        | PcscEvent::CardRemoved { .. }
        | PcscEvent::ReaderAdded { .. }
        | PcscEvent::ReaderRemoved { .. }
        | PcscEvent::ServiceUp
        | PcscEvent::ServiceDown { .. } => true,
    }
}

/// Loads the modules inserted cards need and re-initialises modules blind to new readers.
fn update_modules(service: &TokenService, options: &FollowOptions, batch: &[PcscEvent]) {
    let Some(table) = &options.table else {
        return;
    };
    for event in batch {
        match event {
            PcscEvent::CardInserted { reader, atr } if options.load_by_atr => {
                let Some(path) = table.module_for(atr) else {
                    continue;
                };
                let spec = ModuleSpec {
                    path,
                    source: ModuleSource::Atr,
                };
                match service.add_module(&spec) {
                    Ok(true) => tracing::info!(
                        %reader, module = %spec.path.display(), "loaded the module for the card's ATR"
                    ),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(%reader, "cannot load the card's module: {e}"),
                }
            }
            PcscEvent::ReaderAdded { reader } => {
                for spec in service.modules() {
                    if !table.names_module(&spec.path) && spec.source != ModuleSource::Atr {
                        continue;
                    }
                    if let Ok(Some(false)) = service.module_sees_reader(&spec.path, reader) {
                        tracing::info!(
                            %reader, module = %spec.path.display(),
                            "module has no slot for the new reader: re-initialising it"
                        );
                        if let Err(e) =
                            service.reinitialise_module(&spec.path, options.reinit_grace)
                        {
                            tracing::warn!("re-initialising {}: {e}", spec.path.display());
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

fn rescan(
    service: &TokenService,
    options: &FollowOptions,
    known: &mut BTreeMap<Key, TokenDescription>,
    events: &broadcast::Sender<TokenEvent>,
) {
    let tokens = match service.tokens().wait() {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!("rescanning tokens after a PC/SC change: {e}");
            return;
        }
    };
    let now: BTreeMap<Key, TokenDescription> = tokens
        .into_iter()
        .filter(|t| t.flags.present)
        .filter(|t| {
            !options.only_pcsc_modules
                || options
                    .table
                    .as_ref()
                    .is_some_and(|table| is_pcsc_module(table, &service.modules(), &t.module))
        })
        .map(|t| ((t.module.clone(), t.serial.clone(), t.label.clone()), t))
        .collect();
    for (key, token) in known.iter() {
        if !now.contains_key(key) {
            let _ = events.send(TokenEvent::TokenRemoved {
                token: token.clone(),
            });
        }
    }
    for (key, token) in &now {
        if !known.contains_key(key) {
            let _ = events.send(TokenEvent::TokenInserted {
                token: token.clone(),
            });
        }
    }
    *known = now;
}
