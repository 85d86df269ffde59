//! A one-off look at the cards present now, for module discovery at start (`segel` commands
//! and `segel serve` load the module the ATR table names for each card present). The only
//! PC/SC calls outside the watcher thread: one short-lived context, no blocking wait.

use std::path::PathBuf;
use std::time::Duration;

use pcsc::{Context, ReaderState, Scope, State};

use super::atr::AtrTable;

/// ATRs of the cards in the readers now; empty when pcscd is not running or has no readers.
pub fn present_atrs() -> Vec<Vec<u8>> {
    let Ok(ctx) = Context::establish(Scope::User) else {
        return Vec::new();
    };
    let Ok(names) = ctx.list_readers_owned() else {
        return Vec::new();
    };
    let mut states: Vec<ReaderState> = names
        .into_iter()
        .map(|n| ReaderState::new(n, State::UNAWARE))
        .collect();
    if states.is_empty() || ctx.get_status_change(Duration::ZERO, &mut states).is_err() {
        return Vec::new();
    }
    states
        .iter()
        .filter(|s| {
            let e = s.event_state();
            e.contains(State::PRESENT) && !e.intersects(State::MUTE | State::UNKNOWN)
        })
        .map(|s| s.atr().to_vec())
        .collect()
}

/// The module files the ATR table names for the cards present now (each once).
pub fn card_modules(table: &AtrTable) -> Vec<PathBuf> {
    let mut modules: Vec<PathBuf> = Vec::new();
    for atr in present_atrs() {
        match table.module_for(&atr) {
            Some(m) if !modules.contains(&m) => modules.push(m),
            Some(_) => {}
            None => tracing::debug!(atr = %super::atr::format_hex(&atr), "no module for this card"),
        }
    }
    modules
}
