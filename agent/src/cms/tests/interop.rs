//! OpenSSL ↔ Segel, both directions.

use super::*;
use crate::cms::sign::{SignOptions, sign_file};

#[test]
fn segel_attached_and_detached_signatures_verify_with_openssl_purpose_any() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bid.pdf");
    std::fs::write(&input, content(100_000)).unwrap();
    let chain = fixture("chain.pem");
    for name in ["vendor-rsa2048", "vendor-p256", "vendor-p384"] {
        let key = signer(name);
        let att = dir.path().join(format!("{name}.p7m"));
        sign_file(&key, &input, &att, &SignOptions::default()).unwrap();
        let out = dir.path().join("out.bin");
        openssl(&[
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-purpose",
            "any",
            "-in",
            p(&att),
            "-CAfile",
            p(&chain),
            "-out",
            p(&out),
        ]);
        assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&input).unwrap());

        let det = dir.path().join(format!("{name}.p7s"));
        let opts = SignOptions {
            detached: true,
            ..Default::default()
        };
        sign_file(&key, &input, &det, &opts).unwrap();
        openssl(&[
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-purpose",
            "any",
            "-in",
            p(&det),
            "-CAfile",
            p(&chain),
            "-content",
            p(&input),
            "-out",
            "/dev/null",
        ]);
    }
}

#[test]
fn openssl_default_purpose_rejects_the_adobe_only_eku_of_bsre_certificates() {
    // Documents why Segel's own verifier exists: OpenSSL's default S/MIME purpose check
    // refuses the BSrE profile (EKU 1.2.840.113583.1.1.5 only).
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bid.pdf");
    std::fs::write(&input, b"penawaran").unwrap();
    let att = dir.path().join("a.p7m");
    sign_file(
        &signer("vendor-rsa2048"),
        &input,
        &att,
        &SignOptions::default(),
    )
    .unwrap();
    let (ok, err) = openssl_ok(&[
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        p(&att),
        "-CAfile",
        p(&fixture("chain.pem")),
        "-out",
        "/dev/null",
    ]);
    assert!(!ok);
    assert!(err.contains("unsuitable certificate purpose"), "{err}");
}

fn trust() -> crate::cms::verify::VerifyOptions {
    crate::cms::verify::VerifyOptions {
        anchors: anchors(),
        ..Default::default()
    }
}

#[test]
fn openssl_signatures_verify_with_segel_including_stream_ber_and_detached() {
    use crate::cms::verify::verify_file;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bid.pdf");
    std::fs::write(&input, content(300_000)).unwrap();
    let chain = fixture("chain.pem");
    for name in ["vendor-rsa2048", "vendor-p256", "vendor-p384"] {
        for extra in [
            &[][..],
            &["-stream"][..],
            &["-nodetach"][..],
            &["-nodetach", "-stream"][..],
        ] {
            let out = dir.path().join("sig.der");
            let mut args = vec![
                "cms",
                "-sign",
                "-binary",
                "-md",
                "sha256",
                "-outform",
                "DER",
                "-in",
                p(&input),
                "-out",
                p(&out),
                "-certfile",
                p(&chain),
            ];
            let (kp, cp) = (
                fixture(&format!("{name}.key.pem")),
                fixture(&format!("{name}.crt.pem")),
            );
            args.extend(["-signer", p(&cp), "-inkey", p(&kp)]);
            args.extend(extra);
            openssl(&args);
            // OpenSSL embeds the content with -stream even without -nodetach.
            let detached = extra.is_empty();
            let rep = verify_file(&out, detached.then_some(input.as_path()), &trust()).unwrap();
            assert!(rep.ok(), "{name} {extra:?}: {rep:#?}");
            assert_eq!(rep.content_len, 300_000);
            assert!(rep.signers[0].subject.as_deref().unwrap().contains("CN="));
        }
    }
}

#[test]
fn segel_verify_reports_tampered_content_and_untrusted_chain() {
    use crate::cms::chain::ChainStatus;
    use crate::cms::verify::{VerifyOptions, verify_file};
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bid.pdf");
    std::fs::write(&input, content(5000)).unwrap();
    let sig = dir.path().join("bid.p7s");
    let opts = SignOptions {
        detached: true,
        ..Default::default()
    };
    sign_file(&signer("vendor-rsa2048"), &input, &sig, &opts).unwrap();
    let rep = verify_file(&sig, Some(&input), &trust()).unwrap();
    assert!(rep.ok(), "{rep:#?}");
    assert!(rep.signers[0].chain.as_ref().unwrap().eku_ok);

    let rep = verify_file(&sig, Some(&input), &VerifyOptions::default()).unwrap();
    assert!(rep.signatures_valid());
    assert_eq!(
        rep.signers[0].chain.as_ref().unwrap().status,
        ChainStatus::Untrusted
    );

    let mut changed = content(5000);
    changed[100] ^= 1;
    std::fs::write(&input, changed).unwrap();
    let rep = verify_file(&sig, Some(&input), &trust()).unwrap();
    assert!(!rep.ok());
    assert!(!rep.signers[0].digest_matches);
}

#[test]
fn segel_sealed_bids_decrypt_and_verify_with_openssl() {
    use super::roundtrip::seal;
    use crate::cms::ContentCipher;
    use crate::cms::recipient::RsaPadding;
    use crate::cms::seal::SealOptions;
    let data = content(50_000);
    let cases = [
        (
            ContentCipher::Aes256Gcm,
            RsaPadding::OaepSha256,
            "pokja-rsa2048",
        ),
        (
            ContentCipher::Aes256Gcm,
            RsaPadding::Pkcs1v15,
            "pokja-rsa2048",
        ),
        (
            ContentCipher::Aes256Gcm,
            RsaPadding::OaepSha256,
            "pokja-p256",
        ),
        (
            ContentCipher::Aes256Gcm,
            RsaPadding::OaepSha256,
            "pokja-p384",
        ),
        (
            ContentCipher::Aes256Cbc,
            RsaPadding::OaepSha256,
            "pokja-rsa2048",
        ),
        (
            ContentCipher::Aes256Cbc,
            RsaPadding::OaepSha256,
            "pokja-p256",
        ),
    ];
    for (cipher, rsa_padding, who) in cases {
        let opts = SealOptions {
            cipher,
            rsa_padding,
            ..Default::default()
        };
        let (dir, sealed) = seal(&data, "vendor-rsa2048", &[who, "pokja-p384"], &opts);
        let inner = dir.path().join("inner.p7m");
        openssl(&[
            "cms",
            "-decrypt",
            "-binary",
            "-inform",
            "DER",
            "-in",
            p(&sealed),
            "-recip",
            p(&fixture(&format!("{who}.crt.pem"))),
            "-inkey",
            p(&fixture(&format!("{who}.key.pem"))),
            "-out",
            p(&inner),
        ]);
        let plain = dir.path().join("plain");
        openssl(&[
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-purpose",
            "any",
            "-in",
            p(&inner),
            "-CAfile",
            p(&fixture("chain.pem")),
            "-out",
            p(&plain),
        ]);
        assert_eq!(
            std::fs::read(&plain).unwrap(),
            data,
            "{cipher:?} {rsa_padding:?} {who}"
        );
    }
}

#[test]
fn openssl_sealed_bids_open_with_segel() {
    use crate::cms::open::open_file;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bid.docx");
    let data = content(200_000);
    std::fs::write(&input, &data).unwrap();
    let signed = dir.path().join("signed.der");
    openssl(&[
        "cms",
        "-sign",
        "-binary",
        "-md",
        "sha256",
        "-nodetach",
        "-outform",
        "DER",
        "-in",
        p(&input),
        "-signer",
        p(&fixture("vendor-rsa2048.crt.pem")),
        "-inkey",
        p(&fixture("vendor-rsa2048.key.pem")),
        "-certfile",
        p(&fixture("chain.pem")),
        "-out",
        p(&signed),
    ]);
    let oaep: &[&str] = &[
        "-keyopt",
        "rsa_padding_mode:oaep",
        "-keyopt",
        "rsa_oaep_md:sha256",
    ];
    let cases: Vec<(&str, &str, &[&str])> = vec![
        ("-aes-256-gcm", "pokja-rsa2048", &[]),
        ("-aes-256-gcm", "pokja-rsa2048", oaep),
        ("-aes256", "pokja-rsa2048", &[]),
        ("-aes256", "pokja-rsa2048", oaep),
        ("-aes-256-gcm", "pokja-p256", &[]),
        ("-aes256", "pokja-p384", &[]),
        ("-aes-128-gcm", "pokja-p256", &[]),
    ];
    for (cipher, who, keyopt) in cases {
        for stream in [false, true] {
            let sealed = dir.path().join("bid.docx.p7m");
            let mut args = vec![
                "cms",
                "-encrypt",
                "-binary",
                cipher,
                "-outform",
                "DER",
                "-in",
                p(&signed),
                "-out",
                p(&sealed),
            ];
            if stream {
                args.push("-stream");
            }
            let cert = fixture(&format!("{who}.crt.pem"));
            args.extend(["-recip", p(&cert)]);
            args.extend(keyopt);
            openssl(&args);
            let out_dir = dir.path().join(format!("out-{}", stream));
            std::fs::create_dir_all(&out_dir).unwrap();
            let (rep, path) = open_file(
                &decrypter(who),
                &sealed,
                &out_dir,
                &super::roundtrip_trust(),
            )
            .unwrap_or_else(|e| panic!("{cipher} {who} {keyopt:?} stream={stream}: {e}"));
            assert!(rep.ok(), "{rep:#?}");
            assert_eq!(std::fs::read(&path).unwrap(), data);
            std::fs::remove_file(path).unwrap();
        }
    }
}
