//! Constant-time removal of RSA encryption padding after a raw `CKM_RSA_X_509` decryption.
//!
//! The token only computes `m = c^d mod n`; the padding is checked here, in software, so that the
//! token cannot act as a padding oracle (Bleichenbacher 1998, Manger 2001, "Marvin" 2023) and so
//! that RSAES-OAEP with SHA-256 works on tokens whose firmware only offers OAEP with SHA-1.
//!
//! - [`oaep_unpad`]: EME-OAEP decoding, RFC 8017 §7.1.2 step 3, with MGF1 (§B.2.1) over the same
//!   hash as the label hash.
//! - [`pkcs1v15_unpad_implicit`]: EME-PKCS1-v1_5 decoding, RFC 8017 §7.2.2 step 3, with the
//!   implicit-rejection countermeasure of draft-irtf-cfrg-rsa-guidance-10 §7.1 (IRPRF) and §7.2
//!   (the "Marvin" workaround): a bad padding does not fail, it yields a synthetic message derived
//!   from a secret key and the ciphertext, indistinguishable from a decryption to a random message.
//! - [`pkcs1v15_unpad_fixed`]: the same for key transport with a known key length, returning
//!   exactly that many bytes (the TLS countermeasure of RFC 5246 §7.4.7.1).
//!
//! # Constant time
//!
//! Public: the modulus length `k`, the length of the token's output, the hash, the label, the
//! ciphertext and the expected key length. Secret: every byte of the encoded message and everything
//! derived from it (validity, separator position, message length). No branch, loop bound or memory
//! index depends on a secret: checks accumulate in [`subtle::Choice`] values, selections use
//! [`ConditionallySelectable`], and the loops always visit every byte. The message sits at the end
//! of the encoded message in both schemes, so it is taken as a suffix: the only access that depends
//! on its length is the final copy, made once the length is public anyway (OAEP: after the single
//! branch on validity, only on success; PKCS#1 v1.5: after real and synthetic lengths have been
//! merged, so the length no longer tells whether the padding was valid).

use hmac::Hmac;
use hmac::digest::{KeyInit, Mac};
use rand_core::{OsRng, RngCore};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::{
    Choice, ConditionallySelectable, ConstantTimeEq, ConstantTimeGreater, ConstantTimeLess,
};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

#[cfg(test)]
mod tests;

/// The only error: every padding failure, and every unusable parameter, looks the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("decryption failed")]
pub(crate) struct UnpadError;

/// Hash for OAEP's label hash and its MGF1 (RFC 8017 §7.1, §B.2.1); both use the same function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OaepHash {
    Sha1,
    Sha256,
}

/// Secret key of the implicit-rejection PRF (draft-irtf-cfrg-rsa-guidance-10 §7.2 step 3).
///
/// The draft derives it from the private exponent, which a token never reveals; we use 32 random
/// bytes instead. Create it once and keep it for as long as the private key is in use (at least
/// the process lifetime, ideally per token key): a new key per call would make the synthetic
/// message of a bad ciphertext change between calls while a real message does not — an oracle.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct ImplicitRejectionKey([u8; 32]);

impl ImplicitRejectionKey {
    /// A fresh key from the operating system's generator (getrandom).
    pub(crate) fn new() -> Result<Self, rand_core::Error> {
        let mut key = Self([0; 32]);
        OsRng.try_fill_bytes(&mut key.0)?;
        Ok(key)
    }

    /// A fixed key, for known-answer tests.
    #[cfg(test)]
    pub(crate) fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl std::fmt::Debug for ImplicitRejectionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ImplicitRejectionKey(..)")
    }
}

/// Largest modulus accepted, in bytes. The IRPRF encodes its output length in bits as a 16-bit
/// integer (draft-irtf-cfrg-rsa-guidance-10 §7.1), so `8 * k` must fit in a `u16`: 65 528-bit keys,
/// far beyond any token. Every length below is at most this, so `u32` indices cannot overflow.
const MAX_MODULUS_LEN: usize = 8191;

/// EME-PKCS1-v1_5 overhead: `0x00 || 0x02 || PS (>= 8 bytes) || 0x00` (RFC 8017 §7.2.1 step 1).
const PKCS1_OVERHEAD: usize = 11;

/// Removes EME-OAEP padding (RFC 8017 §7.1.2 step 3) from `em`, the raw RSA output.
///
/// `em` may be shorter than `modulus_len` when the token strips leading zero bytes; it is
/// left-padded. Fails with [`UnpadError`] when `modulus_len < 2 * hLen + 2` (§7.1.2 step 1.c) or
/// `em` is longer than the modulus, and — after a constant-time check — when `Y != 0`, `lHash'`
/// differs from `Hash(label)`, or no `0x01` separator follows the zero padding.
pub(crate) fn oaep_unpad(
    em: &[u8],
    modulus_len: usize,
    hash: OaepHash,
    label: &[u8],
) -> Result<Zeroizing<Vec<u8>>, UnpadError> {
    match hash {
        OaepHash::Sha1 => oaep_unpad_with::<Sha1>(em, modulus_len, label),
        OaepHash::Sha256 => oaep_unpad_with::<Sha256>(em, modulus_len, label),
    }
}

fn oaep_unpad_with<D: Digest>(
    em: &[u8],
    k: usize,
    label: &[u8],
) -> Result<Zeroizing<Vec<u8>>, UnpadError> {
    let h_len = <D as Digest>::output_size();
    // Public parameters: §7.1.2 step 1.c, and our own upper bound.
    if k < 2 * h_len + 2 || k > MAX_MODULUS_LEN {
        return Err(UnpadError);
    }
    let (mut encoded, em_fits) = left_pad(em, k);
    let l_hash = D::digest(label);

    // Step 3.b: EM = Y || maskedSeed || maskedDB.
    let (y, rest) = encoded.split_at_mut(1);
    let (seed, db) = rest.split_at_mut(h_len);
    // Steps 3.c–3.f, in place: seed = maskedSeed ^ MGF(maskedDB), DB = maskedDB ^ MGF(seed).
    mgf1_xor::<D>(seed, db);
    mgf1_xor::<D>(db, seed);

    // Step 3.g: DB = lHash' || PS || 0x01 || M. All checks go into one Choice.
    let mut good = em_fits & y[0].ct_eq(&0) & db[..h_len].ct_eq(&l_hash[..]);
    let mut looking = Choice::from(1);
    let mut msg_start = 0u32;
    for (i, &byte) in (0u32..).zip(db.iter()).skip(h_len) {
        let is_zero = byte.ct_eq(&0);
        let is_one = byte.ct_eq(&1);
        // The first non-zero byte after lHash' must be the 0x01 separator.
        good &= !(looking & !is_zero & !is_one);
        msg_start.conditional_assign(&(i + 1), looking & is_one);
        looking &= is_zero;
    }
    good &= !looking;

    // The single branch on secret data: from here validity is public, and on success so is the
    // message length, which is all the suffix copy reveals.
    if bool::from(good) {
        let start = usize::try_from(msg_start).map_err(|_| UnpadError)?;
        Ok(Zeroizing::new(db.get(start..).ok_or(UnpadError)?.to_vec()))
    } else {
        Err(UnpadError)
    }
}

/// Removes EME-PKCS1-v1_5 padding (RFC 8017 §7.2.2 step 3) with implicit rejection
/// (draft-irtf-cfrg-rsa-guidance-10 §7.2). Never fails.
///
/// `em` is the raw RSA output (left-padded if shorter than `modulus_len`); `ciphertext` is the
/// ciphertext given to the token. If the padding is valid the message is returned; otherwise a
/// synthetic message whose length (at most `modulus_len - 11`) and bytes are derived from
/// HMAC-SHA256(`key`, ciphertext), the same for the same ciphertext and key. Which one was returned
/// cannot be told from the output, its length or the timing. An `em` longer than the modulus
/// gives the synthetic message; a modulus shorter than 11 bytes (no message fits) or longer than
/// 8191 bytes gives an empty message.
pub(crate) fn pkcs1v15_unpad_implicit(
    em: &[u8],
    modulus_len: usize,
    ciphertext: &[u8],
    key: &ImplicitRejectionKey,
) -> Zeroizing<Vec<u8>> {
    let k = modulus_len;
    if !(PKCS1_OVERHEAD..=MAX_MODULUS_LEN).contains(&k) {
        return Zeroizing::new(Vec::new());
    }
    // Draft §7.2 step 3: KDK, candidate lengths CL, alternative message AM, alternative length AL.
    let kdk = key_derivation_key(key, ciphertext, k);
    let mut candidates = Zeroizing::new([0u8; 256]);
    irprf(&kdk, b"length", &mut candidates[..]);
    let alt_len = alternative_len(&candidates, max_message_len(k));
    let mut message = Zeroizing::new(vec![0u8; k]);
    irprf(&kdk, b"message", &mut message);

    // Step 4: decode the real message.
    let (encoded, em_fits) = left_pad(em, k);
    let (good, real_len) = pkcs1v15_decode(&encoded);
    let good = good & em_fits;

    // Step 5: select, over the whole buffer, the real encoded message or AM; then the length.
    for (out, real) in message.iter_mut().zip(encoded.iter()) {
        out.conditional_assign(real, good);
    }
    let len = u32::conditional_select(&u32::from(alt_len), &real_len, good);

    // Both candidate lengths are at most k - 11; the length is now that of the output, whether real
    // or synthetic, so slicing by it reveals nothing about the padding.
    let start = usize::try_from(len).map_or(k, |len| k.saturating_sub(len));
    Zeroizing::new(message.get(start..).unwrap_or_default().to_vec())
}

/// Removes EME-PKCS1-v1_5 padding when the message length is known in advance (key transport of,
/// say, a 32-byte AES key). Never fails; always returns exactly `expected_len` bytes.
///
/// Returns the message if the padding is valid and the message is `expected_len` bytes long,
/// otherwise `expected_len` synthetic bytes derived from HMAC-SHA256(`key`, ciphertext) — the last
/// `expected_len` bytes of the same alternative message [`pkcs1v15_unpad_implicit`] draws from, so
/// the two functions stay consistent on the same ciphertext. Every check is at a public position
/// (the separator must sit at `k - expected_len - 1`), so no secret index is ever computed.
/// With unusable public parameters (`modulus_len` outside 11..=8191 or `expected_len >
/// modulus_len`) the result is `expected_len` zero bytes: no message can be valid then.
pub(crate) fn pkcs1v15_unpad_fixed(
    em: &[u8],
    modulus_len: usize,
    ciphertext: &[u8],
    expected_len: usize,
    key: &ImplicitRejectionKey,
) -> Zeroizing<Vec<u8>> {
    let k = modulus_len;
    if !(PKCS1_OVERHEAD..=MAX_MODULUS_LEN).contains(&k) || expected_len > k {
        return Zeroizing::new(vec![0; expected_len]);
    }
    let kdk = key_derivation_key(key, ciphertext, k);
    let mut alternative = Zeroizing::new(vec![0u8; k]);
    irprf(&kdk, b"message", &mut alternative);

    let (encoded, em_fits) = left_pad(em, k);
    let msg_start = k - expected_len;
    // EM = 0x00 || 0x02 || PS || 0x00 || M with |M| = expected_len, so the separator is at
    // msg_start - 1 and PS (at least 8 bytes, RFC 8017 §7.2.2 step 3) fills 2..msg_start - 1.
    // Whether such a layout fits is public.
    let layout_fits = Choice::from(u8::from(expected_len <= k - PKCS1_OVERHEAD));
    let mut good = em_fits & layout_fits & encoded[0].ct_eq(&0) & encoded[1].ct_eq(&2);
    for (i, byte) in encoded.iter().enumerate().take(msg_start).skip(2) {
        let is_zero = byte.ct_eq(&0);
        // `i` is public: only the separator position may (and must) hold a zero.
        good &= if i + 1 == msg_start {
            is_zero
        } else {
            !is_zero
        };
    }

    let mut out = Zeroizing::new(vec![0u8; expected_len]);
    for ((out, real), alt) in out
        .iter_mut()
        .zip(&encoded[msg_start..])
        .zip(&alternative[msg_start..])
    {
        *out = u8::conditional_select(alt, real, good);
    }
    out
}

/// Copies `em` right-aligned into a `k`-byte buffer (I2OSP of the RSA output, RFC 8017 §4.1).
/// Whether it fits depends only on public lengths; if not, the buffer stays zero and the returned
/// choice is false so the caller fails in its constant-time path.
fn left_pad(em: &[u8], k: usize) -> (Zeroizing<Vec<u8>>, Choice) {
    let mut buffer = Zeroizing::new(vec![0u8; k]);
    let fits = em.len() <= k;
    if fits {
        buffer[k - em.len()..].copy_from_slice(em);
    }
    (buffer, Choice::from(u8::from(fits)))
}

/// XORs MGF1(`seed`, `out.len()`) into `out` (RFC 8017 §B.2.1).
fn mgf1_xor<D: Digest>(out: &mut [u8], seed: &[u8]) {
    for (counter, chunk) in (0u32..).zip(out.chunks_mut(<D as Digest>::output_size())) {
        let mut block = D::new_with_prefix(seed)
            .chain_update(counter.to_be_bytes())
            .finalize();
        for (out, mask) in chunk.iter_mut().zip(block.iter()) {
            *out ^= mask;
        }
        block.as_mut_slice().zeroize();
    }
}

/// EME-PKCS1-v1_5 decoding of a `k`-byte `em` (k >= 11): whether `em = 0x00 || 0x02 || PS || 0x00
/// || M` with at least 8 non-zero PS bytes, and the length of M (meaningless if not valid).
fn pkcs1v15_decode(em: &[u8]) -> (Choice, u32) {
    let mut good = em[0].ct_eq(&0) & em[1].ct_eq(&2);
    let mut looking = Choice::from(1);
    let mut separator = 0u32;
    for (i, byte) in (0u32..).zip(em.iter()).skip(2) {
        let is_zero = byte.ct_eq(&0);
        separator.conditional_assign(&i, looking & is_zero);
        looking &= !is_zero;
    }
    // A separator exists, after at least 8 bytes of PS (so at index 10 or later).
    good &= !looking & !separator.ct_lt(&10);
    // em.len() <= MAX_MODULUS_LEN; wrapping only matters when not `good`, and then it is unused.
    let k = u32::try_from(em.len()).unwrap_or(u32::MAX);
    (good, k.wrapping_sub(separator).wrapping_sub(1))
}

/// The largest message length for a `k`-byte modulus, `k - 11`, as the draft's 16-bit value.
fn max_message_len(k: usize) -> u16 {
    u16::try_from(k.saturating_sub(PKCS1_OVERHEAD)).unwrap_or(u16::MAX)
}

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 keyed with a 32-byte key. The key is zero-padded to the 64-byte block, which is
/// exactly what HMAC does to a short key (RFC 2104 §2), and lets us use the infallible `new`.
fn hmac_sha256(key: &[u8; 32]) -> HmacSha256 {
    let mut block = Zeroizing::new([0u8; 64]);
    block[..32].copy_from_slice(key);
    <HmacSha256 as KeyInit>::new(hmac::digest::Key::<HmacSha256>::from_slice(&block[..]))
}

/// Draft §7.2 step 3.1: KDK = HMAC-SHA256(key, C), with C as a `k`-byte octet string. The draft's
/// key is SHA-256 of the private exponent; ours is [`ImplicitRejectionKey`].
fn key_derivation_key(
    key: &ImplicitRejectionKey,
    ciphertext: &[u8],
    k: usize,
) -> Zeroizing<[u8; 32]> {
    let mut mac = hmac_sha256(&key.0);
    // The ciphertext is public: left-padding it to k bytes may depend on its length.
    if ciphertext.len() < k {
        mac.update(&vec![0u8; k - ciphertext.len()]);
    }
    mac.update(ciphertext);
    let mut tag = mac.finalize().into_bytes();
    let mut kdk = Zeroizing::new([0u8; 32]);
    kdk.copy_from_slice(&tag);
    tag.as_mut_slice().zeroize();
    kdk
}

/// Draft §7.1: IRPRF(KDK, label, length) = the first `out.len()` bytes of the concatenation of
/// HMAC-SHA256(KDK, I || label || bitLength) for I = 0, 1, ..., with I and bitLength (the output
/// length in bits) as 16-bit big-endian integers. `out.len()` is at most `MAX_MODULUS_LEN`.
fn irprf(kdk: &[u8; 32], label: &[u8], out: &mut [u8]) {
    let bits = u16::try_from(out.len() * 8)
        .unwrap_or(u16::MAX)
        .to_be_bytes();
    for (counter, chunk) in (0u16..).zip(out.chunks_mut(32)) {
        let mut mac = hmac_sha256(kdk);
        mac.update(&counter.to_be_bytes());
        mac.update(label);
        mac.update(&bits);
        let mut block = mac.finalize().into_bytes();
        chunk.copy_from_slice(&block[..chunk.len()]);
        block.as_mut_slice().zeroize();
    }
}

/// Draft §7.2 step 3.3: from 128 big-endian 16-bit candidates, each masked to the bit length of
/// `max_len` (= k - 11), keep the last one not above `max_len`, or 0 if none is. All are visited.
fn alternative_len(candidates: &[u8; 256], max_len: u16) -> u16 {
    let mut mask = max_len;
    mask |= mask >> 1;
    mask |= mask >> 2;
    mask |= mask >> 4;
    mask |= mask >> 8;
    let mut chosen = 0u16;
    for pair in candidates.chunks_exact(2) {
        let candidate = u16::from_be_bytes([pair[0], pair[1]]) & mask;
        chosen.conditional_assign(&candidate, !candidate.ct_gt(&max_len));
    }
    chosen
}
