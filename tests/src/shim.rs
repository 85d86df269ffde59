//! Segel's own PKCS#11 module (`libsegel_pkcs11.so`, package `segel-pkcs11`) with a private
//! keystore folder, and the PKCS#12 writers that make its key files: OpenSSL (AES and `-legacy`),
//! Python `cryptography` from PyPI and NSS `pk12util`.
//!
//! [`Keystore::new`] makes a temp dir with a `keys/` folder and a config file that turns the
//! removable-media scan off, so a test only ever sees its own files; [`Keystore::envs`] is what a
//! process loading the module needs (`SEGEL_KEYSTORE_DIRS`, `SEGEL_PKCS11_CONFIG`).
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use segel_tests::shim::{Keystore, Writer};
//! let ks = Keystore::new()?;
//! ks.add("budi", "vendor-rsa2048", Writer::OpenSslAes, "rahasia")?;
//! let out = ks.pkcs11_tool(&["-L"])?;
//! # Ok(()) }
//! ```

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, anyhow, bail, ensure};
use tempfile::TempDir;

use crate::fixtures;
use crate::run::{Envs, run};
use crate::segel::{target_dir, workspace_root};

/// `<target>/debug/libsegel_pkcs11.so` as shipped (default features), built with the rest of
/// the workspace by [`crate::segel::built`] — never with a build of its own, which would
/// re-link the file under tests that have it loaded.
pub fn module_path() -> Result<PathBuf> {
    let so = crate::segel::built()?.join("libsegel_pkcs11.so");
    ensure!(
        so.exists(),
        "built the workspace but {} is missing",
        so.display()
    );
    Ok(so)
}

/// Builds the module (release or debug, with `features`) and copies it to `dest`, so builds
/// with different features can be loaded side by side (benchmarks).
pub fn build_copy(release: bool, features: &[&str], dest: &Path) -> Result<PathBuf> {
    let so = build_with(release, features)?;
    std::fs::copy(&so, dest)
        .with_context(|| format!("copying {} to {}", so.display(), dest.display()))?;
    Ok(dest.to_path_buf())
}

fn build_with(release: bool, features: &[&str]) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root())
        .args(["build", "-q", "-p", "segel-pkcs11"]);
    if release {
        cmd.arg("--release");
    }
    // Exactly the features asked for (none = the pure-RustCrypto module).
    cmd.arg("--no-default-features");
    if !features.is_empty() {
        cmd.arg("--features").arg(features.join(","));
    }
    run(&mut cmd, &[])?;
    let profile = if release { "release" } else { "debug" };
    let so = target_dir().join(profile).join("libsegel_pkcs11.so");
    ensure!(so.exists(), "{} missing after build", so.display());
    Ok(so)
}

/// Python with PyPI `cryptography` (the venv made by `scripts/install-test-deps`;
/// `SEGEL_TEST_VENV` overrides its location).
pub fn python() -> Result<PathBuf> {
    let venv = std::env::var_os("SEGEL_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/segel-test-venv"));
    let python = venv.join("bin/python");
    ensure!(
        python.exists(),
        "{} missing: run scripts/install-test-deps",
        python.display()
    );
    Ok(python)
}

/// Which tool writes a key file, and with which encryption.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writer {
    /// `openssl pkcs12 -export`: PBES2 AES-256-CBC, PBKDF2-HMAC-SHA256, SHA-256 MAC.
    OpenSslAes,
    /// `openssl pkcs12 -export -legacy`: 3DES key bag, RC2-40 certificates, SHA-1 MAC.
    OpenSslLegacy,
    /// `openssl pkcs12 -export -certpbe NONE`: certificates readable without the passphrase.
    OpenSslClearCerts,
    /// Python `cryptography`, `BestAvailableEncryption` (PBES2 AES-256-CBC).
    PythonAes,
    /// Python `cryptography`, `PBESv1SHA1And3KeyTripleDESCBC` with a SHA-1 MAC.
    PythonLegacy,
    /// NSS `pk12util -o` default (PBES2 AES-256 key, AES-128 certificates, 600,000 iterations).
    NssAes,
    /// NSS `pk12util -o` with the SHA-1 3DES key and RC2-40 certificate PBEs.
    NssLegacy,
}

impl Writer {
    /// Every writer.
    pub const ALL: [Writer; 7] = [
        Writer::OpenSslAes,
        Writer::OpenSslLegacy,
        Writer::OpenSslClearCerts,
        Writer::PythonAes,
        Writer::PythonLegacy,
        Writer::NssAes,
        Writer::NssLegacy,
    ];

    /// Writes fixture `fixture_name`'s key and certificate (with the issuing CA) to `out`,
    /// encrypted with `passphrase`, the key and certificate named `friendly_name`.
    pub fn write(
        self,
        fixture_name: &str,
        out: &Path,
        passphrase: &str,
        friendly_name: &str,
    ) -> Result<()> {
        let f = fixtures::fixture(fixture_name)?;
        match self {
            Writer::OpenSslAes | Writer::OpenSslLegacy | Writer::OpenSslClearCerts => {
                let extra: &[&str] = match self {
                    Writer::OpenSslLegacy => &["-legacy"],
                    Writer::OpenSslClearCerts => &["-certpbe", "NONE"],
                    _ => &[],
                };
                openssl_export(
                    &f.key_path,
                    &f.cert_pem_path,
                    out,
                    passphrase,
                    friendly_name,
                )
                .and_then(|mut c| run(c.args(extra), &[]).map(drop))
            }
            Writer::PythonAes | Writer::PythonLegacy => {
                let legacy = self == Writer::PythonLegacy;
                python_export(
                    &f.key_path,
                    &f.cert_pem_path,
                    out,
                    passphrase,
                    friendly_name,
                    legacy,
                )
            }
            Writer::NssAes | Writer::NssLegacy => nss_export(
                &f.key_path,
                &f.cert_pem_path,
                out,
                passphrase,
                friendly_name,
                self == Writer::NssLegacy,
            ),
        }
    }
}

fn openssl_export(
    key: &Path,
    cert: &Path,
    out: &Path,
    passphrase: &str,
    name: &str,
) -> Result<Command> {
    let mut c = Command::new("openssl");
    c.args(["pkcs12", "-export", "-inkey"])
        .arg(key)
        .arg("-in")
        .arg(cert)
        .arg("-certfile")
        .arg(fixtures::fixtures_dir().join("issuing-ca.crt.pem"))
        .args(["-name", name, "-passout"])
        .arg(format!("pass:{passphrase}"))
        .arg("-out")
        .arg(out);
    Ok(c)
}

const PYTHON_EXPORT: &str = r#"
import sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12
key_path, cert_path, ca_path, out, name, legacy = sys.argv[1:7]
password = sys.stdin.buffer.read()
key = serialization.load_pem_private_key(open(key_path, "rb").read(), None)
cert = x509.load_pem_x509_certificate(open(cert_path, "rb").read())
ca = x509.load_pem_x509_certificate(open(ca_path, "rb").read())
if legacy == "1":
    enc = (serialization.PrivateFormat.PKCS12.encryption_builder()
           .kdf_rounds(2048)
           .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
           .hmac_hash(hashes.SHA1())
           .build(password))
else:
    enc = serialization.BestAvailableEncryption(password)
data = pkcs12.serialize_key_and_certificates(name.encode(), key, cert, [ca], enc)
open(out, "wb").write(data)
"#;

fn python_export(
    key: &Path,
    cert: &Path,
    out: &Path,
    passphrase: &str,
    name: &str,
    legacy: bool,
) -> Result<()> {
    use std::io::Write as _;
    let mut child = Command::new(python()?)
        .args(["-c", PYTHON_EXPORT])
        .arg(key)
        .arg(cert)
        .arg(fixtures::fixtures_dir().join("issuing-ca.crt.pem"))
        .arg(out)
        .arg(name)
        .arg(if legacy { "1" } else { "0" })
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("starting python")?;
    child
        .stdin
        .take()
        .context("python stdin")?
        .write_all(passphrase.as_bytes())?;
    let output = child.wait_with_output()?;
    ensure!(
        output.status.success(),
        "python cryptography export failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// Imports the key into a scratch NSS database (through an OpenSSL-written file) and exports it
/// with `pk12util -o`.
fn nss_export(
    key: &Path,
    cert: &Path,
    out: &Path,
    passphrase: &str,
    name: &str,
    legacy: bool,
) -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let db = format!("sql:{}", scratch.path().display());
    run(
        Command::new("certutil").args(["-N", "-d", &db, "--empty-password"]),
        &[],
    )?;
    let transfer = scratch.path().join("in.p12");
    run(
        &mut openssl_export(key, cert, &transfer, "transfer", name)?,
        &[],
    )?;
    run(
        Command::new("pk12util")
            .arg("-i")
            .arg(&transfer)
            .args(["-d", &db, "-W", "transfer", "-K", ""]),
        &[],
    )?;
    let mut c = Command::new("pk12util");
    c.arg("-o")
        .arg(out)
        .args(["-n", name, "-d", &db, "-W", passphrase, "-K", ""]);
    if legacy {
        c.args([
            "-c",
            "PKCS #12 V2 PBE With SHA-1 And 3KEY Triple DES-CBC",
            "-C",
            "PKCS #12 V2 PBE With SHA-1 And 40 Bit RC2 CBC",
        ]);
    }
    run(&mut c, &[])?;
    Ok(())
}

/// A private keystore folder for the module: `keys/` plus a config that disables the removable
/// media scan (deleted on drop).
#[derive(Debug)]
pub struct Keystore {
    dir: TempDir,
    folder: PathBuf,
    conf: PathBuf,
}

impl Keystore {
    /// Creates the temp dir, `keys/` and `keystores.conf` (`removable-media = no`).
    pub fn new() -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("segel-shim-").tempdir()?;
        let folder = dir.path().join("keys");
        std::fs::create_dir(&folder)?;
        let conf = dir.path().join("keystores.conf");
        std::fs::write(&conf, "removable-media = no\n")?;
        Ok(Keystore { dir, folder, conf })
    }

    /// The folder searched for key files.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// Scratch space beside the folder (not searched).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Path of the key file for token `label` (`keys/LABEL.p12`).
    pub fn file(&self, label: &str) -> PathBuf {
        self.folder.join(format!("{label}.p12"))
    }

    /// Writes fixture `fixture_name` as token `label` with `writer`; returns the file path.
    pub fn add(
        &self,
        label: &str,
        fixture_name: &str,
        writer: Writer,
        passphrase: &str,
    ) -> Result<PathBuf> {
        let path = self.file(label);
        writer
            .write(fixture_name, &path, passphrase, fixture_name)
            .with_context(|| format!("{writer:?} writing {fixture_name}"))?;
        Ok(path)
    }

    /// Writes one key file `keys/LABEL.p12` holding every fixture in `fixture_names` (key and
    /// certificate with `localKeyId` = i+1 and `friendlyName` = the fixture name, like
    /// [`crate::softhsm::SoftHsm::import_fixture`] with ids 01, 02, …), with the module's own
    /// PKCS#12 writer. `iterations` is the PBKDF2/MAC count (low in tests: each login pays it).
    pub fn add_fixtures(
        &self,
        label: &str,
        fixture_names: &[&str],
        passphrase: &str,
        iterations: u32,
    ) -> Result<PathBuf> {
        use segel_pkcs11::pkcs12::write::{CertToWrite, KeyToWrite, build};
        let mut loaded = Vec::new();
        for (i, name) in fixture_names.iter().enumerate() {
            let f = fixtures::fixture(name)?;
            let (_, doc) = pkcs8::SecretDocument::from_pem(&f.key_pem)
                .map_err(|e| anyhow!("{name}: key PEM: {e}"))?;
            let id = u8::try_from(i + 1).context("too many fixtures")?;
            loaded.push((f, doc, [id]));
        }
        let keys: Vec<KeyToWrite<'_>> = loaded
            .iter()
            .map(|(f, doc, id)| KeyToWrite {
                pkcs8_der: doc.as_bytes(),
                local_key_id: Some(id),
                friendly_name: Some(&f.name),
            })
            .collect();
        let certs: Vec<CertToWrite<'_>> = loaded
            .iter()
            .map(|(f, _, id)| CertToWrite {
                der: &f.cert_der,
                local_key_id: Some(id),
                friendly_name: Some(&f.name),
            })
            .collect();
        let pass = secrecy::SecretString::from(passphrase.to_owned());
        let der = build(&keys, &certs, &pass, iterations).map_err(|e| anyhow!("{e}"))?;
        let path = self.file(label);
        std::fs::write(&path, der)?;
        Ok(path)
    }

    /// What a process loading the module needs.
    pub fn envs(&self) -> Envs {
        vec![
            (
                "SEGEL_KEYSTORE_DIRS".to_owned(),
                self.folder.clone().into_os_string(),
            ),
            (
                "SEGEL_PKCS11_CONFIG".to_owned(),
                self.conf.clone().into_os_string(),
            ),
        ]
    }

    /// Runs `pkcs11-tool --module <shim> ARGS` with this keystore; returns stdout.
    pub fn pkcs11_tool(&self, args: &[&str]) -> Result<String> {
        crate::softhsm::pkcs11_tool(&module_path()?, &self.envs(), args)
    }

    /// Like [`Self::pkcs11_tool`] but returns the output whatever the exit status.
    pub fn pkcs11_tool_output(&self, args: &[&str]) -> Result<std::process::Output> {
        crate::run::run_output(
            Command::new("pkcs11-tool")
                .arg("--module")
                .arg(module_path()?)
                .args(args),
            &self.envs(),
        )
    }
}

/// OpenSSL 3 with `pkcs11-provider` loading a module: an `openssl.cnf` in a temp dir.
#[derive(Debug)]
pub struct OpenSslProvider {
    dir: TempDir,
    envs: Envs,
}

impl OpenSslProvider {
    /// The provider shared object (Debian package `pkcs11-provider`, bookworm-backports).
    pub const PROVIDER: &str = "/usr/lib/x86_64-linux-gnu/ossl-modules/pkcs11.so";

    /// A config loading `module` with the token PIN `pin`; `envs` are added to every command.
    pub fn new(module: &Path, pin: &str, envs: Envs) -> Result<Self> {
        if !Path::new(Self::PROVIDER).exists() {
            bail!("{} missing: run scripts/install-test-deps", Self::PROVIDER);
        }
        let dir = tempfile::tempdir()?;
        let pin_file = dir.path().join("pin");
        std::fs::write(&pin_file, pin)?;
        let conf = dir.path().join("openssl.cnf");
        std::fs::write(
            &conf,
            format!(
                "openssl_conf = openssl_init\n\
                 [openssl_init]\nproviders = provider_sect\n\
                 [provider_sect]\ndefault = default_sect\npkcs11 = pkcs11_sect\n\
                 [default_sect]\nactivate = 1\n\
                 [pkcs11_sect]\nmodule = {}\npkcs11-module-path = {}\n\
                 pkcs11-module-token-pin = file:{}\nactivate = 1\n",
                Self::PROVIDER,
                module.display(),
                pin_file.display()
            ),
        )?;
        let mut all = envs;
        all.push(("OPENSSL_CONF".to_owned(), conf.into_os_string()));
        Ok(OpenSslProvider { dir, envs: all })
    }

    /// Scratch directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `openssl ARGS` with the provider config; returns the output whatever the status.
    pub fn openssl(&self, args: &[&str]) -> Result<std::process::Output> {
        crate::run::run_output(Command::new("openssl").args(args), &self.envs)
    }
}

/// A private NSS database (`sql:DIR`) with a module added by `modutil`.
#[derive(Debug)]
pub struct NssDb {
    dir: TempDir,
    envs: Envs,
}

impl NssDb {
    /// `certutil -N --empty-password`, then `modutil -add NAME -libfile MODULE -force`.
    pub fn with_module(name: &str, module: &Path, envs: Envs) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let db = NssDb { dir, envs };
        db.tool("certutil", &["-N", "--empty-password"])?;
        let lib = module.to_string_lossy().into_owned();
        db.tool("modutil", &["-add", name, "-libfile", &lib, "-force"])?;
        Ok(db)
    }

    /// `sql:DIR`.
    pub fn spec(&self) -> String {
        format!("sql:{}", self.dir.path().display())
    }

    /// Scratch directory (the database lives here too).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `TOOL -d sql:DIR ARGS` (certutil) or `modutil -dbdir sql:DIR ARGS`; returns stdout.
    pub fn tool(&self, tool: &str, args: &[&str]) -> Result<String> {
        let spec = self.spec();
        let mut c = Command::new(tool);
        if tool == "modutil" {
            c.args(["-dbdir", &spec]);
        } else {
            c.args(["-d", &spec]);
        }
        c.args(args).stdin(std::process::Stdio::null());
        run(&mut c, &self.envs)
    }
}
