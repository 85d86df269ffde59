//! Test harness for Segel's integration tests: the checked-in test PKI and real components
//! (SoftHSM2 tokens, a p11-kit server for fault injection, OpenSC's pkcs11-spy, OpenSSL as the
//! interop peer), plus helpers to run the `segel` binary and to isolate per-test process state.
//!
//! See `/TESTSTACK.md` for what each component does on the project's machines. The self-test is
//! `tests/harness.rs`.

pub mod fixtures;
