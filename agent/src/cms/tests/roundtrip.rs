//! Segel ↔ Segel: seal/open round trips, tamper and truncation, recipients, hostile input.

use super::*;
use crate::cms::ContentCipher;
use crate::cms::error::CmsError;
use crate::cms::open::open_file;
use crate::cms::recipient::{Recipient, RsaPadding};
use crate::cms::seal::{SealOptions, seal_file};
use crate::cms::verify::VerifyOptions;

pub(crate) fn recipient(name: &str) -> Recipient {
    Recipient::from_der(&std::fs::read(fixture(&format!("{name}.crt.der"))).unwrap()).unwrap()
}

fn trust() -> VerifyOptions {
    VerifyOptions {
        anchors: anchors(),
        ..Default::default()
    }
}

/// Seal `data` from vendor to recipients; returns (dir, sealed path).
pub(crate) fn seal(
    data: &[u8],
    vendor: &str,
    to: &[&str],
    opts: &SealOptions,
) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("penawaran.pdf");
    std::fs::write(&input, data).unwrap();
    let out = dir.path().join("penawaran.pdf.p7m");
    let rs: Vec<Recipient> = to.iter().map(|n| recipient(n)).collect();
    seal_file(&signer(vendor), &rs, &input, &out, opts).unwrap();
    // The bid opens to this name in the same folder; opening never replaces a file.
    std::fs::remove_file(&input).unwrap();
    (dir, out)
}

#[test]
fn sealed_bid_opens_for_every_recipient_with_each_cipher_and_padding() {
    let data = content(70_000);
    let all = ["pokja-rsa2048", "pokja-p256", "pokja-p384"];
    for cipher in [ContentCipher::Aes256Gcm, ContentCipher::Aes256Cbc] {
        for padding in [RsaPadding::OaepSha256, RsaPadding::Pkcs1v15] {
            let opts = SealOptions {
                cipher,
                rsa_padding: padding,
                ..Default::default()
            };
            let (dir, sealed) = seal(&data, "vendor-p256", &all, &opts);
            for who in all {
                let out_dir = dir.path().join(who);
                std::fs::create_dir(&out_dir).unwrap();
                let (rep, path) = open_file(&decrypter(who), &sealed, &out_dir, &trust()).unwrap();
                assert!(rep.ok(), "{cipher:?} {padding:?} {who}: {rep:#?}");
                assert_eq!(std::fs::read(&path).unwrap(), data);
                assert_eq!(path.file_name().unwrap(), "penawaran.pdf");
            }
        }
    }
}

#[test]
fn empty_and_block_sized_bids_round_trip() {
    for len in [0usize, 1, 16, 4096] {
        let data = content(len);
        let (dir, sealed) = seal(
            &data,
            "vendor-rsa2048",
            &["pokja-rsa2048"],
            &SealOptions::default(),
        );
        let out = dir.path().join("opened");
        std::fs::create_dir(&out).unwrap();
        let (rep, path) = open_file(&decrypter("pokja-rsa2048"), &sealed, &out, &trust()).unwrap();
        assert!(rep.ok());
        assert_eq!(std::fs::read(&path).unwrap(), data);
        // Opening again never replaces the plaintext already there.
        let again = open_file(&decrypter("pokja-rsa2048"), &sealed, &out, &trust()).unwrap_err();
        assert!(again.to_string().contains("already exists"), "{again}");
        assert_eq!(std::fs::read(&path).unwrap(), data);
    }
}

#[test]
fn signing_only_recipient_certificate_is_refused_with_its_key_usage() {
    let der = std::fs::read(fixture("vendor-rsa2048.crt.der")).unwrap();
    let err = Recipient::from_der(&der).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, CmsError::RecipientCannotEncrypt { .. }));
    assert!(msg.contains("digitalSignature + nonRepudiation"), "{msg}");
    assert!(msg.contains("keyEncipherment"), "{msg}");
}

#[test]
fn bid_not_addressed_to_the_key_lists_its_recipients_and_writes_nothing() {
    let (dir, sealed) = seal(
        b"bid",
        "vendor-rsa2048",
        &["pokja-p256"],
        &SealOptions::default(),
    );
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let err = open_file(&decrypter("pokja-rsa2048"), &sealed, &out_dir, &trust()).unwrap_err();
    let CmsError::NotARecipient { recipients } = &err else {
        panic!("{err}");
    };
    assert_eq!(recipients.len(), 1);
    assert!(
        recipients[0].contains("Segel Test CA DS G1"),
        "{recipients:?}"
    );
    assert!(listing(&out_dir).is_empty());
}

#[test]
fn flipped_bytes_anywhere_fail_cleanly_and_leave_no_output() {
    for cipher in [ContentCipher::Aes256Gcm, ContentCipher::Aes256Cbc] {
        let opts = SealOptions {
            cipher,
            ..Default::default()
        };
        let (dir, sealed) = seal(&content(3000), "vendor-rsa2048", &["pokja-p256"], &opts);
        let good = std::fs::read(&sealed).unwrap();
        let out_dir = dir.path().join("out");
        std::fs::create_dir(&out_dir).unwrap();
        let bad = dir.path().join("bad.p7m");
        let key = decrypter("pokja-p256");
        let step = (good.len() / 150).max(1);
        let mut positions: Vec<usize> = (0..good.len()).step_by(step).collect();
        positions.extend(good.len() - 40..good.len());
        for pos in positions {
            let mut t = good.clone();
            t[pos] ^= 0x01;
            std::fs::write(&bad, &t).unwrap();
            let r = open_file(&key, &bad, &out_dir, &trust());
            match (cipher, r) {
                (_, Err(_)) => {
                    assert!(
                        listing(&out_dir).is_empty(),
                        "output left after flip at {pos}"
                    )
                }
                // CBC is malleable: a flip that garbles only unsigned parts of the inner
                // SignedData (e.g. an intermediate certificate) still yields the exact signed
                // content; the chain problem is reported instead.
                (ContentCipher::Aes256Cbc, Ok((rep, path))) => {
                    assert_eq!(
                        std::fs::read(&path).unwrap(),
                        content(3000),
                        "flip at {pos}"
                    );
                    assert!(rep.signatures_valid());
                    std::fs::remove_file(path).unwrap();
                }
                (_, Ok(_)) => panic!("{cipher:?}: flip at {pos} of {} was accepted", good.len()),
            }
        }
    }
}

#[test]
fn truncated_bids_fail_cleanly_and_leave_no_output() {
    let (dir, sealed) = seal(
        &content(5000),
        "vendor-p256",
        &["pokja-rsa2048"],
        &SealOptions::default(),
    );
    let good = std::fs::read(&sealed).unwrap();
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let bad = dir.path().join("cut.p7m");
    for len in (0..good.len()).step_by(97).chain([good.len() - 1]) {
        std::fs::write(&bad, &good[..len]).unwrap();
        let err = open_file(&decrypter("pokja-rsa2048"), &bad, &out_dir, &trust()).unwrap_err();
        assert!(
            matches!(
                err,
                CmsError::Truncated(_) | CmsError::Malformed { .. } | CmsError::Tampered(_)
            ),
            "cut at {len}: {err}"
        );
        assert!(listing(&out_dir).is_empty());
    }
}

#[test]
fn hostile_nesting_and_lengths_are_rejected_without_output() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let bad = dir.path().join("evil.p7m");
    let mut deep = Vec::new();
    for _ in 0..100_000 {
        deep.extend_from_slice(&[0x30, 0x80]);
    }
    let huge = [
        0x30, 0x88, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x06, 0x01,
    ];
    for evil in [deep, huge.to_vec()] {
        std::fs::write(&bad, &evil).unwrap();
        assert!(open_file(&decrypter("pokja-p256"), &bad, &out_dir, &trust()).is_err());
        assert!(listing(&out_dir).is_empty());
    }
}

#[test]
fn expired_vendor_certificate_opens_but_is_reported() {
    let (dir, sealed) = seal(
        b"old bid",
        "vendor-rsa2048",
        &["pokja-p384"],
        &SealOptions::default(),
    );
    let (rep, _) = open_file(
        &decrypter("pokja-p384"),
        &sealed,
        dir.path(),
        &VerifyOptions {
            anchors: anchors(),
            at: Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(2_100_000_000)),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(rep.signatures_valid());
    assert!(!rep.ok());
    let chain = rep.signers[0].chain.as_ref().unwrap();
    assert_eq!(chain.validity, crate::cms::chain::Validity::Expired);
}

#[test]
fn multi_megabyte_bid_streams_through_seal_and_open() {
    let data = content(6 << 20);
    let (dir, sealed) = seal(
        &data,
        "vendor-rsa2048",
        &["pokja-rsa2048", "pokja-p256"],
        &SealOptions::default(),
    );
    let (rep, path) = open_file(&decrypter("pokja-p256"), &sealed, dir.path(), &trust()).unwrap();
    assert!(rep.ok());
    assert_eq!(rep.content_len, data.len() as u64);
    assert_eq!(std::fs::read(path).unwrap(), data);
}

/// A key whose signatures are wrong: the self-check must catch it before anything is kept.
struct CorruptingSigner(crate::cms::software::SoftwareSigningKey);

impl crate::cms::SigningKey for CorruptingSigner {
    fn certificate_der(&self) -> &[u8] {
        crate::cms::SigningKey::certificate_der(&self.0)
    }
    fn chain_der(&self) -> Vec<Vec<u8>> {
        crate::cms::SigningKey::chain_der(&self.0)
    }
    fn sign_digest(
        &self,
        alg: crate::cms::DigestAlgorithm,
        digest: &[u8],
    ) -> Result<Vec<u8>, crate::cms::KeyError> {
        let mut sig = crate::cms::SigningKey::sign_digest(&self.0, alg, digest)?;
        let last = sig.len() - 1;
        sig[last] ^= 1;
        Ok(sig)
    }
}

#[test]
fn self_check_refuses_a_bad_signature_and_keeps_nothing() {
    // RSA seals in one pass (signed at the end), ECDSA in two: both are checked.
    for vendor in ["vendor-rsa2048", "vendor-p256"] {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("bid.pdf");
        std::fs::write(&input, content(300_000)).unwrap();
        let out = dir.path().join("bid.pdf.p7m");
        let err = seal_file(
            &CorruptingSigner(signer(vendor)),
            &[recipient("pokja-rsa2048")],
            &input,
            &out,
            &SealOptions::default(),
        )
        .unwrap_err();
        assert_eq!(err.code(), "self_check_failed", "{vendor}: {err}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "{vendor}: only the input remains");
    }
}
