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
            "cms", "-verify", "-binary", "-inform", "DER", "-purpose", "any", "-in", p(&att),
            "-CAfile", p(&chain), "-out", p(&out),
        ]);
        assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&input).unwrap());

        let det = dir.path().join(format!("{name}.p7s"));
        let opts = SignOptions {
            detached: true,
            ..Default::default()
        };
        sign_file(&key, &input, &det, &opts).unwrap();
        openssl(&[
            "cms", "-verify", "-binary", "-inform", "DER", "-purpose", "any", "-in", p(&det),
            "-CAfile", p(&chain), "-content", p(&input), "-out", "/dev/null",
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
    sign_file(&signer("vendor-rsa2048"), &input, &att, &SignOptions::default()).unwrap();
    let (ok, err) = openssl_ok(&[
        "cms", "-verify", "-binary", "-inform", "DER", "-in", p(&att), "-CAfile",
        p(&fixture("chain.pem")), "-out", "/dev/null",
    ]);
    assert!(!ok);
    assert!(err.contains("unsuitable certificate purpose"), "{err}");
}
