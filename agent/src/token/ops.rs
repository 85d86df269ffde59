//! Cryptographic operations on a logged-in session: signing and decryption.
//!
//! Signing builds what the token's bare mechanisms need in software (DigestInfo for
//! CKM_RSA_PKCS, PSS parameters, DER for ECDSA), PKCS#11 v2.40 §2.1.6/§2.1.14/§2.3.6.
//! Decryption prefers raw RSA (CKM_RSA_X_509) and unpads in constant time in software,
//! so the token's own padding check can never serve as an oracle; it falls back to the
//! token's mechanism only where raw RSA is refused.

use cryptoki::mechanism::elliptic_curve::{EcKdf, Ecdh1DeriveParams};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use zeroize::Zeroizing;

use super::error::{TokenError, is_connection_lost, is_refusal};
use super::unpad::{
    ImplicitRejectionKey, OaepHash, oaep_unpad, pkcs1v15_unpad_fixed, pkcs1v15_unpad_implicit,
};

/// Hash algorithms for signatures (also the CMS digest algorithm, `cms::DigestAlgorithm`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum HashAlg {
    #[default]
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    pub fn output_len(self) -> usize {
        match self {
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            HashAlg::Sha256 => "sha256",
            HashAlg::Sha384 => "sha384",
            HashAlg::Sha512 => "sha512",
        }
    }

    /// Hash data in software.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        match self {
            HashAlg::Sha256 => sha2::Sha256::digest(data).to_vec(),
            HashAlg::Sha384 => sha2::Sha384::digest(data).to_vec(),
            HashAlg::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }

    /// DER prefix of DigestInfo for this hash (RFC 8017 §9.2, note 1).
    fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            HashAlg::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ],
            HashAlg::Sha384 => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x02, 0x05, 0x00, 0x04, 0x30,
            ],
            HashAlg::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x03, 0x05, 0x00, 0x04, 0x40,
            ],
        }
    }

    fn mechanism(self) -> MechanismType {
        match self {
            HashAlg::Sha256 => MechanismType::SHA256,
            HashAlg::Sha384 => MechanismType::SHA384,
            HashAlg::Sha512 => MechanismType::SHA512,
        }
    }

    fn mgf1(self) -> PkcsMgfType {
        match self {
            HashAlg::Sha256 => PkcsMgfType::MGF1_SHA256,
            HashAlg::Sha384 => PkcsMgfType::MGF1_SHA384,
            HashAlg::Sha512 => PkcsMgfType::MGF1_SHA512,
        }
    }
}

/// Signature scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignScheme {
    /// RSASSA-PKCS1-v1_5.
    RsaPkcs1,
    /// RSASSA-PSS with MGF1 of the same hash and a salt as long as the hash.
    RsaPss,
    /// ECDSA; the signature is DER `SEQUENCE { r, s }` (RFC 3279 §2.2.3).
    Ecdsa,
}

/// The bare (hash-less) mechanism a scheme needs, to check the token's list.
pub(crate) fn bare_mechanism(scheme: SignScheme) -> MechanismType {
    match scheme {
        SignScheme::RsaPkcs1 => MechanismType::RSA_PKCS,
        SignScheme::RsaPss => MechanismType::RSA_PKCS_PSS,
        SignScheme::Ecdsa => MechanismType::ECDSA,
    }
}

/// The combined hash-and-sign mechanism type for a scheme and hash.
pub(crate) fn combined_mechanism(scheme: SignScheme, hash: HashAlg) -> MechanismType {
    match (scheme, hash) {
        (SignScheme::RsaPkcs1, HashAlg::Sha256) => MechanismType::SHA256_RSA_PKCS,
        (SignScheme::RsaPkcs1, HashAlg::Sha384) => MechanismType::SHA384_RSA_PKCS,
        (SignScheme::RsaPkcs1, HashAlg::Sha512) => MechanismType::SHA512_RSA_PKCS,
        (SignScheme::RsaPss, HashAlg::Sha256) => MechanismType::SHA256_RSA_PKCS_PSS,
        (SignScheme::RsaPss, HashAlg::Sha384) => MechanismType::SHA384_RSA_PKCS_PSS,
        (SignScheme::RsaPss, HashAlg::Sha512) => MechanismType::SHA512_RSA_PKCS_PSS,
        (SignScheme::Ecdsa, HashAlg::Sha256) => MechanismType::ECDSA_SHA256,
        (SignScheme::Ecdsa, HashAlg::Sha384) => MechanismType::ECDSA_SHA384,
        (SignScheme::Ecdsa, HashAlg::Sha512) => MechanismType::ECDSA_SHA512,
    }
}

fn pss_params(hash: HashAlg) -> PkcsPssParams {
    PkcsPssParams {
        hash_alg: hash.mechanism(),
        mgf: hash.mgf1(),
        s_len: (hash.output_len() as u64).into(),
    }
}

fn combined(scheme: SignScheme, hash: HashAlg) -> Mechanism<'static> {
    match (scheme, hash) {
        (SignScheme::RsaPkcs1, HashAlg::Sha256) => Mechanism::Sha256RsaPkcs,
        (SignScheme::RsaPkcs1, HashAlg::Sha384) => Mechanism::Sha384RsaPkcs,
        (SignScheme::RsaPkcs1, HashAlg::Sha512) => Mechanism::Sha512RsaPkcs,
        (SignScheme::RsaPss, HashAlg::Sha256) => Mechanism::Sha256RsaPkcsPss(pss_params(hash)),
        (SignScheme::RsaPss, HashAlg::Sha384) => Mechanism::Sha384RsaPkcsPss(pss_params(hash)),
        (SignScheme::RsaPss, HashAlg::Sha512) => Mechanism::Sha512RsaPkcsPss(pss_params(hash)),
        (SignScheme::Ecdsa, HashAlg::Sha256) => Mechanism::EcdsaSha256,
        (SignScheme::Ecdsa, HashAlg::Sha384) => Mechanism::EcdsaSha384,
        (SignScheme::Ecdsa, HashAlg::Sha512) => Mechanism::EcdsaSha512,
    }
}

/// Sign a precomputed digest with the token's bare mechanism.
pub(crate) fn sign_digest(
    session: &Session,
    key: ObjectHandle,
    scheme: SignScheme,
    hash: HashAlg,
    digest: &[u8],
) -> Result<Vec<u8>, TokenError> {
    if digest.len() != hash.output_len() {
        return Err(TokenError::BadRequest(format!(
            "a {} digest is {} bytes, got {}",
            hash.name(),
            hash.output_len(),
            digest.len()
        )));
    }
    match scheme {
        SignScheme::RsaPkcs1 => {
            let mut input = hash.digest_info_prefix().to_vec();
            input.extend_from_slice(digest);
            Ok(session.sign(&Mechanism::RsaPkcs, key, &input)?)
        }
        SignScheme::RsaPss => {
            Ok(session.sign(&Mechanism::RsaPkcsPss(pss_params(hash)), key, digest)?)
        }
        SignScheme::Ecdsa => ecdsa_raw_to_der(&session.sign(&Mechanism::Ecdsa, key, digest)?),
    }
}

/// Sign a whole message streamed through the token's combined hash-and-sign mechanism
/// (for tokens without the bare mechanism).
pub(crate) fn sign_stream(
    session: &Session,
    key: ObjectHandle,
    scheme: SignScheme,
    hash: HashAlg,
    reader: &mut dyn std::io::Read,
) -> Result<Vec<u8>, TokenError> {
    session.sign_init(&combined(scheme, hash), key)?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| TokenError::BadRequest(format!("reading the input: {e}")))?;
        if n == 0 {
            break;
        }
        session.sign_update(&buf[..n])?;
    }
    let sig = session.sign_final()?;
    match scheme {
        SignScheme::Ecdsa => ecdsa_raw_to_der(&sig),
        SignScheme::RsaPkcs1 | SignScheme::RsaPss => Ok(sig),
    }
}

/// PKCS#11 returns ECDSA signatures as r‖s (v2.40 §2.3.1); X.509/CMS want DER.
pub(crate) fn ecdsa_raw_to_der(raw: &[u8]) -> Result<Vec<u8>, TokenError> {
    #[derive(der::Sequence)]
    struct EcdsaSig<'a> {
        r: der::asn1::UintRef<'a>,
        s: der::asn1::UintRef<'a>,
    }
    use der::Encode;
    if raw.is_empty() || !raw.len().is_multiple_of(2) {
        return Err(TokenError::Pkcs11 {
            function: "C_Sign".to_owned(),
            rv: format!("ECDSA signature of odd length {}", raw.len()),
        });
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let bad = |e: der::Error| TokenError::Pkcs11 {
        function: "C_Sign".to_owned(),
        rv: format!("ECDSA signature: {e}"),
    };
    let sig = EcdsaSig {
        r: der::asn1::UintRef::new(r).map_err(bad)?,
        s: der::asn1::UintRef::new(s).map_err(bad)?,
    };
    sig.to_der().map_err(bad)
}

/// RSA decryption paddings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecryptPadding {
    /// PKCS#1 v1.5 (RFC 8017 §7.2). With `expected_len`, a wrong padding yields random
    /// bytes of that length instead of an error (key transport); otherwise implicit
    /// rejection returns a synthetic message.
    Pkcs1v15 {
        expected_len: Option<usize>,
    },
    /// RSAES-OAEP with MGF1 of the same hash and an empty label.
    OaepSha1,
    OaepSha256,
}

/// Decrypt with an RSA private key. Every failure is `DecryptionFailed`.
pub(crate) fn rsa_decrypt(
    session: &Session,
    key: ObjectHandle,
    modulus_len: usize,
    raw_supported: bool,
    padding: DecryptPadding,
    ciphertext: &[u8],
    irk: &ImplicitRejectionKey,
) -> Result<Zeroizing<Vec<u8>>, TokenError> {
    if ciphertext.len() != modulus_len {
        return Err(TokenError::DecryptionFailed);
    }
    if raw_supported {
        match session.decrypt(&Mechanism::RsaX509, key, ciphertext) {
            Ok(em) => {
                let em = Zeroizing::new(em);
                return unpad(&em, modulus_len, padding, ciphertext, irk);
            }
            Err(e) if is_refusal(&e) => {
                tracing::debug!("raw RSA refused ({e}); using the token's padding mechanism");
            }
            Err(e) => return Err(connection_or_failure(e)),
        }
    }
    let result = match padding {
        DecryptPadding::Pkcs1v15 { .. } => session.decrypt(&Mechanism::RsaPkcs, key, ciphertext),
        DecryptPadding::OaepSha1 => session.decrypt(
            &Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
                MechanismType::SHA1,
                PkcsMgfType::MGF1_SHA1,
                PkcsOaepSource::empty(),
            )),
            key,
            ciphertext,
        ),
        DecryptPadding::OaepSha256 => session.decrypt(
            &Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
                MechanismType::SHA256,
                PkcsMgfType::MGF1_SHA256,
                PkcsOaepSource::empty(),
            )),
            key,
            ciphertext,
        ),
    };
    match (result, padding) {
        (
            Ok(m),
            DecryptPadding::Pkcs1v15 {
                expected_len: Some(n),
            },
        ) if m.len() != n => {
            // Same answer as a padding failure in the software path: random bytes.
            Ok(random_bytes(n))
        }
        (Ok(m), _) => Ok(Zeroizing::new(m)),
        (
            Err(e),
            DecryptPadding::Pkcs1v15 {
                expected_len: Some(n),
            },
        ) if !is_connection_lost(&e) => Ok(random_bytes(n)),
        (Err(e), _) => Err(connection_or_failure(e)),
    }
}

/// Random bytes from the OS (the token's generator may be slow or absent).
fn random_bytes(n: usize) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(vec![0u8; n]);
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut out);
    out
}

/// Connection losses keep their cause; everything else is the one decryption failure.
fn connection_or_failure(e: cryptoki::error::Error) -> TokenError {
    let err = TokenError::from(e);
    if err.is_connection_lost() {
        err
    } else {
        TokenError::DecryptionFailed
    }
}

fn unpad(
    em: &[u8],
    modulus_len: usize,
    padding: DecryptPadding,
    ciphertext: &[u8],
    irk: &ImplicitRejectionKey,
) -> Result<Zeroizing<Vec<u8>>, TokenError> {
    match padding {
        DecryptPadding::Pkcs1v15 {
            expected_len: Some(n),
        } => Ok(pkcs1v15_unpad_fixed(em, modulus_len, ciphertext, n, irk)),
        DecryptPadding::Pkcs1v15 { expected_len: None } => {
            Ok(pkcs1v15_unpad_implicit(em, modulus_len, ciphertext, irk))
        }
        DecryptPadding::OaepSha1 => oaep_unpad(em, modulus_len, OaepHash::Sha1, &[])
            .map_err(|_| TokenError::DecryptionFailed),
        DecryptPadding::OaepSha256 => oaep_unpad(em, modulus_len, OaepHash::Sha256, &[])
            .map_err(|_| TokenError::DecryptionFailed),
    }
}

/// ECDH (PKCS#11 v2.40 §2.3.13, CKM_ECDH1_DERIVE with the null KDF): the raw shared
/// secret Z, read from a session-only, extractable derived key that is destroyed at once.
pub(crate) fn ecdh_shared_secret(
    session: &Session,
    key: ObjectHandle,
    field_len: usize,
    peer_point: &[u8],
) -> Result<Zeroizing<Vec<u8>>, TokenError> {
    let params = Ecdh1DeriveParams::new(EcKdf::null(), peer_point);
    let template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
        Attribute::ValueLen((field_len as u64).into()),
    ];
    let derived = session
        .derive_key(&Mechanism::Ecdh1Derive(params), key, &template)
        .map_err(connection_or_failure)?;
    let value = session.get_attributes(derived, &[AttributeType::Value]);
    let _ = session.destroy_object(derived);
    let value = value?;
    value
        .into_iter()
        .find_map(|a| match a {
            Attribute::Value(v) => Some(Zeroizing::new(v)),
            _ => None,
        })
        .ok_or(TokenError::DecryptionFailed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_raw_signature_becomes_der_with_minimal_integers() {
        // r has a high bit (needs a leading zero), s has leading zeros (must be trimmed).
        let mut raw = vec![0x80; 32];
        raw.extend(std::iter::repeat_n(0u8, 31));
        raw.push(0x05);
        let der = ecdsa_raw_to_der(&raw).unwrap();
        assert_eq!(der[0], 0x30);
        assert_eq!(&der[2..5], &[0x02, 33, 0x00]);
        assert_eq!(&der[der.len() - 3..], &[0x02, 0x01, 0x05]);
    }

    #[test]
    fn odd_length_ecdsa_signature_is_an_error() {
        assert!(ecdsa_raw_to_der(&[1, 2, 3]).is_err());
    }

    #[test]
    fn digest_info_prefix_encodes_the_hash_length() {
        for h in [HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512] {
            let p = h.digest_info_prefix();
            assert_eq!(*p.last().unwrap() as usize, h.output_len());
            assert_eq!(p[1] as usize, p.len() - 2 + h.output_len());
        }
    }
}
