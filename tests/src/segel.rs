//! The `segel` binary under test, run with a private HOME so tests never touch the real
//! configuration.
//!
//! [`segel_bin`] builds `segel` (package `segel-agent`) once per test process with the same cargo
//! that runs the tests (through [`built`]); [`segel_cmd`] returns a `Command` for it with HOME and the XDG directories
//! pointed into a directory the test owns.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use segel_tests::{segel::segel_cmd, softhsm::SoftHsm};
//! let hsm = SoftHsm::new()?;
//! let home = tempfile::tempdir()?;
//! let out = segel_cmd(&hsm.envs(), home.path())?.args(["tokens", "--json"]).output()?;
//! # Ok(()) }
//! ```

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow};

use crate::run::run;

/// Workspace root: the parent of this crate's directory.
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_owned()
}

/// The cargo target directory (`CARGO_TARGET_DIR`, else `<workspace>/target`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        None => workspace_root().join("target"),
    }
}

/// Builds the workspace once per process with the command `scripts/test` runs before the
/// tests (`$CARGO build -q --workspace --all-targets`) and returns the debug output folder.
/// A failed build is reported to every caller.
///
/// Every build a test asks for goes through here. One command means one feature resolution:
/// a narrower one (`-p segel-pkcs11`, `-p segel-agent --bin segel`) unifies dependency
/// features differently and re-links `target/debug/segel` and `libsegel_pkcs11.so` (a cdylib
/// has no hash in its name) while other tests are running them. After `scripts/test`'s build
/// this is a no-op.
pub fn built() -> Result<PathBuf> {
    static DIR: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(|| build().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!(e))
}

/// `<target>/debug/segel`, built by [`built`].
pub fn segel_bin() -> Result<PathBuf> {
    let bin = built()?.join("segel");
    anyhow::ensure!(
        bin.exists(),
        "built the workspace but {} is missing",
        bin.display()
    );
    Ok(bin)
}

fn build() -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-q", "--workspace", "--all-targets"])
        .current_dir(workspace_root());
    // The variables cargo sets for the running test must not reach the build: ring's build
    // script reruns when CARGO_MANIFEST_DIR changes, and with the test's value it rebuilt
    // ring, rustls and everything above them (~40 s), re-linking the binaries other tests run.
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(set_by_cargo_for_the_test) {
            cmd.env_remove(name);
        }
    }
    run(&mut cmd, &[]).context("building the workspace")?;
    Ok(target_dir().join("debug"))
}

/// Environment variables cargo (or nextest) sets for a running test, as opposed to ones the
/// caller set for the whole run (`CARGO_TARGET_DIR`, `CARGO_INCREMENTAL`, `CARGO_HOME`, …).
fn set_by_cargo_for_the_test(name: &str) -> bool {
    [
        "CARGO_MANIFEST_",
        "CARGO_PKG_",
        "CARGO_CRATE_",
        "CARGO_BIN_",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "CARGO_RUSTC_CURRENT_DIR",
        "NEXTEST",
    ]
    .iter()
    .any(|prefix| name.starts_with(prefix))
}

/// A `Command` for `segel` with `envs` and a private home: HOME=`home_dir`,
/// XDG_CONFIG_HOME=`home_dir/.config`, XDG_DATA_HOME=`home_dir/.local/share`,
/// XDG_STATE_HOME=`home_dir/.local/state`, XDG_CACHE_HOME=`home_dir/.cache`,
/// XDG_RUNTIME_DIR=`home_dir/run` (all created).
pub fn segel_cmd(envs: &[(String, OsString)], home_dir: &Path) -> Result<Command> {
    let mut cmd = Command::new(segel_bin()?);
    for (name, sub) in [
        ("XDG_CONFIG_HOME", ".config"),
        ("XDG_DATA_HOME", ".local/share"),
        ("XDG_STATE_HOME", ".local/state"),
        ("XDG_CACHE_HOME", ".cache"),
        ("XDG_RUNTIME_DIR", "run"),
    ] {
        let dir = home_dir.join(sub);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        // XDG_RUNTIME_DIR must be owner-only (XDG Base Directory spec); the rest does no harm.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        cmd.env(name, dir);
    }
    cmd.env("HOME", home_dir);
    cmd.envs(envs.iter().map(|(k, v)| (k, v)));
    Ok(cmd)
}

/// The JSON printed by a `segel --json` run that succeeded (exit 0).
pub fn ok_json(out: &std::process::Output) -> Result<serde_json::Value> {
    anyhow::ensure!(
        out.status.success(),
        "segel failed ({}): {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).context("segel printed no JSON")
}

/// The stable error code of a `segel --json` run that failed (`{"error": {"code", ...}}`).
pub fn error_code(out: &std::process::Output) -> Result<String> {
    anyhow::ensure!(!out.status.success(), "segel unexpectedly succeeded");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "error JSON expected, got {:?} / {:?}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    Ok(v["error"]["code"].as_str().unwrap_or_default().to_owned())
}

/// `segel --module M --json ARGS` in a private HOME (deleted on drop), with a module's
/// environment and the PIN given through `SEGEL_PIN` (or none: then a PIN is required).
#[derive(Debug)]
pub struct Runner {
    pub home: tempfile::TempDir,
    pub module: PathBuf,
    pub envs: Vec<(String, OsString)>,
}

impl Runner {
    pub fn new(module: PathBuf, envs: Vec<(String, OsString)>) -> Result<Self> {
        Ok(Runner {
            home: tempfile::tempdir()?,
            module,
            envs,
        })
    }

    /// A path in the private HOME.
    pub fn path(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }

    /// A folder in the private HOME (created).
    pub fn dir(&self, name: &str) -> Result<PathBuf> {
        let d = self.path(name);
        std::fs::create_dir_all(&d)?;
        Ok(d)
    }

    /// Writes `text` to a file in the private HOME; returns its path as a string.
    pub fn write(&self, name: &str, text: &str) -> Result<String> {
        let p = self.path(name);
        std::fs::write(&p, text)?;
        Ok(p.display().to_string())
    }

    /// Runs segel with this module (any exit status); stdin is closed.
    pub fn run_with_pin(&self, pin: Option<&str>, args: &[&str]) -> Result<std::process::Output> {
        self.run_module(&self.module, pin, args)
    }

    /// Like [`Self::run_with_pin`] with another module.
    pub fn run_module(
        &self,
        module: &Path,
        pin: Option<&str>,
        args: &[&str],
    ) -> Result<std::process::Output> {
        let mut cmd = segel_cmd(&self.envs, self.home.path())?;
        cmd.env_remove("SEGEL_PIN")
            .stdin(std::process::Stdio::null());
        if let Some(pin) = pin {
            cmd.env("SEGEL_PIN", pin);
        }
        cmd.arg("--module").arg(module).arg("--json").args(args);
        cmd.output()
            .with_context(|| format!("running segel {args:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::set_by_cargo_for_the_test;

    #[test]
    fn the_tests_own_cargo_variables_are_dropped_and_the_runs_settings_kept() {
        for name in [
            "CARGO_MANIFEST_DIR",
            "CARGO_MANIFEST_PATH",
            "CARGO_PKG_NAME",
            "CARGO_CRATE_NAME",
            "CARGO_BIN_EXE_segel",
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_TARGET_TMPDIR",
            "NEXTEST_RUN_ID",
        ] {
            assert!(set_by_cargo_for_the_test(name), "{name}");
        }
        for name in [
            "CARGO",
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "CARGO_INCREMENTAL",
            "CARGO_BUILD_JOBS",
            "RUSTFLAGS",
            "PATH",
        ] {
            assert!(!set_by_cargo_for_the_test(name), "{name}");
        }
    }
}
