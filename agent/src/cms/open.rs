//! Opening a sealed bid: AuthEnvelopedData (RFC 5083) or EnvelopedData (RFC 5652 §6), DER or
//! BER, decrypted in one streaming pass that also verifies the inner SignedData and writes the
//! content to a temporary file; renamed into place only when the tag (or padding), the structure
//! and the signature all check out.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use spki::AlgorithmIdentifierOwned;
use zeroize::Zeroizing;

use der::Decode;

use super::ber::{BerReader, Tag};
use super::cipher::{DecryptingReader, Decryptor};
use super::error::{CmsError, Result};
use super::keys::DecryptionKey;
use super::oids;
use super::recipient;
use super::sign::IO_CHUNK;
use super::verify::{self, VerifyOptions, VerifyReport, read_oid};

/// Where the content key comes from.
pub(crate) enum CekSource<'a> {
    Key(&'a dyn DecryptionKey),
    Known(&'a [u8]),
}

enum Cipher {
    Gcm {
        key_len: usize,
        nonce: Vec<u8>,
        icv_len: usize,
    },
    Cbc {
        key_len: usize,
        iv: Vec<u8>,
    },
}

fn content_cipher(alg: &AlgorithmIdentifierOwned, authenticated: bool) -> Result<Cipher> {
    let key_len = match alg.oid {
        oids::AES128_GCM | oids::AES128_CBC => 16,
        oids::AES192_GCM | oids::AES192_CBC => 24,
        oids::AES256_GCM | oids::AES256_CBC => 32,
        o => {
            return Err(CmsError::UnsupportedAlgorithm(format!(
                "content encryption {o}"
            )));
        }
    };
    let gcm = matches!(
        alg.oid,
        oids::AES128_GCM | oids::AES192_GCM | oids::AES256_GCM
    );
    if gcm != authenticated {
        return Err(CmsError::Invalid(
            "GCM belongs in AuthEnvelopedData, CBC in EnvelopedData".into(),
        ));
    }
    let params = alg
        .parameters
        .as_ref()
        .ok_or_else(|| CmsError::Invalid("content encryption parameters missing".into()))?;
    if gcm {
        // GCMParameters ::= SEQUENCE { aes-nonce OCTET STRING, aes-ICVlen INTEGER DEFAULT 12 }
        #[derive(der::Sequence)]
        struct GcmParameters {
            nonce: der::asn1::OctetString,
            #[asn1(default = "default_icv")]
            icv_len: u8,
        }
        fn default_icv() -> u8 {
            12
        }
        let p: GcmParameters = params.decode_as()?;
        Ok(Cipher::Gcm {
            key_len,
            nonce: p.nonce.as_bytes().to_vec(),
            icv_len: usize::from(p.icv_len),
        })
    } else {
        let iv: der::asn1::OctetString = params.decode_as()?;
        Ok(Cipher::Cbc {
            key_len,
            iv: iv.as_bytes().to_vec(),
        })
    }
}

/// Parse, decrypt and verify a sealed stream; the content goes to `out`.
pub(crate) fn open_stream<R: Read>(
    r: &mut BerReader<R>,
    cek_source: CekSource<'_>,
    out: &mut dyn Write,
    opts: &VerifyOptions,
) -> Result<VerifyReport> {
    let h = r.expect(Tag::SEQUENCE, "ContentInfo must be a SEQUENCE")?;
    r.enter(h)?;
    let ct = read_oid(r)?;
    let authenticated = if ct == oids::ID_AUTH_ENVELOPED_DATA {
        true
    } else if ct == oids::ID_ENVELOPED_DATA {
        false
    } else {
        return Err(CmsError::Invalid(format!(
            "not an encrypted bid (content type {ct})"
        )));
    };
    let h = r.expect(Tag::context(0, true), "ContentInfo content must be [0]")?;
    r.enter(h)?;
    let h = r.expect(Tag::SEQUENCE, "EnvelopedData must be a SEQUENCE")?;
    r.enter(h)?;
    let h = r.expect(Tag::INTEGER, "version")?;
    let version = r.read_primitive(h, 4)?;
    // RFC 5083 §2.1: AuthEnvelopedData version 0; RFC 5652 §6.1: EnvelopedData 0, 2, 3 or 4.
    let version_ok = match version.as_slice() {
        [0] => true,
        [2..=4] => !authenticated,
        _ => false,
    };
    if !version_ok {
        return Err(CmsError::Invalid(format!(
            "unexpected version {version:?} of the encrypted envelope"
        )));
    }
    if r.peek_header()?.tag == Tag::context(0, true) {
        r.skip_element()?; // originatorInfo
    }
    let h = r.expect(Tag::SET, "recipientInfos must be a SET")?;
    r.enter(h)?;
    let mut infos = Vec::new();
    while !r.at_end()? {
        if infos.len() >= 1024 {
            return Err(CmsError::Invalid("too many recipients".into()));
        }
        infos.push(r.read_element_der()?);
    }
    r.leave()?;

    let h = r.expect(Tag::SEQUENCE, "encryptedContentInfo must be a SEQUENCE")?;
    r.enter(h)?;
    let inner_type = read_oid(r)?;
    if inner_type != oids::ID_DATA {
        return Err(CmsError::UnsupportedAlgorithm(format!(
            "encrypted content type {inner_type} (expected id-data holding a SignedData)"
        )));
    }
    let alg = AlgorithmIdentifierOwned::from_der(&r.read_element_der()?)?;
    let cipher = content_cipher(&alg, authenticated)?;
    let key_len = match &cipher {
        Cipher::Gcm { key_len, .. } | Cipher::Cbc { key_len, .. } => *key_len,
    };
    let cek: Zeroizing<Vec<u8>> = match cek_source {
        CekSource::Key(k) => recipient::unwrap_cek(&infos, k, key_len)?,
        CekSource::Known(c) => Zeroizing::new(c.to_vec()),
    };
    let (decryptor, icv_len) = match &cipher {
        Cipher::Gcm { nonce, icv_len, .. } => (Decryptor::gcm(&cek, nonce)?, *icv_len),
        Cipher::Cbc { iv, .. } => (Decryptor::cbc(&cek, iv)?, 0),
    };
    drop(cek);
    let h = r.read_header()?;
    if !h.tag.same_type(Tag::context(0, false)) {
        return Err(CmsError::Invalid(
            "encrypted content is missing (detached encrypted content is not supported)".into(),
        ));
    }
    let os = r.octet_string(h)?;
    let mut inner = BerReader::new(DecryptingReader::new(os, decryptor));
    let verified = verify::verify_stream(&mut inner, None, out, opts)
        .and_then(|rep| verify::expect_eof(&mut inner).map(|_| rep));
    let (_, decryptor) = match (inner.into_inner().drain_into_parts(), &verified) {
        (Ok(parts), _) => parts,
        (Err(e), Err(_)) => return Err(e),
        (Err(e), Ok(_)) => return Err(e),
    };
    r.leave()?; // encryptedContentInfo
    let tag_result = if authenticated {
        if r.peek_header()?.tag == Tag::context(1, true) {
            return Err(CmsError::UnsupportedAlgorithm(
                "AuthEnvelopedData with authenticated attributes".into(),
            ));
        }
        let h = r.expect(Tag::OCTET_STRING, "mac must be an OCTET STRING")?;
        let mac = r.read_primitive(h, 16)?;
        if mac.len() != icv_len {
            return Err(CmsError::Tampered("MAC length differs from aes-ICVlen"));
        }
        match decryptor {
            Decryptor::Gcm(g) => g.verify(&mac),
            Decryptor::Cbc(_) => Err(CmsError::Invalid("cipher mismatch".into())),
        }
    } else {
        Ok(())
    };
    // A failed tag explains any inner parse error: report the tampering.
    tag_result?;
    let report = verified?;
    while !r.at_end()? {
        r.skip_element()?; // unprotectedAttrs / unauthAttrs
    }
    r.leave()?;
    r.leave()?;
    r.leave()?;
    verify::expect_eof(r)?;
    Ok(report)
}

/// Write buffer for the opened plaintext (see [`open_reader`]).
const OUT_BUF: usize = 64 * 1024;

/// The plaintext's name for a sealed file: the name without `.p7m` (else `NAME.opened`).
pub fn output_name(input: &Path) -> Result<String> {
    let name = input
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| CmsError::Invalid("input file name".into()))?;
    let stem = name
        .strip_suffix(".p7m")
        .or_else(|| name.strip_suffix(".P7M"))
        .unwrap_or(name);
    if stem.is_empty() || stem == name {
        return Ok(format!("{name}.opened"));
    }
    Ok(stem.to_string())
}

/// Open one sealed bid into `out_dir` (plaintext named after the input without `.p7m`).
/// Returns the verification report and the output path; on error nothing is written.
pub fn open_file(
    key: &dyn DecryptionKey,
    input: &Path,
    out_dir: &Path,
    opts: &VerifyOptions,
) -> Result<(VerifyReport, PathBuf)> {
    open_reader(key, File::open(input)?, input, out_dir, opts)
}

/// [`open_file`] reading the sealed bytes from `reader` (e.g. one that counts progress);
/// `input` names the bid for the output name. An existing plaintext is never replaced.
pub fn open_reader<R: Read>(
    key: &dyn DecryptionKey,
    reader: R,
    input: &Path,
    out_dir: &Path,
    opts: &VerifyOptions,
) -> Result<(VerifyReport, PathBuf)> {
    let dest = out_dir.join(output_name(input)?);
    if dest.exists() {
        return Err(CmsError::Io(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} already exists; it is not replaced", dest.display()),
        )));
    }
    let tmp = super::fsx::temp_beside(&dest)?;
    let mut r = BerReader::new(BufReader::with_capacity(IO_CHUNK, reader));
    // Small buffer on purpose: the plaintext arrives in pieces of up to 256 KiB, which a
    // `BufWriter` smaller than that passes straight to the file (one copy less per octet);
    // only small pieces (BER chunks of a streamed bid) are gathered.
    let mut w = BufWriter::with_capacity(
        OUT_BUF,
        super::fsx::WritebackWriter::new(tmp.as_file(), tmp.as_file()),
    );
    let report = open_stream(&mut r, CekSource::Key(key), &mut w, opts)?;
    w.flush()?;
    drop(w);
    if !report.signatures_valid() {
        let why = report
            .signers
            .iter()
            .flat_map(|s| s.errors.iter().cloned())
            .collect::<Vec<_>>()
            .join("; ");
        return Err(CmsError::BadSignature(why));
    }
    super::fsx::persist_new(tmp, &dest)?;
    Ok((report, dest))
}
