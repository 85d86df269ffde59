//! Segel agent: talks PKCS#11 to tokens and signs, seals and opens bids for
//! e-procurement. The `segel` binary (CLI and, later, the daemon) is built on this library.
//!
//! Layout: [`token`] (modules, tokens, sessions on worker threads), [`certinfo`]
//! (certificates), [`pin`] (PIN sources), [`config`] (paths and the config file),
//! [`protocol`] (wire error codes), [`cms`] (the sealed-bid formats), [`bids`] (sealing and
//! opening batches on tokens, the file rules and the opening report), [`pcsc`] (the PC/SC
//! watcher and the ATR → module table), [`cli`] (one file per command).

#![forbid(unsafe_code)]

pub mod bids;
pub mod certinfo;
pub mod cli;
pub mod cms;
pub mod config;
pub mod enroll;
pub mod install;
pub mod pcsc;
pub mod pin;
pub mod protocol;
pub mod server;
pub mod token;
