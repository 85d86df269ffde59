//! The token layer: PKCS#11 modules, their tokens, certificates and keys.
//!
//! Worker threads own the PKCS#11 sessions ([`worker`]); the [`TokenService`] hands out
//! [`Reply`] values that a CLI blocks on and the daemon awaits. Errors name their cause
//! ([`TokenError`]) and map to stable wire codes.

mod error;
mod inventory;
pub mod module;
pub mod opensc;
mod ops;
mod service;
pub(crate) mod unpad;
mod worker;

pub use error::TokenError;
pub use inventory::{CertificateEntry, TokenDescription, TokenFlags};
pub use module::{ModuleSource, ModuleSpec};
pub use ops::{DecryptPadding, HashAlg, SignScheme};
pub(crate) use service::TokenRef;
pub use service::{
    CertSelector, GeneratedKey, ImportOutcome, KeyPurpose, KeySpec, ServiceOptions, SignRequest,
    TokenAdmin, TokenService,
};
pub use worker::Reply;
