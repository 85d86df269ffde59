//! The optional fast signing path (feature `openssl`): the same private key loaded into the
//! system's libcrypto, whose assembly arithmetic signs 5–15x faster than RustCrypto's portable
//! code. Only signing goes through here — `CKM_RSA_PKCS` (caller's DigestInfo),
//! `CKM_SHA256/384/512_RSA_PKCS` and `CKM_ECDSA(_SHA256/384)`; everything else, and any key
//! libcrypto refuses, stays on the RustCrypto path in [`crate::keys`].

use crate::error::{Error, Result};
use crate::mechanism::{HashAlg, SignMechanism};
use openssl::ecdsa::EcdsaSig;
use openssl::md::Md;
use openssl::pkey::{Id, PKey, Private};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;

/// A private key in libcrypto (freed, and its memory cleansed, by OpenSSL on drop).
pub struct NativeKey(PKey<Private>);

impl std::fmt::Debug for NativeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NativeKey(..)")
    }
}

fn md(h: HashAlg) -> &'static openssl::md::MdRef {
    match h {
        HashAlg::Sha1 => Md::sha1(),
        HashAlg::Sha224 => Md::sha224(),
        HashAlg::Sha256 => Md::sha256(),
        HashAlg::Sha384 => Md::sha384(),
        HashAlg::Sha512 => Md::sha512(),
    }
}

impl NativeKey {
    /// `None` when libcrypto does not take the key (the RustCrypto path then signs).
    pub fn from_pkcs8(der: &[u8]) -> Option<Self> {
        PKey::private_key_from_pkcs8(der).ok().map(NativeKey)
    }

    /// Signs `input` as [`crate::keys::PrivateKey::sign`] would; `None` for mechanisms this path
    /// does not cover. `len` is the signature length (the modulus, or twice the field size).
    pub fn sign(&self, mech: &SignMechanism, input: &[u8], len: usize) -> Option<Result<Vec<u8>>> {
        let rsa = self.0.id() == Id::RSA;
        match mech {
            SignMechanism::RsaPkcs if rsa => {
                if input.len() + 11 > len {
                    return Some(Err(Error::DataLenRange));
                }
                Some(self.pkey_sign(input, None, Some(Padding::PKCS1)))
            }
            SignMechanism::HashRsaPkcs(h) if rsa => {
                Some(self.pkey_sign(input, Some(md(*h)), Some(Padding::PKCS1)))
            }
            SignMechanism::Ecdsa | SignMechanism::HashEcdsa(_) if self.0.id() == Id::EC => {
                if input.is_empty() {
                    return Some(Err(Error::DataLenRange));
                }
                Some(self.ecdsa(input, len / 2))
            }
            _ => None,
        }
    }

    fn pkey_sign(
        &self,
        input: &[u8],
        digest: Option<&openssl::md::MdRef>,
        padding: Option<Padding>,
    ) -> Result<Vec<u8>> {
        let failed = |_| Error::FunctionFailed;
        let mut ctx = PkeyCtx::new(&self.0).map_err(failed)?;
        ctx.sign_init().map_err(failed)?;
        if let Some(p) = padding {
            ctx.set_rsa_padding(p).map_err(failed)?;
        }
        if let Some(d) = digest {
            ctx.set_signature_md(d).map_err(failed)?;
        }
        let mut out = Vec::new();
        ctx.sign_to_vec(input, &mut out).map_err(failed)?;
        Ok(out)
    }

    /// ECDSA over a hash, as PKCS#11 returns it: r‖s, each left-padded to the field size.
    fn ecdsa(&self, hash: &[u8], field: usize) -> Result<Vec<u8>> {
        let failed = |_| Error::FunctionFailed;
        let ec = self.0.ec_key().map_err(failed)?;
        let sig = EcdsaSig::sign(hash, &ec).map_err(failed)?;
        let field_i32 = i32::try_from(field).map_err(|_| Error::GeneralError)?;
        let mut out = sig.r().to_vec_padded(field_i32).map_err(failed)?;
        out.extend(sig.s().to_vec_padded(field_i32).map_err(failed)?);
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;
    use crate::keys::{Curve, PrivateKey};

    #[test]
    fn libcrypto_signatures_verify_with_rustcrypto() {
        use p256::ecdsa::signature::hazmat::PrehashVerifier;
        let key = PrivateKey::generate_ec(Curve::P256);
        let native = NativeKey::from_pkcs8(&key.to_pkcs8().expect("pkcs8")).expect("native");
        let hash = [0x42u8; 32];
        let sig = native
            .sign(&SignMechanism::Ecdsa, &hash, 64)
            .expect("covered")
            .expect("signs");
        let crate::keys::PublicKey::P256(public) = key.public() else {
            panic!("P-256")
        };
        let sig = p256::ecdsa::Signature::from_slice(&sig).expect("r||s");
        p256::ecdsa::VerifyingKey::from(&public)
            .verify_prehash(&hash, &sig)
            .expect("verifies");

        let key = PrivateKey::generate_rsa(2048).expect("rsa");
        let native = NativeKey::from_pkcs8(&key.to_pkcs8().expect("pkcs8")).expect("native");
        let sig = native
            .sign(&SignMechanism::HashRsaPkcs(HashAlg::Sha256), &hash, 256)
            .expect("covered")
            .expect("signs");
        let crate::keys::PublicKey::Rsa(public) = key.public() else {
            panic!("RSA")
        };
        public
            .verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &hash, &sig)
            .expect("verifies");
        // A mechanism that does not fit the key is left to the RustCrypto path (and its error).
        assert!(native.sign(&SignMechanism::Ecdsa, &hash, 256).is_none());
    }
}
