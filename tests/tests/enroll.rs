//! Enrolment and the PIN lifecycle on SoftHSM2 (issue 9): `segel enroll` makes the key on the
//! token and a PKCS#10 request that OpenSSL verifies; a test CA issues the certificate;
//! `segel import-cert` puts it (and the CA certificate) next to the key; the new key signs and
//! the signature verifies to the root. Then PIN status, change, unblock, and bad input.

use std::path::{Path, PathBuf};
use std::process::Output;

use anyhow::{Context, Result, ensure};
use segel_tests::fixtures::{fixture, issue_with_test_ca};
use segel_tests::openssl::{openssl, verified_request_text};
use segel_tests::segel::{Runner, error_code, ok_json};
use segel_tests::softhsm::SoftHsm;
use serde_json::Value;

const PIN: &str = "123456";
const SO_PIN: &str = "87654321";

struct Env {
    hsm: SoftHsm,
    segel: Runner,
}

impl std::ops::Deref for Env {
    type Target = Runner;
    fn deref(&self) -> &Runner {
        &self.segel
    }
}

impl Env {
    /// An empty initialised token `kunci` (no keys yet).
    fn new() -> Result<Self> {
        let hsm = SoftHsm::new()?;
        hsm.init_token("kunci", SO_PIN, PIN)?;
        let segel = Runner::new(hsm.module_path(), hsm.envs())?;
        Ok(Env { hsm, segel })
    }

    fn run_pin(&self, pin: Option<&str>, args: &[&str]) -> Result<Output> {
        self.run_with_pin(pin, args)
    }

    fn run(&self, args: &[&str]) -> Result<Output> {
        self.run_with_pin(Some(PIN), args)
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

const APPLICANT: [&str; 12] = [
    "--name",
    "Budi Santoso",
    "--email",
    "budi@majujaya.co.id",
    "--org",
    "PT Maju Jaya Konstruksi",
    "--unit",
    "Direktur",
    "--city",
    "Balikpapan",
    "--province",
    "Kalimantan Timur",
];

/// `openssl x509 -req` as the test CA (the fixtures' issuing CA), copying the requested
/// extensions; returns the certificate PEM path.
fn issue(env: &Env, csr: &Path, name: &str) -> Result<PathBuf> {
    let out = env.path(name);
    issue_with_test_ca(csr, &out)?;
    Ok(out)
}

#[test]
fn enrolled_key_gets_its_certificate_and_signs_to_the_root() -> Result<()> {
    let env = Env::new()?;
    let csr = env.path("budi.csr");
    let mut args = vec!["enroll", "--token", "kunci", "--key", "rsa2048"];
    args.extend(APPLICANT);
    let out_s = s(&csr);
    args.extend([
        "--npwp",
        "222222222222222",
        "--nik",
        "3273011203890003",
        "--out",
        &out_s,
    ]);
    let v = ok_json(&env.run(&args)?)?;
    ensure!(
        v["applicant"]["npwp"] == "22.222.222.2-222.222",
        "NPWP normalised: {v}"
    );
    let summary = std::fs::read_to_string(env.path("budi.csr.txt"))?;
    ensure!(summary.contains("PT Maju Jaya Konstruksi") && summary.contains("RSA 2048"));
    ensure!(summary.contains(v["public_key_sha256"].as_str().unwrap_or("missing")));

    // OpenSSL checks the request's self-signature and reads the fields as given.
    let text = verified_request_text(&csr)?;
    for want in [
        "CN=Budi Santoso",
        "O=PT Maju Jaya Konstruksi",
        "OU=Direktur",
        "L=Balikpapan",
        "ST=Kalimantan Timur",
        "C=ID",
        "serialNumber=NIK-3273011203890003",
        "VATID-22.222.222.2-222.222",
        "email:budi@majujaya.co.id",
        "Digital Signature, Non Repudiation",
        "Public-Key: (2048 bit)",
    ] {
        ensure!(
            text.contains(want),
            "{want:?} missing from the request:\n{text}"
        );
    }
    // An earlier request is never overwritten.
    let again = env.run(&args)?;
    ensure!(error_code(&again)? == "BAD_REQUEST");

    // The CA issues; the certificate and the CA certificate go onto the token.
    let cert = issue(&env, &csr, "budi.crt.pem")?;
    let chain = env.path("budi-chain.pem");
    std::fs::write(
        &chain,
        [
            std::fs::read_to_string(&cert)?,
            fixture("issuing-ca")?.cert_pem,
        ]
        .concat(),
    )?;
    let v = ok_json(&env.run(&["import-cert", "--token", "kunci", &s(&chain)])?)?;
    ensure!(
        v["intermediates"].as_array().map(Vec::len) == Some(1),
        "{v}"
    );
    let fp = v["certificate"].as_str().context("fingerprint")?.to_owned();
    let certs = ok_json(&env.run(&["certs"])?)?;
    let row = certs
        .as_array()
        .and_then(|a| a.iter().find(|c| c["fingerprint_sha256"] == fp.as_str()))
        .with_context(|| format!("imported certificate not listed: {certs}"))?;
    ensure!(
        !row["private_key"].is_null() && row["usage"][0] == "sign",
        "{row}"
    );

    // The new key signs; the signature verifies to the root through the imported CA.
    let doc = env.write("surat.txt", "penawaran")?;
    let sig = s(&env.path("surat.p7s"));
    ok_json(&env.run(&[
        "sign", "--format", "cms", "--cert", &fp, "--in", &doc, "--out", &sig,
    ])?)?;
    let root = s(&fixture("root-ca")?.cert_pem_path);
    let v = ok_json(&env.run(&["verify", "--in", &sig, "--ca", &root])?)?;
    ensure!(v["trusted"] == true, "{v}");
    openssl(&[
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        &sig,
        "-CAfile",
        &root,
        "-purpose",
        "any",
        "-out",
        "/dev/null",
    ])?;

    // The key with its certificate cannot be deleted; a key without one (an unanswered
    // request) can.
    let key_id = row["id"].as_str().context("id")?.to_owned();
    let out = env.run(&["delete-key", "--token", "kunci", "--id", &key_id])?;
    ensure!(error_code(&out)? == "BAD_REQUEST", "{out:?}");
    ensure!(String::from_utf8_lossy(&out.stdout).contains("old bids"));
    let spare_csr = s(&env.path("spare.csr"));
    let mut spare = vec!["enroll", "--token", "kunci", "--key", "p256"];
    spare.extend(APPLICANT);
    spare.extend(["--label", "spare", "--out", &spare_csr]);
    let v = ok_json(&env.run(&spare)?)?;
    let spare_id = v["key_id"].as_str().context("key_id")?.to_owned();
    let v = ok_json(&env.run(&["delete-key", "--token", "kunci", "--id", &spare_id])?)?;
    ensure!(v["objects_removed"] == 2, "{v}");
    let out = env.run(&["delete-key", "--token", "kunci", "--id", &spare_id])?;
    ensure!(error_code(&out)? == "KEY_NOT_FOUND");

    // A certificate issued for another key is refused, and a corrupt file is named.
    let other = s(&fixture("vendor-rsa2048")?.cert_pem_path);
    let out = env.run(&["import-cert", "--token", "kunci", &other])?;
    ensure!(error_code(&out)? == "KEY_NOT_FOUND", "{out:?}");
    ensure!(String::from_utf8_lossy(&out.stdout).contains("another key"));
    let corrupt = env.write(
        "corrupt.pem",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )?;
    let out = env.run(&["import-cert", "--token", "kunci", &corrupt])?;
    ensure!(
        error_code(&out)? == "BAD_REQUEST"
            && String::from_utf8_lossy(&out.stdout).contains("corrupt.pem")
    );
    Ok(())
}

#[test]
fn ec_encryption_key_with_the_legacy_profile_and_a_pkcs7_chain() -> Result<()> {
    let env = Env::new()?;
    let csr = env.path("pokja.csr");
    let mut args = vec![
        "enroll",
        "--token",
        "kunci",
        "--key",
        "p256",
        "--purpose",
        "encrypt",
        "--profile",
        "legacy",
    ];
    args.extend(APPLICANT);
    let out_s = s(&csr);
    args.extend([
        "--npwp",
        "22.222.222.2-222.222",
        "--nik",
        "3273015505900002",
        "--out",
        &out_s,
    ]);
    ok_json(&env.run(&args)?)?;
    openssl(&["req", "-verify", "-noout", "-in", &s(&csr)])?;
    let text = openssl(&["req", "-noout", "-text", "-in", &s(&csr)])?;
    for want in [
        "DNS:22.222.222.2-222.222",
        "KTP-3273015505900002",
        "Key Agreement",
        "NIST CURVE: P-256",
    ] {
        ensure!(text.contains(want), "{want:?} missing:\n{text}");
    }
    ensure!(
        !text.contains("serialNumber"),
        "legacy keeps NIK out of the subject:\n{text}"
    );
    let cert = issue(&env, &csr, "pokja.crt.pem")?;
    // The CA hands out a PKCS#7 chain (.p7b, DER).
    let p7b = env.path("pokja.p7b");
    openssl(&[
        "crl2pkcs7",
        "-nocrl",
        "-certfile",
        &s(&cert),
        "-certfile",
        &s(&fixture("issuing-ca")?.cert_pem_path),
        "-outform",
        "DER",
        "-out",
        &s(&p7b),
    ])?;
    let v = ok_json(&env.run(&["import-cert", "--token", "kunci", &s(&p7b)])?)?;
    let fp = v["certificate"].as_str().context("fingerprint")?.to_owned();
    let certs = ok_json(&env.run(&["certs"])?)?;
    let row = certs
        .as_array()
        .and_then(|a| a.iter().find(|c| c["fingerprint_sha256"] == fp.as_str()))
        .context("listed")?;
    ensure!(
        row["usage"][0] == "decrypt",
        "an EC key-agreement key opens bids: {row}"
    );
    Ok(())
}

#[test]
fn pin_status_change_and_unblock() -> Result<()> {
    let env = Env::new()?;
    let v = ok_json(&env.run(&["pin", "status", "--token", "kunci"])?)?;
    ensure!(v["locked"] == false && v["initialized"] == true, "{v}");

    let new_pin = env.write("new-pin", "246810\n")?;
    ok_json(&env.run(&[
        "pin",
        "change",
        "--token",
        "kunci",
        "--new-pin-file",
        &new_pin,
    ])?)?;
    // The old PIN no longer logs in; the new one does (an enrolment needs a login).
    let csr = s(&env.path("a.csr"));
    let mut enroll = vec!["enroll", "--token", "kunci", "--key", "p256"];
    enroll.extend(APPLICANT);
    enroll.extend(["--out", &csr]);
    let out = env.run_pin(Some(PIN), &enroll)?;
    ensure!(error_code(&out)? == "PIN_INCORRECT", "{out:?}");
    ok_json(&env.run_pin(Some("246810"), &enroll)?)?;

    // A wrong current PIN, a short new PIN, a wrong SO PIN: clear errors, nothing changes.
    let out = env.run_pin(
        Some("000000"),
        &[
            "pin",
            "change",
            "--token",
            "kunci",
            "--new-pin-file",
            &new_pin,
        ],
    )?;
    ensure!(error_code(&out)? == "PIN_INCORRECT");
    let short = env.write("short-pin", "12\n")?;
    let out = env.run_pin(
        Some("246810"),
        &[
            "pin",
            "change",
            "--token",
            "kunci",
            "--new-pin-file",
            &short,
        ],
    )?;
    ensure!(
        error_code(&out)? == "PIN_INVALID"
            && String::from_utf8_lossy(&out.stdout).contains("at least 6")
    );
    let wrong_so = env.write("wrong-so", "11111111\n")?;
    let reset = env.write("reset-pin", "135790\n")?;
    let out = env.run(&[
        "pin",
        "unblock",
        "--token",
        "kunci",
        "--so-pin-file",
        &wrong_so,
        "--new-pin-file",
        &reset,
    ])?;
    ensure!(error_code(&out)? == "PIN_INCORRECT");

    // The SO PIN resets the user PIN.
    let so = env.write("so-pin", &format!("{SO_PIN}\n"))?;
    ok_json(&env.run(&[
        "pin",
        "unblock",
        "--token",
        "kunci",
        "--so-pin-file",
        &so,
        "--new-pin-file",
        &reset,
    ])?)?;
    let csr2 = s(&env.path("b.csr"));
    let mut enroll2 = vec!["enroll", "--token", "kunci", "--key", "p256"];
    enroll2.extend(APPLICANT);
    enroll2.extend(["--out", &csr2]);
    ok_json(&env.run_pin(Some("135790"), &enroll2)?)?;
    Ok(())
}

#[test]
fn bad_enrolment_input_is_refused_before_any_key_is_made() -> Result<()> {
    let env = Env::new()?;
    let csr = s(&env.path("x.csr"));
    let run = |extra: &[&str], key: &str| -> Result<Output> {
        let mut args = vec!["enroll", "--token", "kunci", "--key", key, "--out", &csr];
        let mut applicant = APPLICANT.to_vec();
        // later values of a repeated option would be refused by clap: replace instead
        for pair in extra.chunks(2) {
            if let Some(i) = applicant.iter().position(|a| *a == pair[0]) {
                applicant[i + 1] = pair[1];
            } else {
                applicant.extend_from_slice(pair);
            }
        }
        args.extend(applicant);
        env.run(&args)
    };
    let out = run(
        &["--email", "budi", "--nik", "344454545", "--npwp", "22-22"],
        "rsa2048",
    )?;
    ensure!(error_code(&out)? == "BAD_REQUEST");
    let msg = String::from_utf8_lossy(&out.stdout);
    ensure!(
        msg.contains("--email") && msg.contains("--nik") && msg.contains("--npwp"),
        "{msg}"
    );
    let out = run(&[], "rsa1024")?;
    ensure!(
        error_code(&out)? == "BAD_REQUEST" && String::from_utf8_lossy(&out.stdout).contains("2048")
    );
    // No key was made by the refused attempts.
    let keys = env.hsm.list_objects("kunci", PIN)?;
    ensure!(!keys.contains("Private Key Object"), "{keys}");

    // A token that cannot generate keys: p11-kit's trust module has a token and no key
    // generation mechanisms.
    let trust = Path::new("/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-trust.so");
    if trust.exists() {
        let tokens = ok_json(&env.run_module(trust, None, &["tokens"])?)?;
        if let Some(label) = tokens
            .as_array()
            .and_then(|t| t.first())
            .and_then(|t| t["label"].as_str())
        {
            let mut args = vec!["enroll", "--token", label, "--key", "p256", "--out", &csr];
            args.extend(APPLICANT);
            let out = env.run_module(trust, None, &args)?;
            ensure!(error_code(&out)? == "MECHANISM_UNSUPPORTED", "{out:?}");
        }
    }
    let v: Value = ok_json(&env.run(&["tokens"])?)?;
    ensure!(v.as_array().is_some_and(|t| !t.is_empty()));
    Ok(())
}

#[test]
fn enrolment_onto_a_flash_drive_key_file() -> Result<()> {
    use segel_tests::shim::{Keystore, module_path};
    const SHIM_PIN: &str = "sandi-rahasia-1";
    let ks = Keystore::new()?;
    // The folder's blank slot becomes token "budi" (what a vendor's first run would do).
    let listing = ks.pkcs11_tool(&["-L"])?;
    let slot = listing
        .lines()
        .find(|l| l.contains("Segel new key file in"))
        .and_then(|l| l.split('(').nth(1))
        .and_then(|l| l.split(')').next())
        .with_context(|| format!("no blank slot:\n{listing}"))?
        .to_owned();
    ks.pkcs11_tool(&[
        "--slot",
        &slot,
        "--init-token",
        "--label",
        "budi",
        "--so-pin",
        "petugas-SO-2025",
        "--init-pin",
        "--pin",
        SHIM_PIN,
    ])?;
    let mut env = Env::new()?;
    env.segel.module = module_path()?;
    env.segel.envs = ks.envs();

    let csr = env.path("budi.csr");
    let mut args = vec!["enroll", "--token", "budi", "--key", "p256"];
    args.extend(APPLICANT);
    let csr_s = s(&csr);
    args.extend(["--out", &csr_s]);
    ok_json(&env.run_pin(Some(SHIM_PIN), &args)?)?;
    openssl(&["req", "-verify", "-noout", "-in", &csr_s])?;
    let cert = issue(&env, &csr, "budi.crt.pem")?;
    let chain = env.path("chain.pem");
    std::fs::write(
        &chain,
        [
            std::fs::read_to_string(&cert)?,
            fixture("issuing-ca")?.cert_pem,
        ]
        .concat(),
    )?;
    let v = ok_json(&env.run_pin(
        Some(SHIM_PIN),
        &["import-cert", "--token", "budi", &s(&chain)],
    )?)?;
    let fp = v["certificate"].as_str().context("fingerprint")?.to_owned();

    // The key file on the "flash drive" now holds key and certificates; OpenSSL reads it.
    let file = ks.file("budi");
    let info = openssl(&[
        "pkcs12",
        "-info",
        "-noout",
        "-in",
        &s(&file),
        "-passin",
        &format!("pass:{SHIM_PIN}"),
    ])
    .or_else(|_| {
        openssl(&[
            "pkcs12",
            "-in",
            &s(&file),
            "-passin",
            &format!("pass:{SHIM_PIN}"),
            "-nokeys",
        ])
    })?;
    let _ = info;
    let certs_pem = openssl(&[
        "pkcs12",
        "-in",
        &s(&file),
        "-passin",
        &format!("pass:{SHIM_PIN}"),
        "-nokeys",
    ])?;
    ensure!(
        certs_pem.contains("Budi Santoso") && certs_pem.contains("Segel Test CA"),
        "{certs_pem}"
    );

    // It signs, and the signature verifies to the root.
    let doc = env.write("surat.txt", "penawaran dari flashdisk")?;
    let sig = s(&env.path("surat.p7s"));
    ok_json(&env.run_pin(
        Some(SHIM_PIN),
        &[
            "sign", "--format", "cms", "--cert", &fp, "--in", &doc, "--out", &sig,
        ],
    )?)?;
    let root = s(&fixture("root-ca")?.cert_pem_path);
    let v = ok_json(&env.run_pin(None, &["verify", "--in", &sig, "--ca", &root])?)?;
    ensure!(v["trusted"] == true, "{v}");

    // The passphrase changes; the file opens with the new one only.
    let new_pin = env.write("new-pin", "sandi-baru-2026\n")?;
    ok_json(&env.run_pin(
        Some(SHIM_PIN),
        &[
            "pin",
            "change",
            "--token",
            "budi",
            "--new-pin-file",
            &new_pin,
        ],
    )?)?;
    openssl(&[
        "pkcs12",
        "-in",
        &s(&file),
        "-passin",
        "pass:sandi-baru-2026",
        "-nokeys",
        "-out",
        "/dev/null",
    ])?;
    ensure!(
        openssl(&[
            "pkcs12",
            "-in",
            &s(&file),
            "-passin",
            &format!("pass:{SHIM_PIN}"),
            "-nokeys"
        ])
        .is_err()
    );
    Ok(())
}
