//! `libsegel_pkcs11.so`: a PKCS#11 v2.40 module that presents PKCS#12 key files (`*.p12`, `*.pfx`)
//! found on removable media and in configured folders as tokens. The file's passphrase is the user
//! PIN; the keys inside sign, decrypt and derive without ever leaving the process.
//!
//! Layout (the safe core first, all `unsafe` in [`ffi`]):
//! - [`discovery`] — which folders and mounted drives are searched, and which files are key files;
//! - [`pkcs12`] — decoding PKCS#12 (PBES2 and the legacy SHA-1 PBEs, MAC check);
//! - [`keys`] — RSA and EC private keys and the operations on them;
//! - [`mechanism`] — the mechanisms offered, their parameters and their limits;
//! - [`object`] — PKCS#11 objects and their attributes;
//! - [`token`], [`session`], [`module`] — slots following the files, sessions, login state;
//! - [`ffi`] — the C ABI (`C_GetFunctionList` and every `C_*` entry point), split by spec chapter.

pub mod discovery;
mod error;
pub mod ffi;
pub mod keys;
pub mod mechanism;
pub mod module;
pub mod object;
pub mod pkcs12;
pub mod session;
pub mod store;
pub mod token;

pub use error::{Error, Result};
