//! The checked-in test PKI in `tests/fixtures/` (made by `gen-fixtures`, see its README).
//!
//! A fixture is one key pair with its certificate: `NAME.key.pem` (unencrypted PKCS#8),
//! `NAME.crt.pem` and `NAME.crt.der`. `manifest.json` describes every fixture; [`manifest`] reads it
//! so tests can pick fixtures by role, key type or usage instead of hard-coding names.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// Every fixture name, in generation order (CAs first).
pub const ALL: &[&str] = &[
    "root-ca",
    "issuing-ca",
    "vendor-rsa2048",
    "vendor-rsa3072",
    "vendor-p256",
    "vendor-p384",
    "pokja-rsa2048",
    "pokja-rsa3072",
    "pokja-p256",
    "pokja-p384",
    "vendor-expired",
    "vendor-notyet",
];

/// The directory holding the fixtures (`<workspace>/tests/fixtures`).
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// What a fixture is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Root or issuing certification authority.
    Ca,
    /// A bidder's signing certificate (BSrE profile: digitalSignature + nonRepudiation only).
    Vendor,
    /// A procurement-committee member's encryption certificate.
    Pokja,
}

/// The algorithm family of a fixture's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    /// RSA.
    Rsa,
    /// Elliptic curve (P-256 or P-384).
    Ec,
}

/// What the certificate's key usage allows, as Segel sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Usage {
    /// digitalSignature or nonRepudiation.
    Sign,
    /// keyEncipherment or keyAgreement.
    Decrypt,
}

/// One entry of `manifest.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Fixture name (file stem).
    pub name: String,
    /// What the fixture is for.
    pub role: Role,
    /// Key algorithm family.
    pub key_type: KeyType,
    /// RSA modulus bits, or the curve size (256 / 384).
    pub key_bits: u32,
    /// `"P-256"` / `"P-384"` for EC keys.
    pub curve: Option<String>,
    /// Derived from the key usage extension (CAs: empty).
    pub usage: Vec<Usage>,
    /// Subject in RFC 4514 form, as x509-cert displays it.
    pub subject: String,
    /// Name of the fixture that issued this certificate (the root names itself).
    pub issuer: String,
    /// Certificate serial number, lowercase hex.
    pub serial: String,
    /// RFC 3339.
    pub not_before: String,
    /// RFC 3339.
    pub not_after: String,
    /// SHA-256 of the certificate DER, lowercase hex.
    pub fingerprint_sha256: String,
}

/// A fixture loaded from disk.
#[derive(Clone, Debug)]
pub struct Fixture {
    /// Fixture name (file stem).
    pub name: String,
    /// `NAME.key.pem`: unencrypted PKCS#8 PEM.
    pub key_pem: String,
    /// `NAME.crt.pem`.
    pub cert_pem: String,
    /// `NAME.crt.der`.
    pub cert_der: Vec<u8>,
    /// Path of `NAME.key.pem`.
    pub key_path: PathBuf,
    /// Path of `NAME.crt.pem`.
    pub cert_pem_path: PathBuf,
    /// Path of `NAME.crt.der`.
    pub cert_der_path: PathBuf,
    /// Its manifest entry.
    pub entry: ManifestEntry,
}

/// Loads the fixture `name` (see [`ALL`]).
pub fn fixture(name: &str) -> Result<Fixture> {
    let dir = fixtures_dir();
    let entry = manifest()?
        .into_iter()
        .find(|e| e.name == name)
        .with_context(|| format!("fixture {name:?} is not in manifest.json"))?;
    let key_path = dir.join(format!("{name}.key.pem"));
    let cert_pem_path = dir.join(format!("{name}.crt.pem"));
    let cert_der_path = dir.join(format!("{name}.crt.der"));
    Ok(Fixture {
        name: name.to_owned(),
        key_pem: read_string(&key_path)?,
        cert_pem: read_string(&cert_pem_path)?,
        cert_der: std::fs::read(&cert_der_path)
            .with_context(|| format!("reading {}", cert_der_path.display()))?,
        key_path,
        cert_pem_path,
        cert_der_path,
        entry,
    })
}

/// `chain.pem`: the issuing CA then the root.
pub fn chain_pem_path() -> PathBuf {
    fixtures_dir().join("chain.pem")
}

/// Parses `manifest.json`.
pub fn manifest() -> Result<Vec<ManifestEntry>> {
    let path = fixtures_dir().join("manifest.json");
    serde_json::from_str(&read_string(&path)?)
        .with_context(|| format!("parsing {}", path.display()))
}

fn read_string(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// `openssl x509 -req` as the test CA (the fixtures' issuing CA) for the request `csr`,
/// copying the requested extensions; the certificate (PEM) goes to `out`.
pub fn issue_with_test_ca(csr: &Path, out: &Path) -> Result<()> {
    let ca = fixture("issuing-ca")?;
    let s = |p: &Path| p.display().to_string();
    crate::openssl::openssl(&[
        "x509",
        "-req",
        "-in",
        &s(csr),
        "-CA",
        &s(&ca.cert_pem_path),
        "-CAkey",
        &s(&ca.key_path),
        "-days",
        "365",
        "-copy_extensions",
        "copyall",
        "-sha256",
        "-out",
        &s(out),
    ])?;
    Ok(())
}
