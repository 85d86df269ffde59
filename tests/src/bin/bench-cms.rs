//! Sealing and opening benchmark against OpenSSL, measured in the same run (issue 3).
//!
//! `cargo run --release -p segel-tests --bin bench-cms -- [--seal-mb 1024] [--seal-files 10]
//! [--open-count 40] [--open-mb 25] [--dir DIR]`. Quick check:
//! `--seal-mb 64 --seal-files 4 --open-count 4 --open-mb 8`.
//!
//! Segel runs what `segel seal` / `segel open` run (`bids::seal_many` / `bids::open_many`: a
//! few files at once, the self-check on its own thread), with software keys so the token is not
//! what is measured. OpenSSL runs `cms -sign | cms -encrypt -stream` per file, and
//! `cms -decrypt` then `cms -verify` per bid. Each side runs in a child process so peak memory
//! (VmHWM / max RSS) is its own.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use segel_agent::bids::sealing::{SealPlan, seal_many};
use segel_agent::bids::{NoProgress, OpenOptions, default_threads, open_many};
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
            // seal OUT_DIR FILE...
            let out_dir = Path::new(&args[1]);
            let files: Vec<PathBuf> = args[2..].iter().map(PathBuf::from).collect();
            let der = std::fs::read(fixtures().join("pokja-rsa2048.crt.der"))?;
            let plan = SealPlan::new(&files, &[der], out_dir, false)?;
            let lines = seal_many(
                &signer()?,
                &plan,
                &SealOptions::default(),
                default_threads(files.len()),
                &NoProgress,
            );
            if let Some(e) = lines.iter().find_map(|l| l.error.clone()) {
                bail!("sealing failed: {e}");
            }
        }
        Some("open") => {
            // open OUT_DIR FILE...
            let out_dir = Path::new(&args[1]);
            let files: Vec<PathBuf> = args[2..].iter().map(PathBuf::from).collect();
            let opts = OpenOptions {
                verify: VerifyOptions {
                    anchors: vec![std::fs::read(fixtures().join("root-ca.crt.der"))?],
                    ..Default::default()
                },
                threads: default_threads(files.len()),
            };
            let report = open_many(&decrypter()?, &files, out_dir, &opts, &NoProgress);
            if let Some(bad) = report
                .iter()
                .find(|r| r.output.is_none() || !r.signature_valid)
            {
                bail!("{} did not open: {:?}", bad.file, bad.error);
            }
        }
        _ => bail!("unknown child mode"),
    }
    println!("{} {}", t.elapsed().as_secs_f64(), vm_hwm_kb());
    Ok(())
}

/// Run this program in child mode under /usr/bin/time; returns (seconds, peak KB, CPU seconds
/// user+sys of the child).
fn run_self(args: &[&str]) -> Result<(f64, u64, f64)> {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%U %S"])
        .arg(std::env::current_exe()?)
        .arg("--child")
        .args(args)
        .output()
        .context("/usr/bin/time (Debian package `time`) is needed")?;
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
        cpu_of(&String::from_utf8_lossy(&out.stderr))?,
    ))
}

/// The last line of /usr/bin/time's stderr, `... USER SYS`: their sum in seconds.
fn cpu_of(stderr: &str) -> Result<f64> {
    let last = stderr.lines().last().context("no /usr/bin/time output")?;
    let f: Vec<&str> = last.split_whitespace().collect();
    if f.len() < 2 {
        bail!("unexpected /usr/bin/time output: {last}");
    }
    let user: f64 = f[f.len() - 2].parse()?;
    let sys: f64 = f[f.len() - 1].parse()?;
    Ok(user + sys)
}

/// Run a shell script under /usr/bin/time; returns (seconds, max RSS KB of the largest process,
/// CPU seconds user+sys of the shell and every process it waited for).
fn run_sh(script: &str) -> Result<(f64, u64, f64)> {
    let t = Instant::now();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M %U %S", "sh", "-ec", script])
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
        .and_then(|l| l.split_whitespace().next())
        .and_then(|w| w.parse().ok())
        .unwrap_or(0);
    Ok((secs, rss, cpu_of(&err)?))
}

/// Segel's outputs are on disk when it reports success (fsync before the rename); OpenSSL's
/// are in the page cache. `peer_sync` is the time `sync FILE...` then takes for OpenSSL's
/// outputs: the ratio against the target compares equal durability; the raw ratio is printed too.
/// The CPU ratio compares user+sys of each side's processes (the sync's own CPU time is
/// negligible and not counted; it is I/O wait): fairer than wall time on a loaded machine.
fn report(what: &str, segel: (f64, u64, f64), peer: (f64, u64, f64), peer_sync: f64, target: f64) {
    let durable = peer.0 + peer_sync;
    let ratio = durable / segel.0;
    println!(
        "{what}: segel {:.2} s, peak {:.1} MB | openssl {:.2} s + sync {:.2} s, peak {:.1} MB | {ratio:.1}x faster at equal durability ({:.1}x without the sync; target >= {target}x: {}; peak <= 64 MB: {}) | CPU user+sys: segel {:.2} s, openssl {:.2} s, {:.1}x",
        segel.0,
        segel.1 as f64 / 1024.0,
        peer.0,
        peer_sync,
        peer.1 as f64 / 1024.0,
        peer.0 / segel.0,
        if ratio >= target { "met" } else { "NOT met" },
        if segel.1 <= 64 * 1024 { "ok" } else { "OVER" },
        segel.2,
        peer.2,
        peer.2 / segel.2.max(1e-3)
    );
}

/// Time `sync` of the given files (coreutils `sync FILE...` fsyncs just those).
fn sync_files(files: &[PathBuf]) -> Result<f64> {
    let t = Instant::now();
    let status = Command::new("sync").args(files).status()?;
    if !status.success() {
        bail!("sync failed");
    }
    Ok(t.elapsed().as_secs_f64())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        return child(&args[1..]);
    }
    let mut seal_mb = 1024;
    let mut seal_files = 10;
    let mut open_count = 40;
    let mut open_mb = 25;
    let mut dir: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it.next().context("flag needs a value")?;
        match a.as_str() {
            "--seal-mb" => seal_mb = v.parse()?,
            "--seal-files" => seal_files = v.parse()?,
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

    // Sealing: one file of seal_mb, then seal_files files sharing the same total.
    let peer_seal = |input: &Path, out: &Path| {
        format!(
            "openssl cms -sign -binary -md sha256 -nodetach -outform DER -signer {} -inkey {} -in {} | openssl cms -encrypt -binary -stream -aes-256-gcm -outform DER -recip {} -out {}\n",
            fx("vendor-rsa2048.crt.pem"),
            fx("vendor-rsa2048.key.pem"),
            input.display(),
            fx("pokja-rsa2048.crt.pem"),
            out.display()
        )
    };
    for count in [1, seal_files] {
        let src = d.join(format!("seal-src-{count}"));
        let sealed = d.join(format!("seal-out-{count}"));
        let peer_out = d.join(format!("seal-peer-{count}"));
        for p in [&src, &sealed, &peer_out] {
            std::fs::create_dir(p)?;
        }
        let mut inputs = Vec::new();
        for i in 0..count {
            let f = src.join(format!("bid{i:02}.bin"));
            write_file(&f, seal_mb / count)?;
            inputs.push(f);
        }
        let mut args = vec!["seal".to_string(), sealed.display().to_string()];
        args.extend(inputs.iter().map(|p| p.display().to_string()));
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let segel = run_self(&argv)?;
        let outputs: Vec<PathBuf> = (0..count)
            .map(|i| peer_out.join(format!("{i}.p7m")))
            .collect();
        let script: String = inputs
            .iter()
            .zip(&outputs)
            .map(|(f, o)| peer_seal(f, o))
            .collect();
        let peer = run_sh(&script)?;
        let peer_sync = sync_files(&outputs)?;
        report(
            &format!("seal {count} x {} MB", seal_mb / count),
            segel,
            peer,
            peer_sync,
            3.0,
        );
        for p in [&src, &sealed, &peer_out] {
            std::fs::remove_dir_all(p)?;
        }
    }

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
    let mut outputs = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let out = d.join(format!("peer{i}.out"));
        script.push_str(&format!(
            "openssl cms -decrypt -binary -inform DER -in {f} -recip {} -inkey {} -out {d}/inner.der\nopenssl cms -verify -binary -inform DER -purpose any -in {d}/inner.der -CAfile {} -out {} 2>/dev/null\n",
            fx("pokja-rsa2048.crt.pem"),
            fx("pokja-rsa2048.key.pem"),
            fx("chain.pem"),
            out.display(),
            d = d.display()
        ));
        outputs.push(out);
    }
    let peer = run_sh(&script)?;
    let peer_sync = sync_files(&outputs)?;
    report(
        &format!("open {open_count} x {open_mb} MB"),
        segel,
        peer,
        peer_sync,
        5.0,
    );
    Ok(())
}
