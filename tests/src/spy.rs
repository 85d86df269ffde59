//! OpenSC's `pkcs11-spy`: a PKCS#11 module that forwards every call to a real module and logs it.
//!
//! Load [`Spy::MODULE`] instead of the real module, with [`Spy::envs`] (`PKCS11SPY` = the real
//! module, `PKCS11SPY_OUTPUT` = the log). Afterwards [`Spy::calls`] / [`Spy::count_calls`] tell
//! what the program did — e.g. that Segel makes no second `C_Login` after a wrong PIN.
//!
//! Beware: the log contains PINs in clear (pkcs11-spy dumps `pPin`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use tempfile::TempDir;

use crate::run::Envs;

/// One logged PKCS#11 call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// `C_Login`, `C_Sign`, …
    pub function: String,
    /// The return value's name as logged (`CKR_OK`, `CKR_PIN_INCORRECT`, …); `None` if the call
    /// had not returned when the log was read.
    pub rv: Option<String>,
}

/// A pkcs11-spy wrapper around one real module, logging to a file in its own temp dir.
#[derive(Debug)]
pub struct Spy {
    dir: TempDir,
    real_module: PathBuf,
}

impl Spy {
    /// OpenSC's spy module (Debian package `opensc-pkcs11`).
    pub const MODULE: &str = "/usr/lib/x86_64-linux-gnu/pkcs11/pkcs11-spy.so";

    /// Wraps `real_module`.
    pub fn new(real_module: impl AsRef<Path>) -> Result<Self> {
        ensure!(
            Path::new(Self::MODULE).exists(),
            "{} missing: run scripts/install-test-deps",
            Self::MODULE
        );
        Ok(Self {
            dir: tempfile::Builder::new().prefix("segel-spy-").tempdir()?,
            real_module: real_module.as_ref().to_owned(),
        })
    }

    /// The module to load: [`Self::MODULE`].
    pub fn module_path(&self) -> PathBuf {
        PathBuf::from(Self::MODULE)
    }

    /// The log file (created by the first process that loads the spy; appended to after that).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("pkcs11-spy.log")
    }

    /// `PKCS11SPY` and `PKCS11SPY_OUTPUT`. Add the real module's own env (e.g. SoftHSM's) too.
    pub fn envs(&self) -> Envs {
        vec![
            ("PKCS11SPY".to_owned(), OsString::from(&self.real_module)),
            (
                "PKCS11SPY_OUTPUT".to_owned(),
                self.log_path().into_os_string(),
            ),
        ]
    }

    /// The raw log ("" if nothing loaded the spy yet).
    pub fn log(&self) -> Result<String> {
        match std::fs::read(self.log_path()) {
            Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(e).with_context(|| format!("reading {}", self.log_path().display())),
        }
    }

    /// Every call in the log, in order.
    pub fn calls(&self) -> Result<Vec<Call>> {
        Ok(parse_log(&self.log()?))
    }

    /// How many times `function` (e.g. `"C_Login"`) was called.
    pub fn count_calls(&self, function: &str) -> Result<usize> {
        Ok(self
            .calls()?
            .iter()
            .filter(|c| c.function == function)
            .count())
    }

    /// Empties the log, so later counts cover only what follows.
    pub fn clear(&self) -> Result<()> {
        std::fs::write(self.log_path(), b"")
            .with_context(|| format!("truncating {}", self.log_path().display()))
    }
}

/// Parses a pkcs11-spy log: each call starts with a line `N: C_Function` and ends with a line
/// `Returned:  RV CKR_NAME`.
pub fn parse_log(log: &str) -> Vec<Call> {
    let mut calls: Vec<Call> = Vec::new();
    for line in log.lines() {
        if let Some((num, function)) = line.split_once(": ")
            && !num.is_empty()
            && num.bytes().all(|b| b.is_ascii_digit())
            && function.starts_with("C_")
            && !function.contains(' ')
        {
            calls.push(Call {
                function: function.to_owned(),
                rv: None,
            });
        } else if let Some(rest) = line.strip_prefix("Returned:")
            && let Some(last) = calls.last_mut()
        {
            last.rv = rest.split_whitespace().nth(1).map(str::to_owned);
        }
    }
    calls
}
