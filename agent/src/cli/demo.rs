//! `segel demo`: Segel's main job on the embedded default, with no hardware.
//!
//! Two demo key files (a vendor's signing key and a procurement committee member's
//! encryption key, from the test PKI; passphrase `demo1234`) are written to a folder that
//! stands in for a flash drive, and read through Segel's own PKCS#11 module
//! (`libsegel_pkcs11.so`). The demo then runs the real commands, printing each one: list
//! tokens and certificates, sign a document and verify the signature, seal two bid documents
//! to the committee member, and open them with the member's key file into an opening report.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::Context;
use super::output::CliError;
use crate::protocol::ErrorCode;

/// The demo key files, made by `scripts/make-demo-keystores` from tests/fixtures.
const VENDOR_P12: &[u8] = include_bytes!("../../demo/vendor.p12");
const POKJA_P12: &[u8] = include_bytes!("../../demo/pokja.p12");
const DEMO_PASSPHRASE: &str = "demo1234";
/// The committee member's certificate, which vendors seal to (the portal publishes it).
const POKJA_CERT: &str = include_str!("../../demo/pokja.crt.pem");
/// The test PKI's root: the trust anchor for the vendor's certificate.
const ROOT_CERT: &str = include_str!("../../demo/root-ca.crt.pem");

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

    let path_str = |p: &Path| p.display().to_string();
    let root = dir.join("root-ca.pem");
    write(&root, ROOT_CERT.as_bytes())?;
    let pokja_pem = dir.join("pokja.crt.pem");
    write(&pokja_pem, POKJA_CERT.as_bytes())?;

    // 1. The vendor signs a document (CMS, detached) and anyone can verify it.
    let bids = dir.join("dokumen");
    std::fs::create_dir_all(&bids).map_err(|e| internal("creating the bid folder", e))?;
    let price = bids.join("surat_penawaran_harga.txt");
    let technical = bids.join("dokumen_teknis.txt");
    write(
        &price,
        "Surat penawaran harga — paket pengadaan 2026/LPSE/001 — Rp 1.234.567.890\n".as_bytes(),
    )?;
    write(
        &technical,
        "Spesifikasi teknis: 12 unit pompa air, garansi 24 bulan, pengiriman 30 hari.\n".as_bytes(),
    )?;
    let sig = dir.join("surat_penawaran_harga.txt.p7s");
    demo.show(&[
        "sign",
        "--cert",
        &vendor_fp,
        "--format",
        "cms",
        "--detached",
        "--in",
        &path_str(&price),
        "--out",
        &path_str(&sig),
    ])?;
    demo.show(&[
        "verify",
        "--in",
        &path_str(&sig),
        "--content",
        &path_str(&price),
        "--ca",
        &path_str(&root),
    ])?;

    // 2. The vendor seals the bid documents to the committee member.
    let sealed = dir.join("penawaran_tersegel");
    std::fs::create_dir_all(&sealed).map_err(|e| internal("creating the sealed folder", e))?;
    demo.show(&[
        "seal",
        "--cert",
        &vendor_fp,
        "--to",
        &path_str(&pokja_pem),
        "--out-dir",
        &path_str(&sealed),
        &path_str(&price),
        &path_str(&technical),
    ])?;

    // 3. At opening time the member opens every bid with one PIN entry.
    let opened = dir.join("penawaran_dibuka");
    std::fs::create_dir_all(&opened).map_err(|e| internal("creating the opening folder", e))?;
    let report = dir.join("berita_acara_pembukaan.html");
    let sealed_files = [
        sealed.join("surat_penawaran_harga.txt.p7m"),
        sealed.join("dokumen_teknis.txt.p7m"),
    ];
    demo.show(&[
        "open",
        "--cert",
        &pokja_fp,
        "--out-dir",
        &path_str(&opened),
        "--ca",
        &path_str(&root),
        "--report",
        &path_str(&report),
        &path_str(&sealed_files[0]),
        &path_str(&sealed_files[1]),
    ])?;
    for original in [&price, &technical] {
        let name = original.file_name().unwrap_or_default();
        let back =
            std::fs::read(opened.join(name)).map_err(|e| internal("reading an opened bid", e))?;
        let sent = std::fs::read(original).map_err(|e| internal("reading a bid", e))?;
        if back != sent {
            return Err(CliError::new(
                ErrorCode::Internal,
                format!(
                    "the opened {} differs from what was sealed",
                    name.to_string_lossy()
                ),
            ));
        }
    }
    println!(
        "✓ both bids opened byte for byte, signatures valid; report: {}",
        report.display()
    );
    println!("\nDemo complete. Files are in {}", dir.display());
    Ok(())
}
