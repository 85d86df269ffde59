//! SignedData (RFC 5652 §5) with CAdES-BES signed attributes (ETSI EN 319 122-1 §5.2:
//! content-type, message-digest, signing-time, signing-certificate-v2 per RFC 5035), written
//! as definite-length DER in one streaming pass over the content.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::time::SystemTime;

use der::Encode;
use sha2::Digest;
use x509_cert::Certificate;

use super::cert::{self, KU_DIGITAL_SIGNATURE, KU_NON_REPUDIATION, PublicKey};
use super::derw::{self, CTX0_CONS, OCTET_STRING, SEQUENCE, SET};
use super::error::{CmsError, Result};
use super::keys::{DigestAlgorithm, SigningKey};
use super::oids;

/// How to sign.
#[derive(Debug, Clone, Default)]
pub struct SignOptions {
    /// Digest algorithm (SHA-256 by default).
    pub digest: DigestAlgorithm,
    /// Leave the content out of the SignedData (a `.p7s` next to the file).
    pub detached: bool,
    /// Signing time to claim; `None` means now.
    pub signing_time: Option<SystemTime>,
}

pub(crate) const IO_CHUNK: usize = 1 << 20;

/// A running digest of the content.
pub(crate) struct ContentHasher(super::cert::Hasher);

impl ContentHasher {
    pub(crate) fn new(alg: DigestAlgorithm) -> Self {
        let h = match alg {
            DigestAlgorithm::Sha256 => cert::Hash::Sha256,
            DigestAlgorithm::Sha384 => cert::Hash::Sha384,
            DigestAlgorithm::Sha512 => cert::Hash::Sha512,
        };
        ContentHasher(cert::Hasher::new(h))
    }
    pub(crate) fn update(&mut self, d: &[u8]) {
        self.0.update(d)
    }
    pub(crate) fn finish(self) -> Vec<u8> {
        self.0.finish()
    }
}

/// Hash a whole stream; returns (digest, length).
pub(crate) fn hash_stream(alg: DigestAlgorithm, mut r: impl Read) -> Result<(Vec<u8>, u64)> {
    let mut h = ContentHasher::new(alg);
    let mut buf = vec![0u8; IO_CHUNK];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((h.finish(), n))
}

fn digest_oid(d: DigestAlgorithm) -> const_oid::ObjectIdentifier {
    match d {
        DigestAlgorithm::Sha256 => oids::SHA256,
        DigestAlgorithm::Sha384 => oids::SHA384,
        DigestAlgorithm::Sha512 => oids::SHA512,
    }
}

/// Refuse a signer whose certificate is out of its validity period or whose key usage forbids
/// signing (DESIGN.md "Security model").
pub(crate) fn check_signer(c: &Certificate, at: SystemTime) -> Result<()> {
    let v = &c.tbs_certificate.validity;
    if at < v.not_before.to_system_time() {
        return Err(CmsError::SignerUnusable(format!(
            "certificate of {} is not valid before {}",
            cert::subject(c),
            v.not_before
        )));
    }
    if at > v.not_after.to_system_time() {
        return Err(CmsError::SignerUnusable(format!(
            "certificate of {} expired on {}",
            cert::subject(c),
            v.not_after
        )));
    }
    if let Some(ku) = cert::key_usage(c)
        && ku & (KU_DIGITAL_SIGNATURE | KU_NON_REPUDIATION) == 0
    {
        return Err(CmsError::SignerUnusable(format!(
            "key usage of {} is {}, which does not allow signing",
            cert::subject(c),
            cert::key_usage_names(ku)
        )));
    }
    Ok(())
}

fn time_der(t: SystemTime) -> Result<Vec<u8>> {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|_| CmsError::Invalid("signing time before 1970".into()))?
        .as_secs();
    let dt = time::OffsetDateTime::from_unix_timestamp(secs as i64)
        .map_err(|_| CmsError::Invalid("signing time out of range".into()))?;
    // RFC 5652 §11.3: UTCTime for 1950..2049, GeneralizedTime otherwise.
    let (tag, s) = if (1950..2050).contains(&dt.year()) {
        (
            0x17,
            format!(
                "{:02}{:02}{:02}{:02}{:02}{:02}Z",
                dt.year() % 100,
                u8::from(dt.month()),
                dt.day(),
                dt.hour(),
                dt.minute(),
                dt.second()
            ),
        )
    } else {
        (
            0x18,
            format!(
                "{:04}{:02}{:02}{:02}{:02}{:02}Z",
                dt.year(),
                u8::from(dt.month()),
                dt.day(),
                dt.hour(),
                dt.minute(),
                dt.second()
            ),
        )
    };
    Ok(derw::tlv(tag, s.as_bytes()))
}

fn attribute(oid: &const_oid::ObjectIdentifier, value: &[u8]) -> Vec<u8> {
    derw::tlv_parts(SEQUENCE, &[&derw::oid(oid), &derw::tlv(SET, value)])
}

/// The DER `SET OF Attribute` that is signed (RFC 5652 §5.4: the signature covers the SET
/// encoding; it is stored with an IMPLICIT [0] tag).
pub(crate) fn signed_attributes(
    signer: &Certificate,
    signer_der: &[u8],
    digest: &[u8],
    at: SystemTime,
) -> Result<Vec<u8>> {
    let issuer = signer.tbs_certificate.issuer.to_der()?;
    let serial = signer.tbs_certificate.serial_number.to_der()?;
    // ESSCertIDv2 with the default hash (SHA-256, so hashAlgorithm is omitted) and
    // IssuerSerial { GeneralNames { directoryName [4] EXPLICIT Name }, serial }.
    let general_names = derw::tlv(SEQUENCE, &derw::tlv(0xA4, &issuer));
    let issuer_serial = derw::tlv_parts(SEQUENCE, &[&general_names, &serial]);
    let cert_hash = derw::tlv(OCTET_STRING, &sha2::Sha256::digest(signer_der));
    let ess = derw::tlv_parts(SEQUENCE, &[&cert_hash, &issuer_serial]);
    let signing_cert_v2 = derw::tlv(SEQUENCE, &derw::tlv(SEQUENCE, &ess));
    let mut attrs = vec![
        attribute(&oids::ATTR_CONTENT_TYPE, &derw::oid(&oids::ID_DATA)),
        attribute(&oids::ATTR_SIGNING_TIME, &time_der(at)?),
        attribute(&oids::ATTR_MESSAGE_DIGEST, &derw::tlv(OCTET_STRING, digest)),
        attribute(&oids::ATTR_SIGNING_CERT_V2, &signing_cert_v2),
    ];
    derw::sort_set(&mut attrs);
    Ok(derw::tlv(SET, &attrs.concat()))
}

/// A signer ready to produce a SignedData around content of known length: everything but the
/// signed attributes and the signature is fixed at construction.
pub(crate) struct Signer<'k> {
    key: &'k dyn SigningKey,
    opts: SignOptions,
    at: SystemTime,
    signer: Certificate,
    signer_der: Vec<u8>,
    sig_alg: Vec<u8>,
    digest_alg: Vec<u8>,
    /// `[0] IMPLICIT CertificateSet` (signer and chain).
    certs: Vec<u8>,
    /// RSA: the signature is exactly the modulus length; ECDSA signatures vary in length.
    fixed_signature_len: Option<usize>,
}

impl<'k> Signer<'k> {
    pub(crate) fn new(key: &'k dyn SigningKey, opts: &SignOptions) -> Result<Self> {
        let at = opts.signing_time.unwrap_or_else(SystemTime::now);
        let signer_der = key.certificate_der().to_vec();
        let signer = cert::parse(&signer_der)?;
        check_signer(&signer, at)?;
        let spki = &signer.tbs_certificate.subject_public_key_info;
        let (sig_alg, fixed_signature_len) = if spki.algorithm.oid == oids::RSA_ENCRYPTION {
            let PublicKey::Rsa(k) = PublicKey::from_cert(&signer)? else {
                return Err(CmsError::SignerUnusable("RSA key expected".into()));
            };
            (
                derw::alg_id_null(&oids::RSA_ENCRYPTION),
                Some(rsa::traits::PublicKeyParts::size(&k)),
            )
        } else if spki.algorithm.oid == oids::EC_PUBLIC_KEY {
            let alg = derw::alg_id(&match opts.digest {
                DigestAlgorithm::Sha256 => oids::ECDSA_SHA256,
                DigestAlgorithm::Sha384 => oids::ECDSA_SHA384,
                DigestAlgorithm::Sha512 => oids::ECDSA_SHA512,
            });
            (alg, None)
        } else {
            return Err(CmsError::SignerUnusable(format!(
                "unsupported signer key algorithm {}",
                spki.algorithm.oid
            )));
        };
        let mut certs = vec![signer_der.clone()];
        for c in key.chain_der() {
            if !certs.contains(&c) {
                certs.push(c);
            }
        }
        derw::sort_set(&mut certs);
        Ok(Signer {
            key,
            opts: opts.clone(),
            at,
            signer,
            signer_der,
            sig_alg,
            digest_alg: derw::alg_id(&digest_oid(opts.digest)),
            certs: derw::tlv(CTX0_CONS, &certs.concat()),
            fixed_signature_len,
        })
    }

    /// The suffix's length before signing, when the signature length is fixed (RSA).
    pub(crate) fn suffix_len_before_signing(&self) -> Result<Option<usize>> {
        let Some(n) = self.fixed_signature_len else {
            return Ok(None);
        };
        let dummy_digest = vec![0u8; self.opts.digest.output_len()];
        Ok(Some(self.suffix_with(&dummy_digest, &vec![0u8; n])?.len()))
    }

    fn suffix_with(&self, digest: &[u8], signature: &[u8]) -> Result<Vec<u8>> {
        let mut attrs = signed_attributes(&self.signer, &self.signer_der, digest, self.at)?;
        attrs[0] = CTX0_CONS;
        let signer_info = derw::tlv_parts(
            SEQUENCE,
            &[
                &derw::small_int(1),
                &cert::issuer_and_serial(&self.signer)?,
                &self.digest_alg,
                &attrs,
                &self.sig_alg,
                &derw::tlv(OCTET_STRING, signature),
            ],
        );
        let mut suffix = self.certs.clone();
        suffix.extend_from_slice(&derw::tlv(SET, &signer_info));
        Ok(suffix)
    }

    /// Sign the content digest (one key operation): the suffix (certificates and SignerInfo).
    pub(crate) fn sign(&self, digest: &[u8]) -> Result<Vec<u8>> {
        let attrs = signed_attributes(&self.signer, &self.signer_der, digest, self.at)?;
        let attrs_digest = self.opts.digest.digest(&attrs);
        let mut signature = self.key.sign_digest(self.opts.digest, &attrs_digest)?;
        if let Some(n) = self.fixed_signature_len {
            // An RSA signature is an octet string of exactly the modulus length (RFC 8017 §8.2.1).
            if signature.len() > n {
                return Err(CmsError::SignerUnusable(format!(
                    "the key returned a {}-octet signature for a {n}-octet modulus",
                    signature.len()
                )));
            }
            let mut padded = vec![0u8; n - signature.len()];
            padded.append(&mut signature);
            signature = padded;
        }
        self.suffix_with(digest, &signature)
    }

    /// Everything before the content, for a suffix of `suffix_len` octets.
    pub(crate) fn prefix(&self, content_len: u64, suffix_len: usize) -> Vec<u8> {
        let version = derw::small_int(1);
        let digest_algs = derw::tlv(SET, &self.digest_alg);
        let data_oid = derw::oid(&oids::ID_DATA);
        let detached = self.opts.detached;
        // encapContentInfo (header and eContent wrappers only; the content follows).
        let encap_head = if detached {
            derw::tlv(SEQUENCE, &data_oid)
        } else {
            let octets_head = derw::header(OCTET_STRING, content_len);
            let explicit_len = octets_head.len() as u64 + content_len;
            let explicit_head = derw::header(CTX0_CONS, explicit_len);
            let encap_len = data_oid.len() as u64 + explicit_head.len() as u64 + explicit_len;
            [
                derw::header(SEQUENCE, encap_len),
                data_oid,
                explicit_head,
                octets_head,
            ]
            .concat()
        };
        let content_part = if detached { 0 } else { content_len };
        let sd_len = (version.len() + digest_algs.len() + encap_head.len() + suffix_len) as u64
            + content_part;
        let sd_head = derw::header(SEQUENCE, sd_len);
        let explicit_len = sd_head.len() as u64 + sd_len;
        let ci_oid = derw::oid(&oids::ID_SIGNED_DATA);
        let ci_explicit = derw::header(CTX0_CONS, explicit_len);
        let ci_len = ci_oid.len() as u64 + ci_explicit.len() as u64 + explicit_len;
        [
            derw::header(SEQUENCE, ci_len),
            ci_oid,
            ci_explicit,
            sd_head,
            version,
            digest_algs,
            encap_head,
        ]
        .concat()
    }
}

/// Copy exactly `len` octets from `src` to `dst`, optionally hashing them.
pub(crate) fn copy_exact(
    mut src: impl Read,
    dst: &mut impl Write,
    len: u64,
    mut hasher: Option<&mut ContentHasher>,
) -> Result<()> {
    let mut buf = vec![0u8; IO_CHUNK];
    let mut left = len;
    while left > 0 {
        let want = usize::try_from(left.min(IO_CHUNK as u64)).unwrap_or(IO_CHUNK);
        let n = src.read(&mut buf[..want])?;
        if n == 0 {
            return Err(CmsError::Invalid(
                "input file shrank while being signed".into(),
            ));
        }
        if let Some(h) = hasher.as_deref_mut() {
            h.update(&buf[..n]);
        }
        dst.write_all(&buf[..n])?;
        left -= n as u64;
    }
    if src.read(&mut buf[..1])? != 0 {
        return Err(CmsError::Invalid(
            "input file grew while being signed".into(),
        ));
    }
    Ok(())
}

/// Sign `input` into `output` (DER). Written to a temporary file next to `output` and renamed
/// once complete; nothing is left behind on error.
pub fn sign_file(
    key: &dyn SigningKey,
    input: &Path,
    output: &Path,
    opts: &SignOptions,
) -> Result<()> {
    let (digest, len) = hash_stream(opts.digest, BufReader::new(File::open(input)?))?;
    let signer = Signer::new(key, opts)?;
    let suffix = signer.sign(&digest)?;
    let prefix = signer.prefix(len, suffix.len());
    let tmp = super::fsx::temp_beside(output)?;
    let mut w = BufWriter::with_capacity(IO_CHUNK, tmp.as_file());
    w.write_all(&prefix)?;
    if !opts.detached {
        // Hash again while copying: the signature must match the bytes written.
        let mut h = ContentHasher::new(opts.digest);
        copy_exact(File::open(input)?, &mut w, len, Some(&mut h))?;
        if h.finish() != digest {
            return Err(CmsError::Invalid(
                "input file changed while being signed".into(),
            ));
        }
    }
    w.write_all(&suffix)?;
    w.flush()?;
    drop(w);
    super::fsx::persist(tmp, output)
}
