//! OpenSSL 3 as the interop peer: verify Segel's raw signatures, encrypt to a certificate for
//! Segel to decrypt (TESTSTACK.md, "OpenSSL 3.0 as the interop peer").
//!
//! Certificates are PEM files (e.g. [`crate::fixtures::Fixture::cert_pem_path`]). Every command
//! runs with a scratch directory; a failed verification is an `Err` carrying OpenSSL's output.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use tempfile::TempDir;

use crate::run::run;

/// Runs `openssl ARGS` in the current directory; returns stdout.
pub fn openssl(args: &[&str]) -> Result<String> {
    run(Command::new("openssl").args(args), &[])
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str()
        .with_context(|| format!("non-UTF-8 path {}", p.display()))
}

fn check_hash(hash: &str) -> Result<()> {
    ensure!(
        matches!(hash, "sha1" | "sha224" | "sha256" | "sha384" | "sha512"),
        "unsupported hash {hash:?}"
    );
    Ok(())
}

/// Extracts the public key of `cert_pem` into `dir/pub.pem`.
fn public_key(dir: &TempDir, cert_pem: &Path) -> Result<PathBuf> {
    let pubkey = dir.path().join("pub.pem");
    openssl(&[
        "x509",
        "-in",
        path_str(cert_pem)?,
        "-pubkey",
        "-noout",
        "-out",
        path_str(&pubkey)?,
    ])?;
    Ok(pubkey)
}

fn pss_opts(pss: bool) -> Vec<&'static str> {
    if pss {
        // -1: salt length = digest length, what PKCS#11 CKM_RSA_PKCS_PSS callers normally use.
        vec![
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:-1",
        ]
    } else {
        vec![]
    }
}

/// Verifies `sig_file` over the contents of `data_file` with the key of `cert_pem`:
/// `openssl dgst -<hash> -verify <pubkey> -signature <sig> [-sigopt rsa_padding_mode:pss
/// -sigopt rsa_pss_saltlen:-1] <data>`. RSA: PKCS#1 v1.5 or PSS (MGF1 with the same hash).
/// ECDSA: the signature must be DER — convert a PKCS#11 `r‖s` with [`ecdsa_raw_to_der`].
pub fn verify_raw(
    cert_pem: impl AsRef<Path>,
    data_file: impl AsRef<Path>,
    sig_file: impl AsRef<Path>,
    hash: &str,
    pss: bool,
) -> Result<()> {
    check_hash(hash)?;
    let dir = tempfile::tempdir()?;
    let pubkey = public_key(&dir, cert_pem.as_ref())?;
    let digest = format!("-{hash}");
    let mut args = vec![
        "dgst",
        digest.as_str(),
        "-verify",
        path_str(&pubkey)?,
        "-signature",
        path_str(sig_file.as_ref())?,
    ];
    args.extend(pss_opts(pss));
    args.push(path_str(data_file.as_ref())?);
    let out = openssl(&args)?;
    if !out.contains("Verified OK") {
        bail!("openssl dgst -verify did not say Verified OK: {out}");
    }
    Ok(())
}

/// Verifies a signature over an already computed digest (what Segel's "sign a hash" returns):
/// `openssl pkeyutl -verify -pubin -inkey <pubkey> -in <digest> -sigfile <sig> -pkeyopt
/// digest:<hash>` (RSA PKCS#1 v1.5 wraps the digest in a DigestInfo; PSS as in [`verify_raw`]).
pub fn verify_digest(
    cert_pem: impl AsRef<Path>,
    digest_file: impl AsRef<Path>,
    sig_file: impl AsRef<Path>,
    hash: &str,
    pss: bool,
) -> Result<()> {
    check_hash(hash)?;
    let dir = tempfile::tempdir()?;
    let pubkey = public_key(&dir, cert_pem.as_ref())?;
    let digest_opt = format!("digest:{hash}");
    let mut args = vec![
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        path_str(&pubkey)?,
        "-in",
        path_str(digest_file.as_ref())?,
        "-sigfile",
        path_str(sig_file.as_ref())?,
        "-pkeyopt",
        &digest_opt,
    ];
    if pss {
        args.extend([
            "-pkeyopt",
            "rsa_padding_mode:pss",
            "-pkeyopt",
            "rsa_pss_saltlen:-1",
        ]);
    }
    let out = openssl(&args)?;
    if !out.contains("Signature Verified Successfully") {
        bail!("openssl pkeyutl -verify did not verify: {out}");
    }
    Ok(())
}

/// Converts a PKCS#11 ECDSA signature (`r‖s`, 64 bytes for P-256, 96 for P-384) to the DER
/// `Ecdsa-Sig-Value` OpenSSL expects.
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Result<Vec<u8>> {
    Ok(match raw.len() {
        64 => p256::ecdsa::Signature::from_slice(raw)?
            .to_der()
            .as_bytes()
            .to_vec(),
        96 => p384::ecdsa::Signature::from_slice(raw)?
            .to_der()
            .as_bytes()
            .to_vec(),
        n => bail!("raw ECDSA signature of {n} bytes: expected 64 (P-256) or 96 (P-384)"),
    })
}

fn encrypt(cert_pem: &Path, plaintext: &[u8], opts: &[&str]) -> Result<Vec<u8>> {
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("plain");
    let output = dir.path().join("cipher");
    std::fs::write(&input, plaintext)?;
    let mut args = vec![
        "pkeyutl",
        "-encrypt",
        "-certin",
        "-inkey",
        path_str(cert_pem)?,
    ];
    args.extend(opts);
    args.extend(["-in", path_str(&input)?, "-out", path_str(&output)?]);
    openssl(&args)?;
    Ok(std::fs::read(&output)?)
}

/// RSA-OAEP with SHA-256 and MGF1-SHA-256, empty label, to the key of `cert_pem`.
pub fn encrypt_oaep_sha256(cert_pem: impl AsRef<Path>, plaintext: &[u8]) -> Result<Vec<u8>> {
    encrypt(
        cert_pem.as_ref(),
        plaintext,
        &[
            "-pkeyopt",
            "rsa_padding_mode:oaep",
            "-pkeyopt",
            "rsa_oaep_md:sha256",
            "-pkeyopt",
            "rsa_mgf1_md:sha256",
        ],
    )
}

/// RSA PKCS#1 v1.5 encryption to the key of `cert_pem`.
pub fn encrypt_pkcs1(cert_pem: impl AsRef<Path>, plaintext: &[u8]) -> Result<Vec<u8>> {
    encrypt(
        cert_pem.as_ref(),
        plaintext,
        &["-pkeyopt", "rsa_padding_mode:pkcs1"],
    )
}

/// A PKCS#10 request as OpenSSL prints it (names RFC 2253), after OpenSSL checked its
/// self-signature.
pub fn verified_request_text(csr: &Path) -> Result<String> {
    let csr = csr.display().to_string();
    openssl(&["req", "-verify", "-noout", "-in", &csr])?;
    openssl(&["req", "-noout", "-text", "-nameopt", "RFC2253", "-in", &csr])
}
