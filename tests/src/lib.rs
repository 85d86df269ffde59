//! Test harness for Segel's integration tests: the checked-in test PKI and real components
//! (SoftHSM2 tokens, a p11-kit server for fault injection, OpenSC's pkcs11-spy, OpenSSL as the
//! interop peer), plus helpers to run the `segel` binary and to give in-process tests their own
//! environment.
//!
//! One module per component; see TESTSTACK.md for how each behaves on the project's machines.
//! The harness tests itself in `tests/harness.rs`. External tools come from
//! `scripts/install-test-deps`.

pub mod backend;
pub mod cpustat;
pub mod daemon;
pub mod fixtures;
pub mod isolate;
pub mod openssl;
pub mod p11kit;
pub mod pcscd;
pub mod run;
pub mod segel;
pub mod shim;
pub mod softhsm;
pub mod spy;
pub mod vpiv;
