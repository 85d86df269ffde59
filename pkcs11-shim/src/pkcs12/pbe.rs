//! The PKCS#12 legacy password-based encryption (RFC 7292 Appendix B and C) and the MAC.
//!
//! `pbeWithSHAAnd3-KeyTripleDES-CBC` and `pbeWithSHAAnd40BitRC2-CBC` are what `openssl -legacy`,
//! Windows and the BSrE key files use; PBES2 goes through the `pkcs5` crate instead.

use super::{Pkcs12Error, malformed};
use der::Decode;
use der::asn1::ObjectIdentifier;
#[cfg(test)]
use des::cipher::BlockEncrypt;
use des::cipher::{BlockDecrypt, BlockSizeUser, KeyInit, generic_array::GenericArray};
use hmac::{Hmac, Mac};
use pkcs12::kdf::{Pkcs12KeyType, derive_key_utf8};
use spki::AlgorithmIdentifierOwned;
use zeroize::Zeroizing;

const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");

/// Upper bound on iteration counts, so a hostile file can not pin a CPU for minutes.
const MAX_ITERATIONS: i32 = 10_000_000;

fn kdf_error(e: der::Error) -> Pkcs12Error {
    Pkcs12Error::Unsupported(format!("passphrase not representable as BMPString: {e}"))
}

/// Verifies the PFX MAC (RFC 7292 §5.1, key from Appendix B with ID 3).
pub(super) fn verify_mac(
    mac: &pkcs12::mac_data::MacData,
    password: &str,
    auth_safe: &[u8],
) -> Result<(), Pkcs12Error> {
    let iterations = mac.iterations;
    if !(1..=MAX_ITERATIONS).contains(&iterations) {
        return Err(malformed("MAC iteration count out of range"));
    }
    let salt = mac.mac_salt.as_bytes();
    let expected = mac.mac.digest.as_bytes();
    macro_rules! check {
        ($d:ty, $len:expr) => {{
            let key = Zeroizing::new(
                derive_key_utf8::<$d>(password, salt, Pkcs12KeyType::Mac, iterations, $len)
                    .map_err(kdf_error)?,
            );
            let mut m = <Hmac<$d> as Mac>::new_from_slice(&key).map_err(malformed)?;
            m.update(auth_safe);
            m.verify_slice(expected)
                .map_err(|_| Pkcs12Error::WrongPassphrase)
        }};
    }
    let oid = mac.mac.algorithm.oid;
    if oid == SHA1 {
        check!(sha1::Sha1, 20)
    } else if oid == SHA256 {
        check!(sha2::Sha256, 32)
    } else if oid == SHA384 {
        check!(sha2::Sha384, 48)
    } else if oid == SHA512 {
        check!(sha2::Sha512, 64)
    } else {
        Err(Pkcs12Error::Unsupported(format!("MAC digest {oid}")))
    }
}

/// A derived key and IV, wiped on drop.
type KeyAndIv = (Zeroizing<Vec<u8>>, Zeroizing<Vec<u8>>);

/// The legacy PKCS#12 PBE ciphers this module reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cipher {
    TripleDes3Key,
    TripleDes2Key,
    Rc2_128,
    Rc2_40,
}

/// A legacy PBE algorithm with its salt and iteration count.
#[derive(Debug)]
pub(super) struct LegacyPbe {
    cipher: Cipher,
    salt: Vec<u8>,
    iterations: i32,
}

impl LegacyPbe {
    /// `Ok(None)` when `alg` is not one of the PKCS#12 PBE OIDs.
    pub(super) fn from_algorithm(
        alg: &AlgorithmIdentifierOwned,
    ) -> Result<Option<Self>, Pkcs12Error> {
        let cipher = if alg.oid == pkcs12::PKCS_12_PBE_WITH_SHAAND3_KEY_TRIPLE_DES_CBC {
            Cipher::TripleDes3Key
        } else if alg.oid == pkcs12::PKCS_12_PBE_WITH_SHAAND2_KEY_TRIPLE_DES_CBC {
            Cipher::TripleDes2Key
        } else if alg.oid == pkcs12::PKCS_12_PBE_WITH_SHAAND128_BIT_RC2_CBC {
            Cipher::Rc2_128
        } else if alg.oid == pkcs12::PKCS_12_PBEWITH_SHAAND40_BIT_RC2_CBC {
            Cipher::Rc2_40
        } else {
            return Ok(None);
        };
        let params = alg
            .parameters
            .as_ref()
            .ok_or_else(|| malformed("PBE parameters missing"))?;
        let params = pkcs12::pbe_params::Pkcs12PbeParams::from_der(
            &der::Encode::to_der(params).map_err(malformed)?,
        )
        .map_err(malformed)?;
        if !(1..=MAX_ITERATIONS).contains(&params.iterations) {
            return Err(malformed("PBE iteration count out of range"));
        }
        Ok(Some(Self {
            cipher,
            salt: params.salt.as_bytes().to_vec(),
            iterations: params.iterations,
        }))
    }

    fn key_len(&self) -> usize {
        match self.cipher {
            Cipher::TripleDes3Key => 24,
            Cipher::TripleDes2Key => 16,
            Cipher::Rc2_128 => 16,
            Cipher::Rc2_40 => 5,
        }
    }

    fn derive(&self, password: &str) -> Option<KeyAndIv> {
        let key = derive_key_utf8::<sha1::Sha1>(
            password,
            &self.salt,
            Pkcs12KeyType::EncryptionKey,
            self.iterations,
            self.key_len(),
        )
        .ok()?;
        let iv = derive_key_utf8::<sha1::Sha1>(
            password,
            &self.salt,
            Pkcs12KeyType::Iv,
            self.iterations,
            8,
        )
        .ok()?;
        Some((Zeroizing::new(key), Zeroizing::new(iv)))
    }

    /// Decrypts; `None` means the padding did not check (wrong passphrase or damaged data).
    pub(super) fn decrypt(&self, password: &str, ct: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let (key, iv) = self.derive(password)?;
        match self.cipher {
            Cipher::TripleDes3Key => {
                cbc_decrypt(&des::TdesEde3::new_from_slice(&key).ok()?, &iv, ct)
            }
            Cipher::TripleDes2Key => {
                cbc_decrypt(&des::TdesEde2::new_from_slice(&key).ok()?, &iv, ct)
            }
            Cipher::Rc2_128 => cbc_decrypt(&rc2::Rc2::new_with_eff_key_len(&key, 128), &iv, ct),
            Cipher::Rc2_40 => cbc_decrypt(&rc2::Rc2::new_with_eff_key_len(&key, 40), &iv, ct),
        }
    }

    /// Encrypts with PKCS#7 padding (used by the unit tests to build legacy bags).
    #[cfg(test)]
    pub(super) fn encrypt(&self, password: &str, plain: &[u8]) -> Option<Vec<u8>> {
        let (key, iv) = self.derive(password)?;
        match self.cipher {
            Cipher::TripleDes3Key => Some(cbc_encrypt(
                &des::TdesEde3::new_from_slice(&key).ok()?,
                &iv,
                plain,
            )),
            _ => None,
        }
    }

    #[cfg(test)]
    pub(super) fn triple_des(salt: &[u8], iterations: i32) -> Self {
        Self {
            cipher: Cipher::TripleDes3Key,
            salt: salt.to_vec(),
            iterations,
        }
    }
}

/// CBC decryption with PKCS#7 padding removal (64-bit block ciphers only).
fn cbc_decrypt<C: BlockDecrypt + BlockSizeUser>(
    cipher: &C,
    iv: &[u8],
    ct: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    const BS: usize = 8;
    if C::block_size() != BS || iv.len() != BS || ct.is_empty() || !ct.len().is_multiple_of(BS) {
        return None;
    }
    let mut out = Zeroizing::new(Vec::with_capacity(ct.len()));
    let mut prev = [0u8; BS];
    prev.copy_from_slice(iv);
    for chunk in ct.chunks_exact(BS) {
        let mut block = GenericArray::clone_from_slice(chunk);
        cipher.decrypt_block(&mut block);
        for (b, p) in block.iter_mut().zip(prev.iter()) {
            *b ^= p;
        }
        out.extend_from_slice(&block);
        prev.copy_from_slice(chunk);
    }
    let pad = usize::from(*out.last()?);
    if pad == 0
        || pad > BS
        || out[out.len() - pad..]
            .iter()
            .any(|&b| usize::from(b) != pad)
    {
        return None;
    }
    let keep = out.len() - pad;
    out.truncate(keep);
    Some(out)
}

#[cfg(test)]
fn cbc_encrypt<C: BlockEncrypt + BlockSizeUser>(cipher: &C, iv: &[u8], plain: &[u8]) -> Vec<u8> {
    const BS: usize = 8;
    let pad = BS - plain.len() % BS;
    let mut data = plain.to_vec();
    data.extend(std::iter::repeat_n(pad as u8, pad));
    let mut prev = [0u8; BS];
    prev.copy_from_slice(iv);
    let mut out = Vec::with_capacity(data.len());
    for chunk in data.chunks_exact(BS) {
        let mut block = GenericArray::clone_from_slice(chunk);
        for (b, p) in block.iter_mut().zip(prev.iter()) {
            *b ^= p;
        }
        cipher.encrypt_block(&mut block);
        prev.copy_from_slice(&block);
        out.extend_from_slice(&block);
    }
    out
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn legacy_3des_round_trip_decrypts_with_right_passphrase_only() {
        let pbe = LegacyPbe::triple_des(b"saltsalt", 2048);
        let ct = pbe
            .encrypt("rahasia", b"isi kunci privat")
            .expect("encrypt");
        let back = pbe.decrypt("rahasia", &ct).expect("decrypt");
        assert_eq!(back.as_slice(), b"isi kunci privat");
        // A wrong passphrase almost always breaks the padding; it must never panic.
        let wrong = pbe.decrypt("salah", &ct);
        assert_ne!(
            wrong.as_deref().map(Vec::as_slice),
            Some(&b"isi kunci privat"[..])
        );
    }

    #[test]
    fn cbc_decrypt_rejects_truncated_ciphertext() {
        let pbe = LegacyPbe::triple_des(b"saltsalt", 1);
        let ct = pbe.encrypt("x", b"0123456789abcdef").expect("encrypt");
        assert!(pbe.decrypt("x", &ct[..ct.len() - 3]).is_none());
        assert!(pbe.decrypt("x", &[]).is_none());
    }
}
