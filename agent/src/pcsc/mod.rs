//! Smart cards over PC/SC: the [`watcher`] (readers and cards coming and going, pcscd restarts)
//! the [`atr`] table that maps a card's ATR to the PKCS#11 module that drives it, and the
//! [`tokens`] follower that turns card changes into token inserted/removed events.
//!
//! The watcher owns the only PC/SC context, on its own thread; callers read its [`Snapshot`] or
//! subscribe to its [`PcscEvent`]s (the daemon forwards them to the extension and refreshes
//! PKCS#11 slots on a change).

pub mod atr;
pub mod present;
pub mod tokens;
pub mod watcher;

pub use atr::{AtrTable, CardEntry};
pub use tokens::{FollowOptions, TokenEvent, TokenEvents, TokenFollower};
pub use watcher::{PcscEvent, ReaderStatus, ServiceState, Snapshot, Watcher, WatcherOptions};
