//! The card's private keys and what GENERAL AUTHENTICATE does with them
//! (SP 800-73-4 Part 2, 3.2.4; algorithm identifiers from SP 800-78-4 Table 6-2).

use anyhow::{Context, Result, bail, ensure};
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use pkcs8::DecodePrivateKey as _;
use rsa::traits::PublicKeyParts as _;
use rsa::{BigUint, RsaPrivateKey};

use super::tlv;

/// Algorithm identifiers (SP 800-78-4 Table 6-2).
pub mod alg {
    pub const TDES: u8 = 0x03;
    pub const RSA2048: u8 = 0x07;
    pub const P256: u8 = 0x11;
}

/// A private key in one of the card's key slots.
#[derive(Clone)]
pub enum SlotKey {
    Rsa2048(Box<RsaPrivateKey>),
    P256(p256::SecretKey),
}

impl std::fmt::Debug for SlotKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SlotKey::Rsa2048(_) => "SlotKey::Rsa2048",
            SlotKey::P256(_) => "SlotKey::P256",
        })
    }
}

impl SlotKey {
    /// Reads an unencrypted PKCS#8 PEM key (the test fixtures' `.key.pem`): RSA-2048 or P-256.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self> {
        if let Ok(k) = RsaPrivateKey::from_pkcs8_pem(pem) {
            ensure!(
                k.size() == 256,
                "only RSA-2048 is supported, got {} bits",
                k.size() * 8
            );
            return Ok(SlotKey::Rsa2048(Box::new(k)));
        }
        let k = p256::SecretKey::from_pkcs8_pem(pem)
            .context("key is neither RSA-2048 nor P-256 PKCS#8")?;
        Ok(SlotKey::P256(k))
    }

    /// Generates a fresh key for `algorithm` (GENERATE ASYMMETRIC KEY PAIR).
    pub fn generate(algorithm: u8) -> Result<Self> {
        let mut rng = rand::thread_rng();
        match algorithm {
            alg::RSA2048 => Ok(SlotKey::Rsa2048(Box::new(RsaPrivateKey::new(
                &mut rng, 2048,
            )?))),
            alg::P256 => Ok(SlotKey::P256(p256::SecretKey::random(&mut rng))),
            other => bail!("unsupported algorithm {other:#04x}"),
        }
    }

    /// The algorithm identifier of this key.
    pub fn algorithm(&self) -> u8 {
        match self {
            SlotKey::Rsa2048(_) => alg::RSA2048,
            SlotKey::P256(_) => alg::P256,
        }
    }

    /// The public key as the response to GENERATE ASYMMETRIC KEY PAIR
    /// (SP 800-73-4 Part 2, 3.3.2, Table 10): `7F49 { 81 n, 82 e }` or `7F49 { 86 point }`.
    pub fn public_template(&self) -> Vec<u8> {
        let mut inner = Vec::new();
        match self {
            SlotKey::Rsa2048(k) => {
                tlv::put(&mut inner, &[0x81], &k.n().to_bytes_be());
                tlv::put(&mut inner, &[0x82], &k.e().to_bytes_be());
            }
            SlotKey::P256(k) => {
                let point = k.public_key().to_encoded_point(false);
                tlv::put(&mut inner, &[0x86], point.as_bytes());
            }
        }
        tlv::tlv(&[0x7f, 0x49], &inner)
    }

    /// The `81` challenge case: raw RSA (the same private operation signs a padded block and
    /// decrypts a key-transport block) or ECDSA over a hash, signature DER-encoded.
    pub fn private_operation(&self, input: &[u8]) -> Result<Vec<u8>> {
        match self {
            SlotKey::Rsa2048(k) => {
                ensure!(
                    input.len() == 256,
                    "RSA-2048 input must be 256 bytes, got {}",
                    input.len()
                );
                let c = BigUint::from_bytes_be(input);
                ensure!(&c < k.n(), "RSA input not below the modulus");
                let m = rsa::hazmat::rsa_decrypt_and_check(
                    k.as_ref(),
                    Some(&mut rand::thread_rng()),
                    &c,
                )?;
                let m = m.to_bytes_be();
                let mut out = vec![0u8; 256 - m.len()];
                out.extend_from_slice(&m);
                Ok(out)
            }
            SlotKey::P256(k) => {
                let signing = p256::ecdsa::SigningKey::from(k);
                let sig: p256::ecdsa::Signature = signing
                    .sign_prehash(input)
                    .context("ECDSA over the given hash")?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
        }
    }

    /// The `85` exponentiation case: ECDH (SP 800-73-4 Part 2, 3.2.4, key agreement): the
    /// x-coordinate of the shared point.
    pub fn key_agreement(&self, peer_point: &[u8]) -> Result<Vec<u8>> {
        match self {
            SlotKey::P256(k) => {
                let peer = p256::PublicKey::from_sec1_bytes(peer_point)
                    .context("peer point is not a P-256 point")?;
                let shared = p256::ecdh::diffie_hellman(k.to_nonzero_scalar(), peer.as_affine());
                Ok(shared.raw_secret_bytes().to_vec())
            }
            SlotKey::Rsa2048(_) => bail!("key agreement needs an EC key"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::fixtures_dir;

    fn fixture_key(name: &str) -> Result<SlotKey> {
        SlotKey::from_pkcs8_pem(&std::fs::read_to_string(
            fixtures_dir().join(format!("{name}.key.pem")),
        )?)
    }

    #[test]
    fn slot_key_raw_rsa_inverts_public_exponentiation() -> Result<()> {
        let key = fixture_key("vendor-rsa2048")?;
        let SlotKey::Rsa2048(k) = &key else {
            bail!("fixture is not RSA")
        };
        let m = BigUint::from_bytes_be(&[0x42; 200]);
        let c = rsa::hazmat::rsa_encrypt(&k.to_public_key(), &m)?.to_bytes_be();
        let mut block = vec![0u8; 256 - c.len()];
        block.extend(c);
        let out = key.private_operation(&block)?;
        assert_eq!(&out[56..], &[0x42; 200][..]);
        assert!(out[..56].iter().all(|&b| b == 0));
        Ok(())
    }

    #[test]
    fn slot_key_ecdsa_verifies_and_ecdh_agrees_with_peer() -> Result<()> {
        use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
        let key = fixture_key("pokja-p256")?;
        let SlotKey::P256(k) = &key else {
            bail!("fixture is not P-256")
        };
        let hash = [7u8; 32];
        let der = key.private_operation(&hash)?;
        let sig = p256::ecdsa::Signature::from_der(&der)?;
        p256::ecdsa::VerifyingKey::from(k.public_key()).verify_prehash(&hash, &sig)?;

        let peer = p256::SecretKey::random(&mut rand::thread_rng());
        let ours = key.key_agreement(peer.public_key().to_encoded_point(false).as_bytes())?;
        let theirs =
            p256::ecdh::diffie_hellman(peer.to_nonzero_scalar(), k.public_key().as_affine());
        assert_eq!(ours, theirs.raw_secret_bytes().to_vec());
        Ok(())
    }
}
