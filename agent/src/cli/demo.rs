//! `segel demo`: Segel's main job on the embedded default, with no hardware.
//!
//! Two demo key files (a vendor's signing key and a procurement committee member's
//! encryption key, from the test PKI; passphrase `demo1234`) are written to a folder that
//! stands in for a flash drive, and read through Segel's own PKCS#11 module
//! (`libsegel_pkcs11.so`). The demo then runs the real commands, printing each one: list
//! tokens and certificates, sign a bid document, check the signature, and unwrap a bid key
//! sealed to the committee member.

use std::path::{Path, PathBuf};
use std::process::Command;

use rsa::pkcs8::DecodePublicKey;
use serde_json::Value;

use super::Context;
use super::output::CliError;
use crate::protocol::ErrorCode;

/// The demo key files, made by `scripts/make-demo-keystores` from tests/fixtures.
const VENDOR_P12: &[u8] = include_bytes!("../../demo/vendor.p12");
const POKJA_P12: &[u8] = include_bytes!("../../demo/pokja.p12");
const DEMO_PASSPHRASE: &str = "demo1234";
/// Their certificates, to check the demo's results independently of the token layer.
const DEMO_CERTS: [&str; 2] = [
    include_str!("../../demo/vendor.crt.pem"),
    include_str!("../../demo/pokja.crt.pem"),
];

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder for the demo's files (default: a new folder under the system's temp folder).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

fn internal(context: &str, e: impl std::fmt::Display) -> CliError {
    CliError::new(ErrorCode::Internal, format!("{context}: {e}"))
}

struct Demo {
    exe: PathBuf,
    shim: PathBuf,
    keystore: PathBuf,
}

impl Demo {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.arg("--module").arg(&self.shim).args(args);
        cmd.env("SEGEL_KEYSTORE_DIRS", &self.keystore)
            .env(crate::pin::PIN_ENV, DEMO_PASSPHRASE);
        cmd
    }

    /// Print and run a segel command, its output going to the terminal.
    fn show(&self, args: &[&str]) -> Result<(), CliError> {
        println!("\n$ segel {}", args.join(" "));
        let status = self
            .command(args)
            .status()
            .map_err(|e| internal("running segel", e))?;
        if !status.success() {
            return Err(CliError::new(
                ErrorCode::Internal,
                format!("`segel {}` failed ({status})", args.join(" ")),
            ));
        }
        Ok(())
    }

    fn json(&self, args: &[&str]) -> Result<Value, CliError> {
        let out = self
            .command(args)
            .output()
            .map_err(|e| internal("running segel", e))?;
        if !out.status.success() {
            return Err(CliError::new(
                ErrorCode::Internal,
                format!(
                    "`segel {}` failed: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stdout)
                ),
            ));
        }
        serde_json::from_slice(&out.stdout).map_err(|e| internal("reading segel's JSON", e))
    }
}

/// Where Segel's PKCS#11 module is: `SEGEL_PKCS11_MODULE`, next to this program, or installed.
pub fn shim_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SEGEL_PKCS11_MODULE") {
        return Some(PathBuf::from(p));
    }
    let beside = std::env::current_exe()
        .ok()?
        .parent()?
        .join("libsegel_pkcs11.so");
    [
        beside,
        PathBuf::from("/usr/lib/segel/libsegel_pkcs11.so"),
        PathBuf::from("/usr/lib/x86_64-linux-gnu/pkcs11/libsegel_pkcs11.so"),
    ]
    .into_iter()
    .find(|p| p.exists())
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    std::fs::write(path, bytes).map_err(|e| internal(&format!("writing {}", path.display()), e))
}

/// The fingerprint of the listed certificate whose key can do `usage`.
fn certificate_with(certs: &Value, usage: &str) -> Result<String, CliError> {
    certs
        .as_array()
        .and_then(|a| {
            a.iter().find(|c| {
                c["usage"]
                    .as_array()
                    .is_some_and(|u| u.iter().any(|x| x == usage))
            })
        })
        .and_then(|c| c["fingerprint_sha256"].as_str())
        .map(str::to_owned)
        .ok_or_else(|| internal("demo key files", format!("no certificate that can {usage}")))
}

pub fn run(_ctx: &Context, args: &Args) -> Result<(), CliError> {
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d)
                .map_err(|e| internal(&format!("creating {}", d.display()), e))?;
            d.clone()
        }
        None => tempfile::Builder::new()
            .prefix("segel-demo-")
            .tempdir()
            .map_err(|e| internal("creating the demo folder", e))?
            .keep(),
    };
    let shim = shim_path().ok_or_else(|| {
        CliError::new(
            ErrorCode::NoModule,
            "Segel's PKCS#11 module (libsegel_pkcs11.so) was not found beside segel: build it with `cargo build --release -p segel-pkcs11` or set SEGEL_PKCS11_MODULE",
        )
    })?;
    let keystore = dir.join("flashdisk");
    std::fs::create_dir_all(&keystore).map_err(|e| internal("creating the demo keystore", e))?;
    write(&keystore.join("vendor.p12"), VENDOR_P12)?;
    write(&keystore.join("pokja.p12"), POKJA_P12)?;
    let demo = Demo {
        exe: std::env::current_exe().map_err(|e| internal("locating segel", e))?,
        shim,
        keystore: keystore.clone(),
    };
    println!("Segel demo in {}", dir.display());
    println!(
        "Key files on the \"flash drive\" {} (passphrase {DEMO_PASSPHRASE}, given through SEGEL_PIN):",
        keystore.display()
    );
    println!(
        "  vendor.p12 — a vendor's signing key;  pokja.p12 — a committee member's encryption key"
    );

    demo.show(&["tokens"])?;
    demo.show(&["certs"])?;
    let certs = demo.json(&["certs", "--json"])?;
    let vendor_fp = certificate_with(&certs, "sign")?;
    let pokja_fp = certificate_with(&certs, "decrypt")?;

    // 1. The vendor signs the bid document.
    let bid = dir.join("penawaran.txt");
    write(
        &bid,
        "Surat penawaran harga — paket pengadaan 2026/LPSE/001 — Rp 1.234.567.890\n".as_bytes(),
    )?;
    let sig = dir.join("penawaran.sig");
    let (bid_s, sig_s) = (bid.display().to_string(), sig.display().to_string());
    demo.show(&[
        "sign", "--cert", &vendor_fp, "--format", "raw", "--in", &bid_s, "--out", &sig_s,
    ])?;
    let vendor_cert = cert_der(&vendor_fp)?;
    verify_pkcs1_sha256(
        &vendor_cert,
        &std::fs::read(&bid).map_err(|e| internal("reading the bid", e))?,
        &std::fs::read(&sig).map_err(|e| internal("reading the signature", e))?,
    )?;
    println!("✓ the signature verifies with the vendor's certificate");

    // 2. A bid key sealed to the committee member is opened with their key file.
    let pokja_cert = cert_der(&pokja_fp)?;
    let mut bid_key = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bid_key);
    let sealed = seal_to(&pokja_cert, &bid_key)?;
    let sealed_path = dir.join("kunci-penawaran.bin");
    let opened_path = dir.join("kunci-penawaran.dibuka");
    write(&sealed_path, &sealed)?;
    let (sp, op) = (
        sealed_path.display().to_string(),
        opened_path.display().to_string(),
    );
    demo.show(&[
        "decrypt",
        "--cert",
        &pokja_fp,
        "--padding",
        "oaep-sha256",
        "--in",
        &sp,
        "--out",
        &op,
    ])?;
    let opened = std::fs::read(&opened_path).map_err(|e| internal("reading the opened key", e))?;
    if opened != bid_key {
        return Err(CliError::new(
            ErrorCode::Internal,
            "the opened bid key differs from the sealed one",
        ));
    }
    println!(
        "✓ the committee member recovered the 32-byte bid key sealed to them (RSA-OAEP-SHA256)"
    );
    println!("\nDemo complete. Files are in {}", dir.display());
    Ok(())
}

/// The embedded demo certificate with this fingerprint.
fn cert_der(fingerprint: &str) -> Result<Vec<u8>, CliError> {
    DEMO_CERTS
        .iter()
        .filter_map(|pem| crate::certinfo::CertInfo::from_pem(pem).ok())
        .find(|c| c.fingerprint_sha256 == fingerprint)
        .map(|c| c.der)
        .ok_or_else(|| {
            internal(
                "demo key files",
                "the listed certificate is not one of the demo's",
            )
        })
}

fn public_key(cert_der: &[u8]) -> Result<rsa::RsaPublicKey, CliError> {
    use der::{Decode, Encode};
    let cert =
        x509_cert::Certificate::from_der(cert_der).map_err(|e| internal("demo certificate", e))?;
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| internal("demo certificate", e))?;
    rsa::RsaPublicKey::from_public_key_der(&spki).map_err(|e| internal("demo certificate key", e))
}

fn verify_pkcs1_sha256(cert_der: &[u8], data: &[u8], signature: &[u8]) -> Result<(), CliError> {
    use rsa::signature::Verifier;
    let key = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(public_key(cert_der)?);
    let sig =
        rsa::pkcs1v15::Signature::try_from(signature).map_err(|e| internal("signature", e))?;
    key.verify(data, &sig)
        .map_err(|e| internal("signature check", e))
}

fn seal_to(cert_der: &[u8], key: &[u8]) -> Result<Vec<u8>, CliError> {
    public_key(cert_der)?
        .encrypt(&mut rand_core::OsRng, rsa::Oaep::new::<sha2::Sha256>(), key)
        .map_err(|e| internal("sealing the demo key", e))
}
