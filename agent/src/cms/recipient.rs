//! RecipientInfo (RFC 5652 §6.2): building them when sealing, and unwrapping the content key
//! when opening. RSA key transport (RFC 8017 PKCS#1 v1.5, RFC 4055 RSAES-OAEP) and ECDH
//! ephemeral-static key agreement with the X9.63 KDF and AES key wrap (RFC 5753, RFC 3394).
//! OtherRecipientInfo (quorum shares, a later issue) is recognised and skipped.

use cms::content_info::CmsVersion;
use cms::enveloped_data::{
    KeyAgreeRecipientIdentifier, OriginatorIdentifierOrKey, RecipientIdentifier, RecipientInfo,
};
use der::{Decode, Encode};
use rand_core::{OsRng, RngCore};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use zeroize::Zeroizing;

use super::cert::{self, Hash, KU_KEY_AGREEMENT, KU_KEY_ENCIPHERMENT, PublicKey};
use super::derw::{self, OCTET_STRING, SEQUENCE};
use super::error::{CmsError, Result};
use super::keys::{DecryptionKey, KeyTransportPadding};
use super::oids;

/// RSA key-transport padding to seal with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RsaPadding {
    /// RSAES-OAEP, SHA-256, MGF1-SHA-256 (default).
    #[default]
    OaepSha256,
    /// RSAES-PKCS1-v1_5, for older tokens.
    Pkcs1v15,
}

/// A committee member to seal to.
#[derive(Debug, Clone)]
pub struct Recipient {
    cert: Certificate,
    key: PublicKey,
}

impl Recipient {
    /// Check a recipient certificate (DER): its key must be RSA, P-256 or P-384, and its key
    /// usage (if present) must allow keyEncipherment (RSA) or keyAgreement (EC).
    pub fn from_der(der: &[u8]) -> Result<Self> {
        let cert = cert::parse(der)?;
        let key = PublicKey::from_cert(&cert).map_err(|e| CmsError::RecipientCannotEncrypt {
            subject: cert::subject(&cert),
            reason: e.to_string(),
        })?;
        let (need, need_name) = match key {
            PublicKey::Rsa(_) => (KU_KEY_ENCIPHERMENT, "keyEncipherment"),
            _ => (KU_KEY_AGREEMENT, "keyAgreement"),
        };
        if let Some(ku) = cert::key_usage(&cert)
            && ku & need == 0
        {
            return Err(CmsError::RecipientCannotEncrypt {
                subject: cert::subject(&cert),
                reason: format!(
                    "its key usage is {} (a signing-only certificate); sealing needs {need_name}",
                    cert::key_usage_names(ku)
                ),
            });
        }
        Ok(Recipient { cert, key })
    }

    /// Subject, for reports.
    pub fn subject(&self) -> String {
        cert::subject(&self.cert)
    }

    /// The DER `RecipientInfo` carrying `cek` to this recipient.
    pub(crate) fn recipient_info(&self, cek: &[u8], padding: RsaPadding) -> Result<Vec<u8>> {
        let rid = cert::issuer_and_serial(&self.cert)?;
        match &self.key {
            PublicKey::Rsa(k) => {
                let (alg, ek) = match padding {
                    RsaPadding::OaepSha256 => (
                        oaep_sha256_alg(),
                        k.encrypt(&mut OsRng, rsa::Oaep::new::<sha2::Sha256>(), cek),
                    ),
                    RsaPadding::Pkcs1v15 => (
                        derw::alg_id_null(&oids::RSA_ENCRYPTION),
                        k.encrypt(&mut OsRng, rsa::Pkcs1v15Encrypt, cek),
                    ),
                };
                let ek = ek.map_err(|e| CmsError::Invalid(format!("RSA encryption: {e}")))?;
                Ok(derw::tlv_parts(
                    SEQUENCE,
                    &[
                        &derw::small_int(0),
                        &rid,
                        &alg,
                        &derw::tlv(OCTET_STRING, &ek),
                    ],
                ))
            }
            PublicKey::P256(pk) => {
                let eph = p256::ecdh::EphemeralSecret::random(&mut OsRng);
                let point = p256::EncodedPoint::from(eph.public_key());
                let z = eph.diffie_hellman(pk);
                kari(
                    &rid,
                    point.as_bytes(),
                    z.raw_secret_bytes(),
                    Hash::Sha256,
                    cek,
                )
            }
            PublicKey::P384(pk) => {
                let eph = p384::ecdh::EphemeralSecret::random(&mut OsRng);
                let point = p384::EncodedPoint::from(eph.public_key());
                let z = eph.diffie_hellman(pk);
                kari(
                    &rid,
                    point.as_bytes(),
                    z.raw_secret_bytes(),
                    Hash::Sha384,
                    cek,
                )
            }
        }
    }
}

fn oaep_sha256_alg() -> Vec<u8> {
    let sha256 = derw::alg_id_null(&oids::SHA256);
    let mgf = derw::tlv_parts(SEQUENCE, &[&derw::oid(&oids::MGF1), &sha256]);
    let params = derw::tlv_parts(
        SEQUENCE,
        &[&derw::tlv(0xA0, &sha256), &derw::tlv(0xA1, &mgf)],
    );
    derw::tlv_parts(SEQUENCE, &[&derw::oid(&oids::RSAES_OAEP), &params])
}

/// ECC-CMS-SharedInfo (RFC 5753 §7.2) and the ANSI X9.63 KDF.
fn x963_kdf(
    hash: Hash,
    z: &[u8],
    wrap_alg_der: &[u8],
    ukm: Option<&[u8]>,
    len: usize,
) -> Zeroizing<Vec<u8>> {
    let mut info = wrap_alg_der.to_vec();
    if let Some(u) = ukm {
        info.extend_from_slice(&derw::tlv(0xA0, &derw::tlv(OCTET_STRING, u)));
    }
    let bits = ((len * 8) as u32).to_be_bytes();
    info.extend_from_slice(&derw::tlv(0xA2, &derw::tlv(OCTET_STRING, &bits)));
    let shared_info = derw::tlv(SEQUENCE, &info);
    let mut out = Zeroizing::new(Vec::with_capacity(len + 64));
    let mut counter: u32 = 1;
    while out.len() < len {
        let mut h = cert::Hasher::new(hash);
        h.update(z);
        h.update(&counter.to_be_bytes());
        h.update(&shared_info);
        out.extend_from_slice(&Zeroizing::new(h.finish()));
        counter += 1;
    }
    out.truncate(len);
    out
}

fn kari(rid: &[u8], point: &[u8], z: &[u8], hash: Hash, cek: &[u8]) -> Result<Vec<u8>> {
    let wrap_alg = derw::alg_id(&oids::AES256_WRAP);
    let kek = x963_kdf(hash, z, &wrap_alg, None, 32);
    let wrapped = aes_kw::KekAes256::try_from(&kek[..])
        .and_then(|k| k.wrap_vec(cek))
        .map_err(|e| CmsError::Invalid(format!("AES key wrap: {e}")))?;
    let scheme = if hash == Hash::Sha384 {
        oids::DH_STD_SHA384KDF
    } else {
        oids::DH_STD_SHA256KDF
    };
    let key_enc_alg = derw::tlv_parts(SEQUENCE, &[&derw::oid(&scheme), &wrap_alg]);
    let mut bits = vec![0u8];
    bits.extend_from_slice(point);
    let originator_key = derw::tlv_parts(
        0xA1,
        &[&derw::alg_id(&oids::EC_PUBLIC_KEY), &derw::tlv(0x03, &bits)],
    );
    let rek = derw::tlv_parts(SEQUENCE, &[rid, &derw::tlv(OCTET_STRING, &wrapped)]);
    Ok(derw::tlv_parts(
        0xA1,
        &[
            &derw::small_int(3),
            &derw::tlv(0xA0, &originator_key),
            &key_enc_alg,
            &derw::tlv(SEQUENCE, &rek),
        ],
    ))
}

/// Describe who a RecipientInfo is addressed to (for "not addressed to you" errors).
pub(crate) fn describe(ri: &RecipientInfo) -> Vec<String> {
    let rid = |r: &RecipientIdentifier| match r {
        RecipientIdentifier::IssuerAndSerialNumber(i) => {
            cert::describe_issuer_serial(&i.issuer, i.serial_number.as_bytes())
        }
        RecipientIdentifier::SubjectKeyIdentifier(s) => {
            format!("subjectKeyIdentifier {}", hex::encode(s.0.as_bytes()))
        }
    };
    match ri {
        RecipientInfo::Ktri(k) => vec![rid(&k.rid)],
        RecipientInfo::Kari(k) => k
            .recipient_enc_keys
            .iter()
            .map(|r| match &r.rid {
                KeyAgreeRecipientIdentifier::IssuerAndSerialNumber(i) => {
                    cert::describe_issuer_serial(&i.issuer, i.serial_number.as_bytes())
                }
                KeyAgreeRecipientIdentifier::RKeyId(k) => format!(
                    "subjectKeyIdentifier {}",
                    hex::encode(k.subject_key_identifier.0.as_bytes())
                ),
            })
            .collect(),
        RecipientInfo::Kekri(_) => vec!["a pre-shared key (KEKRecipientInfo)".into()],
        RecipientInfo::Pwri(_) => vec!["a password (PasswordRecipientInfo)".into()],
        RecipientInfo::Ori(o) => vec![format!("other recipient type {}", o.ori_type)],
    }
}

struct Me {
    issuer: x509_cert::name::Name,
    serial: x509_cert::serial_number::SerialNumber,
    ski: Option<Vec<u8>>,
}

impl Me {
    fn matches(&self, r: &RecipientIdentifier) -> bool {
        match r {
            RecipientIdentifier::IssuerAndSerialNumber(i) => {
                i.issuer == self.issuer && i.serial_number == self.serial
            }
            RecipientIdentifier::SubjectKeyIdentifier(s) => {
                self.ski.as_deref() == Some(s.0.as_bytes())
            }
        }
    }
    fn matches_ka(&self, r: &KeyAgreeRecipientIdentifier) -> bool {
        match r {
            KeyAgreeRecipientIdentifier::IssuerAndSerialNumber(i) => {
                i.issuer == self.issuer && i.serial_number == self.serial
            }
            KeyAgreeRecipientIdentifier::RKeyId(k) => {
                self.ski.as_deref() == Some(k.subject_key_identifier.0.as_bytes())
            }
        }
    }
}

/// Find this key's RecipientInfo among `infos` (raw DER, as read) and unwrap the content key.
pub(crate) fn unwrap_cek(
    infos: &[Vec<u8>],
    key: &dyn DecryptionKey,
    cek_len: usize,
) -> Result<Zeroizing<Vec<u8>>> {
    let me_cert = cert::parse(key.certificate_der())?;
    let me = Me {
        issuer: me_cert.tbs_certificate.issuer.clone(),
        serial: me_cert.tbs_certificate.serial_number.clone(),
        ski: cert::subject_key_id(&me_cert),
    };
    let mut addressed = Vec::new();
    for der in infos {
        let ri = match RecipientInfo::from_der(der) {
            Ok(r) => r,
            Err(_) => {
                addressed.push("an unreadable recipient entry".into());
                continue;
            }
        };
        match &ri {
            RecipientInfo::Ktri(k) if me.matches(&k.rid) => {
                // RFC 5652 §6.2.1: version 0 (issuerAndSerialNumber) or 2 (SKI).
                let want = match k.rid {
                    RecipientIdentifier::IssuerAndSerialNumber(_) => CmsVersion::V0,
                    RecipientIdentifier::SubjectKeyIdentifier(_) => CmsVersion::V2,
                };
                if k.version != want {
                    return Err(CmsError::Invalid("KeyTransRecipientInfo version".into()));
                }
                let padding = ktri_padding(&k.key_enc_alg)?;
                let cek =
                    key.decrypt_key_transport(padding, k.enc_key.as_bytes(), Some(cek_len))?;
                if cek.len() != cek_len {
                    // Only reachable for OAEP (PKCS#1 v1.5 rejects implicitly); OAEP failures
                    // are not an oracle for the content key.
                    return Err(CmsError::Tampered("content key has the wrong length"));
                }
                return Ok(cek);
            }
            RecipientInfo::Kari(k) => {
                if let Some(rek) = k.recipient_enc_keys.iter().find(|r| me.matches_ka(&r.rid)) {
                    return kari_unwrap(k, rek.enc_key.as_bytes(), key, cek_len);
                }
            }
            _ => {}
        }
        addressed.extend(describe(&ri));
    }
    Err(CmsError::NotARecipient {
        recipients: addressed,
    })
}

fn ktri_padding(alg: &AlgorithmIdentifierOwned) -> Result<KeyTransportPadding> {
    if alg.oid == oids::RSA_ENCRYPTION {
        return Ok(KeyTransportPadding::Pkcs1v15);
    }
    if alg.oid != oids::RSAES_OAEP {
        return Err(CmsError::UnsupportedAlgorithm(format!(
            "key transport {}",
            alg.oid
        )));
    }
    // RSAES-OAEP-params (RFC 4055 §4.1): hashFunc [0] default SHA-1, maskGenFunc [1] default
    // MGF1-SHA-1, pSourceFunc [2] default empty label.
    let (mut h, mut m) = (oids::SHA1, oids::SHA1);
    if let Some(p) = &alg.parameters {
        let der = p.to_der()?;
        let mut r = super::ber::BerReader::new(&der[..]);
        let sh = r.expect(super::ber::Tag::SEQUENCE, "OAEP params")?;
        r.enter(sh)?;
        while !r.at_end()? {
            let f = r.read_header()?;
            r.enter(f)?;
            let inner = AlgorithmIdentifierOwned::from_der(&r.read_element_der()?)?;
            r.leave()?;
            match f.tag.number {
                0 => h = inner.oid,
                1 => {
                    m = inner
                        .parameters
                        .as_ref()
                        .and_then(|p| p.decode_as::<AlgorithmIdentifierOwned>().ok())
                        .map(|a| a.oid)
                        .ok_or_else(|| CmsError::UnsupportedAlgorithm("OAEP mask".into()))?;
                }
                _ => {
                    return Err(CmsError::UnsupportedAlgorithm("OAEP label".into()));
                }
            }
        }
    }
    match (h, m) {
        (oids::SHA1, oids::SHA1) => Ok(KeyTransportPadding::OaepSha1),
        (oids::SHA256, oids::SHA256) => Ok(KeyTransportPadding::OaepSha256),
        _ => Err(CmsError::UnsupportedAlgorithm(format!(
            "RSA-OAEP with hash {h} and MGF1 hash {m}"
        ))),
    }
}

fn kari_unwrap(
    k: &cms::enveloped_data::KeyAgreeRecipientInfo,
    wrapped: &[u8],
    key: &dyn DecryptionKey,
    cek_len: usize,
) -> Result<Zeroizing<Vec<u8>>> {
    let OriginatorIdentifierOrKey::OriginatorKey(ok) = &k.originator else {
        return Err(CmsError::UnsupportedAlgorithm(
            "key agreement with a static originator key".into(),
        ));
    };
    // RFC 5753 §3.1.1: version 3, originator key id-ecPublicKey.
    if k.version != CmsVersion::V3 || ok.algorithm.oid != oids::EC_PUBLIC_KEY {
        return Err(CmsError::Invalid(
            "KeyAgreeRecipientInfo version or originator key algorithm".into(),
        ));
    }
    let point = ok
        .public_key
        .as_bytes()
        .ok_or_else(|| CmsError::Invalid("originator key bits".into()))?;
    let hash = match k.key_enc_alg.oid {
        oids::DH_STD_SHA1KDF | oids::DH_COF_SHA1KDF => Hash::Sha1,
        oids::DH_STD_SHA256KDF | oids::DH_COF_SHA256KDF => Hash::Sha256,
        oids::DH_STD_SHA384KDF | oids::DH_COF_SHA384KDF => Hash::Sha384,
        oids::DH_STD_SHA512KDF | oids::DH_COF_SHA512KDF => Hash::Sha512,
        o => return Err(CmsError::UnsupportedAlgorithm(format!("key agreement {o}"))),
    };
    let wrap = k
        .key_enc_alg
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<AlgorithmIdentifierOwned>().ok())
        .ok_or_else(|| CmsError::Invalid("key agreement without a key-wrap algorithm".into()))?;
    let kek_len = match wrap.oid {
        oids::AES128_WRAP => 16,
        oids::AES192_WRAP => 24,
        oids::AES256_WRAP => 32,
        o => return Err(CmsError::UnsupportedAlgorithm(format!("key wrap {o}"))),
    };
    let z = key.ecdh_shared_secret(point)?;
    let kek = x963_kdf(
        hash,
        &z,
        &wrap.to_der()?,
        k.ukm.as_ref().map(|u| u.as_bytes()),
        kek_len,
    );
    let tampered = |_| CmsError::Tampered("AES key unwrap failed");
    let cek = match kek_len {
        16 => aes_kw::KekAes128::try_from(&kek[..]).and_then(|w| w.unwrap_vec(wrapped)),
        24 => aes_kw::KekAes192::try_from(&kek[..]).and_then(|w| w.unwrap_vec(wrapped)),
        _ => aes_kw::KekAes256::try_from(&kek[..]).and_then(|w| w.unwrap_vec(wrapped)),
    }
    .map_err(tampered)?;
    let cek = Zeroizing::new(cek);
    if cek.len() != cek_len {
        return Err(CmsError::Tampered("content key has the wrong length"));
    }
    Ok(cek)
}

/// A fresh random key.
pub(crate) fn random_bytes(n: usize) -> Zeroizing<Vec<u8>> {
    let mut v = Zeroizing::new(vec![0u8; n]);
    OsRng.fill_bytes(&mut v);
    v
}
