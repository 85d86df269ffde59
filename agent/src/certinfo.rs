//! What Segel needs to know about an X.509 certificate: names, validity, key and usage.

use std::time::SystemTime;

use const_oid::ObjectIdentifier;
use const_oid::db::rfc5912::{
    ID_EC_PUBLIC_KEY, RSA_ENCRYPTION, SECP_256_R_1, SECP_384_R_1, SECP_521_R_1,
};
use der::{Decode, DecodePem, Encode};
use serde::Serialize;
use sha2::{Digest, Sha256};
use x509_cert::Certificate;
use x509_cert::ext::pkix::KeyUsage;

/// What a key may be used for, as listed by `segel certs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Usage {
    Sign,
    Decrypt,
}

/// Kind of public key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "key_type", rename_all = "lowercase")]
pub enum PublicKey {
    Rsa {
        #[serde(skip)]
        modulus: Vec<u8>,
        #[serde(rename = "key_bits")]
        bits: usize,
    },
    Ec {
        curve: String,
        #[serde(rename = "key_bits")]
        bits: usize,
        /// Uncompressed SEC1 point.
        #[serde(skip)]
        point: Vec<u8>,
    },
    Other {
        #[serde(rename = "algorithm")]
        oid: String,
    },
}

impl PublicKey {
    pub fn type_name(&self) -> &'static str {
        match self {
            PublicKey::Rsa { .. } => "rsa",
            PublicKey::Ec { .. } => "ec",
            PublicKey::Other { .. } => "other",
        }
    }

    pub fn bits(&self) -> Option<usize> {
        match self {
            PublicKey::Rsa { bits, .. } | PublicKey::Ec { bits, .. } => Some(*bits),
            PublicKey::Other { .. } => None,
        }
    }
}

/// A parsed certificate with the fields Segel shows and checks.
#[derive(Clone, Debug)]
pub struct CertInfo {
    pub der: Vec<u8>,
    pub fingerprint_sha256: String,
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    pub public_key: PublicKey,
    /// Key usage bits allow signing (digitalSignature or nonRepudiation).
    pub can_sign: bool,
    /// Key usage bits allow encryption to this key (keyEncipherment, dataEncipherment, keyAgreement).
    pub can_decrypt: bool,
}

/// Why a certificate could not be read.
#[derive(Debug, thiserror::Error)]
#[error("not a valid X.509 certificate: {0}")]
pub struct CertParseError(String);

/// Lowercase hex SHA-256 of DER bytes.
pub fn sha256_hex(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// Normalise a fingerprint as users type it: colons and spaces dropped, lowercase.
pub fn normalise_fingerprint(text: &str) -> String {
    text.chars()
        .filter(|c| !matches!(c, ':' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

/// RFC 3339 text for a time.
pub fn rfc3339(t: SystemTime) -> String {
    let odt = time::OffsetDateTime::from(t);
    odt.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| format!("{odt}"))
}

/// Big-endian integer bytes without leading zeros (tokens differ in how they pad moduli).
pub(crate) fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

fn curve_name(oid: ObjectIdentifier) -> Option<(&'static str, usize)> {
    match oid {
        SECP_256_R_1 => Some(("P-256", 256)),
        SECP_384_R_1 => Some(("P-384", 384)),
        SECP_521_R_1 => Some(("P-521", 521)),
        _ => None,
    }
}

/// The DER of a named-curve OID as found in CKA_EC_PARAMS.
pub fn curve_from_ec_params(params: &[u8]) -> Option<(&'static str, usize)> {
    ObjectIdentifier::from_der(params).ok().and_then(curve_name)
}

fn parse_public_key(spki: &spki::SubjectPublicKeyInfoOwned) -> PublicKey {
    let alg = spki.algorithm.oid;
    let key_bytes = spki.subject_public_key.raw_bytes();
    if alg == RSA_ENCRYPTION {
        if let Ok(rsa) = pkcs1::RsaPublicKey::from_der(key_bytes) {
            let modulus = strip_leading_zeros(rsa.modulus.as_bytes()).to_vec();
            let bits =
                modulus.len() * 8 - modulus.first().map_or(8, |b| b.leading_zeros() as usize);
            return PublicKey::Rsa { modulus, bits };
        }
    } else if alg == ID_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
            .and_then(curve_name);
        if let Some((name, bits)) = curve {
            return PublicKey::Ec {
                curve: name.to_owned(),
                bits,
                point: key_bytes.to_vec(),
            };
        }
    }
    PublicKey::Other {
        oid: alg.to_string(),
    }
}

impl CertInfo {
    /// Parse a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, CertParseError> {
        let cert = Certificate::from_der(der).map_err(|e| CertParseError(e.to_string()))?;
        let tbs = &cert.tbs_certificate;
        let mut can_sign = true;
        let mut can_decrypt = true;
        for ext in tbs.extensions.iter().flatten() {
            if ext.extn_id == const_oid::db::rfc5280::ID_CE_KEY_USAGE {
                let ku = KeyUsage::from_der(ext.extn_value.as_bytes())
                    .map_err(|e| CertParseError(format!("keyUsage: {e}")))?;
                can_sign = ku.digital_signature() || ku.non_repudiation();
                can_decrypt = ku.key_encipherment() || ku.data_encipherment() || ku.key_agreement();
            }
        }
        Ok(CertInfo {
            der: der.to_vec(),
            fingerprint_sha256: sha256_hex(der),
            subject: tbs.subject.to_string(),
            issuer: tbs.issuer.to_string(),
            serial: hex::encode(tbs.serial_number.as_bytes()),
            not_before: tbs.validity.not_before.to_system_time(),
            not_after: tbs.validity.not_after.to_system_time(),
            public_key: parse_public_key(&tbs.subject_public_key_info),
            can_sign,
            can_decrypt,
        })
    }

    /// Check that `now` lies within the validity period.
    pub fn check_validity(&self, now: SystemTime) -> Result<(), String> {
        if now < self.not_before {
            return Err(format!("not valid before {}", rfc3339(self.not_before)));
        }
        if now > self.not_after {
            return Err(format!("expired on {}", rfc3339(self.not_after)));
        }
        Ok(())
    }

    /// Whole days until expiry (negative once expired).
    pub fn days_left(&self, now: SystemTime) -> i64 {
        match self.not_after.duration_since(now) {
            Ok(d) => (d.as_secs() / 86_400) as i64,
            Err(e) => -(e.duration().as_secs().div_ceil(86_400) as i64),
        }
    }

    /// DER re-encoding check helper used by tests and callers holding PEM.
    pub fn from_pem(pem: &str) -> Result<Self, CertParseError> {
        let cert =
            Certificate::from_pem(pem.as_bytes()).map_err(|e| CertParseError(e.to_string()))?;
        let der = cert.to_der().map_err(|e| CertParseError(e.to_string()))?;
        Self::from_der(&der)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_normalisation_drops_colons_and_case() {
        assert_eq!(normalise_fingerprint("AB:cd:0F"), "abcd0f");
    }

    #[test]
    fn garbage_is_a_parse_error_not_a_panic() {
        assert!(CertInfo::from_der(&[0x30, 0x03, 0x02, 0x01]).is_err());
        assert!(CertInfo::from_der(&[]).is_err());
    }
}
