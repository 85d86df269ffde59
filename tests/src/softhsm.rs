//! SoftHSM2 tokens with a private configuration per test (TESTSTACK.md, "SoftHSM2").
//!
//! [`SoftHsm::new`] makes a temporary directory with its own `softhsm2.conf` and token directory;
//! the system configuration is never read or written. Every tool runs with [`SoftHsm::envs`], and
//! so must any process (or child test, see [`crate::isolate`]) that loads the module.
//!
//! Create tokens BEFORE any process initialises the module: SoftHSM only sees tokens that
//! existed at `C_Initialize`. Slot IDs are random: select tokens by label.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use segel_tests::softhsm::SoftHsm;
//! let hsm = SoftHsm::new()?;
//! hsm.init_token("vendor", "87654321", "1234")?;
//! hsm.import_fixture("vendor", "1234", "vendor-rsa2048", "01", "Budi Santoso")?;
//! // now run Segel (or a child test) with hsm.envs() and module SoftHsm::MODULE
//! # Ok(()) }
//! ```

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use der::{Decode, Encode};
use tempfile::TempDir;
use x509_cert::Certificate;

use crate::fixtures::{self, KeyType, Usage};
use crate::run::{Envs, run};

/// A private SoftHSM2 installation: configuration file plus token directory in a temp dir
/// (deleted on drop).
#[derive(Debug)]
pub struct SoftHsm {
    dir: TempDir,
    conf: PathBuf,
}

impl SoftHsm {
    /// The SoftHSM2 PKCS#11 module (Debian package `softhsm2`).
    pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

    /// Creates the temp dir, its `tokens/` directory and `softhsm2.conf`.
    pub fn new() -> Result<Self> {
        ensure!(
            Path::new(Self::MODULE).exists(),
            "{} missing: run scripts/install-test-deps",
            Self::MODULE
        );
        let dir = tempfile::Builder::new()
            .prefix("segel-softhsm-")
            .tempdir()?;
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens)?;
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )?;
        Ok(Self { dir, conf })
    }

    /// Path of the SoftHSM2 module, [`Self::MODULE`].
    pub fn module_path(&self) -> PathBuf {
        PathBuf::from(Self::MODULE)
    }

    /// The private `softhsm2.conf`.
    pub fn conf_path(&self) -> &Path {
        &self.conf
    }

    /// The temp dir holding the configuration and tokens (free for other per-test files too).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What a process loading the module needs: `SOFTHSM2_CONF`.
    pub fn envs(&self) -> Envs {
        vec![(
            "SOFTHSM2_CONF".to_owned(),
            self.conf.clone().into_os_string(),
        )]
    }

    /// Initialises a token in the next free slot (`softhsm2-util --init-token --free`).
    pub fn init_token(&self, label: &str, so_pin: &str, user_pin: &str) -> Result<()> {
        self.softhsm2_util(&[
            "--init-token",
            "--free",
            "--label",
            label,
            "--so-pin",
            so_pin,
            "--pin",
            user_pin,
        ])?;
        Ok(())
    }

    /// Puts fixture `fixture_name`'s private key, public key and certificate on the token, all
    /// three with CKA_ID `id_hex` and CKA_LABEL `object_label`.
    ///
    /// Written with `pkcs11-tool --write-object` rather than `softhsm2-util --import`, because the
    /// latter leaves CKA_DERIVE false on EC keys, so ECDH (keyAgreement) would be impossible.
    /// Private keys get CKA_SENSITIVE; usage flags follow the certificate: signing fixtures get
    /// CKA_SIGN, encryption fixtures CKA_DECRYPT (RSA) or CKA_DERIVE (EC). (SoftHSM itself defaults
    /// CKA_SIGN/CKA_DECRYPT/CKA_UNWRAP to true on imported private keys whatever is asked.)
    pub fn import_fixture(
        &self,
        token_label: &str,
        user_pin: &str,
        fixture_name: &str,
        id_hex: &str,
        object_label: &str,
    ) -> Result<()> {
        let fixture = fixtures::fixture(fixture_name)?;
        let mut usage_flags = Vec::new();
        for usage in &fixture.entry.usage {
            usage_flags.push(match (usage, fixture.entry.key_type) {
                (Usage::Sign, _) => "--usage-sign",
                (Usage::Decrypt, KeyType::Rsa) => "--usage-decrypt",
                (Usage::Decrypt, KeyType::Ec) => "--usage-derive",
            });
        }
        let cert = Certificate::from_der(&fixture.cert_der)
            .with_context(|| format!("parsing {}", fixture.cert_der_path.display()))?;
        let spki = self.dir().join(format!("{fixture_name}-{id_hex}.spki.der"));
        std::fs::write(
            &spki,
            cert.tbs_certificate.subject_public_key_info.to_der()?,
        )?;

        let key_path = fixture.key_path.to_string_lossy().into_owned();
        let spki_path = spki.to_string_lossy().into_owned();
        let cert_path = fixture.cert_der_path.to_string_lossy().into_owned();
        let common = [
            "--token-label",
            token_label,
            "--id",
            id_hex,
            "--label",
            object_label,
        ];

        let mut args = vec!["--login", "--pin", user_pin, "--write-object", &key_path];
        args.extend(["--type", "privkey", "--sensitive"]);
        args.extend(&usage_flags);
        args.extend(common);
        self.pkcs11_tool(&args)?;

        let mut args = vec!["--write-object", &spki_path, "--type", "pubkey"];
        args.extend(&usage_flags);
        args.extend(common);
        self.pkcs11_tool(&args)?;

        let mut args = vec!["--write-object", &cert_path, "--type", "cert"];
        args.extend(common);
        self.pkcs11_tool(&args)?;
        Ok(())
    }

    /// Runs `softhsm2-util ARGS` with this installation's env; returns stdout.
    pub fn softhsm2_util(&self, args: &[&str]) -> Result<String> {
        run(Command::new("softhsm2-util").args(args), &self.envs())
    }

    /// Runs `pkcs11-tool --module <SoftHSM> ARGS` with this installation's env; returns stdout.
    pub fn pkcs11_tool(&self, args: &[&str]) -> Result<String> {
        pkcs11_tool(Path::new(Self::MODULE), &self.envs(), args)
    }

    /// The objects on a token as `pkcs11-tool -O` lists them (logged in, so private keys show).
    pub fn list_objects(&self, token_label: &str, user_pin: &str) -> Result<String> {
        self.pkcs11_tool(&[
            "--token-label",
            token_label,
            "--login",
            "--pin",
            user_pin,
            "-O",
        ])
    }

    /// Labels of the initialised tokens (`softhsm2-util --show-slots`).
    pub fn token_labels(&self) -> Result<Vec<String>> {
        let out = self.softhsm2_util(&["--show-slots"])?;
        Ok(out
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Label:"))
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect())
    }
}

/// Runs `pkcs11-tool --module MODULE ARGS` with `envs`; returns stdout. Fails with stderr when
/// pkcs11-tool exits non-zero (it does for every failed PKCS#11 call).
pub fn pkcs11_tool(module: &Path, envs: &[(String, OsString)], args: &[&str]) -> Result<String> {
    if !module.exists() {
        bail!(
            "PKCS#11 module {} missing: run scripts/install-test-deps",
            module.display()
        );
    }
    run(
        Command::new("pkcs11-tool")
            .arg("--module")
            .arg(module)
            .args(args),
        envs,
    )
}
