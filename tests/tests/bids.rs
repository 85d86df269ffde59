//! Sealed bids through the `segel` CLI on SoftHSM2 tokens, with OpenSSL 3 as the independent
//! peer in both directions: `sign --format cms`, `verify`, `seal`, `open` (issue 3).
//!
//! Every run has a private SoftHSM config and a private HOME. The vendor's token holds the
//! vendor keys and the issuing CA certificate (as BSrE tokens do); two committee tokens hold
//! an RSA and an EC key.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Output;

use anyhow::{Context, Result, ensure};
use segel_tests::fixtures::fixture;
use segel_tests::openssl::openssl;
use segel_tests::segel::{error_code, ok_json, segel_cmd};
use segel_tests::softhsm::SoftHsm;
use segel_tests::spy::Spy;
use serde_json::Value;

const PIN: &str = "123456";
const SO_PIN: &str = "87654321";

/// A SoftHSM with the tokens `vendor`, `pokja-rsa` and `pokja-ec`, and a private HOME.
struct Env {
    hsm: SoftHsm,
    home: tempfile::TempDir,
    /// Load this module instead of SoftHSM's (the spy), with extra environment.
    module: PathBuf,
    extra_env: Vec<(String, OsString)>,
}

impl Env {
    fn new() -> Result<Self> {
        let hsm = SoftHsm::new()?;
        for (label, keys) in [
            ("vendor", &["vendor-rsa2048", "vendor-p256"][..]),
            ("pokja-rsa", &["pokja-rsa2048"][..]),
            ("pokja-ec", &["pokja-p256"][..]),
        ] {
            hsm.init_token(label, SO_PIN, PIN)?;
            for (i, name) in keys.iter().enumerate() {
                hsm.import_fixture(label, PIN, name, &format!("{:02x}", i + 1), name)?;
            }
        }
        // The vendor's token also carries the issuing CA, which signatures then include.
        let ca = fixture("issuing-ca")?.cert_der_path.display().to_string();
        hsm.pkcs11_tool(&[
            "--token-label",
            "vendor",
            "--write-object",
            &ca,
            "--type",
            "cert",
            "--id",
            "ca01",
            "--label",
            "issuing-ca",
        ])?;
        let module = hsm.module_path();
        Ok(Env {
            hsm,
            home: tempfile::tempdir()?,
            module,
            extra_env: Vec::new(),
        })
    }

    /// Route every PKCS#11 call through pkcs11-spy.
    fn spy(&mut self) -> Result<Spy> {
        let spy = Spy::new(self.hsm.module_path())?;
        self.module = spy.module_path();
        self.extra_env = spy.envs();
        Ok(spy)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }

    fn dir(&self, name: &str) -> Result<PathBuf> {
        let d = self.path(name);
        std::fs::create_dir_all(&d)?;
        Ok(d)
    }

    /// `segel --module M --json ARGS` with the PIN in SEGEL_PIN.
    fn run(&self, args: &[&str]) -> Result<Output> {
        self.run_with_pin(Some(PIN), args)
    }

    fn run_owned(&self, args: &[String]) -> Result<Output> {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run(&args)
    }

    fn run_with_pin(&self, pin: Option<&str>, args: &[&str]) -> Result<Output> {
        let mut envs = self.hsm.envs();
        envs.extend(self.extra_env.iter().cloned());
        let mut cmd = segel_cmd(&envs, self.home.path())?;
        cmd.env_remove("SEGEL_PIN")
            .stdin(std::process::Stdio::null());
        if let Some(pin) = pin {
            cmd.env("SEGEL_PIN", pin);
        }
        let module = self.module.display().to_string();
        cmd.args(["--module", &module, "--json"]).args(args);
        cmd.output()
            .with_context(|| format!("running segel {args:?}"))
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// `open --cert POKJA --out-dir DIR --ca ROOT`, then `extra` and the files.
fn open_args(
    pokja: &str,
    out_dir: &Path,
    extra: &[String],
    files: &[PathBuf],
) -> Result<Vec<String>> {
    let mut args = vec![
        "open".to_owned(),
        "--cert".into(),
        fp(pokja)?,
        "--out-dir".into(),
        s(out_dir),
        "--ca".into(),
        cert_pem("root-ca")?,
    ];
    args.extend(extra.iter().cloned());
    args.extend(files.iter().map(|p| s(p)));
    Ok(args)
}

fn fp(name: &str) -> Result<String> {
    Ok(fixture(name)?.entry.fingerprint_sha256)
}

fn cert_pem(name: &str) -> Result<String> {
    Ok(s(&fixture(name)?.cert_pem_path))
}

fn key_pem(name: &str) -> Result<String> {
    Ok(s(&fixture(name)?.key_path))
}

/// Bid-like content: not compressible, not block-aligned.
fn content(len: usize, seed: u8) -> Vec<u8> {
    let mut x = u32::from(seed).wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// `openssl cms -decrypt` with a committee key, then `openssl cms -verify` against the root:
/// the plaintext.
fn openssl_open(sealed: &Path, pokja: &str, work: &Path) -> Result<Vec<u8>> {
    let inner = work.join("inner.der");
    let plain = work.join("plain");
    openssl(&[
        "cms",
        "-decrypt",
        "-binary",
        "-inform",
        "DER",
        "-in",
        &s(sealed),
        "-recip",
        &cert_pem(pokja)?,
        "-inkey",
        &key_pem(pokja)?,
        "-out",
        &s(&inner),
    ])?;
    openssl(&[
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        &s(&inner),
        "-CAfile",
        &cert_pem("root-ca")?,
        "-purpose",
        "any",
        "-out",
        &s(&plain),
    ])?;
    Ok(std::fs::read(plain)?)
}

/// OpenSSL's sign-then-encrypt, as a vendor without Segel would seal.
fn openssl_seal(
    plain: &Path,
    vendor: &str,
    pokja: &str,
    encrypt_opts: &[&str],
    out: &Path,
) -> Result<()> {
    let inner = out.with_extension("inner");
    openssl(&[
        "cms",
        "-sign",
        "-binary",
        "-nodetach",
        "-md",
        "sha256",
        "-in",
        &s(plain),
        "-signer",
        &cert_pem(vendor)?,
        "-inkey",
        &key_pem(vendor)?,
        "-certfile",
        &cert_pem("issuing-ca")?,
        "-outform",
        "DER",
        "-out",
        &s(&inner),
    ])?;
    let mut args = vec![
        "cms".to_owned(),
        "-encrypt".into(),
        "-binary".into(),
        "-in".into(),
        s(&inner),
        "-outform".into(),
        "DER".into(),
        "-out".into(),
        s(out),
    ];
    // -keyopt applies to the -recip before it.
    args.extend(["-recip".to_owned(), cert_pem(pokja)?]);
    args.extend(encrypt_opts.iter().map(|a| (*a).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    openssl(&args)?;
    std::fs::remove_file(inner)?;
    Ok(())
}

/// Files in a folder, sorted (to prove nothing else was left behind).
fn listing(dir: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    names.sort();
    Ok(names)
}

#[test]
fn cms_signatures_verify_with_openssl_and_segel_in_both_directions() -> Result<()> {
    let env = Env::new()?;
    let doc = env.path("penawaran.pdf");
    std::fs::write(&doc, content(100_003, 1))?;
    let root = cert_pem("root-ca")?;

    // Segel signs (attached, RSA, chosen by fingerprint) → OpenSSL verifies against the root
    // alone: the issuing CA came from the token.
    let attached = env.path("attached.p7s");
    let v = ok_json(&env.run(&[
        "sign",
        "--format",
        "cms",
        "--cert",
        &fp("vendor-rsa2048")?,
        "--in",
        &s(&doc),
        "--out",
        &s(&attached),
    ])?)?;
    ensure!(v["format"] == "cms" && v["detached"] == false, "{v}");
    let out = env.path("attached.out");
    openssl(&[
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        &s(&attached),
        "-CAfile",
        &root,
        "-purpose",
        "any",
        "-out",
        &s(&out),
    ])?;
    ensure!(std::fs::read(&out)? == std::fs::read(&doc)?);

    // Detached, EC, chosen by label, SHA-384.
    let detached = env.path("detached.p7s");
    ok_json(&env.run(&[
        "sign",
        "--format",
        "cms",
        "--detached",
        "--hash",
        "sha384",
        "--cert",
        "label:vendor-p256",
        "--in",
        &s(&doc),
        "--out",
        &s(&detached),
    ])?)?;
    openssl(&[
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        &s(&detached),
        "-content",
        &s(&doc),
        "-CAfile",
        &root,
        "-purpose",
        "any",
        "-out",
        "/dev/null",
    ])?;

    // segel verify: valid and trusted with --ca; exit 2 (untrusted) without an anchor.
    let v = ok_json(&env.run(&["verify", "--in", &s(&attached), "--ca", &root])?)?;
    ensure!(v["signature_valid"] == true && v["trusted"] == true, "{v}");
    let signer = &v["report"]["signers"][0];
    let vendor_subject = fixture("vendor-rsa2048")?.entry.subject;
    let cn = vendor_subject.split(',').next().unwrap_or_default();
    ensure!(
        signer["subject"]
            .as_str()
            .is_some_and(|sub| sub.starts_with(cn)),
        "{v}"
    );
    ensure!(signer["signing_time"].is_string(), "{v}");
    ensure!(signer["chain"]["status"] == "trusted", "{v}");
    let out = env.run(&["verify", "--in", &s(&attached)])?;
    ensure!(
        out.status.code() == Some(2),
        "untrusted must exit 2: {out:?}"
    );
    let v: Value = serde_json::from_slice(&out.stdout)?;
    ensure!(v["signature_valid"] == true && v["trusted"] == false, "{v}");
    let v = ok_json(&env.run(&[
        "verify",
        "--in",
        &s(&detached),
        "--content",
        &s(&doc),
        "--ca",
        &root,
    ])?)?;
    ensure!(v["trusted"] == true, "{v}");

    // A changed document: the detached signature no longer verifies (exit 1).
    let changed = env.path("changed.pdf");
    let mut bytes = std::fs::read(&doc)?;
    bytes[5000] ^= 1;
    std::fs::write(&changed, bytes)?;
    let out = env.run(&[
        "verify",
        "--in",
        &s(&detached),
        "--content",
        &s(&changed),
        "--ca",
        &root,
    ])?;
    ensure!(out.status.code() == Some(1), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout)?;
    ensure!(v["signature_valid"] == false, "{v}");

    // OpenSSL signs (attached and detached) → segel verify.
    for (nodetach, name) in [(true, "ossl-attached.p7s"), (false, "ossl-detached.p7s")] {
        let sig = env.path(name);
        let mut args = vec![
            "cms", "-sign", "-binary", "-md", "sha256", "-outform", "DER", "-signer",
        ];
        let (c, k, ca) = (
            cert_pem("vendor-p256")?,
            key_pem("vendor-p256")?,
            cert_pem("issuing-ca")?,
        );
        let (d, o) = (s(&doc), s(&sig));
        args.extend([
            c.as_str(),
            "-inkey",
            &k,
            "-certfile",
            &ca,
            "-in",
            &d,
            "-out",
            &o,
        ]);
        if nodetach {
            args.push("-nodetach");
        }
        openssl(&args)?;
        let mut verify = vec!["verify", "--in", o.as_str(), "--ca", root.as_str()];
        if !nodetach {
            verify.extend(["--content", d.as_str()]);
        }
        let v = ok_json(&env.run(&verify)?)?;
        ensure!(v["trusted"] == true, "{name}: {v}");
        ensure!(
            v["report"]["content_sha256"].as_str().map(str::len) == Some(64),
            "{v}"
        );
    }
    Ok(())
}

#[test]
fn segel_seals_and_openssl_opens_for_each_committee_member() -> Result<()> {
    let env = Env::new()?;
    let bids = env.dir("bids")?;
    let files: Vec<PathBuf> = (0..3)
        .map(|i| bids.join(format!("dokumen_{i}.pdf")))
        .collect();
    for (i, f) in files.iter().enumerate() {
        std::fs::write(f, content(50_000 * i + 17, i as u8))?;
    }
    for (cipher, padding) in [("aes-256-gcm", "oaep"), ("aes-256-cbc", "pkcs1")] {
        let out_dir = env.dir(&format!("sealed-{cipher}"))?;
        let mut args = vec![
            "seal".to_owned(),
            "--cert".into(),
            fp("vendor-rsa2048")?,
            "--to".into(),
            cert_pem("pokja-rsa2048")?,
            "--to".into(),
            cert_pem("pokja-p256")?,
            "--cipher".into(),
            cipher.into(),
            "--rsa-padding".into(),
            padding.into(),
            "--out-dir".into(),
            s(&out_dir),
        ];
        args.extend(files.iter().map(|f| s(f)));
        let v = ok_json(&env.run_owned(&args)?)?;
        ensure!(v["files"].as_array().map(Vec::len) == Some(3), "{v}");
        ensure!(v["recipients"].as_array().map(Vec::len) == Some(2), "{v}");
        for (i, f) in files.iter().enumerate() {
            let p7m = out_dir.join(format!("dokumen_{i}.pdf.p7m"));
            for pokja in ["pokja-rsa2048", "pokja-p256"] {
                let work = env.dir(&format!("work-{cipher}-{i}-{pokja}"))?;
                ensure!(
                    openssl_open(&p7m, pokja, &work)? == std::fs::read(f)?,
                    "{cipher}: {pokja} recovered other bytes for {}",
                    f.display()
                );
            }
        }
        // Multi-recipient bids open with each recipient's own token through Segel too.
        for (pokja, token) in [("pokja-rsa2048", "rsa"), ("pokja-p256", "ec")] {
            let opened = env.dir(&format!("opened-{cipher}-{token}"))?;
            let p7m = s(&out_dir.join("dokumen_1.pdf.p7m"));
            let v = ok_json(&env.run(&[
                "open",
                "--cert",
                &fp(pokja)?,
                "--out-dir",
                &s(&opened),
                "--ca",
                &cert_pem("root-ca")?,
                &p7m,
            ])?)?;
            ensure!(v["summary"]["opened"] == 1, "{v}");
            ensure!(std::fs::read(opened.join("dokumen_1.pdf"))? == std::fs::read(&files[1])?);
        }
    }
    Ok(())
}

#[test]
fn openssl_sealed_bids_open_with_segel_in_one_login() -> Result<()> {
    let mut env = Env::new()?;
    let spy = env.spy()?;
    let plain_dir = env.dir("plain")?;
    let sealed_dir = env.dir("sealed")?;
    let oaep = [
        "-keyopt",
        "rsa_padding_mode:oaep",
        "-keyopt",
        "rsa_oaep_md:sha256",
        "-keyopt",
        "rsa_mgf1_md:sha256",
    ];
    let variants: Vec<(&str, &str, Vec<&str>)> = vec![
        ("gcm_pkcs1", "pokja-rsa2048", vec!["-aes-256-gcm"]),
        ("cbc_pkcs1", "pokja-rsa2048", vec!["-aes-256-cbc"]),
        (
            "gcm_oaep",
            "pokja-rsa2048",
            [&["-aes-256-gcm"][..], &oaep].concat(),
        ),
        (
            "cbc_oaep_stream",
            "pokja-rsa2048",
            [&["-aes-256-cbc", "-stream"][..], &oaep].concat(),
        ),
        (
            "gcm_stream",
            "pokja-rsa2048",
            vec!["-aes-256-gcm", "-stream"],
        ),
    ];
    let mut sealed = Vec::new();
    for (i, (name, pokja, opts)) in variants.iter().enumerate() {
        let plain = plain_dir.join(format!("{name}.pdf"));
        std::fs::write(&plain, content(30_000 + 4099 * i, i as u8 + 10))?;
        let out = sealed_dir.join(format!("{name}.pdf.p7m"));
        openssl_seal(&plain, "vendor-p256", pokja, opts, &out)?;
        sealed.push(out);
    }
    let opened = env.dir("opened")?;
    let report = env.path("report.html");
    let json_report = env.path("report.json");
    let extra = [
        "--report".to_owned(),
        s(&report),
        "--json-report".into(),
        s(&json_report),
        "--parallel".into(),
        "3".into(),
    ];
    let args = open_args("pokja-rsa2048", &opened, &extra, &sealed)?;
    let v = ok_json(&env.run_owned(&args)?)?;
    ensure!(v["summary"]["opened"] == variants.len(), "{v}");
    for (name, _, _) in &variants {
        let got = std::fs::read(opened.join(format!("{name}.pdf")))?;
        ensure!(
            got == std::fs::read(plain_dir.join(format!("{name}.pdf")))?,
            "{name}"
        );
    }
    for bid in v["bids"].as_array().context("bids")? {
        ensure!(bid["signature_valid"] == true, "{bid}");
        ensure!(bid["chain"]["status"] == "trusted", "{bid}");
        ensure!(
            bid["plaintext_sha256"].as_str().map(str::len) == Some(64),
            "{bid}"
        );
        ensure!(
            bid["vendor"].is_string() && bid["signing_time"].is_string(),
            "{bid}"
        );
    }
    let on_disk: Value = serde_json::from_slice(&std::fs::read(&json_report)?)?;
    ensure!(on_disk["bids"] == v["bids"]);
    let html = std::fs::read_to_string(&report)?;
    ensure!(html.contains("gcm_oaep.pdf.p7m") && html.contains("<table>"));
    // One PIN entry for the whole run: exactly one C_Login for five bids opened in parallel.
    ensure!(
        spy.count_calls("C_Login")? == 1,
        "C_Login calls: {}",
        spy.count_calls("C_Login")?
    );
    // The EC recipient: OpenSSL's ECDH key agreement opens with the EC committee token.
    let plain = plain_dir.join("ec.pdf");
    std::fs::write(&plain, content(12_345, 99))?;
    for (name, opts) in [
        ("ec_gcm", vec!["-aes-256-gcm"]),
        ("ec_cbc_stream", vec!["-aes-256-cbc", "-stream"]),
    ] {
        let out = sealed_dir.join(format!("{name}.p7m"));
        openssl_seal(&plain, "vendor-rsa2048", "pokja-p256", &opts, &out)?;
        let v = ok_json(&env.run(&[
            "open",
            "--cert",
            &fp("pokja-p256")?,
            "--out-dir",
            &s(&opened),
            "--ca",
            &cert_pem("root-ca")?,
            &s(&out),
        ])?)?;
        ensure!(v["summary"]["opened"] == 1, "{name}: {v}");
        ensure!(std::fs::read(opened.join(name))? == std::fs::read(&plain)?);
    }
    Ok(())
}

#[test]
fn failing_bids_leave_nothing_behind_and_do_not_stop_the_others() -> Result<()> {
    let env = Env::new()?;
    let bids = env.dir("bids")?;
    let sealed = env.dir("sealed")?;
    let good: Vec<PathBuf> = (0..3).map(|i| bids.join(format!("good{i}.pdf"))).collect();
    for (i, f) in good.iter().enumerate() {
        std::fs::write(f, content(40_000 + i, i as u8))?;
    }
    let mut args = vec![
        "seal".to_owned(),
        "--to".into(),
        cert_pem("pokja-rsa2048")?,
        "--cert".into(),
        fp("vendor-rsa2048")?,
        "--out-dir".into(),
        s(&sealed),
    ];
    args.extend(good.iter().map(|f| s(f)));
    ok_json(&env.run_owned(&args)?)?;

    // A bid for someone else, made by Segel for the EC member only.
    let other = bids.join("other.pdf");
    std::fs::write(&other, b"not for you")?;
    ok_json(&env.run(&[
        "seal",
        "--cert",
        &fp("vendor-rsa2048")?,
        "--to",
        &cert_pem("pokja-p256")?,
        "--out-dir",
        &s(&sealed),
        &s(&other),
    ])?)?;
    // An expired vendor's bid (OpenSSL signs; Segel would refuse to): opened, but reported.
    let expired = bids.join("expired.pdf");
    std::fs::write(&expired, content(777, 7))?;
    openssl_seal(
        &expired,
        "vendor-expired",
        "pokja-rsa2048",
        &["-aes-256-gcm"],
        &sealed.join("expired.pdf.p7m"),
    )?;
    // Damaged copies of a good bid: truncated, and bits flipped at many positions.
    let original = std::fs::read(sealed.join("good0.pdf.p7m"))?;
    let mut damaged = Vec::new();
    let truncated = sealed.join("truncated.p7m");
    std::fs::write(&truncated, &original[..original.len() * 2 / 3])?;
    damaged.push(truncated);
    for k in 0..12 {
        let pos = [
            0,
            1,
            3,
            40,
            200,
            500,
            1000,
            2000,
            original.len() / 2,
            original.len() - 40,
            original.len() - 17,
            original.len() - 1,
        ][k];
        let mut bytes = original.clone();
        bytes[pos] ^= 0x04;
        let p = sealed.join(format!("flip{k:02}.p7m"));
        std::fs::write(&p, bytes)?;
        damaged.push(p);
    }
    let junk = sealed.join("junk.p7m");
    std::fs::write(&junk, b"%PDF-1.7 not a sealed bid")?;
    damaged.push(junk);

    let opened = env.dir("opened")?;
    let mut files: Vec<PathBuf> = good
        .iter()
        .map(|g| {
            sealed.join(format!(
                "{}.p7m",
                g.file_name().and_then(|n| n.to_str()).unwrap_or_default()
            ))
        })
        .collect();
    files.push(sealed.join("other.pdf.p7m"));
    files.push(sealed.join("expired.pdf.p7m"));
    files.extend(damaged.iter().cloned());
    let args = open_args("pokja-rsa2048", &opened, &[], &files)?;
    let out = env.run_owned(&args)?;
    ensure!(
        out.status.code() == Some(1),
        "some bids failed: exit 1 expected, {out:?}"
    );
    let v: Value = serde_json::from_slice(&out.stdout)?;
    let by_file = |name: &str| -> Result<Value> {
        v["bids"]
            .as_array()
            .context("bids")?
            .iter()
            .find(|b| b["file"].as_str().is_some_and(|f| f.ends_with(name)))
            .cloned()
            .with_context(|| format!("{name} missing from {v}"))
    };
    for i in 0..3 {
        ensure!(
            by_file(&format!("good{i}.pdf.p7m"))?["status"] == "opened",
            "{v}"
        );
    }
    let b = by_file("other.pdf.p7m")?;
    ensure!(
        b["status"] == "failed" && b["error_code"] == "NOT_A_RECIPIENT",
        "{b}"
    );
    ensure!(
        b["error"].as_str().unwrap_or_default().contains("serial"),
        "lists the recipients: {b}"
    );
    let b = by_file("expired.pdf.p7m")?;
    ensure!(b["status"] == "opened_with_warnings", "{b}");
    ensure!(
        b["signature_valid"] == true && b["chain"]["validity"] == "expired",
        "{b}"
    );
    for d in &damaged {
        let name = d.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let b = by_file(name)?;
        ensure!(b["status"] == "failed", "{name} must fail: {b}");
        ensure!(
            [
                "TAMPERED",
                "MALFORMED_INPUT",
                "NOT_A_RECIPIENT",
                "UNSUPPORTED_ALGORITHM",
                "SIGNATURE_INVALID",
                "DECRYPTION_FAILED"
            ]
            .contains(&b["error_code"].as_str().unwrap_or_default()),
            "{name}: {b}"
        );
    }
    ensure!(v["summary"]["failed"] == damaged.len() + 1, "{v}");
    // Only the opened plaintexts exist: no temporary files, nothing from failed bids.
    ensure!(
        listing(&opened)? == ["expired.pdf", "good0.pdf", "good1.pdf", "good2.pdf"],
        "{:?}",
        listing(&opened)?
    );
    for (i, g) in good.iter().enumerate() {
        ensure!(std::fs::read(opened.join(format!("good{i}.pdf")))? == std::fs::read(g)?);
    }
    // Opening again never replaces the plaintext already there.
    let out = env.run(&[
        "open",
        "--cert",
        &fp("pokja-rsa2048")?,
        "--out-dir",
        &s(&opened),
        &s(&files[0]),
    ])?;
    let v: Value = serde_json::from_slice(&out.stdout)?;
    ensure!(v["bids"][0]["error_code"] == "IO_ERROR", "{v}");
    ensure!(std::fs::read(opened.join("good0.pdf"))? == std::fs::read(&good[0])?);
    Ok(())
}

#[test]
fn bad_submissions_are_refused_before_anything_is_sealed() -> Result<()> {
    let env = Env::new()?;
    let a = env.dir("a")?;
    let b = env.dir("b")?;
    let out_dir = env.dir("out")?;
    let dash = a.join("harga-final.pdf");
    let long = a.join(format!("{}.pdf", "x".repeat(41)));
    let dup1 = a.join("teknis.pdf");
    let dup2 = b.join("TEKNIS.pdf");
    for f in [&dash, &long, &dup1, &dup2] {
        std::fs::write(f, b"bid")?;
    }
    let to = cert_pem("pokja-rsa2048")?;
    let vendor = fp("vendor-rsa2048")?;
    let seal = |extra: &[&str], files: &[&Path]| -> Result<Output> {
        let mut args = vec!["seal", "--cert", &vendor, "--to", &to, "--out-dir"];
        let o = s(&out_dir);
        args.push(&o);
        args.extend_from_slice(extra);
        let names: Vec<String> = files.iter().map(|f| s(f)).collect();
        args.extend(names.iter().map(String::as_str));
        env.run(&args)
    };
    let out = seal(&[], &[&dash, &long, &dup1, &dup2])?;
    ensure!(error_code(&out)? == "FILE_REJECTED");
    let msg = String::from_utf8_lossy(&out.stdout);
    ensure!(
        msg.contains("'-'") && msg.contains("45 characters") && msg.contains("unique"),
        "{msg}"
    );
    ensure!(
        msg.contains("harga-final.pdf") && msg.contains("TEKNIS.pdf"),
        "{msg}"
    );
    ensure!(listing(&out_dir)?.is_empty());

    // The policy can be switched off (per run, or in the config file).
    ok_json(&seal(&["--no-file-rules"], &[&dash])?)?;
    ensure!(listing(&out_dir)? == ["harga-final.pdf.p7m"]);
    std::fs::remove_file(out_dir.join("harga-final.pdf.p7m"))?;
    let config = env.dir(".config/segel")?.join("config.toml");
    std::fs::write(&config, "[procurement]\nfile_rules = false\n")?;
    ok_json(&seal(&[], &[&long])?)?;
    std::fs::remove_file(config)?;
    std::fs::remove_file(out_dir.join(format!("{}.pdf.p7m", "x".repeat(41))))?;

    // A signing-only certificate as recipient is refused, saying why.
    let ok_file = a.join("ok.pdf");
    std::fs::write(&ok_file, b"bid")?;
    let o = s(&out_dir);
    let vendor_cert = cert_pem("vendor-p256")?;
    let f = s(&ok_file);
    let out = env.run(&[
        "seal",
        "--cert",
        &vendor,
        "--to",
        &vendor_cert,
        "--out-dir",
        &o,
        &f,
    ])?;
    ensure!(error_code(&out)? == "RECIPIENT_CANNOT_ENCRYPT");
    ensure!(
        String::from_utf8_lossy(&out.stdout).contains("signing-only"),
        "{out:?}"
    );
    // A wrong PIN stops the run before any file, with the token's answer.
    let out = env.run_with_pin(
        Some("000000"),
        &["seal", "--cert", &vendor, "--to", &to, "--out-dir", &o, &f],
    )?;
    ensure!(error_code(&out)? == "PIN_INCORRECT");
    // Missing files are named.
    let missing = s(&a.join("missing.pdf"));
    let out = env.run(&[
        "seal",
        "--cert",
        &vendor,
        "--to",
        &to,
        "--out-dir",
        &o,
        &missing,
    ])?;
    ensure!(
        error_code(&out)? == "BAD_REQUEST"
            && String::from_utf8_lossy(&out.stdout).contains("missing.pdf")
    );
    ensure!(listing(&out_dir)?.is_empty(), "{:?}", listing(&out_dir)?);
    // Without --cert, two signing certificates on the token: ambiguous, both listed.
    let out = env.run(&["seal", "--to", &to, "--out-dir", &o, &f])?;
    ensure!(error_code(&out)? == "CERTIFICATE_AMBIGUOUS");
    ensure!(String::from_utf8_lossy(&out.stdout).contains(&fp("vendor-p256")?));
    Ok(())
}
