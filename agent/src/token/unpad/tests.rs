//! Tests for [`super`]: round trips through real RSA keys (the `rsa` crate pads and computes the
//! raw `c^d mod n` a token would return), structural failures on hand-built encodings, OpenSSL as
//! an independent OAEP encoder, and the implicit-rejection vectors of
//! draft-irtf-cfrg-rsa-guidance-10 Appendix B.1 and B.2 (copied from the draft at the end of this
//! file).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use rand_core::{CryptoRng, RngCore};
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use rsa::{BigUint, Oaep, Pkcs1v15Encrypt, RsaPrivateKey};

use super::*;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Deterministic generator (SHA-256 in counter mode) so keys and paddings are the same every run.
struct TestRng {
    seed: [u8; 32],
    counter: u64,
}

impl RngCore for TestRng {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }

    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(32) {
            let block = Sha256::new()
                .chain_update(self.seed)
                .chain_update(self.counter.to_be_bytes())
                .finalize();
            self.counter += 1;
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for TestRng {}

fn rng(tag: &str) -> TestRng {
    TestRng {
        seed: Sha256::digest(tag.as_bytes()).into(),
        counter: 0,
    }
}

fn random_bytes(rng: &mut TestRng, len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    rng.fill_bytes(&mut bytes);
    bytes
}

fn random_nonzero_bytes(rng: &mut TestRng, len: usize) -> Vec<u8> {
    random_bytes(rng, len)
        .into_iter()
        .map(|b| if b == 0 { 0x5a } else { b })
        .collect()
}

fn key_1024() -> &'static RsaPrivateKey {
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| RsaPrivateKey::new(&mut rng("segel unpad key 1024"), 1024).unwrap())
}

fn key_2048() -> &'static RsaPrivateKey {
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| RsaPrivateKey::new(&mut rng("segel unpad key 2048"), 2048).unwrap())
}

fn left_padded(bytes: &[u8], k: usize) -> Vec<u8> {
    assert!(bytes.len() <= k);
    let mut out = vec![0; k - bytes.len()];
    out.extend_from_slice(bytes);
    out
}

/// What `CKM_RSA_X_509` returns on a token that strips leading zeros: `c^d mod n`, minimal
/// big-endian. Every padded message starts with 0x00, so this is always shorter than `k`.
fn raw_decrypt(key: &RsaPrivateKey, ciphertext: &[u8]) -> Vec<u8> {
    BigUint::from_bytes_be(ciphertext)
        .modpow(key.d(), key.n())
        .to_bytes_be()
}

/// `em^e mod n` as a `k`-byte ciphertext, to give hand-built encodings a real ciphertext.
fn raw_encrypt(key: &RsaPrivateKey, em: &[u8]) -> Vec<u8> {
    let m = BigUint::from_bytes_be(em);
    assert!(&m < key.n(), "encoded message must be below the modulus");
    left_padded(&m.modpow(key.e(), key.n()).to_bytes_be(), key.size())
}

/// EM = Y || maskedSeed || maskedDB from a plain `db` and `seed` (RFC 8017 §7.1.1 steps 2.f–2.i).
fn oaep_encode<D: Digest>(y: u8, seed: &[u8], db: &[u8]) -> Vec<u8> {
    let mut masked_db = db.to_vec();
    mgf1_xor::<D>(&mut masked_db, seed);
    let mut masked_seed = seed.to_vec();
    mgf1_xor::<D>(&mut masked_seed, &masked_db);
    let mut em = vec![y];
    em.extend_from_slice(&masked_seed);
    em.extend_from_slice(&masked_db);
    em
}

/// DB = lHash || PS || 0x01 || M for a `k`-byte modulus.
fn oaep_db<D: Digest>(k: usize, label: &[u8], message: &[u8]) -> Vec<u8> {
    let h_len = <D as Digest>::output_size();
    let mut db = D::digest(label).to_vec();
    db.resize(k - message.len() - h_len - 2, 0);
    db.push(0x01);
    db.extend_from_slice(message);
    assert_eq!(db.len(), k - h_len - 1);
    db
}

/// EM = 0x00 || 0x02 || PS || 0x00 || M with non-zero PS of `k - 3 - |M|` bytes.
fn pkcs1v15_encode(rng: &mut TestRng, k: usize, message: &[u8]) -> Vec<u8> {
    let mut em = vec![0x00, 0x02];
    em.extend(random_nonzero_bytes(rng, k - 3 - message.len()));
    em.push(0x00);
    em.extend_from_slice(message);
    em
}

fn oaep_max_len(k: usize, hash: OaepHash) -> usize {
    let h_len = match hash {
        OaepHash::Sha1 => 20,
        OaepHash::Sha256 => 32,
    };
    k - 2 * h_len - 2
}

fn rsa_oaep(hash: OaepHash, label: &str) -> Oaep {
    match (hash, label.is_empty()) {
        (OaepHash::Sha1, true) => Oaep::new::<Sha1>(),
        (OaepHash::Sha1, false) => Oaep::new_with_label::<Sha1, _>(label),
        (OaepHash::Sha256, true) => Oaep::new::<Sha256>(),
        (OaepHash::Sha256, false) => Oaep::new_with_label::<Sha256, _>(label),
    }
}

fn fixed_key(tag: &str) -> ImplicitRejectionKey {
    ImplicitRejectionKey::from_bytes(Sha256::digest(tag.as_bytes()).into())
}

// ---------------------------------------------------------------------------------------------
// OAEP
// ---------------------------------------------------------------------------------------------

fn assert_oaep_round_trips(key: &RsaPrivateKey, hash: OaepHash, label: &str) {
    let k = key.size();
    let public = key.to_public_key();
    let mut rng = rng(&format!("oaep {k} {hash:?} {label}"));
    for len in [
        0,
        1,
        16,
        32,
        oaep_max_len(k, hash) - 1,
        oaep_max_len(k, hash),
    ] {
        let message = random_bytes(&mut rng, len);
        let ciphertext = public
            .encrypt(&mut rng, rsa_oaep(hash, label), &message)
            .unwrap();
        let em = raw_decrypt(key, &ciphertext);
        assert!(
            em.len() < k,
            "the token output has its leading zero stripped"
        );
        for em in [em.clone(), left_padded(&em, k)] {
            let got = oaep_unpad(&em, k, hash, label.as_bytes()).unwrap();
            assert_eq!(*got, message, "k={k} {hash:?} label={label:?} len={len}");
        }
    }
}

#[test]
fn oaep_sha1_without_label_round_trips_1024_and_2048() {
    assert_oaep_round_trips(key_1024(), OaepHash::Sha1, "");
    assert_oaep_round_trips(key_2048(), OaepHash::Sha1, "");
}

#[test]
fn oaep_sha256_without_label_round_trips_1024_and_2048() {
    assert_oaep_round_trips(key_1024(), OaepHash::Sha256, "");
    assert_oaep_round_trips(key_2048(), OaepHash::Sha256, "");
}

#[test]
fn oaep_sha256_with_label_round_trips() {
    assert_oaep_round_trips(key_1024(), OaepHash::Sha256, "segel bid 2026/42");
    assert_oaep_round_trips(key_1024(), OaepHash::Sha1, "segel bid 2026/42");
}

#[test]
fn oaep_wrong_label_or_hash_fails() {
    let key = key_1024();
    let k = key.size();
    let ciphertext = key
        .to_public_key()
        .encrypt(
            &mut rng("wrong"),
            rsa_oaep(OaepHash::Sha256, "right"),
            b"key",
        )
        .unwrap();
    let em = raw_decrypt(key, &ciphertext);
    assert!(oaep_unpad(&em, k, OaepHash::Sha256, b"right").is_ok());
    assert_eq!(
        oaep_unpad(&em, k, OaepHash::Sha256, b"wrong"),
        Err(UnpadError)
    );
    assert_eq!(oaep_unpad(&em, k, OaepHash::Sha256, b""), Err(UnpadError));
    assert_eq!(
        oaep_unpad(&em, k, OaepHash::Sha1, b"right"),
        Err(UnpadError)
    );
}

#[test]
fn oaep_every_single_byte_corruption_fails() {
    for (key, hash) in [
        (key_1024(), OaepHash::Sha1),
        (key_1024(), OaepHash::Sha256),
        (key_2048(), OaepHash::Sha256),
    ] {
        let k = key.size();
        let ciphertext = key
            .to_public_key()
            .encrypt(&mut rng("corrupt"), rsa_oaep(hash, ""), &[0x42; 32])
            .unwrap();
        let em = left_padded(&raw_decrypt(key, &ciphertext), k);
        assert!(oaep_unpad(&em, k, hash, b"").is_ok());
        for position in 0..k {
            for delta in [0x01, 0x80, 0xff] {
                let mut corrupted = em.clone();
                corrupted[position] ^= delta;
                assert_eq!(
                    oaep_unpad(&corrupted, k, hash, b""),
                    Err(UnpadError),
                    "k={k} {hash:?} position={position} delta={delta:#04x}"
                );
            }
        }
    }
}

#[test]
fn oaep_hand_built_encodings_are_checked_structurally() {
    const K: usize = 128;
    let seed = [0x33; 32];
    let ok = |y: u8, db: &[u8]| {
        oaep_unpad(
            &oaep_encode::<Sha256>(y, &seed, db),
            K,
            OaepHash::Sha256,
            b"",
        )
    };
    let l_hash = Sha256::digest(b"").to_vec();

    // Valid: empty PS (separator right after lHash) and a maximal message full of 0x00 and 0x01.
    let message: Vec<u8> = (0..oaep_max_len(K, OaepHash::Sha256))
        .map(|i| (i % 2) as u8)
        .collect();
    let db = oaep_db::<Sha256>(K, b"", &message);
    assert_eq!(db[32], 0x01, "PS is empty");
    assert_eq!(*ok(0, &db).unwrap(), message);

    // Valid: message whose bytes look like padding.
    let db = oaep_db::<Sha256>(K, b"", &[0x00, 0x01, 0x00]);
    assert_eq!(*ok(0, &db).unwrap(), [0x00, 0x01, 0x00]);

    // Valid: empty message (DB ends in the separator).
    let db = oaep_db::<Sha256>(K, b"", b"");
    assert_eq!(*db.last().unwrap(), 0x01);
    assert!(ok(0, &db).unwrap().is_empty());

    // Y != 0.
    let db = oaep_db::<Sha256>(K, b"", b"msg");
    assert!(ok(0, &db).is_ok());
    assert_eq!(ok(1, &db), Err(UnpadError));

    // lHash' differs in its last byte.
    let mut bad = db.clone();
    bad[31] ^= 1;
    assert_eq!(ok(0, &bad), Err(UnpadError));

    // Separator is 0x02 instead of 0x01.
    let separator = K - 32 - 1 - 3 - 1;
    assert_eq!(db[separator], 0x01);
    let mut bad = db.clone();
    bad[separator] = 0x02;
    assert_eq!(ok(0, &bad), Err(UnpadError));

    // A non-zero, non-0x01 byte inside PS, before a good separator.
    let mut bad = db.clone();
    bad[40] = 0x80;
    assert_eq!(ok(0, &bad), Err(UnpadError));

    // No separator at all: lHash then only zeros.
    let mut bad = l_hash.clone();
    bad.resize(K - 33, 0);
    assert_eq!(ok(0, &bad), Err(UnpadError));
}

#[test]
fn oaep_public_length_checks_fail() {
    let key = key_1024();
    let k = key.size();
    let ciphertext = key
        .to_public_key()
        .encrypt(&mut rng("lengths"), rsa_oaep(OaepHash::Sha1, ""), b"m")
        .unwrap();
    let em = left_padded(&raw_decrypt(key, &ciphertext), k);
    // Longer than the modulus, even by a leading zero.
    let mut longer = vec![0];
    longer.extend_from_slice(&em);
    assert_eq!(oaep_unpad(&longer, k, OaepHash::Sha1, b""), Err(UnpadError));
    // Claimed modulus shorter than the data.
    assert_eq!(oaep_unpad(&em, k - 1, OaepHash::Sha1, b""), Err(UnpadError));
    // Empty output from a token.
    assert_eq!(oaep_unpad(&[], k, OaepHash::Sha1, b""), Err(UnpadError));
    // Beyond the supported modulus size.
    assert_eq!(oaep_unpad(&em, 8192, OaepHash::Sha1, b""), Err(UnpadError));

    // k = 2 hLen + 2 is the smallest modulus (with room only for an empty message); one less fails.
    for (hash, h_len) in [(OaepHash::Sha1, 20), (OaepHash::Sha256, 32)] {
        let k = 2 * h_len + 2;
        let em = match hash {
            OaepHash::Sha1 => {
                oaep_encode::<Sha1>(0, &vec![7; h_len], &oaep_db::<Sha1>(k, b"", b""))
            }
            OaepHash::Sha256 => {
                oaep_encode::<Sha256>(0, &vec![7; h_len], &oaep_db::<Sha256>(k, b"", b""))
            }
        };
        assert!(oaep_unpad(&em, k, hash, b"").unwrap().is_empty());
        assert_eq!(oaep_unpad(&em[1..], k - 1, hash, b""), Err(UnpadError));
    }
    for k in [0, 1, 10, 11] {
        assert_eq!(oaep_unpad(&[], k, OaepHash::Sha1, b""), Err(UnpadError));
    }
}

#[test]
fn oaep_random_token_output_is_rejected_without_panicking() {
    let key = key_1024();
    let k = key.size();
    let mut rng = rng("random em");
    for len in (0..=k).step_by(7).chain([k - 1, k]) {
        for hash in [OaepHash::Sha1, OaepHash::Sha256] {
            let em = random_bytes(&mut rng, len);
            assert_eq!(oaep_unpad(&em, k, hash, b""), Err(UnpadError));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// PKCS#1 v1.5 with implicit rejection
// ---------------------------------------------------------------------------------------------

#[test]
fn pkcs1v15_valid_padding_round_trips_1024_and_2048() {
    let rejection_key = fixed_key("round trip");
    for key in [key_1024(), key_2048()] {
        let k = key.size();
        let public = key.to_public_key();
        let mut rng = rng(&format!("pkcs1v15 {k}"));
        for len in [0, 1, 16, 32, k - 12, k - 11] {
            let message = random_bytes(&mut rng, len);
            let ciphertext = public.encrypt(&mut rng, Pkcs1v15Encrypt, &message).unwrap();
            let em = raw_decrypt(key, &ciphertext);
            assert!(em.len() < k);
            for em in [em.clone(), left_padded(&em, k)] {
                let got = pkcs1v15_unpad_implicit(&em, k, &ciphertext, &rejection_key);
                assert_eq!(*got, message, "k={k} len={len}");
                let fixed = pkcs1v15_unpad_fixed(&em, k, &ciphertext, len, &rejection_key);
                assert_eq!(*fixed, message, "k={k} len={len}");
            }
        }
    }
}

/// Invalid encodings for a `k`-byte modulus, each with the bytes a lax decoder would return.
fn bad_pkcs1v15_encodings(rng: &mut TestRng, k: usize) -> Vec<(&'static str, Vec<u8>, Vec<u8>)> {
    let message = b"the real message".to_vec();
    let good = pkcs1v15_encode(rng, k, &message);
    let mut cases = Vec::new();

    let mut em = good.clone();
    em[1] = 0x01;
    cases.push(("block type 1", em, message.clone()));

    let mut em = good.clone();
    em[0] = 0x01;
    cases.push(("first byte not zero", em, message.clone()));

    let mut em = good.clone();
    em[k - message.len() - 1] = 0x17;
    cases.push(("no separator", em, Vec::new()));

    for ps_len in [0, 1, 7] {
        let mut em = vec![0x00, 0x02];
        em.extend(random_nonzero_bytes(rng, ps_len));
        em.push(0x00);
        let lax = random_nonzero_bytes(rng, k - em.len());
        em.extend_from_slice(&lax);
        let what = match ps_len {
            0 => "PS of 0 bytes",
            1 => "PS of 1 byte",
            _ => "PS of 7 bytes",
        };
        cases.push((what, em, lax));
    }
    cases
}

#[test]
fn pkcs1v15_bad_padding_returns_stable_synthetic_message_never_the_real_one() {
    let key_a = fixed_key("rejection key A");
    let key_b = fixed_key("rejection key B");
    for key in [key_1024(), key_2048()] {
        let k = key.size();
        let mut rng = rng(&format!("bad pkcs1v15 {k}"));
        for (what, em, lax) in bad_pkcs1v15_encodings(&mut rng, k) {
            let ciphertext = raw_encrypt(key, &em);
            let token_em = raw_decrypt(key, &ciphertext);
            assert_eq!(left_padded(&token_em, k), em, "{what}: raw RSA round trip");

            let first = pkcs1v15_unpad_implicit(&token_em, k, &ciphertext, &key_a);
            let again = pkcs1v15_unpad_implicit(&em, k, &ciphertext, &key_a);
            let other = pkcs1v15_unpad_implicit(&token_em, k, &ciphertext, &key_b);
            assert_eq!(first, again, "{what}: same ciphertext and key, same output");
            assert_ne!(first, other, "{what}: another key, another output");
            assert_ne!(*first, lax, "{what}: never the real message");
            assert!(first.len() <= k - 11, "{what}: {} bytes", first.len());
        }
    }
}

#[test]
fn pkcs1v15_synthetic_message_depends_only_on_ciphertext_and_key() {
    let key = key_1024();
    let k = key.size();
    let rejection_key = fixed_key("only ciphertext");
    let mut rng = rng("only ciphertext");
    let cases = bad_pkcs1v15_encodings(&mut rng, k);
    let ciphertext = raw_encrypt(key, &cases[0].1);
    let expected = pkcs1v15_unpad_implicit(&cases[0].1, k, &ciphertext, &rejection_key);
    // Whatever is wrong with the padding, the same ciphertext gives the same synthetic message;
    // an output longer than the modulus and the stripped ciphertext give it too.
    for (what, em, _) in &cases {
        assert_eq!(
            pkcs1v15_unpad_implicit(em, k, &ciphertext, &rejection_key),
            expected,
            "{what}"
        );
    }
    let mut too_long = vec![0];
    too_long.extend_from_slice(&cases[0].1);
    assert_eq!(
        pkcs1v15_unpad_implicit(&too_long, k, &ciphertext, &rejection_key),
        expected
    );
    // Another ciphertext, another synthetic message.
    let other_ciphertext = raw_encrypt(key, &cases[1].1);
    assert_ne!(
        pkcs1v15_unpad_implicit(&cases[0].1, k, &other_ciphertext, &rejection_key),
        expected
    );
}

#[test]
fn pkcs1v15_ciphertext_shorter_than_modulus_is_left_padded_for_the_prf() {
    let rejection_key = fixed_key("short ciphertext");
    let k = 128;
    let em = vec![0xff; k];
    let mut ciphertext = vec![0u8; k];
    ciphertext[5..].fill(0xab);
    let full = pkcs1v15_unpad_implicit(&em, k, &ciphertext, &rejection_key);
    let stripped = pkcs1v15_unpad_implicit(&em, k, &ciphertext[5..], &rejection_key);
    assert_eq!(full, stripped);
    let mut shifted = ciphertext[5..].to_vec();
    shifted.extend_from_slice(&[0; 5]);
    assert_ne!(
        full,
        pkcs1v15_unpad_implicit(&em, k, &shifted, &rejection_key)
    );
}

#[test]
fn pkcs1v15_synthetic_lengths_vary_and_stay_within_k_minus_11() {
    let rejection_key = fixed_key("lengths");
    for key in [key_1024(), key_2048()] {
        let k = key.size();
        let mut rng = rng(&format!("lengths {k}"));
        let mut lengths = BTreeSet::new();
        for _ in 0..64 {
            let mut em = pkcs1v15_encode(&mut rng, k, b"message");
            em[1] = 0x03;
            let ciphertext = raw_encrypt(key, &em);
            let out = pkcs1v15_unpad_implicit(&em, k, &ciphertext, &rejection_key);
            assert!(out.len() <= k - 11);
            lengths.insert(out.len());
        }
        assert!(
            lengths.len() >= 20,
            "k={k}: only {} distinct lengths",
            lengths.len()
        );
    }
}

#[test]
fn pkcs1v15_padding_boundaries_follow_rfc8017() {
    const K: usize = 64;
    let rejection_key = fixed_key("boundaries");
    let ciphertext = [0x11; K];
    let synthetic = pkcs1v15_unpad_implicit(&[0xff; K], K, &ciphertext, &rejection_key);
    for separator in 2..K {
        let mut em = vec![0x00, 0x02];
        em.resize(separator, 0x99);
        em.push(0x00);
        em.resize(K, 0x42);
        let out = pkcs1v15_unpad_implicit(&em, K, &ciphertext, &rejection_key);
        if separator >= 10 {
            assert_eq!(
                *out,
                em[separator + 1..],
                "separator at {separator} is valid"
            );
        } else {
            assert_eq!(
                out, synthetic,
                "separator at {separator} leaves PS too short"
            );
        }
    }
    // The separator is the first zero: later zeros belong to the message.
    let mut em = vec![0x00, 0x02];
    em.resize(12, 0x99);
    em.extend_from_slice(&[0x00, 0x00, 0x01, 0x00]);
    em.resize(K, 0x42);
    assert_eq!(
        *pkcs1v15_unpad_implicit(&em, K, &ciphertext, &rejection_key),
        em[13..]
    );
}

#[test]
fn pkcs1v15_unusable_modulus_gives_empty_message() {
    let rejection_key = fixed_key("tiny");
    for k in [0, 1, 10, 8192] {
        assert!(pkcs1v15_unpad_implicit(&[0, 2, 0], k, b"c", &rejection_key).is_empty());
    }
    // k = 11 holds exactly one valid encoding form: an empty message after 8 bytes of PS.
    let em = [0, 2, 1, 2, 3, 4, 5, 6, 7, 8, 0];
    assert!(pkcs1v15_unpad_implicit(&em, 11, b"c", &rejection_key).is_empty());
    assert!(pkcs1v15_unpad_implicit(&[0xff; 11], 11, b"c", &rejection_key).is_empty());
}

#[test]
fn pkcs1v15_fixed_always_returns_expected_len() {
    let key = key_1024();
    let k = key.size();
    let rejection_key = fixed_key("fixed");
    let other_key = fixed_key("fixed, other");
    let mut rng = rng("fixed");
    let aes_key = random_bytes(&mut rng, 32);
    let good = pkcs1v15_encode(&mut rng, k, &aes_key);
    let good_ciphertext = raw_encrypt(key, &good);
    let mut bad = good.clone();
    bad[1] = 0x01;
    let bad_ciphertext = raw_encrypt(key, &bad);

    // Valid and of the expected length: the real key.
    let got = pkcs1v15_unpad_fixed(&good[1..], k, &good_ciphertext, 32, &rejection_key);
    assert_eq!(*got, aes_key);

    // Valid but of another length: the PRF bytes for that ciphertext, exactly what any invalid
    // encoding (here: all 0xff, or longer than the modulus) gives for the same ciphertext.
    let mut too_long = vec![0];
    too_long.extend_from_slice(&good);
    for expected_len in [0, 1, 16, 24, 31, 33, 64, k - 11, k - 10, k - 1, k] {
        let out = pkcs1v15_unpad_fixed(&good, k, &good_ciphertext, expected_len, &rejection_key);
        assert_eq!(out.len(), expected_len);
        for invalid in [&vec![0xff; k], &too_long] {
            let fallback =
                pkcs1v15_unpad_fixed(invalid, k, &good_ciphertext, expected_len, &rejection_key);
            assert_eq!(out, fallback, "expected_len={expected_len}");
        }
    }
    let first = pkcs1v15_unpad_fixed(&bad, k, &bad_ciphertext, 32, &rejection_key);
    let again = pkcs1v15_unpad_fixed(&bad[1..], k, &bad_ciphertext, 32, &rejection_key);
    let other = pkcs1v15_unpad_fixed(&bad, k, &bad_ciphertext, 32, &other_key);
    assert_eq!(first.len(), 32);
    assert_eq!(first, again);
    assert_ne!(first, other);
    assert_ne!(*first, aes_key);

    // Unusable public parameters still give expected_len bytes.
    for (k, expected_len) in [(10, 32), (8192, 32), (128, 129), (0, 0)] {
        assert_eq!(
            pkcs1v15_unpad_fixed(&good, k, b"c", expected_len, &rejection_key).len(),
            expected_len
        );
    }
}

#[test]
fn pkcs1v15_fixed_fallback_is_a_suffix_of_the_implicit_synthetic_message() {
    // Both draw from the same alternative message, so they agree on the same ciphertext.
    let key = key_1024();
    let k = key.size();
    let rejection_key = fixed_key("suffix");
    let mut rng = rng("suffix");
    let mut checked = 0;
    for _ in 0..32 {
        let mut em = pkcs1v15_encode(&mut rng, k, &[0x55; 32]);
        em[1] = 0x00;
        let ciphertext = raw_encrypt(key, &em);
        let implicit = pkcs1v15_unpad_implicit(&em, k, &ciphertext, &rejection_key);
        let fixed = pkcs1v15_unpad_fixed(&em, k, &ciphertext, 32, &rejection_key);
        if implicit.len() >= 32 {
            assert_eq!(*fixed, implicit[implicit.len() - 32..]);
            checked += 1;
        }
    }
    assert!(checked > 0);
}

// ---------------------------------------------------------------------------------------------
// Implicit-rejection internals and the draft's vectors
// ---------------------------------------------------------------------------------------------

#[test]
fn alternative_len_keeps_the_last_admissible_candidate() {
    let mut candidates = [0xff; 256];
    assert_eq!(alternative_len(&candidates, 20), 0, "none admissible");
    candidates[..2].copy_from_slice(&5u16.to_be_bytes());
    candidates[100..102].copy_from_slice(&20u16.to_be_bytes());
    candidates[200..202].copy_from_slice(&21u16.to_be_bytes());
    assert_eq!(alternative_len(&candidates, 20), 20, "later 21 is too long");
    candidates[254..].copy_from_slice(&(0x0100 | 3u16).to_be_bytes());
    assert_eq!(
        alternative_len(&candidates, 20),
        3,
        "high bits are masked off"
    );
}

#[test]
fn alternative_len_masks_with_k_minus_11_not_k_minus_10() {
    // Where k - 10 is a power of two the two masks differ (RustCrypto/RSA #702); these values are
    // the ones RustCrypto rsa 0.10 derives from the same IRPRF output.
    let mut kdk = [0u8; 32];
    kdk[31] = 2;
    for (k, expected) in [(138, 105), (266, 233)] {
        let mut candidates = [0u8; 256];
        irprf(&kdk, b"length", &mut candidates);
        assert_eq!(
            alternative_len(&candidates, max_message_len(k)),
            expected,
            "k={k}"
        );
    }
}

fn check_draft_vectors(pem: &str, cases: &[(&str, bool, &str, &str)]) {
    let key = RsaPrivateKey::from_pkcs8_pem(pem).unwrap();
    let k = key.size();
    // The draft's KDK key is SHA-256(I2OSP(d, k)) (§7.2 step 3.1).
    let d = left_padded(&key.d().to_bytes_be(), k);
    let rejection_key = ImplicitRejectionKey::from_bytes(Sha256::digest(&d).into());
    assert_eq!(cases.len(), 12);
    for &(id, valid, ciphertext, expected) in cases {
        let ciphertext = hex::decode(ciphertext).unwrap();
        let expected = hex::decode(expected).unwrap();
        assert_eq!(ciphertext.len(), k, "{id}");
        let em = raw_decrypt(&key, &ciphertext);
        let got = pkcs1v15_unpad_implicit(&em, k, &ciphertext, &rejection_key);
        assert_eq!(hex::encode(&*got), hex::encode(&expected), "{id}");
        let (good, _) = pkcs1v15_decode(&left_padded(&em, k));
        assert_eq!(bool::from(good), valid, "{id}");
        // The fixed variant agrees when told the length the vector expects.
        let fixed = pkcs1v15_unpad_fixed(&em, k, &ciphertext, expected.len(), &rejection_key);
        assert_eq!(*fixed, expected, "{id} (fixed)");
    }
}

#[test]
fn pkcs1v15_implicit_matches_draft_appendix_b1_2048() {
    check_draft_vectors(K2048_PEM, K2048_CASES);
}

#[test]
fn pkcs1v15_implicit_matches_draft_appendix_b2_2049() {
    check_draft_vectors(K2049_PEM, K2049_CASES);
}

// ---------------------------------------------------------------------------------------------
// OpenSSL as an independent encoder
// ---------------------------------------------------------------------------------------------

/// (description, `pkeyutl` options, OAEP hash or `None` for PKCS#1 v1.5, OAEP label).
type OpensslCase = (
    &'static str,
    &'static [&'static str],
    Option<OaepHash>,
    &'static [u8],
);

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the `openssl` command is needed for this known-answer test");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn openssl_oaep_and_pkcs1v15_ciphertexts_unpad_to_the_message() {
    let dir = tempfile::tempdir().unwrap();
    openssl(
        dir.path(),
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "key.pem",
        ],
    );
    let key = RsaPrivateKey::from_pkcs8_pem(
        &std::fs::read_to_string(dir.path().join("key.pem")).unwrap(),
    )
    .unwrap();
    let k = key.size();
    // A 32-byte content key with zero bytes and 0x01 in it, as bid sealing would transport.
    let message: Vec<u8> = (0u8..32).map(|i| i.wrapping_mul(37) & 0x0f).collect();
    std::fs::write(dir.path().join("msg.bin"), &message).unwrap();
    let label: &[u8] = &[0x00, 0x01, 0xfe, 0xff, 0x42];

    let cases: [OpensslCase; 4] = [
        (
            "oaep sha256",
            &[
                "-pkeyopt",
                "rsa_padding_mode:oaep",
                "-pkeyopt",
                "rsa_oaep_md:sha256",
            ],
            Some(OaepHash::Sha256),
            b"",
        ),
        (
            "oaep sha256 label",
            &[
                "-pkeyopt",
                "rsa_padding_mode:oaep",
                "-pkeyopt",
                "rsa_oaep_md:sha256",
                "-pkeyopt",
                "rsa_oaep_label:0001feff42",
            ],
            Some(OaepHash::Sha256),
            label,
        ),
        (
            "oaep sha1",
            &["-pkeyopt", "rsa_padding_mode:oaep"],
            Some(OaepHash::Sha1),
            b"",
        ),
        ("pkcs1", &["-pkeyopt", "rsa_padding_mode:pkcs1"], None, b""),
    ];
    let rejection_key = fixed_key("openssl");
    for (what, options, hash, label) in cases {
        let mut args = vec![
            "pkeyutl", "-encrypt", "-inkey", "key.pem", "-in", "msg.bin", "-out", "ct.bin",
        ];
        args.extend_from_slice(options);
        openssl(dir.path(), &args);
        let ciphertext = std::fs::read(dir.path().join("ct.bin")).unwrap();
        assert_eq!(ciphertext.len(), k, "{what}");
        let em = raw_decrypt(&key, &ciphertext);
        match hash {
            Some(hash) => {
                let got = oaep_unpad(&em, k, hash, label).unwrap();
                assert_eq!(*got, message, "{what}");
                let other = if hash == OaepHash::Sha1 {
                    OaepHash::Sha256
                } else {
                    OaepHash::Sha1
                };
                assert_eq!(oaep_unpad(&em, k, other, label), Err(UnpadError), "{what}");
            }
            None => {
                let got = pkcs1v15_unpad_implicit(&em, k, &ciphertext, &rejection_key);
                assert_eq!(*got, message, "{what}");
                let got = pkcs1v15_unpad_fixed(&em, k, &ciphertext, 32, &rejection_key);
                assert_eq!(*got, message, "{what}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------------

#[test]
fn unpad_error_says_only_decryption_failed() {
    assert_eq!(UnpadError.to_string(), "decryption failed");
    let boxed: Box<dyn std::error::Error> = Box::new(UnpadError);
    assert!(boxed.source().is_none());
}

#[test]
fn implicit_rejection_key_is_random_and_not_printed() {
    let a = ImplicitRejectionKey::new().unwrap();
    let b = ImplicitRejectionKey::new().unwrap();
    assert_ne!(a.0, b.0);
    assert_ne!(a.0, [0; 32]);
    assert_eq!(format!("{a:?}"), "ImplicitRejectionKey(..)");
}

// ---------------------------------------------------------------------------------------------
// draft-irtf-cfrg-rsa-guidance-10 Appendix B.1 and B.2, transcribed from the draft's vectors.
// Expected outputs are hex; "" is an empty message.
// ---------------------------------------------------------------------------------------------

/// Private key of draft-irtf-cfrg-rsa-guidance-10 Appendix B.1.
const K2048_PEM: &str = "\
-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDIzIOXFAmNpWyq
I2QPk9yJl8FjcpaPwbDG31ETwclOiyHkitIpfmVBkBG05tj15zsbeLJXQAMh0e9r
YC1OyM6NFByUkF60rTBmOaSSBlNLbn8mB0I+l9/9EzyI1yE5ne+8fpbM3L1/Oq4f
6JJxK/tJKYF9URZmRAofrLeiCPXqFlkQrdij8tSXICNgzLYyAk8NBxacGRjzFveU
sUOu9U7IdSKkwCl4+WiZgL/79knDB+gYGb/4hAljjUi9lL4VK1n/ZJ+gvWKdD/oY
E8Or9LVr08LqVGXf+hRYkpKp2KJK0mvn7gUQdBtjgtQ8g9W/pApGYT0GK+RFUX28
rwy04adpAgMBAAECggEAFFUBDg8tWHZjpmam/xzNu/Dt2BAGRtAqAjkikImSxK05
5VZZKXJu9lCMOnEVjvC2/3UdOdB1gLstLwYyEEQtBgP/UNu9ezX+LJuxmkehr4Wk
wkkB4CyotYt5GbIO3zKqz79RrbS8S2G5t+loyqTVcPcO8Y2AYyKIk+R9Q578p5Ml
m88s0Qij2GiM3weOeseZlp8jOdLB9SK5aWhGKakzuq7CaBYl6rhPTlb0RH6diPua
GZz3ECPg4lexREGzPITTvGfKgDHSYSYYEDp6CkCEQmL3XYiQzWFuUfkDVIj9bgmd
6P9tZaT/EYJUgHyfWNL7uouhUdyMaL40nJd6IE4EwQKBgQD49a1rqCiTG+pFm4o/
bcBB0jSCQJwlcelj8x90hgKiVjcbOIPtRZ7PlwUmRZ7dFuBVIvWkXZR1Gy7C2vJy
x/iBalLADRgIAXFjTaiZ15cyIvUbk3YwVIaWqffYwkpZSXwe/NRVz7l+6G0rbTSX
KzMv2jA/BJmbTra1zAuzPndh3QKBgQDOei47SakLljMKEtxoK9+9+66N1twDthR6
771XV0Pw9tpNhiNQYbca/ZytLTQCXlashrD3dD6zXhrLyiN4lUJEZbcG7SIXXlcY
yMcLZwPqj2tRD5Rb5I5aNrs8PJFzK1id/AXXLYCQMZRFK9ohNIZH7HKUPxGoRuYv
rr6OtTaw/QKBgHb+FfGK4jnN8d9rRFykvGu5aNeIwhkzpPXc0oADPWcSBizAim3y
BMH70L5GMHRD5t1KZFY3VCnU4DjKJW+vHJvekcaxe3b4GZX5HEjLvrx78ONJTAg1
nk6M1qWH17ltYiH9fg+1xVdfCC7ld2l5gHGyu7SjIjgVG0cxS7ZUeQMRAoGBAJmI
SLBVSZoQCcvH0pSzax/98gIObnNkBT6U3hoADck0BYf34nJ29ozfYI11O2M3ewO2
9AhNLAJ8SziWCmIzup7Zc4t28Q6nW+RWB4v3AfZ8xrPz/cGG5kM2x2s3LoCRDsgL
CtzCPQL7muEEhqKCSAdbTqflbd/POILkUVYUcaKRAoGAZDv3RkKffYNmegZTAhNH
77/AXmNR+CGp3rtg4OzN5QBa2ensMeVY9+ksKTKOdFadfO98dMq8KzVe1AGhoJFL
Tjy7BkhOWBlgURae0UyqLvpuoETgVNJhRMwWKcVQEFWKBOEz9Et8JE2sJb+RPFe4
kO5J9UglnNY0BP72hZ3Pl1o=
-----END PRIVATE KEY-----
";

/// Appendix B.1 cases: (id, padding valid, ciphertext, expected output), all hex.
const K2048_CASES: &[(&str, bool, &str, &str)] = &[
    (
        "B.1.2",
        true,
        "8bfe264e85d3bdeaa6b8851b8e3b956ee3d226fd3f69063a86880173a273d9f283b2eebdd1ed35f7e02d91c571981b6737d5320bd8396b0f3ad5b019daec1b0aab3cbbc026395f4fd14f13673f2dfc81f9b660ec26ac381e6db3299b4e460b43fab9955df2b3cfaa20e900e19c856238fd371899c2bf2ce8c868b76754e5db3b036533fd603746be13c10d4e3e6022ebc905d20c2a7f32b215a4cd53b3f44ca1c327d2c2b651145821c08396c89071f665349c25e44d2733cd9305985ceef6430c3cf57af5fa224089221218fa34737c79c446d28a94c41c96e4e92ac53fbcf384dea8419ea089f8784445a492c812eb0d409467f75afd7d4d1078886205a066",
        "6c6f72656d20697073756d20646f6c6f722073697420616d6574",
    ),
    (
        "B.1.3",
        true,
        "443ad9c5f00a1f4e9601717d274aacc93a824cb4d99b3c6a42e2b017e52e018443bd77d34a80703cd9b6acf523cd3b2cd1fea31940a68fba828836f1c3ed2fef071e95e0922ff0f47d0e81dacc13ecdeda3db6476f41e5b3f9ccfcfdf91558007b68ffbbe5e93bb088f1e4f0bb39bc7d8600b38930ecd00a341d8cc76955837efff0f0797c4b46fb1b375bba49bcdc877f39aaadb045c56b836072383eec6627ae280ad4f9a45d6e5b4cc7cf61d42b194ff0b9c9167c621e5380d8333e3b7f20c8d564c9ec6c2805f77c0146adea2f688a943b67ce8889f4a6353e6396d551c36a6dbf19359a825d14b69ccc4fd747cf14a1ca8578d7f0a67dc14b37f5e17ca3",
        "",
    ),
    (
        "B.1.4",
        true,
        "00a2e8f114ea8d05d12dc843e3cc3b2edc8229ff2a028bda29ba9d55e3cd02911902fef1f42a075bf05e8016e8567213d6f260fa49e360779dd81aeea3e04c2cb567e0d72b98bf754014561b7511e083d20e0bfb9cd23f8a0d3c88900c49d2fcd5843ff0765607b2026f28202a87aa94678aed22a0c20724541394cd8f44e373eba1d2bae98f516c1e2ba3d86852d064f856b1daf24795e767a2b90396e50743e3150664afab131fe40ea405dcf572dd1079af1d3f0392ccadcca0a12740dbb213b925ca2a06b1bc1383e83a658c82ba2e7427342379084d5f66b544579f07664cb26edd4f10fd913fdbc0de05ef887d4d1ec1ac95652397ea7fd4e4759fda8b",
        "6c6f72656d20697073756d",
    ),
    (
        "B.1.5",
        false,
        "20aaa8adbbc593a924ba1c5c7990b5c2242ae4b99d0fe636a19a4cf754edbcee774e472fe028160ed42634f8864900cb514006da642cae6ae8c7d087caebcfa6dad1551301e130344989a1d462d4164505f6393933450c67bc6d39d8f5160907cabc251b737925a1cf21e5c6aa5781b7769f6a2a583d97cce008c0f8b6add5f0b2bd80bee60237aa39bb20719fe75749f4bc4e42466ef5a861ae3a92395c7d858d430bfe38040f445ea93fa2958b503539800ffa5ce5f8cf51fa8171a91f36cb4f4575e8de6b4d3f096ee140b938fd2f50ee13f0d050222e2a72b0a3069ff3a6738e82c87090caa5aed4fcbe882c49646aa250b98f12f83c8d528113614a29e7",
        "",
    ),
    (
        "B.1.6",
        false,
        "48cceab10f39a4db32f60074feea473cbcdb7accf92e150417f76b44756b190e843e79ec12aa85083a21f5437e7bad0a60482e601198f9d86923239c8786ee728285afd0937f7dde12717f28389843d7375912b07b991f4fdb0190fced8ba665314367e8c5f9d2981d0f5128feeb46cb50fc237e64438a86df198dd0209364ae3a842d77532b66b7ef263b83b1541ed671b120dfd660462e2107a4ee7b964e734a7bd68d90dda61770658a3c242948532da32648687e0318286473f675b412d6468f013f14d760a358dfcad3cda2afeec5e268a37d250c37f722f468a70dfd92d7294c3c1ee1e7f8843b7d16f9f37ef35748c3ae93aa155cdcdfeb4e78567303",
        "22d850137b9eebe092b24f602dc5bb7918c16bd89ddbf20467b119d205f9c2e4bd7d2592cf1e532106e0f33557565923c73a02d4f09c0c22bea89148183e60317f7028b3aa1f261f91c979393101d7e15f4067e63979b32751658ef769610fe97cf9cef3278b3117d384051c3b1d82c251c2305418c8f6840530e631aad63e70e20e025bcd8efb54c92ec6d3b106a2f8e64eeff7d38495b0fc50c97138af4b1c0a67a1c4e27b077b8439332edfa8608dfeae653cd6a628ac550395f7e74390e42c11682234870925eeaa1fa71b76cf1f2ee3bda69f6717033ff8b7c95c9799e7a3bea5e7e4a1c359772fb6b1c6e6c516661dfe30c3",
    ),
    (
        "B.1.7",
        false,
        "006f89db685c0a132700c6a17f88a37a6635d0ab89de4c45dc09736c891ca5bf3401ce34c6e5d51e94ed2f518857ddc12d9f9f9e68e01cdc30d86ae5dd83988c0c46a8e39daa1b328a23def551d67fa1964fb15242c83ddd7dd5b1aec720a391d0b86cb16cf4d3c466850c3df88a3ed85993900d1287a0c90c4b04d34ba29e59967661f3f10e0c998f64e14e777e8e81371eca5318b4e0b53414292130c821477c51e2bff844836ab10dff293d82e4f40d345968ef268c92ed0bc238f31d50f4d3f759c23964923e135d15527556410fbd2c451d6a2aa852dc88b01139c6fdd826736d8cd3780601b2977b09c080bd8c0fa471606ad59f053ad33d9eeb905f20",
        "2b5dd72df3cae37f1aef",
    ),
    (
        "B.1.8",
        false,
        "1439e08c3f84c1a7fec74ce07614b20e01f6fa4e8c2a6cffdc3520d8889e5d9a950c6425798f85d4be38d300ea5695f13ecd4cb389d1ff5b82484b494d6280ab7fa78e645933981cb934cce8bfcd114cc0e6811eefa47aae20af638a1cd163d2d3366186d0a07df0c81f6c9f3171cf3561472e98a6006bf75ddb457bed036dcce199369de7d94ef2c68e8467ee0604eea2b3009479162a7891ba5c40cab17f49e1c438cb6eaea4f76ce23cce0e483ff0e96fa790ea15be67671814342d0a23f4a20262b6182e72f3a67cd289711503c85516a9ed225422f98b116f1ab080a80abd6f0216df88d8cfd67c139243be8dd78502a7aaf6bc99d7da71bcdf627e7354",
        "0f9b",
    ),
    (
        "B.1.9",
        false,
        "9b2ec9c0c917c98f1ad3d0119aec6be51ae3106e9af1914d48600ab6a2c0c0c8ae02a2dc3039906ff3aac904af32ec798fd65f3ad1afa2e69400e7c1de81f5728f3b3291f38263bc7a90a0563e43ce7a0d4ee9c0d8a716621ca5d3d081188769ce1b131af7d35b13dea99153579c86db31fe07d5a2c14d621b77854e48a8df41b5798563af489a291e417b6a334c63222627376118c02c53b6e86310f728734ffc86ef9d7c8bf56c0c841b24b82b59f51aee4526ba1c4268506d301e4ebc498c6aebb6fd5258c876bf900bac8ca4d309dd522f6a6343599a8bc3760f422c10c72d0ad527ce4af1874124ace3d99bb74db8d69d2528db22c3a37644640f95c05f",
        "a1f8c9255c35cfba403ccc",
    ),
    (
        "B.1.10",
        false,
        "782c2b59a21a511243820acedd567c136f6d3090c115232a82a5efb0b178285f55b5ec2d2bac96bf00d6592ea7cdc3341610c8fb07e527e5e2d20cfaf2c7f23e375431f45e998929a02f25fd95354c33838090bca838502259e92d86d568bc2cdb132fab2a399593ca60a015dc2bb1afcd64fef8a3834e17e5358d822980dc446e845b3ab4702b1ee41fe5db716d92348d5091c15d35a110555a35deb4650a5a1d2c98025d42d4544f8b32aa6a5e02dc02deaed9a7313b73b49b0d4772a3768b0ea0db5846ace6569cae677bf67fb0acf3c255dc01ec8400c963b6e49b1067728b4e563d7e1e1515664347b92ee64db7efb5452357a02fff7fcb7437abc2e579",
        "e6d700309ca0ed62452254",
    ),
    (
        "B.1.11",
        false,
        "0096136621faf36d5290b16bd26295de27f895d1faa51c800dafce73d001d60796cd4e2ac3fa2162131d859cd9da5a0c8a42281d9a63e5f353971b72e36b5722e4ac444d77f892a5443deb3dca49fa732fe855727196e23c26eeac55eeced8267a209ebc0f92f4656d64a6c13f7f7ce544ebeb0f668fe3a6c0f189e4bcd5ea12b73cf63e0c8350ee130dd62f01e5c97a1e13f52fde96a9a1bc9936ce734fdd61f27b18216f1d6de87f49cf4f2ea821fb8efd1f92cdad529baf7e31aff9bff4074f2cad2b4243dd15a711adcf7de900851fbd6bcb53dac399d7c880531d06f25f7002e1aaf1722765865d2c2b902c7736acd27bc6cbd3e38b560e2eecf7d4b576",
        "ba27b1842e7c21c0e7ef6a",
    ),
    (
        "B.1.12",
        false,
        "a7a340675a82c30e22219a55bc07cdf36d47d01834c1834f917f18b517419ce9de2a96460e745024436470ed85e94297b283537d52189c406a3f533cb405cc6a9dba46b482ce98b6e3dd52d8fce2237425617e38c11fbc46b61897ef200d01e4f25f5f6c4c5b38cd0de38ba11908b86595a8036a08a42a3d05b79600a97ac18ba368a08d6cf6ccb624f6e8002afc75599fba4de3d4f3ba7d208391ebe8d21f8282b18e2c10869eb2702e68f9176b42b0ddc9d763f0c86ba0ff92c957aaeab76d9ab8da52ea297ec11d92d770146faa1b300e0f91ef969b53e7d2907ffc984e9a9c9d11fb7d6cba91972059b46506b035efec6575c46d7114a6b935864858445f",
        "63cb0bf65fc8255dd29e17",
    ),
    (
        "B.1.13",
        false,
        "3d1b97e7aa34eaf1f4fc171ceb11dcfffd9a46a5b6961205b10b302818c1fcc9f4ec78bf18ea0cee7e9fa5b16fb4c611463b368b3312ac11cf9c06b7cf72b54e284848a508d3f02328c62c2999d0fb60929f81783c7a256891bc2ff4d91df2af96a24fc5701a1823af939ce6dbdc510608e3d41eec172ad2d51b9fc61b4217c923cadcf5bac321355ef8be5e5f090cdc2bd0c697d9058247db3ad613fdce87d2955a6d1c948a5160f93da21f731d74137f5d1f53a1923adb513d2e6e1589d44cc079f4c6ddd471d38ac82d20d8b1d21f8d65f3b6907086809f4123e08d86fb38729585de026a485d8f0e703fd4772f6668febf67df947b82195fa3867e3a3065",
        "6f09a0b62699337c497b0b",
    ),
];

/// Private key of draft-irtf-cfrg-rsa-guidance-10 Appendix B.2.
const K2049_PEM: &str = "\
-----BEGIN PRIVATE KEY-----
MIIEvwIBADANBgkqhkiG9w0BAQEFAASCBKkwggSlAgEAAoIBAQFV+IlVahd18cen
eGpQsYvCjJ6Ybt5WZ8qzm4QSTpDrp1wdsIOsPkQ7upTcI1YPdeOoFpOipDvcdCbY
xOr+aMhd4P51f25Ju57UR+YCQwgA27BM6yLn+lehjTOPtmAmzbRn5wzAQOfTZ+9A
PHvx499iRlAJRjHyHq/S+1vJFf8EN5rNERL3MsC0ZgfBeNOKIPUu2lCfL5wEBdUQ
aegMz5QVVNBHBGdQXDz1QeoIl9/J9ADOyymP/HUzctn2kzrxdMxA7ZbUZwMXM7l/
jN3T+SvDoD6oV2xBfyQAe15PdQEQW1RN6frc3/rfmN+0uwW4GZ8/haz9kfepoJS5
o4P1BJCXAgMBAAECggEBARnCs/UKetYVJnnX/1EJWKwtjKbwAoWS8zLVWhZzYXio
5n8X5wXOMA4+h1RyUQBgE/l00KPbSe80TKWiajTARQcE0OQi4M4jppQlwV/vtvJu
EG7v9kzIuddELk2k6MhQCOrrNlhZoilPo5N7wmvlYzLn2B4sFg72NcxSiqe+VeYz
pyPbweFrop5SsprvL55WVP3AZmuw/CVKy+gOY4dPD18CB4Ljydz8JSDQycSntjTk
UD+7ST4ar+6z+IvXoTOYcl2ub+OZ53XNXUzwn8g4NHxMmNqxpIg8zmIFE2Fa+qEK
YzaObXt530FmqxYnOe9RWkQC7h4GAcWlW8cd8OMO34ECgYEBiPaTYPAeGNmi3ilS
U9JSwx5Eds6l/3v4QT33/eNWUjzcl2gF+E/A3ex3DfBs7QZcgRNIdUs0avFpdWh3
/Ts9VoaCyHh9CzFO9qxn1l6BMzmLYqCDwPh2XFrUDVqB+bvc4lJ+1+lQCMsQKctM
q9H56b7fwobJZVIlXafqsZIXjvcCgYEA3sfPEdreg6TEPS+AGX8h/V1G/Ve0MfRP
6Bod439qCR/8BGTtlx3IUIg1rebMX1ZvOWVhOos2eYyS5uI/Uu+QfpVn40G+vFM3
GJYl+76rHzt7P5L/smgebvWnhKjC1498LYmqqiTSztvQZoHP5lw2x7+jxboTUWIi
LvXC6RTJg2ECgYASCT86c8rt2Q9gowTkVAL4casyyMlVsJr0Y6O+Q3Dy1VhKmrur
af2wMepE+YQGXQRh6ECrIYiGYA43FVRsiwuFrSbTjLQwj1LQf5lEfZHwh/Od00A4
2y6TjpetBTpx++1ndeHchxjlTmyvfmVGfZy63cfnZchYniyY39wlyk7KgQKBgQCM
zmE0ec+WCPf3bCRc+Ru0ldYeneZIhJBUtN0bQxbz+YFCDcCVeL95Fv5Gkc+ummTm
NAuGAyNFI/Jdd7ZqZvw+5ZOp8Y3qXfY+1fff650gummlvvVZ/7DslNtyX2/26ruj
1JVHwMp08D4B7B5JDROaoKeUe41mLM5KPA8bXoYXQQKBgQD5lZs0xLyozkiIeBsx
sem12K310NPj7VReg2fT+FRbpkQyuIcwNe+IHCvN4A0YCfksQNh4N7XE+az0iza4
3FOllWGkVlI0AtHo+jrzAOVMkbY+bO4G/m3mZvOSlYKgPh9FTneJ+weBpNb7tSbv
iBYh/R6s0hRm5M3Ziu0Q9OdveQ==
-----END PRIVATE KEY-----
";

/// Appendix B.2 cases: (id, padding valid, ciphertext, expected output), all hex.
const K2049_CASES: &[(&str, bool, &str, &str)] = &[
    (
        "B.2.2",
        true,
        "013300edbf0bb3571e59889f7ed76970bf6d57e1c89bbb6d1c3991d9df8e65ed54b556d928da7d768facb395bbcc81e9f8573b45cf8195dbd85d83a59281cddf4163aec11b53b4140053e3bd109f787a7c3cec31d535af1f50e0598d85d96d91ea01913d07097d25af99c67464ebf2bb396fb28a9233e56f31f7e105d71a23e9ef3b736d1e80e713d1691713df97334779552fc94b40dd733c7251bc522b673d3ec9354af3dd4ad44fa71c0662213a57ada1d75149697d0eb55c053aaed5ffd0b815832f454179519d3736fb4faf808416071db0d0f801aca8548311ee708c131f4be658b15f6b54256872c2903ac708bd43b017b073b5707bc84c2cd9da70e967",
        "6c6f72656d20697073756d",
    ),
    (
        "B.2.3",
        true,
        "00cc52e83755a4526fea5e62450450638430a84a5878fd12c2a571f33c55729cfab6e35c2e1703c452cff65731249460919aeb1b40084bdef573407851e48b3c72923e48d5c4f3e80990c462bc291a3e635515636ab9ebeb317ca0d75b04b80c17e2f4851f8929f72c9bea4ec4a6a1fbc5155837813567062d6b4b2a6b6e40be545d25da39b08c52f3543e2f2cdfa314832dcbf475fcbb8d3565a64bb09b55f922e6ec6cd8bb5203a11e2fa0c1b383674c4f0b63acd78f3690e3a16ad1b71f6cfe48c56533e2ae42b1393b2d156c2323272490a574ce4f14055249b6a34c3e08d4a417039450910ec34bd5f08eb06078f51bdd6e50334ee64c9695a5bde52938e3",
        "",
    ),
    (
        "B.2.4",
        true,
        "0002aadf846a329fadc6760980303dbd87bfadfa78c2015ce4d6c5782fd9d3f1078bd3c0a2c5bfbdd1c024552e5054d98b5bcdc94e476dd280e64d650089326542ce7c61d4f1ab40004c2e6a88a883613568556a10f3f9edeab67ae8dddc1e6b0831c2793d2715de943f7ce34c5c05d1b09f14431fde566d17e76c9feee90d86a2c158616ec81dda0c642f58c0ba8fa4495843124a7235d46fb4069715a51bf710fd024259131ba94da73597ace494856c94e7a3ec261545793b0990279b15fa91c7fd13dbfb1df2f221dab9fa9f7c1d21e48aa49f6aaecbabf5ee76dc6c2af2317ffb4e303115386a97f8729afc3d0c89419669235f1a3a69570e0836c79fc162",
        "6c6f72656d20697073756d",
    ),
    (
        "B.2.5",
        false,
        "0128a1f7837e53b21ee37f0b4d08c76180305d5d854a1bcf3885471610646795f1e4c85ce7fce0f71ac3504598afdfc26792dea8ac55c7da10f96d26236ae652b282459d679ec84847d523f07213e81d1c713fb159eded43112eab68b610e3f871d9c0009fde783ad7bcdca5568f7a86a716be6b96219c34b061f68718abad7c947ed107097dc68341b865d73f2e857a345f5cf05c53bb2899d2895565009125c7b5fe1c35a73c03bb0f59e7faf381c784988bb71194307ee9a8ac122990fabb5cc1fd877aaa79039ac163d084c7ee1642aaf05befb9d7ed0e29558f11f0708c8e83f804f92fd41310a6fd21d91c3ceb88ceee3e424a3fcdda57fe3abb8b7bae7d",
        "",
    ),
    (
        "B.2.6",
        false,
        "013a60aa202dedad2d9e78c0c99077ccc17b7d0533aeaf184dcb8c9a81ca4de5715ada598d59b926606dcb005935421f6ebfd32e62802f0e2de8df08f1ae00e4aced6ebf361a38df817c892309bd07c92c4f2f7be89f286f99711372e3dd959ccb0a150b28578f29040b39ecf989c26eb77a3480c2d4d363b9563a70f0a0789cc4300af1e600de39dae4a49335d35ac0156f5395ebebf35531c819c9cf498a97e67ee2299d84564444f7bcd51f9f08d6bac0872439ad57eb9a8134dc665add1f813d5031484c905a433c115bf889dc46ac672a8898fe235bf463b1b46345299b6f100b48fa954fc262ce58e83f95955b321c1e86bbfe398b588dd5c75c2c68532b",
        "5c5345594cec69769af002af6513415a0848a4d45601c44b9e84b6e0a42c1356cfc20604df8d334de53fafc6de2125f2eae2ec9864b0b0d03ef1539017ecf312460cbb3c7c49fe124cf1becce8903f227ec85daaae73fe256acdf39f47b46c14fbd289d7f9b9e22ee0e7c5d77cbbf22a2f9fbf4e26c5999a7b8335f6478912edfb77a373a82dabbc8233e585ea5ddfef3d0d872a4a007018005014a8873495951210a4b90209b8286466030e56b1050ed600c777b4dbdb64f86516ef269a3ba77285f9be9afebcaad35226f7b3296932baf8dbfea3d77eb6520da203ffc0672232761e2a8a05186181b8dd1f77f069f7af8de118aa18",
    ),
    (
        "B.2.7",
        false,
        "000a56cfd7abf21e2c65a28b8145fee663818b6cd218601e9e62bed7de5ac74ceb07b435b305c99e3e286152036086b4a13eb26164f6f4bf79ac7d6c3fbcdcd74c6dc324c04949a0c88cbf616626cb171a4e333a0e124524b44f78e2d8100c03e231791523b7d76db2d464e6b5e64244e04ad21128a5feb56092b4ceda35ebfb84f7fafa8e1c098d9923d66e541b36307574db8912630fcf734af7bcd4118f1f700804c5001a5950780188fc7862384fb3fc0708eaf3cb2b119177bb6928758fa75e644d258ac02748dcae7a78ec6c8679598fa9deee4663f1efe27efe8bd15572ff40676b95469aaa42eab4226d86c1160343255cce4fb7728f7349da27ed096b",
        "fc874af235e261083c2c",
    ),
    (
        "B.2.8",
        false,
        "011644d88f2955389b6d215fc3acd733265d82348fa15178d99e38fd2842030d4e31d1ab15b0f00a80add1a9bfe112f9c42e827c487193c360dc5888c8c42d5459b1f2c1952dca679ded08f190b6a78bbb6ea00438ebb8b03dc56e45cb36bee49a385c71fbf9bbcceda7b130ad6cee2106eff34dd224fba8e9990edf893ae52b0910cdadf44bf29812a98bb9dc1638815112950bb9e7bad11c610d6406dd2d1c36cddd639e024205a1a2bd82ec97059ef61b5226e3246ca672962194d1222cc032003fe34bf5ca0227f1c86439dcfba5203cf57099884276b0fbbf9b9cec93392673d8290a1a3452f3791c3881c9be6a1eef23841a8a5fde255cbbd3c4fc33827c",
        "9b9b496e44544456e70d9be86bd398dae00c7c05d6ea76c45d12f050b1c61c219b2fe47749451e44d96d11916f6ec4cf9eea67cb",
    ),
    (
        "B.2.9",
        false,
        "002c9ddc36ba4cf0038692b2d3a1c61a4bb3786a97ce2e46a3ba74d03158aeef456ce0f4db04dda3fe062268a1711250a18c69778a6280d88e133a16254e1f0e30ce8dac9b57d2e39a2f7d7be3ee4e08aec2fdbe8dadad7fdbf442a29a8fb40857407bf6be35596b8eefb5c2b3f58b894452c2dc54a6123a1a38d642e23751746597e08d71ac92704adc17803b19e131b4d1927881f43b0200e6f95658f559f912c889b4cd51862784364896cd6e8618f485a992f82997ad6a0917e32ae5872eaf850092b2d6c782ad35f487b79682333c1750c685d7d32ab3e1538f31dcaa5e7d5d2825875242c83947308dcf63ba4bfff20334c9c140c837dbdbae7a8dee72ff",
        "f6d0f5b78082fe61c04674",
    ),
    (
        "B.2.10",
        false,
        "00c5d77826c1ab7a34d6390f9d342d5dbe848942e2618287952ba0350d7de6726112e9cebc391a0fae1839e2bf168229e3e0d71d4161801509f1f28f6e1487ca52df05c466b6b0a6fbbe57a3268a970610ec0beac39ec0fa67babce1ef2a86bf77466dc127d7d0d2962c20e66593126f276863cd38dc6351428f884c1384f67cad0a0ffdbc2af16711fb68dc559b96b37b4f04cd133ffc7d79c43c42ca4948fa895b9daeb853150c8a5169849b730cc77d68b0217d6c0e3dbf38d751a1998186633418367e7576530566c23d6d4e0da9b038d0bb5169ce40133ea076472d055001f0135645940fd08ea44269af2604c8b1ba225053d6db9ab43577689401bdc0f3",
        "1ab287fcef3ff17067914d",
    ),
    (
        "B.2.11",
        false,
        "011e24da411e182d85e7c350a7dbff898c3e17bee1573fe3d0c0d3be53a384a65d597d52247e56d10b01cf1a51533e47c37f38bc62490e449b5f4ea35aec422a63142c95da26e800e14504ce704edc7e38faaff697b74814c14d19f7f6f4d942c1db61eca70266748ed83195bffa2eb85f49047a7bc7aae7f927ff445f15136b28b4cad396312ae09a62ef894688ad50bc53d6977236b76d30c9bb2dacd0d58300f2b3dc69a7c3212c6dcf6db583c59d94e7550ecc871991139259a9a001451635c777c7ac46db113a2460f157f9f830c186f0a0c47ca3012c8d309bea899852febe76b87874292b8230be9de5c88fb94a0f19b2df71ca1efeb5f772b2d9b38016",
        "5659f49338cfcd423dfcce",
    ),
    (
        "B.2.12",
        false,
        "014b47d00714b92e98eacd73b07816ef530f8355fca68de6ba56828afab9d43b96fcb11bee0e900e966a51705b95e82599f3df202d51d520c96adf32e1c0758a7e0a8694699af8cfd9ed2850678f70e952f029a4b461ac8a8e049ef9ffc483ebdc9a525bae3ddf8d69f8f711d30135fd9cce0c3d09d1a75c5b837d9f0d86827a5f9edccd56af835572ba099a44a69277f31999753cd9887fe46ae7c7eb98d5894692847179dac0ba305ed584f2887f7a6e88c843e6f0d4e99ffdcf51e266198301dab2bcb7b07944207c71a89f1449f3690cf09b9f15a5588a2c16d18ef437876285e9d04fd01ff30dea46a3eb17151e63b784548f1c65eeb08bec9901b9353432",
        "c917a56bd800b8d9578657",
    ),
    (
        "B.2.13",
        false,
        "01541f0012b2dfd2d2b91cd22570dd577af0d27c29baa4d7a3cec2ddf8cdb957257d8d436455d331e35730d1df7058cbb01649beb236154858843e2e14ae54fd53496883163b8cb30fea540778726453204a846b04535878bebe9e60f8783b77e5dfd4d346cd688aa2ee9e0ba9ac2bfd16005de994ea4a9c40adbafcf79dac4859480a8e6e6849077b07f5e3dce8b97f678fc4b1da7e72004cfae36f01cb23f69180a46e3b9488f3b595e83510c9c4b298c953971d82610562976271e756f97ef317b440271be9847178a482098447516ea29bd599592dbf22e35c91f8e2155bd2f6289bac31c4c608b80bc208608a17cc45f7cff774549782882cf72baf0feb2f",
        "a4e88815652839f2482a8f",
    ),
];
