//! Certificate helpers: identifiers, key usage, public keys and signature checks (RFC 5280,
//! RFC 5652 §10.2.4, RFC 8017, RFC 4055, RFC 5758).

use const_oid::ObjectIdentifier as Oid;
use der::{Decode, Encode};
use rsa::pkcs8::DecodePublicKey;
use sha2::Digest;
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_cert::ext::pkix::{ExtendedKeyUsage, KeyUsage, SubjectKeyIdentifier};

use super::error::{CmsError, Result};
use super::oids;

/// Parse a DER certificate.
pub(crate) fn parse(der: &[u8]) -> Result<Certificate> {
    Certificate::from_der(der).map_err(|e| CmsError::Certificate(e.to_string()))
}

/// Parse every certificate in a PEM text (a chain file).
pub fn pem_certificates(pem: &[u8]) -> Result<Vec<Vec<u8>>> {
    let certs =
        Certificate::load_pem_chain(pem).map_err(|e| CmsError::Certificate(e.to_string()))?;
    certs
        .iter()
        .map(|c| c.to_der().map_err(|e| CmsError::Certificate(e.to_string())))
        .collect()
}

/// Subject as an RFC 4514 string.
pub(crate) fn subject(c: &Certificate) -> String {
    c.tbs_certificate.subject.to_string()
}

/// DER of `IssuerAndSerialNumber ::= SEQUENCE { issuer Name, serialNumber INTEGER }`.
pub(crate) fn issuer_and_serial(c: &Certificate) -> Result<Vec<u8>> {
    let issuer = c.tbs_certificate.issuer.to_der()?;
    let serial = c.tbs_certificate.serial_number.to_der()?;
    Ok(super::derw::tlv_parts(
        super::derw::SEQUENCE,
        &[&issuer, &serial],
    ))
}

/// Human-readable "issuer / serial" for error messages and reports.
pub(crate) fn describe_issuer_serial(issuer: &x509_cert::name::Name, serial: &[u8]) -> String {
    format!("issuer \"{issuer}\", serial {}", hex::encode(serial))
}

/// The subjectKeyIdentifier extension, if present.
pub(crate) fn subject_key_id(c: &Certificate) -> Option<Vec<u8>> {
    match c.tbs_certificate.get::<SubjectKeyIdentifier>() {
        Ok(Some((_, ski))) => Some(ski.0.as_bytes().to_vec()),
        _ => None,
    }
}

/// Key usage bits (`KeyUsages` as u16), if the extension is present (an unparsable one counts
/// as "no usage").
pub(crate) fn key_usage(c: &Certificate) -> Option<u16> {
    match c.tbs_certificate.get::<KeyUsage>() {
        Ok(Some((_, ku))) => Some(ku.0.bits()),
        Ok(None) => None,
        Err(_) => Some(0),
    }
}

// Bit values of `FlagSet<KeyUsages>::bits()` (`as u16` on the enum gives the index instead).
pub(crate) const KU_DIGITAL_SIGNATURE: u16 = 1 << 0;
pub(crate) const KU_NON_REPUDIATION: u16 = 1 << 1;
pub(crate) const KU_KEY_ENCIPHERMENT: u16 = 1 << 2;
pub(crate) const KU_KEY_AGREEMENT: u16 = 1 << 4;
pub(crate) const KU_KEY_CERT_SIGN: u16 = 1 << 5;

/// Names of the key usage bits set, for messages.
pub(crate) fn key_usage_names(bits: u16) -> String {
    const NAMES: [&str; 9] = [
        "digitalSignature",
        "nonRepudiation",
        "keyEncipherment",
        "dataEncipherment",
        "keyAgreement",
        "keyCertSign",
        "cRLSign",
        "encipherOnly",
        "decipherOnly",
    ];
    let v: Vec<&str> = (0..9)
        .filter(|i| bits & (1 << i) != 0)
        .map(|i| NAMES[i])
        .collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(" + ")
    }
}

/// Extended key usages, if present.
pub(crate) fn extended_key_usage(c: &Certificate) -> Option<Vec<Oid>> {
    match c.tbs_certificate.get::<ExtendedKeyUsage>() {
        Ok(Some((_, eku))) => Some(eku.0),
        Ok(None) => None,
        Err(_) => Some(Vec::new()),
    }
}

/// A certificate's public key, for the algorithms Segel supports.
#[derive(Debug, Clone)]
pub(crate) enum PublicKey {
    Rsa(rsa::RsaPublicKey),
    P256(p256::PublicKey),
    P384(p384::PublicKey),
}

impl PublicKey {
    pub(crate) fn from_cert(c: &Certificate) -> Result<Self> {
        let spki = &c.tbs_certificate.subject_public_key_info;
        let der = spki.to_der()?;
        let alg = spki.algorithm.oid;
        if alg == oids::RSA_ENCRYPTION {
            return rsa::RsaPublicKey::from_public_key_der(&der)
                .map(PublicKey::Rsa)
                .map_err(|e| CmsError::Certificate(format!("RSA key: {e}")));
        }
        if alg == oids::EC_PUBLIC_KEY {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<Oid>().ok());
            return match curve {
                Some(c) if c == oids::SECP256R1 => p256::PublicKey::from_public_key_der(&der)
                    .map(PublicKey::P256)
                    .map_err(|e| CmsError::Certificate(format!("P-256 key: {e}"))),
                Some(c) if c == oids::SECP384R1 => p384::PublicKey::from_public_key_der(&der)
                    .map(PublicKey::P384)
                    .map_err(|e| CmsError::Certificate(format!("P-384 key: {e}"))),
                _ => Err(CmsError::UnsupportedAlgorithm("EC curve".into())),
            };
        }
        Err(CmsError::UnsupportedAlgorithm(format!("public key {alg}")))
    }
}

/// A digest algorithm seen in input (SHA-1 accepted for verifying old signatures only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hash {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    pub(crate) fn from_oid(o: &Oid) -> Option<Hash> {
        Some(match *o {
            oids::SHA1 => Hash::Sha1,
            oids::SHA256 => Hash::Sha256,
            oids::SHA384 => Hash::Sha384,
            oids::SHA512 => Hash::Sha512,
            _ => return None,
        })
    }

    pub(crate) fn digest(self, data: &[u8]) -> Vec<u8> {
        let mut h = Hasher::new(self);
        h.update(data);
        h.finish()
    }
}

/// A running hash of any supported algorithm.
#[derive(Debug, Clone)]
pub(crate) enum Hasher {
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub(crate) fn new(h: Hash) -> Self {
        match h {
            Hash::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            Hash::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Hash::Sha384 => Hasher::Sha384(sha2::Sha384::new()),
            Hash::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }
    pub(crate) fn update(&mut self, d: &[u8]) {
        match self {
            Hasher::Sha1(h) => h.update(d),
            Hasher::Sha256(h) => h.update(d),
            Hasher::Sha384(h) => h.update(d),
            Hasher::Sha512(h) => h.update(d),
        }
    }
    pub(crate) fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha384(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

/// Verify `sig` over `message`. `digest` is the SignerInfo's digest algorithm when the
/// signature algorithm does not name one (rsaEncryption, id-ecPublicKey).
pub(crate) fn verify_signature(
    key: &PublicKey,
    sig_alg: &AlgorithmIdentifierOwned,
    digest: Option<Hash>,
    message: &[u8],
    sig: &[u8],
) -> std::result::Result<(), String> {
    let o = sig_alg.oid;
    let named = match o {
        oids::SHA1_WITH_RSA => Some(Hash::Sha1),
        oids::SHA256_WITH_RSA | oids::ECDSA_SHA256 => Some(Hash::Sha256),
        oids::SHA384_WITH_RSA | oids::ECDSA_SHA384 => Some(Hash::Sha384),
        oids::SHA512_WITH_RSA | oids::ECDSA_SHA512 => Some(Hash::Sha512),
        _ => None,
    };
    if o == oids::RSASSA_PSS {
        let PublicKey::Rsa(k) = key else {
            return Err("RSASSA-PSS signature with a non-RSA key".into());
        };
        let (h, salt) = pss_params(sig_alg)?;
        let hashed = h.digest(message);
        let r = match h {
            Hash::Sha1 => k.verify(rsa::Pss::new_with_salt::<sha1::Sha1>(salt), &hashed, sig),
            Hash::Sha256 => k.verify(rsa::Pss::new_with_salt::<sha2::Sha256>(salt), &hashed, sig),
            Hash::Sha384 => k.verify(rsa::Pss::new_with_salt::<sha2::Sha384>(salt), &hashed, sig),
            Hash::Sha512 => k.verify(rsa::Pss::new_with_salt::<sha2::Sha512>(salt), &hashed, sig),
        };
        return r.map_err(|_| "RSASSA-PSS signature does not verify".into());
    }
    let rsa_plain = o == oids::RSA_ENCRYPTION;
    let ec_plain = o == oids::EC_PUBLIC_KEY;
    let h = named
        .or(if rsa_plain || ec_plain { digest } else { None })
        .ok_or_else(|| format!("unsupported signature algorithm {o}"))?;
    let hashed = h.digest(message);
    match key {
        PublicKey::Rsa(k) => {
            if !(rsa_plain
                || matches!(
                    o,
                    oids::SHA1_WITH_RSA
                        | oids::SHA256_WITH_RSA
                        | oids::SHA384_WITH_RSA
                        | oids::SHA512_WITH_RSA
                ))
            {
                return Err(format!("signature algorithm {o} does not match an RSA key"));
            }
            let scheme = match h {
                Hash::Sha1 => rsa::Pkcs1v15Sign::new::<sha1::Sha1>(),
                Hash::Sha256 => rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
                Hash::Sha384 => rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
                Hash::Sha512 => rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
            };
            k.verify(scheme, &hashed, sig)
                .map_err(|_| "RSA signature does not verify".into())
        }
        PublicKey::P256(k) => {
            use ecdsa::signature::hazmat::PrehashVerifier;
            if rsa_plain {
                return Err("RSA signature algorithm with an EC key".into());
            }
            let s = p256::ecdsa::Signature::from_der(sig)
                .map_err(|_| "bad ECDSA signature encoding")?;
            p256::ecdsa::VerifyingKey::from(k)
                .verify_prehash(&hashed, &s)
                .map_err(|_| "ECDSA signature does not verify".into())
        }
        PublicKey::P384(k) => {
            use ecdsa::signature::hazmat::PrehashVerifier;
            if rsa_plain {
                return Err("RSA signature algorithm with an EC key".into());
            }
            let s = p384::ecdsa::Signature::from_der(sig)
                .map_err(|_| "bad ECDSA signature encoding")?;
            p384::ecdsa::VerifyingKey::from(k)
                .verify_prehash(&hashed, &s)
                .map_err(|_| "ECDSA signature does not verify".into())
        }
    }
}

/// RSASSA-PSS-params (RFC 4055 §3.1): hash [0], mgf [1] (must be MGF1 with the same hash),
/// saltLength [2] (default 20).
fn pss_params(alg: &AlgorithmIdentifierOwned) -> std::result::Result<(Hash, usize), String> {
    use super::ber::{BerReader, Tag};
    let Some(p) = &alg.parameters else {
        return Ok((Hash::Sha1, 20));
    };
    let der = p.to_der().map_err(|e| e.to_string())?;
    let mut r = BerReader::new(&der[..]);
    let err = |e: CmsError| e.to_string();
    let h = r.expect(Tag::SEQUENCE, "PSS params").map_err(err)?;
    r.enter(h).map_err(err)?;
    let (mut hash, mut salt) = (Hash::Sha1, 20usize);
    while !r.at_end().map_err(err)? {
        let f = r.read_header().map_err(err)?;
        let elem = {
            r.enter(f).map_err(err)?;
            let inner = r.read_element_der().map_err(err)?;
            r.leave().map_err(err)?;
            inner
        };
        match f.tag.number {
            0 => {
                let a = AlgorithmIdentifierOwned::from_der(&elem).map_err(|e| e.to_string())?;
                hash = Hash::from_oid(&a.oid).ok_or("unsupported PSS hash")?;
            }
            1 => {
                let a = AlgorithmIdentifierOwned::from_der(&elem).map_err(|e| e.to_string())?;
                let mh = a
                    .parameters
                    .as_ref()
                    .and_then(|p| p.decode_as::<AlgorithmIdentifierOwned>().ok())
                    .and_then(|m| Hash::from_oid(&m.oid));
                if a.oid != oids::MGF1 || mh.is_none() {
                    return Err("unsupported PSS mask generation".into());
                }
            }
            2 => {
                let v = der::asn1::Uint::from_der(&elem).map_err(|e| e.to_string())?;
                let b = v.as_bytes();
                if b.len() > 4 {
                    return Err("PSS salt too long".into());
                }
                salt = b.iter().fold(0usize, |a, x| (a << 8) | usize::from(*x));
            }
            _ => {}
        }
    }
    Ok((hash, salt))
}
