//! Sealing and opening benchmark against OpenSSL, measured in the same run (issue 3).
//!
//! `cargo run --release -p segel-tests --bin bench-cms -- [--seal-mb 1024] [--open-count 40]
//! [--open-mb 25] [--dir DIR]`. Quick check: `--seal-mb 64 --open-count 4 --open-mb 8`.
//! Each side runs in a child process so peak memory (VmHWM / max RSS) is its own.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use segel_agent::cms::open::open_file;
use segel_agent::cms::recipient::Recipient;
use segel_agent::cms::seal::{SealOptions, seal_file};
use segel_agent::cms::software::{SoftwareDecryptionKey, SoftwareSigningKey};
use segel_agent::cms::verify::VerifyOptions;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn fx(name: &str) -> String {
    fixtures().join(name).display().to_string()
}

fn read(name: &str) -> Result<String> {
    std::fs::read_to_string(fixtures().join(name)).with_context(|| name.to_string())
}

fn signer() -> Result<SoftwareSigningKey> {
    Ok(SoftwareSigningKey::from_pem(
        &read("vendor-rsa2048.key.pem")?,
        &read("vendor-rsa2048.crt.pem")?,
        &read("issuing-ca.crt.pem")?,
    )?)
}

fn decrypter() -> Result<SoftwareDecryptionKey> {
    Ok(SoftwareDecryptionKey::from_pem(
        &read("pokja-rsa2048.key.pem")?,
        &read("pokja-rsa2048.crt.pem")?,
    )?)
}

fn recipient() -> Result<Recipient> {
    Ok(Recipient::from_der(&std::fs::read(
        fixtures().join("pokja-rsa2048.crt.der"),
    )?)?)
}

fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn write_file(path: &Path, mb: usize) -> Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut buf = vec![0u8; 1 << 20];
    let mut x: u64 = 0x243F_6A88_85A3_08D3;
    for _ in 0..mb {
        for chunk in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        f.write_all(&buf)?;
    }
    f.flush()?;
    Ok(())
}

/// Child mode: do the work, print "seconds peak_kb".
fn child(args: &[String]) -> Result<()> {
    let t = Instant::now();
    match args.first().map(String::as_str) {
        Some("seal") => {
            let (input, out) = (Path::new(&args[1]), Path::new(&args[2]));
            seal_file(
                &signer()?,
                &[recipient()?],
                input,
                out,
                &SealOptions::default(),
            )?;
        }
        Some("open") => {
            let out_dir = Path::new(&args[1]);
            let key = decrypter()?;
            let opts = VerifyOptions {
                anchors: vec![std::fs::read(fixtures().join("root-ca.crt.der"))?],
                ..Default::default()
            };
            for f in &args[2..] {
                let (rep, _) = open_file(&key, Path::new(f), out_dir, &opts)?;
                if !rep.ok() {
                    bail!("{f} did not verify");
                }
            }
        }
        _ => bail!("unknown child mode"),
    }
    println!("{} {}", t.elapsed().as_secs_f64(), vm_hwm_kb());
    Ok(())
}

fn run_self(args: &[&str]) -> Result<(f64, u64)> {
    let out = Command::new(std::env::current_exe()?)
        .arg("--child")
        .args(args)
        .output()?;
    if !out.status.success() {
        bail!(
            "segel child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let s = String::from_utf8(out.stdout)?;
    let mut it = s.split_whitespace();
    Ok((
        it.next().context("time")?.parse()?,
        it.next().context("rss")?.parse()?,
    ))
}

/// Run a shell script under /usr/bin/time; returns (seconds, max RSS KB of the largest process).
fn run_sh(script: &str) -> Result<(f64, u64)> {
    let t = Instant::now();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M", "sh", "-ec", script])
        .output()
        .context("/usr/bin/time (Debian package `time`) is needed")?;
    let secs = t.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!("peer failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let rss = err
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    Ok((secs, rss))
}

fn report(what: &str, segel: (f64, u64), peer: (f64, u64), target: f64) {
    let ratio = peer.0 / segel.0;
    println!(
        "{what}: segel {:.2} s, peak {:.1} MB | openssl {:.2} s, peak {:.1} MB | {ratio:.1}x faster (target >= {target}x, peak <= 64 MB: {})",
        segel.0,
        segel.1 as f64 / 1024.0,
        peer.0,
        peer.1 as f64 / 1024.0,
        if segel.1 <= 64 * 1024 { "ok" } else { "OVER" }
    );
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        return child(&args[1..]);
    }
    let mut seal_mb = 1024;
    let mut open_count = 40;
    let mut open_mb = 25;
    let mut dir: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it.next().context("flag needs a value")?;
        match a.as_str() {
            "--seal-mb" => seal_mb = v.parse()?,
            "--open-count" => open_count = v.parse()?,
            "--open-mb" => open_mb = v.parse()?,
            "--dir" => dir = Some(PathBuf::from(v)),
            _ => bail!("unknown flag {a}"),
        }
    }
    let tmp = match &dir {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    let d = tmp.path();

    // Sealing: one file.
    let input = d.join("bid.bin");
    write_file(&input, seal_mb)?;
    let sealed = d.join("bid.bin.p7m");
    let segel = run_self(&[
        "seal",
        &input.display().to_string(),
        &sealed.display().to_string(),
    ])?;
    let peer = run_sh(&format!(
        "openssl cms -sign -binary -md sha256 -nodetach -outform DER -signer {} -inkey {} -in {} | openssl cms -encrypt -binary -stream -aes-256-gcm -outform DER -recip {} -out {}",
        fx("vendor-rsa2048.crt.pem"),
        fx("vendor-rsa2048.key.pem"),
        input.display(),
        fx("pokja-rsa2048.crt.pem"),
        d.join("peer.p7m").display()
    ))?;
    report(&format!("seal 1 x {seal_mb} MB"), segel, peer, 3.0);
    std::fs::remove_file(&input)?;
    std::fs::remove_file(&sealed)?;
    std::fs::remove_file(d.join("peer.p7m"))?;

    // Opening: many bids (sealed by Segel in setup, not timed).
    let bids = d.join("bids");
    std::fs::create_dir(&bids)?;
    let plain = d.join("plain.bin");
    write_file(&plain, open_mb)?;
    let mut files = Vec::new();
    for i in 0..open_count {
        let f = bids.join(format!("bid{i:02}.p7m"));
        seal_file(
            &signer()?,
            &[recipient()?],
            &plain,
            &f,
            &SealOptions::default(),
        )?;
        files.push(f.display().to_string());
    }
    let out_dir = d.join("opened");
    std::fs::create_dir(&out_dir)?;
    let mut args = vec!["open".to_string(), out_dir.display().to_string()];
    args.extend(files.iter().cloned());
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let segel = run_self(&argv)?;
    let mut script = String::new();
    for f in &files {
        script.push_str(&format!(
            "openssl cms -decrypt -binary -inform DER -in {f} -recip {} -inkey {} -out {d}/inner.der\nopenssl cms -verify -binary -inform DER -purpose any -in {d}/inner.der -CAfile {} -out {d}/peer.out 2>/dev/null\n",
            fx("pokja-rsa2048.crt.pem"),
            fx("pokja-rsa2048.key.pem"),
            fx("chain.pem"),
            d = d.display()
        ));
    }
    let peer = run_sh(&script)?;
    report(
        &format!("open {open_count} x {open_mb} MB"),
        segel,
        peer,
        5.0,
    );
    Ok(())
}
