//! Software implementations of the key traits over PKCS#8 keys, for tests, benchmarks and
//! demos. Real deployments use token keys (agent/src/token/); these keep the private key in
//! process memory.

use rand_core::{OsRng, RngCore};
use rsa::pkcs8::DecodePrivateKey;
use zeroize::Zeroizing;

use super::keys::{DecryptionKey, DigestAlgorithm, KeyError, KeyTransportPadding, SigningKey};

enum SoftKey {
    Rsa(Box<rsa::RsaPrivateKey>),
    P256(p256::SecretKey),
    P384(p384::SecretKey),
}

impl std::fmt::Debug for SoftKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SoftKey::Rsa(_) => "Rsa(..)",
            SoftKey::P256(_) => "P256(..)",
            SoftKey::P384(_) => "P384(..)",
        })
    }
}

impl SoftKey {
    fn from_pkcs8_pem(pem: &str) -> Result<Self, KeyError> {
        if let Ok(k) = rsa::RsaPrivateKey::from_pkcs8_pem(pem) {
            return Ok(SoftKey::Rsa(Box::new(k)));
        }
        if let Ok(k) = p256::SecretKey::from_pkcs8_pem(pem) {
            return Ok(SoftKey::P256(k));
        }
        if let Ok(k) = p384::SecretKey::from_pkcs8_pem(pem) {
            return Ok(SoftKey::P384(k));
        }
        Err(KeyError::Unsupported(
            "not an unencrypted PKCS#8 RSA, P-256 or P-384 key".into(),
        ))
    }
}

fn cert_der(pem: &str) -> Result<Vec<u8>, KeyError> {
    let mut v = super::cert::pem_certificates(pem.as_bytes())
        .map_err(|e| KeyError::Failed(e.to_string()))?;
    if v.is_empty() {
        return Err(KeyError::Failed("no certificate in PEM".into()));
    }
    Ok(v.swap_remove(0))
}

/// A signing key held in memory.
#[derive(Debug)]
pub struct SoftwareSigningKey {
    key: SoftKey,
    cert: Vec<u8>,
    chain: Vec<Vec<u8>>,
}

impl SoftwareSigningKey {
    /// From a PKCS#8 PEM key, its PEM certificate, and PEM intermediates (may be empty).
    pub fn from_pem(key_pem: &str, cert_pem: &str, chain_pem: &str) -> Result<Self, KeyError> {
        let chain = super::cert::pem_certificates(chain_pem.as_bytes())
            .map_err(|e| KeyError::Failed(e.to_string()))?;
        Ok(SoftwareSigningKey {
            key: SoftKey::from_pkcs8_pem(key_pem)?,
            cert: cert_der(cert_pem)?,
            chain,
        })
    }
}

impl SigningKey for SoftwareSigningKey {
    fn certificate_der(&self) -> &[u8] {
        &self.cert
    }

    fn chain_der(&self) -> Vec<Vec<u8>> {
        self.chain.clone()
    }

    fn sign_digest(&self, alg: DigestAlgorithm, digest: &[u8]) -> Result<Vec<u8>, KeyError> {
        use ecdsa::signature::hazmat::PrehashSigner;
        let fail = |e: &dyn std::fmt::Display| KeyError::Failed(e.to_string());
        match &self.key {
            SoftKey::Rsa(k) => {
                let scheme = match alg {
                    DigestAlgorithm::Sha256 => rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
                    DigestAlgorithm::Sha384 => rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
                    DigestAlgorithm::Sha512 => rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
                };
                k.sign(scheme, digest).map_err(|e| fail(&e))
            }
            SoftKey::P256(k) => {
                let s: p256::ecdsa::Signature = p256::ecdsa::SigningKey::from(k)
                    .sign_prehash(digest)
                    .map_err(|e| fail(&e))?;
                Ok(s.to_der().as_bytes().to_vec())
            }
            SoftKey::P384(k) => {
                let s: p384::ecdsa::Signature = p384::ecdsa::SigningKey::from(k)
                    .sign_prehash(digest)
                    .map_err(|e| fail(&e))?;
                Ok(s.to_der().as_bytes().to_vec())
            }
        }
    }
}

/// A decryption key held in memory.
#[derive(Debug)]
pub struct SoftwareDecryptionKey {
    key: SoftKey,
    cert: Vec<u8>,
}

impl SoftwareDecryptionKey {
    /// From a PKCS#8 PEM key and its PEM certificate.
    pub fn from_pem(key_pem: &str, cert_pem: &str) -> Result<Self, KeyError> {
        Ok(SoftwareDecryptionKey {
            key: SoftKey::from_pkcs8_pem(key_pem)?,
            cert: cert_der(cert_pem)?,
        })
    }
}

impl DecryptionKey for SoftwareDecryptionKey {
    fn certificate_der(&self) -> &[u8] {
        &self.cert
    }

    fn decrypt_key_transport(
        &self,
        padding: KeyTransportPadding,
        encrypted_key: &[u8],
        expected_len: Option<usize>,
    ) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let SoftKey::Rsa(k) = &self.key else {
            return Err(KeyError::Unsupported(
                "key transport needs an RSA key".into(),
            ));
        };
        let r = match padding {
            KeyTransportPadding::OaepSha1 => {
                k.decrypt(rsa::Oaep::new::<sha1::Sha1>(), encrypted_key)
            }
            KeyTransportPadding::OaepSha256 => {
                k.decrypt(rsa::Oaep::new::<sha2::Sha256>(), encrypted_key)
            }
            KeyTransportPadding::Pkcs1v15 => {
                let r = k.decrypt(rsa::Pkcs1v15Encrypt, encrypted_key);
                // Implicit rejection: a wrong-padding or wrong-length result becomes a random
                // key, so the failure surfaces later as an ordinary tag/padding mismatch.
                if let Some(n) = expected_len {
                    match r {
                        Ok(v) if v.len() == n => Ok(v),
                        _ => {
                            let mut v = vec![0u8; n];
                            OsRng.fill_bytes(&mut v);
                            Ok(v)
                        }
                    }
                } else {
                    r
                }
            }
        };
        r.map(Zeroizing::new)
            .map_err(|e| KeyError::Failed(format!("RSA decryption: {e}")))
    }

    fn ecdh_shared_secret(&self, peer_point: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let bad = |_| KeyError::Failed("bad peer point".into());
        match &self.key {
            SoftKey::P256(k) => {
                let peer = p256::PublicKey::from_sec1_bytes(peer_point).map_err(bad)?;
                let z = p256::ecdh::diffie_hellman(k.to_nonzero_scalar(), peer.as_affine());
                Ok(Zeroizing::new(z.raw_secret_bytes().to_vec()))
            }
            SoftKey::P384(k) => {
                let peer = p384::PublicKey::from_sec1_bytes(peer_point).map_err(bad)?;
                let z = p384::ecdh::diffie_hellman(k.to_nonzero_scalar(), peer.as_affine());
                Ok(Zeroizing::new(z.raw_secret_bytes().to_vec()))
            }
            SoftKey::Rsa(_) => Err(KeyError::Unsupported("ECDH needs an EC key".into())),
        }
    }
}
