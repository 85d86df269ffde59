//! From card events to token events: on every PC/SC change the [`TokenFollower`] rescans the
//! PKCS#11 slots (`TokenService::tokens`, which runs on its own scan thread and does not block
//! operations on other tokens) and reports which tokens appeared or went away — what the daemon
//! pushes to the extension as "token inserted / removed".
//!
//! It reacts only to events the watcher sends once pcscd has powered a card and read its ATR:
//! touching OpenSC earlier can hang it (see docs/architecture.md, "Smart cards over PC/SC").

use std::collections::BTreeMap;
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::broadcast;

use super::watcher::{PcscEvent, Watcher};
use crate::token::{TokenDescription, TokenService};

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
        let (events, _) = broadcast::channel(64);
        let mut pcsc = watcher.subscribe();
        let sender = events.clone();
        let thread = std::thread::Builder::new()
            .name("segel-token-follow".to_owned())
            .spawn(move || {
                let mut known: BTreeMap<Key, TokenDescription> = BTreeMap::new();
                rescan(&service, &mut known, &sender);
                loop {
                    match pcsc.blocking_recv() {
                        Ok(event) if is_slot_change(&event) => {}
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return,
                    }
                    std::thread::sleep(settle);
                    // Everything that arrived meanwhile is covered by this one rescan.
                    while pcsc.try_recv().is_ok() {}
                    rescan(&service, &mut known, &sender);
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

fn rescan(
    service: &TokenService,
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
