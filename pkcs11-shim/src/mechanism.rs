//! The mechanisms the module offers (PKCS#11 v2.40 Current Mechanisms §2.1 RSA, §2.3 EC), their
//! parsed parameters, and `C_GetMechanismList` / `C_GetMechanismInfo` data.

use crate::error::{Error, Result};
use cryptoki_sys::*;
use sha1::Digest;

/// Hash functions used by the hash-and-sign mechanisms and in PSS / OAEP parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    /// From a `CKM_SHA*` digest mechanism (as used in `hashAlg` fields).
    pub fn from_ckm(ckm: CK_MECHANISM_TYPE) -> Result<Self> {
        match ckm {
            CKM_SHA_1 => Ok(HashAlg::Sha1),
            CKM_SHA224 => Ok(HashAlg::Sha224),
            CKM_SHA256 => Ok(HashAlg::Sha256),
            CKM_SHA384 => Ok(HashAlg::Sha384),
            CKM_SHA512 => Ok(HashAlg::Sha512),
            _ => Err(Error::MechanismParamInvalid),
        }
    }

    /// From a `CKG_MGF1_SHA*` mask generation function.
    pub fn from_mgf(mgf: CK_RSA_PKCS_MGF_TYPE) -> Result<Self> {
        match mgf {
            CKG_MGF1_SHA1 => Ok(HashAlg::Sha1),
            CKG_MGF1_SHA224 => Ok(HashAlg::Sha224),
            CKG_MGF1_SHA256 => Ok(HashAlg::Sha256),
            CKG_MGF1_SHA384 => Ok(HashAlg::Sha384),
            CKG_MGF1_SHA512 => Ok(HashAlg::Sha512),
            _ => Err(Error::MechanismParamInvalid),
        }
    }

    /// Output length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            HashAlg::Sha1 => 20,
            HashAlg::Sha224 => 28,
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }

    pub fn hasher(self) -> Hasher {
        match self {
            HashAlg::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            HashAlg::Sha224 => Hasher::Sha224(sha2::Sha224::new()),
            HashAlg::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            HashAlg::Sha384 => Hasher::Sha384(sha2::Sha384::new()),
            HashAlg::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }
}

/// An incremental hash for `C_SignUpdate` with the hash-and-sign mechanisms.
#[derive(Debug, Clone)]
pub enum Hasher {
    Sha1(sha1::Sha1),
    Sha224(sha2::Sha224),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha224(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha384(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }
    pub fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha224(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha384(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

/// `CK_RSA_PKCS_PSS_PARAMS`, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PssParams {
    pub hash: HashAlg,
    pub salt_len: usize,
}

/// A signing mechanism with its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignMechanism {
    /// `CKM_RSA_PKCS`: PKCS#1 v1.5 padding over the caller's DigestInfo.
    RsaPkcs,
    /// `CKM_RSA_X_509`: raw RSA.
    RsaX509,
    /// `CKM_RSA_PKCS_PSS`: the caller supplies the hash.
    RsaPss(PssParams),
    /// `CKM_SHA*_RSA_PKCS`.
    HashRsaPkcs(HashAlg),
    /// `CKM_SHA*_RSA_PKCS_PSS`.
    HashRsaPss(PssParams),
    /// `CKM_ECDSA`: the caller supplies the hash; output is r‖s.
    Ecdsa,
    /// `CKM_ECDSA_SHA*`.
    HashEcdsa(HashAlg),
}

impl SignMechanism {
    pub fn is_ecdsa(&self) -> bool {
        matches!(self, SignMechanism::Ecdsa | SignMechanism::HashEcdsa(_))
    }
    /// The hash the module computes itself, for the hash-and-sign mechanisms.
    pub fn hash(&self) -> Option<HashAlg> {
        match self {
            SignMechanism::HashRsaPkcs(h) | SignMechanism::HashEcdsa(h) => Some(*h),
            SignMechanism::HashRsaPss(p) => Some(p.hash),
            _ => None,
        }
    }
}

/// A decryption mechanism with its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecryptMechanism {
    RsaPkcs,
    RsaX509,
    RsaOaep {
        hash: HashAlg,
        mgf: HashAlg,
        label: Option<Vec<u8>>,
    },
}

/// `CK_ECDH1_DERIVE_PARAMS` with `kdf = CKD_NULL` (the only KDF offered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ecdh1Params {
    pub public_data: Vec<u8>,
}

/// A mechanism as parsed from a `CK_MECHANISM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mechanism {
    Sign(SignMechanism),
    /// RSA mechanisms that both sign and decrypt (`CKM_RSA_PKCS`, `CKM_RSA_X_509`).
    SignOrDecrypt(SignMechanism, DecryptMechanism),
    Decrypt(DecryptMechanism),
    Ecdh1Derive(Ecdh1Params),
}

impl Mechanism {
    pub fn for_signing(self) -> Result<SignMechanism> {
        match self {
            Mechanism::Sign(m) | Mechanism::SignOrDecrypt(m, _) => Ok(m),
            _ => Err(Error::MechanismInvalid),
        }
    }
    pub fn for_decryption(self) -> Result<DecryptMechanism> {
        match self {
            Mechanism::Decrypt(m) | Mechanism::SignOrDecrypt(_, m) => Ok(m),
            _ => Err(Error::MechanismInvalid),
        }
    }
}

/// Checks PSS parameters against the mechanism's own hash (PKCS#11 v2.40 §2.1.13–14).
pub fn pss_params(
    mech_hash: Option<HashAlg>,
    hash_alg: CK_MECHANISM_TYPE,
    mgf: CK_RSA_PKCS_MGF_TYPE,
    salt_len: CK_ULONG,
) -> Result<PssParams> {
    let hash = HashAlg::from_ckm(hash_alg)?;
    let mgf = HashAlg::from_mgf(mgf)?;
    if mgf != hash || mech_hash.is_some_and(|h| h != hash) {
        return Err(Error::MechanismParamInvalid);
    }
    let salt_len = usize::try_from(salt_len).map_err(|_| Error::MechanismParamInvalid)?;
    if salt_len > 1024 {
        return Err(Error::MechanismParamInvalid);
    }
    Ok(PssParams { hash, salt_len })
}

/// Parses a parameterless mechanism; PSS, OAEP and ECDH are parsed by the FFI layer, which
/// reads their C structures and calls [`pss_params`] / builds the variants directly.
pub fn simple(ckm: CK_MECHANISM_TYPE) -> Result<Mechanism> {
    use SignMechanism as S;
    Ok(match ckm {
        CKM_RSA_PKCS => Mechanism::SignOrDecrypt(S::RsaPkcs, DecryptMechanism::RsaPkcs),
        CKM_RSA_X_509 => Mechanism::SignOrDecrypt(S::RsaX509, DecryptMechanism::RsaX509),
        CKM_SHA256_RSA_PKCS => Mechanism::Sign(S::HashRsaPkcs(HashAlg::Sha256)),
        CKM_SHA384_RSA_PKCS => Mechanism::Sign(S::HashRsaPkcs(HashAlg::Sha384)),
        CKM_SHA512_RSA_PKCS => Mechanism::Sign(S::HashRsaPkcs(HashAlg::Sha512)),
        CKM_ECDSA => Mechanism::Sign(S::Ecdsa),
        CKM_ECDSA_SHA256 => Mechanism::Sign(S::HashEcdsa(HashAlg::Sha256)),
        CKM_ECDSA_SHA384 => Mechanism::Sign(S::HashEcdsa(HashAlg::Sha384)),
        CKM_RSA_PKCS_PSS
        | CKM_SHA256_RSA_PKCS_PSS
        | CKM_SHA384_RSA_PKCS_PSS
        | CKM_SHA512_RSA_PKCS_PSS
        | CKM_RSA_PKCS_OAEP
        | CKM_ECDH1_DERIVE => {
            return Err(Error::MechanismParamInvalid);
        }
        _ => return Err(Error::MechanismInvalid),
    })
}

/// The hash fixed by a `CKM_SHA*_RSA_PKCS_PSS` mechanism (`None` for plain `CKM_RSA_PKCS_PSS`).
pub fn pss_mechanism_hash(ckm: CK_MECHANISM_TYPE) -> Option<HashAlg> {
    match ckm {
        CKM_SHA256_RSA_PKCS_PSS => Some(HashAlg::Sha256),
        CKM_SHA384_RSA_PKCS_PSS => Some(HashAlg::Sha384),
        CKM_SHA512_RSA_PKCS_PSS => Some(HashAlg::Sha512),
        _ => None,
    }
}

/// `C_GetMechanismInfo` data: key size range (bits) and flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MechanismInfo {
    pub min_key_bits: CK_ULONG,
    pub max_key_bits: CK_ULONG,
    pub flags: CK_FLAGS,
}

const RSA_MIN: CK_ULONG = 1024;
const RSA_MAX: CK_ULONG = 8192;
const EC_FLAGS: CK_FLAGS = CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS;

/// Every mechanism offered, in `C_GetMechanismList` order.
pub const MECHANISMS: &[(CK_MECHANISM_TYPE, MechanismInfo)] = &[
    (
        CKM_RSA_PKCS,
        info(RSA_MIN, RSA_MAX, CKF_HW | CKF_SIGN | CKF_DECRYPT),
    ),
    (
        CKM_RSA_X_509,
        info(RSA_MIN, RSA_MAX, CKF_HW | CKF_SIGN | CKF_DECRYPT),
    ),
    (CKM_RSA_PKCS_PSS, info(RSA_MIN, RSA_MAX, CKF_HW | CKF_SIGN)),
    (
        CKM_RSA_PKCS_OAEP,
        info(RSA_MIN, RSA_MAX, CKF_HW | CKF_DECRYPT),
    ),
    (
        CKM_SHA256_RSA_PKCS,
        info(RSA_MIN, RSA_MAX, CKF_HW | CKF_SIGN),
    ),
    (
        CKM_SHA384_RSA_PKCS,
        info(RSA_MIN, RSA_MAX, CKF_HW | CKF_SIGN),
    ),
    (
        CKM_SHA512_RSA_PKCS,
        info(RSA_MIN, RSA_MAX, CKF_HW | CKF_SIGN),
    ),
    (
        CKM_SHA256_RSA_PKCS_PSS,
        info(RSA_MIN, RSA_MAX, CKF_HW | CKF_SIGN),
    ),
    (
        CKM_SHA384_RSA_PKCS_PSS,
        info(RSA_MIN, RSA_MAX, CKF_HW | CKF_SIGN),
    ),
    (
        CKM_SHA512_RSA_PKCS_PSS,
        info(RSA_MIN, RSA_MAX, CKF_HW | CKF_SIGN),
    ),
    (CKM_ECDSA, info(256, 384, CKF_HW | CKF_SIGN | EC_FLAGS)),
    (
        CKM_ECDSA_SHA256,
        info(256, 384, CKF_HW | CKF_SIGN | EC_FLAGS),
    ),
    (
        CKM_ECDSA_SHA384,
        info(256, 384, CKF_HW | CKF_SIGN | EC_FLAGS),
    ),
    (
        CKM_ECDH1_DERIVE,
        info(256, 384, CKF_HW | CKF_DERIVE | EC_FLAGS),
    ),
    // Enrolment (module::enrol): keys are generated into the key file.
    (
        CKM_RSA_PKCS_KEY_PAIR_GEN,
        info(2048, 4096, CKF_HW | CKF_GENERATE_KEY_PAIR),
    ),
    (
        CKM_EC_KEY_PAIR_GEN,
        info(256, 384, CKF_HW | CKF_GENERATE_KEY_PAIR | EC_FLAGS),
    ),
];

const fn info(min_key_bits: CK_ULONG, max_key_bits: CK_ULONG, flags: CK_FLAGS) -> MechanismInfo {
    MechanismInfo {
        min_key_bits,
        max_key_bits,
        flags,
    }
}

/// `C_GetMechanismInfo` for one mechanism.
pub fn mechanism_info(ckm: CK_MECHANISM_TYPE) -> Result<MechanismInfo> {
    MECHANISMS
        .iter()
        .find(|(m, _)| *m == ckm)
        .map(|(_, i)| *i)
        .ok_or(Error::MechanismInvalid)
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn mechanism_info_of_unlisted_mechanism_is_invalid() {
        assert_eq!(mechanism_info(CKM_MD5), Err(Error::MechanismInvalid));
        assert!(mechanism_info(CKM_ECDSA).is_ok_and(|i| i.flags & CKF_SIGN != 0));
    }

    #[test]
    fn pss_params_with_mismatched_mgf_are_rejected() {
        assert_eq!(
            pss_params(None, CKM_SHA256, CKG_MGF1_SHA1, 32),
            Err(Error::MechanismParamInvalid)
        );
        assert_eq!(
            pss_params(Some(HashAlg::Sha384), CKM_SHA256, CKG_MGF1_SHA256, 32),
            Err(Error::MechanismParamInvalid)
        );
        assert_eq!(
            pss_params(None, CKM_SHA256, CKG_MGF1_SHA256, 32),
            Ok(PssParams {
                hash: HashAlg::Sha256,
                salt_len: 32
            })
        );
    }

    #[test]
    fn parameterised_mechanisms_without_parameters_are_param_invalid() {
        assert_eq!(simple(CKM_RSA_PKCS_PSS), Err(Error::MechanismParamInvalid));
        assert_eq!(simple(CKM_AES_CBC), Err(Error::MechanismInvalid));
    }
}
