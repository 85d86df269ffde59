//! Private and public keys from key files, and the raw operations on them (PKCS#11 v2.40
//! Mechanisms §2.1 RSA, §2.3 EC). Key material is zeroized on drop by the `rsa`/`elliptic-curve`
//! types themselves.

use crate::error::{Error, Result};
use crate::mechanism::{DecryptMechanism, HashAlg, SignMechanism};
use der::{Decode, Encode};
use pkcs8::DecodePrivateKey;
use rand_core::OsRng;
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, Oaep, Pkcs1v15Encrypt, Pkcs1v15Sign, Pss, RsaPrivateKey, RsaPublicKey};
use sha1::Digest;
use zeroize::Zeroizing;

const RSA_ENCRYPTION: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// Named curves the module supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
}

impl Curve {
    fn oid(self) -> der::oid::ObjectIdentifier {
        match self {
            Curve::P256 => SECP256R1,
            Curve::P384 => SECP384R1,
        }
    }
    /// Field size in bytes.
    pub fn field_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
        }
    }
    /// The curve named by `CKA_EC_PARAMS` (a DER OID; `printableString` names are not accepted).
    pub fn from_ec_params(params: &[u8]) -> Option<Self> {
        let oid = der::oid::ObjectIdentifier::from_der(params).ok()?;
        [Curve::P256, Curve::P384]
            .into_iter()
            .find(|c| c.oid() == oid)
    }
    /// `CKA_EC_PARAMS`: the DER-encoded named-curve OID.
    pub fn ec_params(self) -> Vec<u8> {
        self.oid().to_der().unwrap_or_default()
    }
}

/// A public key as PKCS#11 shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    Rsa(RsaPublicKey),
    P256(p256::PublicKey),
    P384(p384::PublicKey),
}

impl PublicKey {
    /// Reads a `SubjectPublicKeyInfo`; `None` for algorithms this module does not support.
    pub fn from_spki(spki: &spki::SubjectPublicKeyInfoRef<'_>) -> Option<Self> {
        use spki::DecodePublicKey;
        let der = spki.to_der().ok()?;
        if spki.algorithm.oid == RSA_ENCRYPTION {
            return RsaPublicKey::from_public_key_der(&der)
                .ok()
                .map(PublicKey::Rsa);
        }
        if spki.algorithm.oid == EC_PUBLIC_KEY {
            let curve = spki.algorithm.parameters_oid().ok()?;
            if curve == SECP256R1 {
                return p256::PublicKey::from_public_key_der(&der)
                    .ok()
                    .map(PublicKey::P256);
            }
            if curve == SECP384R1 {
                return p384::PublicKey::from_public_key_der(&der)
                    .ok()
                    .map(PublicKey::P384);
            }
        }
        None
    }

    /// `CKA_KEY_TYPE`.
    pub fn key_type(&self) -> cryptoki_sys::CK_KEY_TYPE {
        match self {
            PublicKey::Rsa(_) => cryptoki_sys::CKK_RSA,
            PublicKey::P256(_) | PublicKey::P384(_) => cryptoki_sys::CKK_EC,
        }
    }

    pub fn curve(&self) -> Option<Curve> {
        match self {
            PublicKey::Rsa(_) => None,
            PublicKey::P256(_) => Some(Curve::P256),
            PublicKey::P384(_) => Some(Curve::P384),
        }
    }

    /// The `SubjectPublicKeyInfo` DER (`CKA_PUBLIC_KEY_INFO`).
    pub fn spki_der(&self) -> Vec<u8> {
        use spki::EncodePublicKey;
        let doc = match self {
            PublicKey::Rsa(k) => k.to_public_key_der(),
            PublicKey::P256(k) => k.to_public_key_der(),
            PublicKey::P384(k) => k.to_public_key_der(),
        };
        doc.map(|d| d.as_bytes().to_vec()).unwrap_or_default()
    }

    /// SHA-1 of the subjectPublicKey bits: the conventional `CKA_ID` when the file has no
    /// localKeyId (what OpenSC and NSS compute too).
    pub fn id(&self) -> Vec<u8> {
        let spki_der = self.spki_der();
        let bits = spki::SubjectPublicKeyInfoRef::from_der(&spki_der)
            .map(|s| s.subject_public_key.raw_bytes().to_vec())
            .unwrap_or_default();
        sha1::Sha1::digest(bits).to_vec()
    }

    /// `CKA_MODULUS` (big-endian, no leading zeros).
    pub fn modulus(&self) -> Option<Vec<u8>> {
        match self {
            PublicKey::Rsa(k) => Some(k.n().to_bytes_be()),
            _ => None,
        }
    }

    pub fn public_exponent(&self) -> Option<Vec<u8>> {
        match self {
            PublicKey::Rsa(k) => Some(k.e().to_bytes_be()),
            _ => None,
        }
    }

    /// Modulus length in bits (RSA) or field size in bits (EC).
    pub fn bits(&self) -> usize {
        match self {
            PublicKey::Rsa(k) => k.n().bits(),
            PublicKey::P256(_) => 256,
            PublicKey::P384(_) => 384,
        }
    }

    /// The uncompressed SEC1 point.
    pub fn ec_point_raw(&self) -> Option<Vec<u8>> {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        match self {
            PublicKey::Rsa(_) => None,
            PublicKey::P256(k) => Some(k.to_encoded_point(false).as_bytes().to_vec()),
            PublicKey::P384(k) => Some(k.to_encoded_point(false).as_bytes().to_vec()),
        }
    }

    /// `CKA_EC_POINT`: the point as a DER OCTET STRING (PKCS#11 v2.40 §2.3.3).
    pub fn ec_point(&self) -> Option<Vec<u8>> {
        let raw = self.ec_point_raw()?;
        der::asn1::OctetString::new(raw).ok()?.to_der().ok()
    }
}

/// A private key held in memory after login.
#[derive(Debug)]
pub enum PrivateKey {
    Rsa(Box<RsaPrivateKey>),
    P256(p256::SecretKey),
    P384(p384::SecretKey),
}

impl PrivateKey {
    /// Reads a PKCS#8 `PrivateKeyInfo`; `Ok(None)` for algorithms this module does not support.
    pub fn from_pkcs8(der: &[u8]) -> Result<Option<Self>> {
        let info = pkcs8::PrivateKeyInfo::from_der(der).map_err(|_| Error::DeviceError)?;
        if info.algorithm.oid == RSA_ENCRYPTION {
            return RsaPrivateKey::from_pkcs8_der(der)
                .map(|k| Some(PrivateKey::Rsa(Box::new(k))))
                .map_err(|_| Error::DeviceError);
        }
        if info.algorithm.oid == EC_PUBLIC_KEY {
            let curve = info.algorithm.parameters_oid().ok();
            if curve == Some(SECP256R1) {
                return p256::SecretKey::from_pkcs8_der(der)
                    .map(|k| Some(PrivateKey::P256(k)))
                    .map_err(|_| Error::DeviceError);
            }
            if curve == Some(SECP384R1) {
                return p384::SecretKey::from_pkcs8_der(der)
                    .map(|k| Some(PrivateKey::P384(k)))
                    .map_err(|_| Error::DeviceError);
            }
        }
        Ok(None)
    }

    /// A new RSA key (`CKM_RSA_PKCS_KEY_PAIR_GEN`) with exponent 65537.
    pub fn generate_rsa(bits: usize) -> Result<Self> {
        RsaPrivateKey::new(&mut OsRng, bits)
            .map(|k| PrivateKey::Rsa(Box::new(k)))
            .map_err(|_| Error::FunctionFailed)
    }

    /// A new EC key (`CKM_EC_KEY_PAIR_GEN`).
    pub fn generate_ec(curve: Curve) -> Self {
        match curve {
            Curve::P256 => PrivateKey::P256(p256::SecretKey::random(&mut OsRng)),
            Curve::P384 => PrivateKey::P384(p384::SecretKey::random(&mut OsRng)),
        }
    }

    /// PKCS#8 `PrivateKeyInfo` DER (for writing the key file), wiped on drop.
    pub fn to_pkcs8(&self) -> Result<Zeroizing<Vec<u8>>> {
        use pkcs8::EncodePrivateKey;
        let doc = match self {
            PrivateKey::Rsa(k) => k.to_pkcs8_der(),
            PrivateKey::P256(k) => k.to_pkcs8_der(),
            PrivateKey::P384(k) => k.to_pkcs8_der(),
        }
        .map_err(|_| Error::GeneralError)?;
        Ok(Zeroizing::new(doc.as_bytes().to_vec()))
    }

    pub fn public(&self) -> PublicKey {
        match self {
            PrivateKey::Rsa(k) => PublicKey::Rsa(k.to_public_key()),
            PrivateKey::P256(k) => PublicKey::P256(k.public_key()),
            PrivateKey::P384(k) => PublicKey::P384(k.public_key()),
        }
    }

    fn rsa(&self) -> Result<&RsaPrivateKey> {
        match self {
            PrivateKey::Rsa(k) => Ok(k),
            _ => Err(Error::KeyTypeInconsistent),
        }
    }

    /// Length of a signature made with `mech`, known before signing (for the size query).
    pub fn signature_len(&self, mech: &SignMechanism) -> Result<usize> {
        match (self, mech.is_ecdsa()) {
            (PrivateKey::Rsa(k), false) => Ok(k.size()),
            (PrivateKey::P256(_), true) => Ok(64),
            (PrivateKey::P384(_), true) => Ok(96),
            _ => Err(Error::KeyTypeInconsistent),
        }
    }

    /// Upper bound of a plaintext length (the modulus length).
    pub fn decrypt_len(&self) -> Result<usize> {
        Ok(self.rsa()?.size())
    }

    /// Signs `input`: for raw mechanisms the caller's DigestInfo / hash, for hash-and-sign
    /// mechanisms the digest already computed by the session.
    pub fn sign(&self, mech: &SignMechanism, input: &[u8]) -> Result<Vec<u8>> {
        match mech {
            SignMechanism::RsaPkcs => {
                let k = self.rsa()?;
                if input.len() + 11 > k.size() {
                    return Err(Error::DataLenRange);
                }
                k.sign_with_rng(&mut OsRng, Pkcs1v15Sign::new_unprefixed(), input)
                    .map_err(|_| Error::FunctionFailed)
            }
            SignMechanism::RsaX509 => self.rsa_raw(input, Error::DataLenRange),
            SignMechanism::HashRsaPkcs(h) => {
                let k = self.rsa()?;
                k.sign_with_rng(&mut OsRng, h.pkcs1v15(), input)
                    .map_err(|_| Error::FunctionFailed)
            }
            SignMechanism::RsaPss(p) | SignMechanism::HashRsaPss(p) => {
                let k = self.rsa()?;
                if input.len() != p.hash.output_len() {
                    return Err(Error::DataLenRange);
                }
                // rsa's PSS uses one digest for the hash and MGF1; the parameters were checked
                // to agree when the mechanism was parsed.
                let scheme: Pss = p.hash.pss(p.salt_len);
                k.sign_with_rng(&mut OsRng, scheme, input)
                    .map_err(|_| Error::FunctionFailed)
            }
            SignMechanism::Ecdsa | SignMechanism::HashEcdsa(_) => self.ecdsa(input),
        }
    }

    fn ecdsa(&self, hash: &[u8]) -> Result<Vec<u8>> {
        use ecdsa::signature::hazmat::PrehashSigner;
        if hash.is_empty() {
            return Err(Error::DataLenRange);
        }
        let field: usize = match self {
            PrivateKey::P256(_) => 32,
            PrivateKey::P384(_) => 48,
            PrivateKey::Rsa(_) => return Err(Error::KeyTypeInconsistent),
        };
        // Shorter inputs are integers with leading zero bits (ANSI X9.62 bits2int); pad so the
        // prehash length rule of the ecdsa crate holds. Longer inputs are truncated by it.
        let mut prehash = Zeroizing::new(vec![0u8; field.saturating_sub(hash.len())]);
        prehash.extend_from_slice(hash);
        match self {
            PrivateKey::P256(k) => {
                let sk = p256::ecdsa::SigningKey::from(k);
                let sig: p256::ecdsa::Signature = sk
                    .sign_prehash(&prehash)
                    .map_err(|_| Error::FunctionFailed)?;
                Ok(sig.to_bytes().to_vec())
            }
            PrivateKey::P384(k) => {
                let sk = p384::ecdsa::SigningKey::from(k);
                let sig: p384::ecdsa::Signature = sk
                    .sign_prehash(&prehash)
                    .map_err(|_| Error::FunctionFailed)?;
                Ok(sig.to_bytes().to_vec())
            }
            PrivateKey::Rsa(_) => Err(Error::KeyTypeInconsistent),
        }
    }

    /// Raw RSA private operation, left-padded to the modulus length (`CKM_RSA_X_509`).
    fn rsa_raw(&self, input: &[u8], len_error: Error) -> Result<Vec<u8>> {
        let k = self.rsa()?;
        if input.len() > k.size() {
            return Err(len_error);
        }
        let c = BigUint::from_bytes_be(input);
        if &c >= k.n() {
            return Err(len_error);
        }
        let m = rsa::hazmat::rsa_decrypt_and_check(k, Some(&mut OsRng), &c)
            .map_err(|_| Error::FunctionFailed)?;
        let bytes = Zeroizing::new(m.to_bytes_be());
        let mut out = vec![0u8; k.size() - bytes.len()];
        out.extend_from_slice(&bytes);
        Ok(out)
    }

    /// Decrypts `ct` with `mech`.
    pub fn decrypt(&self, mech: &DecryptMechanism, ct: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let k = self.rsa()?;
        if ct.len() != k.size() {
            return Err(Error::EncryptedDataLenRange);
        }
        let out = match mech {
            DecryptMechanism::RsaPkcs => k.decrypt(Pkcs1v15Encrypt, ct),
            DecryptMechanism::RsaOaep { hash, mgf, label } => {
                let label = match label {
                    None => None,
                    Some(l) => Some(
                        String::from_utf8(l.clone()).map_err(|_| Error::MechanismParamInvalid)?,
                    ),
                };
                let scheme = Oaep {
                    digest: hash.dyn_digest(),
                    mgf_digest: mgf.dyn_digest(),
                    label,
                };
                k.decrypt(scheme, ct)
            }
            DecryptMechanism::RsaX509 => {
                return self
                    .rsa_raw(ct, Error::EncryptedDataLenRange)
                    .map(Zeroizing::new);
            }
        };
        out.map(Zeroizing::new)
            .map_err(|_| Error::EncryptedDataInvalid)
    }

    /// ECDH (PKCS#11 v2.40 §2.3.16 with CKD_NULL): the x-coordinate of the shared point.
    /// `peer` is the uncompressed point, raw or wrapped in a DER OCTET STRING.
    pub fn ecdh(&self, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let field = match self {
            PrivateKey::P256(_) => 32,
            PrivateKey::P384(_) => 48,
            PrivateKey::Rsa(_) => return Err(Error::KeyTypeInconsistent),
        };
        let raw: Vec<u8> = if peer.len() == 2 * field + 1 && peer.first() == Some(&4) {
            peer.to_vec()
        } else {
            der::asn1::OctetString::from_der(peer)
                .map_err(|_| Error::MechanismParamInvalid)?
                .into_bytes()
        };
        match self {
            PrivateKey::P256(k) => {
                let pk = p256::PublicKey::from_sec1_bytes(&raw)
                    .map_err(|_| Error::MechanismParamInvalid)?;
                let shared = p256::ecdh::diffie_hellman(k.to_nonzero_scalar(), pk.as_affine());
                Ok(Zeroizing::new(shared.raw_secret_bytes().to_vec()))
            }
            PrivateKey::P384(k) => {
                let pk = p384::PublicKey::from_sec1_bytes(&raw)
                    .map_err(|_| Error::MechanismParamInvalid)?;
                let shared = p384::ecdh::diffie_hellman(k.to_nonzero_scalar(), pk.as_affine());
                Ok(Zeroizing::new(shared.raw_secret_bytes().to_vec()))
            }
            PrivateKey::Rsa(_) => Err(Error::KeyTypeInconsistent),
        }
    }
}

impl HashAlg {
    fn pkcs1v15(self) -> Pkcs1v15Sign {
        match self {
            HashAlg::Sha1 => Pkcs1v15Sign::new::<sha1::Sha1>(),
            HashAlg::Sha224 => Pkcs1v15Sign::new::<sha2::Sha224>(),
            HashAlg::Sha256 => Pkcs1v15Sign::new::<sha2::Sha256>(),
            HashAlg::Sha384 => Pkcs1v15Sign::new::<sha2::Sha384>(),
            HashAlg::Sha512 => Pkcs1v15Sign::new::<sha2::Sha512>(),
        }
    }

    fn pss(self, salt: usize) -> Pss {
        match self {
            HashAlg::Sha1 => Pss::new_with_salt::<sha1::Sha1>(salt),
            HashAlg::Sha224 => Pss::new_with_salt::<sha2::Sha224>(salt),
            HashAlg::Sha256 => Pss::new_with_salt::<sha2::Sha256>(salt),
            HashAlg::Sha384 => Pss::new_with_salt::<sha2::Sha384>(salt),
            HashAlg::Sha512 => Pss::new_with_salt::<sha2::Sha512>(salt),
        }
    }

    fn dyn_digest(self) -> Box<dyn rsa::sha2::digest::DynDigest + Send + Sync> {
        match self {
            HashAlg::Sha1 => Box::new(sha1::Sha1::new()),
            HashAlg::Sha224 => Box::new(sha2::Sha224::new()),
            HashAlg::Sha256 => Box::new(sha2::Sha256::new()),
            HashAlg::Sha384 => Box::new(sha2::Sha384::new()),
            HashAlg::Sha512 => Box::new(sha2::Sha512::new()),
        }
    }
}
