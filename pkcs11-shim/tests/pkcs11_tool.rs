#![allow(clippy::expect_used)]
//! The module driven by OpenSC's `pkcs11-tool`, with results checked by OpenSSL.

mod common;

use common::{PIN, fixtures, pkcs11_tool, run};
use std::process::Command;

fn tool() -> (Command, tempfile::TempDir) {
    let cfg = tempfile::tempdir().expect("tempdir");
    (pkcs11_tool(&fixtures().keystore, cfg.path()), cfg)
}

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&run(cmd).stdout).into_owned()
}

#[test]
fn list_slots_shows_each_valid_key_file_as_a_token_and_skips_corrupt_ones() {
    let (mut c, _cfg) = tool();
    let out = stdout(c.arg("-L"));
    for label in ["budi", "lama", "ec", "ec384", "terbuka"] {
        assert!(
            out.contains(&format!("token label        : {label}\n")),
            "{label} missing:\n{out}"
        );
    }
    assert!(out.contains("login required"), "{out}");
    // Corrupt and truncated files are slots without a token, never a crash.
    assert!(!out.contains("token label        : rusak"), "{out}");
    assert!(!out.contains("token label        : potong"), "{out}");
}

#[test]
fn list_objects_after_login_shows_linked_certificate_and_keys() {
    let (mut c, _cfg) = tool();
    let out = stdout(c.args(["--token-label", "budi", "-O", "--login", "--pin", PIN]));
    assert!(
        out.contains("Certificate Object; type = X.509 cert"),
        "{out}"
    );
    assert!(out.contains("subject:    DN: CN=Budi Santoso"), "{out}");
    assert!(out.contains("Private Key Object; RSA"), "{out}");
    assert!(out.contains("Public Key Object; RSA 2048 bits"), "{out}");
    let ids: Vec<&str> = out
        .lines()
        .filter(|l| l.trim_start().starts_with("ID:"))
        .collect();
    assert_eq!(ids.len(), 3, "{out}");
    assert!(
        ids.iter().all(|l| *l == ids[0]),
        "objects not linked by CKA_ID: {ids:?}"
    );
}

#[test]
fn list_objects_before_login_shows_unencrypted_certificates_but_no_private_key() {
    let (mut c, _cfg) = tool();
    let out = stdout(c.args(["--token-label", "terbuka", "-O"]));
    assert!(out.contains("subject:    DN: CN=Kecil"), "{out}");
    assert!(!out.contains("Private Key Object"), "{out}");
}

#[test]
fn wrong_passphrase_is_pin_incorrect() {
    for label in ["budi", "lama"] {
        let (mut c, _cfg) = tool();
        let out = c
            .args(["--token-label", label, "-O", "--login", "--pin", "salah"])
            .output()
            .expect("spawn");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("CKR_PIN_INCORRECT"), "{label}: {err}");
    }
}

fn sign_and_verify(label: &str, cert: &str, mech: &str, extra: &[&str], dgst: &[&str]) {
    let f = fixtures();
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data.txt");
    let sig = tmp.path().join("sig.bin");
    let pubkey = tmp.path().join("pub.pem");
    std::fs::write(&data, b"dokumen penawaran tender 2025").expect("write");
    let (mut c, _cfg) = tool();
    run(c
        .args([
            "--token-label",
            label,
            "--login",
            "--pin",
            PIN,
            "--sign",
            "-m",
            mech,
        ])
        .args(extra)
        .arg("-i")
        .arg(&data)
        .arg("-o")
        .arg(&sig));
    run(Command::new("openssl")
        .args(["x509", "-pubkey", "-noout", "-in"])
        .arg(f.cert(cert))
        .arg("-out")
        .arg(&pubkey));
    let out = run(Command::new("openssl")
        .arg("dgst")
        .args(dgst)
        .arg("-verify")
        .arg(&pubkey)
        .arg("-signature")
        .arg(&sig)
        .arg(&data));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Verified OK"));
}

#[test]
fn sha256_rsa_pkcs_signature_from_aes_file_verifies_with_openssl() {
    sign_and_verify("budi", "rsa", "SHA256-RSA-PKCS", &[], &["-sha256"]);
}

#[test]
fn sha256_rsa_pkcs_signature_from_legacy_3des_file_verifies_with_openssl() {
    sign_and_verify("lama", "rsa", "SHA256-RSA-PKCS", &[], &["-sha256"]);
}

#[test]
fn sha384_rsa_pss_signature_verifies_with_openssl() {
    sign_and_verify(
        "budi",
        "rsa",
        "SHA384-RSA-PKCS-PSS",
        &["--mgf", "MGF1-SHA384", "--salt-len", "48"],
        &[
            "-sha384",
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:48",
        ],
    );
}

#[test]
fn ecdsa_sha256_and_sha384_signatures_verify_with_openssl() {
    let der = ["--signature-format", "openssl"];
    sign_and_verify("ec", "ec", "ECDSA-SHA256", &der, &["-sha256"]);
    sign_and_verify("ec384", "ec384", "ECDSA-SHA384", &der, &["-sha384"]);
}

#[test]
fn rsa_pkcs_and_oaep_decrypt_openssl_ciphertexts() {
    let f = fixtures();
    let tmp = tempfile::tempdir().expect("tempdir");
    let msg = tmp.path().join("msg");
    std::fs::write(&msg, b"kunci sesi penawaran").expect("write");
    let cases: [(&str, &[&str], &[&str]); 3] = [
        ("RSA-PKCS", &[], &[]),
        (
            "RSA-PKCS-OAEP",
            &[
                "-pkeyopt",
                "rsa_padding_mode:oaep",
                "-pkeyopt",
                "rsa_oaep_md:sha256",
                "-pkeyopt",
                "rsa_mgf1_md:sha256",
            ],
            &["--hash-algorithm", "SHA256", "--mgf", "MGF1-SHA256"],
        ),
        (
            "RSA-PKCS-OAEP",
            &[
                "-pkeyopt",
                "rsa_padding_mode:oaep",
                "-pkeyopt",
                "rsa_oaep_md:sha1",
            ],
            &["--hash-algorithm", "SHA-1", "--mgf", "MGF1-SHA1"],
        ),
    ];
    for (i, (mech, enc_opts, tool_opts)) in cases.iter().enumerate() {
        let ct = tmp.path().join(format!("ct{i}"));
        run(Command::new("openssl")
            .args(["pkeyutl", "-encrypt", "-certin", "-inkey"])
            .arg(f.cert("rsa"))
            .args(*enc_opts)
            .arg("-in")
            .arg(&msg)
            .arg("-out")
            .arg(&ct));
        for label in ["budi", "lama"] {
            let (mut c, _cfg) = tool();
            let out = run(c
                .args([
                    "--token-label",
                    label,
                    "--login",
                    "--pin",
                    PIN,
                    "--decrypt",
                    "-m",
                    mech,
                ])
                .args(*tool_opts)
                .arg("-i")
                .arg(&ct));
            assert_eq!(out.stdout, b"kunci sesi penawaran", "{mech} {label}");
        }
    }
}

#[test]
fn pkcs11_tool_self_test_passes_on_rsa_and_ec_tokens() {
    for label in ["budi", "ec"] {
        let (mut c, _cfg) = tool();
        let out = run(c.args(["--token-label", label, "--test", "--login", "--pin", PIN]));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("No errors"), "{label}: {text}");
    }
}

#[test]
fn generate_random_returns_requested_bytes() {
    let (mut c, _cfg) = tool();
    let out = run(c.args(["--token-label", "budi", "--generate-random", "64"]));
    assert_eq!(out.stdout.len(), 64);
}
