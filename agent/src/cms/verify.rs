//! Verifying SignedData (RFC 5652 §5.6), DER or BER (indefinite lengths, segmented content),
//! streaming the content through the digests in one pass.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::Path;
use std::time::SystemTime;

use cms::signed_data::SignerInfo;
use der::{Decode, Encode};
use serde::Serialize;
use x509_cert::Certificate;

use super::ber::{BerReader, Tag};
use super::cert::{self, Hash, Hasher, PublicKey};
use super::chain::{self, ChainReport};
use super::error::{CmsError, Result};
use super::oids;
use super::sign::IO_CHUNK;

/// Trust configuration for verification.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Trust anchors (root certificates, DER).
    pub anchors: Vec<Vec<u8>>,
    /// Extra intermediate certificates (DER), e.g. from `--ca` files.
    pub intermediates: Vec<Vec<u8>>,
    /// Check validity at this time instead of the signing time (or now, if none).
    pub at: Option<SystemTime>,
}

/// What was found about one signer.
#[derive(Debug, Clone, Serialize)]
pub struct SignerReport {
    /// Signer certificate subject (RFC 4514), if the certificate was found.
    pub subject: Option<String>,
    /// Signer identifier as written in the SignerInfo.
    pub signer_id: String,
    /// Claimed signing time (RFC 3339), if signed.
    pub signing_time: Option<String>,
    /// The messageDigest attribute matches the content.
    pub digest_matches: bool,
    /// The signature over the signed attributes verifies with the certificate's key.
    pub signature_valid: bool,
    /// Certificate path, validity at signing time, key usage.
    pub chain: Option<ChainReport>,
    /// Problems found.
    pub errors: Vec<String>,
}

impl SignerReport {
    /// Cryptographically valid and the certificate checks out.
    pub fn ok(&self) -> bool {
        self.digest_matches && self.signature_valid && self.chain.as_ref().is_some_and(|c| c.ok())
    }
}

/// Result of verifying one SignedData.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Size of the signed content.
    pub content_len: u64,
    /// SHA-256 of the signed content (hex).
    pub content_sha256: String,
    /// One entry per SignerInfo.
    pub signers: Vec<SignerReport>,
}

impl VerifyReport {
    /// At least one signer, and every signer is valid and trusted.
    pub fn ok(&self) -> bool {
        !self.signers.is_empty() && self.signers.iter().all(|s| s.ok())
    }

    /// At least one signer and all signatures are cryptographically valid (trust aside).
    pub fn signatures_valid(&self) -> bool {
        !self.signers.is_empty()
            && self
                .signers
                .iter()
                .all(|s| s.digest_matches && s.signature_valid)
    }
}

fn malformed(r: &BerReader<impl Read>, reason: &'static str) -> CmsError {
    CmsError::Malformed {
        offset: r.pos(),
        reason,
    }
}

pub(crate) fn read_oid<R: Read>(r: &mut BerReader<R>) -> Result<const_oid::ObjectIdentifier> {
    let h = r.expect(Tag::OID, "expected an OBJECT IDENTIFIER")?;
    let v = r.read_primitive(h, 64)?;
    const_oid::ObjectIdentifier::from_bytes(&v).map_err(|_| malformed(r, "bad OBJECT IDENTIFIER"))
}

/// Verify a SignedData file; `content` is the detached content, if any.
pub fn verify_file(
    path: &Path,
    content: Option<&Path>,
    opts: &VerifyOptions,
) -> Result<VerifyReport> {
    let input = BufReader::with_capacity(IO_CHUNK, File::open(path)?);
    let mut detached = match content {
        Some(p) => Some(BufReader::with_capacity(IO_CHUNK, File::open(p)?)),
        None => None,
    };
    let mut r = BerReader::new(input);
    let report = verify_stream(
        &mut r,
        detached.as_mut().map(|d| d as &mut dyn Read),
        &mut std::io::sink(),
        opts,
    )?;
    expect_eof(&mut r)?;
    Ok(report)
}

/// Require that nothing follows the structure.
pub(crate) fn expect_eof<R: Read>(r: &mut BerReader<R>) -> Result<()> {
    let mut b = [0u8; 1];
    if r.read_content(&mut b)? != 0 {
        return Err(malformed(r, "data after the end of the CMS structure"));
    }
    Ok(())
}

/// Verify a ContentInfo(SignedData) read from `r`. Attached content is written to `out` while
/// it is hashed (for opening bids); detached content is read from `detached`.
pub fn verify_stream<R: Read>(
    r: &mut BerReader<R>,
    detached: Option<&mut dyn Read>,
    out: &mut dyn Write,
    opts: &VerifyOptions,
) -> Result<VerifyReport> {
    let h = r.expect(Tag::SEQUENCE, "ContentInfo must be a SEQUENCE")?;
    r.enter(h)?;
    let ct = read_oid(r)?;
    if ct != oids::ID_SIGNED_DATA {
        return Err(CmsError::Invalid(format!(
            "expected SignedData, found content type {ct}"
        )));
    }
    let h = r.expect(Tag::context(0, true), "ContentInfo content must be [0]")?;
    r.enter(h)?;
    let h = r.expect(Tag::SEQUENCE, "SignedData must be a SEQUENCE")?;
    r.enter(h)?;
    let h = r.expect(Tag::INTEGER, "SignedData version")?;
    r.read_primitive(h, 4)?;

    // digestAlgorithms
    let h = r.expect(Tag::SET, "digestAlgorithms must be a SET")?;
    r.enter(h)?;
    let mut algs: Vec<Hash> = Vec::new();
    while !r.at_end()? {
        let a = spki::AlgorithmIdentifierOwned::from_der(&r.read_element_der()?)?;
        if let Some(h) = Hash::from_oid(&a.oid)
            && !algs.contains(&h)
        {
            algs.push(h);
        }
    }
    r.leave()?;
    if !algs.contains(&Hash::Sha256) {
        algs.push(Hash::Sha256);
    }
    let mut hashers: Vec<(Hash, Hasher)> = algs.iter().map(|h| (*h, Hasher::new(*h))).collect();

    // encapContentInfo
    let h = r.expect(Tag::SEQUENCE, "encapContentInfo must be a SEQUENCE")?;
    r.enter(h)?;
    let econtent_type = read_oid(r)?;
    let mut content_len = 0u64;
    let mut buf = vec![0u8; IO_CHUNK];
    let mut feed = |data: &[u8], hashers: &mut Vec<(Hash, Hasher)>| -> Result<()> {
        for (_, h) in hashers.iter_mut() {
            h.update(data);
        }
        out.write_all(data)?;
        Ok(())
    };
    if !r.at_end()? {
        let h = r.expect(Tag::context(0, true), "eContent must be [0] EXPLICIT")?;
        r.enter(h)?;
        let oh = r.expect(Tag::OCTET_STRING, "eContent must be an OCTET STRING")?;
        let mut os = r.octet_string(oh)?;
        loop {
            let n = os.read(&mut buf).map_err(super::ber::from_io)?;
            if n == 0 {
                break;
            }
            content_len += n as u64;
            feed(&buf[..n], &mut hashers)?;
        }
        r.leave()?;
        if detached.is_some() {
            return Err(CmsError::Invalid(
                "content given, but the signature already contains its content".into(),
            ));
        }
    } else {
        let Some(d) = detached else {
            return Err(CmsError::Invalid(
                "detached signature: the signed content file is needed".into(),
            ));
        };
        loop {
            let n = d.read(&mut buf)?;
            if n == 0 {
                break;
            }
            content_len += n as u64;
            feed(&buf[..n], &mut hashers)?;
        }
    }
    r.leave()?;
    let digests: Vec<(Hash, Vec<u8>)> = hashers.into_iter().map(|(a, h)| (a, h.finish())).collect();

    // certificates [0] IMPLICIT, crls [1] IMPLICIT
    let mut certs: Vec<Certificate> = Vec::new();
    loop {
        let h = r.peek_header()?;
        if h.tag == Tag::context(0, true) {
            r.read_header()?;
            r.enter(h)?;
            while !r.at_end()? {
                let e = r.read_element_der()?;
                if e.first() == Some(&0x30)
                    && let Ok(c) = Certificate::from_der(&e)
                {
                    certs.push(c);
                }
            }
            r.leave()?;
        } else if h.tag == Tag::context(1, true) {
            r.skip_element()?;
        } else {
            break;
        }
    }

    // signerInfos
    let h = r.expect(Tag::SET, "signerInfos must be a SET")?;
    r.enter(h)?;
    let mut signers = Vec::new();
    while !r.at_end()? {
        let der = r.read_element_der()?;
        signers.push(check_signer(&der, econtent_type, &digests, &certs, opts));
    }
    r.leave()?;
    r.leave()?; // SignedData
    r.leave()?; // [0]
    r.leave()?; // ContentInfo
    if signers.is_empty() {
        return Err(CmsError::Invalid("SignedData has no signers".into()));
    }
    let content_sha256 = digests
        .iter()
        .find(|(a, _)| *a == Hash::Sha256)
        .map(|(_, d)| hex::encode(d))
        .unwrap_or_default();
    Ok(VerifyReport {
        content_len,
        content_sha256,
        signers,
    })
}

/// The raw `[0] IMPLICIT SignedAttributes` of a DER SignerInfo, re-tagged as SET (0x31): the
/// exact octets the signature covers (RFC 5652 §5.4).
fn raw_signed_attrs(signer_info: &[u8]) -> Result<Option<Vec<u8>>> {
    let mut r = BerReader::new(signer_info);
    let h = r.expect(Tag::SEQUENCE, "SignerInfo")?;
    r.enter(h)?;
    for _ in 0..3 {
        r.skip_element()?; // version, sid, digestAlgorithm
    }
    if r.peek_header()?.tag == Tag::context(0, true) {
        let mut v = r.read_element_der()?;
        v[0] = 0x31;
        return Ok(Some(v));
    }
    Ok(None)
}

fn check_signer(
    der: &[u8],
    econtent_type: const_oid::ObjectIdentifier,
    digests: &[(Hash, Vec<u8>)],
    certs: &[Certificate],
    opts: &VerifyOptions,
) -> SignerReport {
    let mut rep = SignerReport {
        subject: None,
        signer_id: String::new(),
        signing_time: None,
        digest_matches: false,
        signature_valid: false,
        chain: None,
        errors: Vec::new(),
    };
    let si = match SignerInfo::from_der(der) {
        Ok(s) => s,
        Err(e) => {
            rep.errors.push(format!("unreadable SignerInfo: {e}"));
            return rep;
        }
    };
    let signer = match &si.sid {
        cms::signed_data::SignerIdentifier::IssuerAndSerialNumber(ias) => {
            rep.signer_id = cert::describe_issuer_serial(&ias.issuer, ias.serial_number.as_bytes());
            certs.iter().find(|c| {
                c.tbs_certificate.issuer == ias.issuer
                    && c.tbs_certificate.serial_number == ias.serial_number
            })
        }
        cms::signed_data::SignerIdentifier::SubjectKeyIdentifier(ski) => {
            rep.signer_id = format!("subjectKeyIdentifier {}", hex::encode(ski.0.as_bytes()));
            certs
                .iter()
                .find(|c| cert::subject_key_id(c).as_deref() == Some(ski.0.as_bytes()))
        }
    };
    let Some(signer) = signer else {
        rep.errors
            .push("signer certificate is not included in the SignedData".into());
        return rep;
    };
    rep.subject = Some(cert::subject(signer));
    let Some(hash) = Hash::from_oid(&si.digest_alg.oid) else {
        rep.errors
            .push(format!("unsupported digest {}", si.digest_alg.oid));
        return rep;
    };
    let Some((_, content_digest)) = digests.iter().find(|(a, _)| *a == hash) else {
        rep.errors
            .push("digest algorithm not announced in digestAlgorithms".into());
        return rep;
    };
    let key = match PublicKey::from_cert(signer) {
        Ok(k) => k,
        Err(e) => {
            rep.errors.push(e.to_string());
            return rep;
        }
    };
    let mut signing_time = None;
    let message: Vec<u8> = match (&si.signed_attrs, raw_signed_attrs(der)) {
        (Some(attrs), Ok(Some(raw))) => {
            let mut md_ok = false;
            let mut ct_ok = false;
            for a in attrs.iter() {
                let Some(v) = a.values.get(0) else { continue };
                if a.oid == oids::ATTR_MESSAGE_DIGEST {
                    md_ok = a.values.len() == 1
                        && v.decode_as::<der::asn1::OctetString>()
                            .is_ok_and(|o| o.as_bytes() == content_digest.as_slice());
                } else if a.oid == oids::ATTR_CONTENT_TYPE {
                    ct_ok = v
                        .decode_as::<const_oid::ObjectIdentifier>()
                        .is_ok_and(|o| o == econtent_type);
                } else if a.oid == oids::ATTR_SIGNING_TIME {
                    let t = v
                        .to_der()
                        .ok()
                        .and_then(|d| x509_cert::time::Time::from_der(&d).ok());
                    if let Some(t) = t {
                        signing_time = Some(t.to_system_time());
                    }
                }
            }
            rep.digest_matches = md_ok;
            if !md_ok {
                rep.errors
                    .push("message digest does not match the content".into());
            }
            if !ct_ok {
                rep.errors
                    .push("content-type attribute missing or wrong".into());
            }
            raw
        }
        (None, _) => {
            // No signed attributes: the signature is over the content digest itself; only
            // meaningful for the content digest algorithm.
            rep.digest_matches = true;
            rep.errors
                .push("no signed attributes (signature covers the content only; not CAdES)".into());
            Vec::new()
        }
        (Some(_), _) => {
            rep.errors.push("cannot locate signed attributes".into());
            return rep;
        }
    };
    rep.signing_time = signing_time.map(rfc3339);
    let sig = si.signature.as_bytes();
    let verified = if si.signed_attrs.is_some() {
        cert::verify_signature(&key, &si.signature_algorithm, Some(hash), &message, sig)
    } else {
        verify_over_digest(&key, hash, content_digest, sig)
    };
    match verified {
        Ok(()) => rep.signature_valid = true,
        Err(e) => rep.errors.push(e),
    }
    let anchors: Vec<Certificate> = opts
        .anchors
        .iter()
        .filter_map(|d| Certificate::from_der(d).ok())
        .collect();
    let mut pool: Vec<Certificate> = certs.to_vec();
    pool.extend(
        opts.intermediates
            .iter()
            .filter_map(|d| Certificate::from_der(d).ok()),
    );
    let at = opts.at.or(signing_time).unwrap_or_else(SystemTime::now);
    let report = chain::validate(signer, &pool, &anchors, at);
    rep.errors.extend(report.problems.iter().cloned());
    rep.chain = Some(report);
    rep
}

fn verify_over_digest(
    key: &PublicKey,
    hash: Hash,
    digest: &[u8],
    sig: &[u8],
) -> std::result::Result<(), String> {
    match (key, hash) {
        (PublicKey::Rsa(k), Hash::Sha256) => k
            .verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), digest, sig)
            .map_err(|_| "RSA signature does not verify".into()),
        _ => Err("signatures without signed attributes are only supported for RSA/SHA-256".into()),
    }
}

/// RFC 3339 UTC for reports.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
