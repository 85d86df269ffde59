//! Running one test's body in a fresh child process with its own environment.
//!
//! A PKCS#11 module reads its configuration from the environment at `C_Initialize`
//! (`SOFTHSM2_CONF`, `P11_KIT_SERVER_ADDRESS`, `PKCS11SPY`) and keeps process-global state, while
//! tests in one binary share a process and `std::env::set_var` is `unsafe` (edition 2024) and
//! forbidden here. So a test that loads a module in-process re-runs itself: the parent prepares
//! tokens (before anything initialises a module), then [`run_in_child`] runs the current test
//! binary again with `--exact <test> --nocapture --test-threads=1`, the given env and a marker;
//! in the child [`is_child`] is true and the test does the work. The child's output is forwarded
//! (captured by libtest like any test output); the parent fails if the child fails or if the
//! child did not run exactly that one test (a mistyped test path cannot pass silently).
//!
//! ```no_run
//! use segel_tests::isolate::{child_env, is_child, run_in_child};
//! use segel_tests::softhsm::SoftHsm;
//!
//! #[test]
//! fn token_lists_one_certificate() -> anyhow::Result<()> {
//!     if is_child() {
//!         // Fresh process: SOFTHSM2_CONF is this test's, so C_Initialize sees its tokens.
//!         let label = child_env("TOKEN")?;
//!         let pkcs11 = cryptoki::context::Pkcs11::new(SoftHsm::MODULE)?;
//!         // ... initialise, find the token by `label`, assert ...
//!         return Ok(());
//!     }
//!     let hsm = SoftHsm::new()?;
//!     hsm.init_token("t1", "87654321", "1234")?;
//!     hsm.import_fixture("t1", "1234", "vendor-p256", "01", "Agus")?;
//!     let mut envs = hsm.envs();
//!     envs.push(("TOKEN".into(), "t1".into()));
//!     // The path libtest prints for the test (`module::name` inside the test crate).
//!     run_in_child("token_lists_one_certificate", &envs)
//! }
//! ```
//! Keep `hsm` alive until `run_in_child` returns: dropping it deletes the tokens.

use std::ffi::OsString;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::run::{command_line, run_output};

/// Env var set in the child to the test path it should run.
pub const MARKER: &str = "SEGEL_TEST_ISOLATED_CHILD";

/// True in a process started by [`run_in_child`].
pub fn is_child() -> bool {
    std::env::var_os(MARKER).is_some()
}

/// Reads an env var the parent passed to the child, with an error naming it when missing.
pub fn child_env(name: &str) -> Result<String> {
    std::env::var(name).with_context(|| format!("env {name} not set (did the parent pass it?)"))
}

/// Re-runs the current test binary for exactly `test_path` with `envs` plus [`MARKER`]; forwards
/// its stdout/stderr; fails unless it ran exactly one test and that test passed.
pub fn run_in_child(test_path: &str, envs: &[(String, OsString)]) -> Result<()> {
    if is_child() {
        bail!("run_in_child called inside a child (missing `if is_child()` branch?)");
    }
    let exe = std::env::current_exe().context("locating the test binary")?;
    let mut cmd = Command::new(&exe);
    cmd.args([test_path, "--exact", "--nocapture", "--test-threads=1"])
        .env(MARKER, test_path)
        // libtest's own knobs would change what the child prints; keep them out.
        .env_remove("RUST_TEST_THREADS")
        .env_remove("NEXTEST_EXECUTION_MODE");
    let output = run_output(&mut cmd, envs)?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // print! (not writing to the fd) so libtest captures it as this test's output.
    print!("--- child `{test_path}` stdout\n{stdout}");
    eprint!("--- child `{test_path}` stderr\n{stderr}");
    if !output.status.success() {
        bail!(
            "child test `{test_path}` failed ({}): see its output above",
            output.status
        );
    }
    if !stdout.contains("running 1 test") || !stdout.contains("1 passed") {
        bail!(
            "child `{}` did not run exactly one test named `{test_path}` (wrong path?)",
            command_line(&cmd)
        );
    }
    Ok(())
}
