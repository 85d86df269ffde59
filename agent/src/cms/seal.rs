//! Sealing a bid: sign, then encrypt to the committee (DESIGN.md "Sealed bids").
//!
//! Two passes over the input (hash; then SignedData → AES → file), in constant memory. The
//! SignedData is never stored: its DER size is known up front (`sign::prepare`), so the outer
//! AuthEnvelopedData/EnvelopedData is written with definite lengths directly. The output is
//! then re-read and checked (structure, decryption under the content key still in memory, inner
//! signature, content digest) before it is renamed into place; the key is zeroized on drop.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

use serde::Serialize;

use super::ber::BerReader;
use super::cipher::{ContentCipher, EncryptingWriter};
use super::derw::{self, CTX0_CONS, OCTET_STRING, SEQUENCE, SET};
use super::error::{CmsError, Result};
use super::keys::{DigestAlgorithm, SigningKey};
use super::oids;
use super::open::{CekSource, open_stream};
use super::recipient::{Recipient, RsaPadding, random_bytes};
use super::sign::{self, IO_CHUNK, SignOptions};
use super::verify::VerifyOptions;

/// How to seal.
#[derive(Debug, Clone, Default)]
pub struct SealOptions {
    /// Inner signature options (`detached` is ignored: the bid always carries its content).
    pub sign: SignOptions,
    /// AES-256-GCM (default) or AES-256-CBC.
    pub cipher: ContentCipher,
    /// RSA recipients: OAEP-SHA256 (default) or PKCS#1 v1.5.
    pub rsa_padding: RsaPadding,
}

/// What was sealed.
#[derive(Debug, Clone, Serialize)]
pub struct SealReport {
    /// Output file.
    pub output: String,
    /// Size of the sealed file.
    pub sealed_size: u64,
    /// Size of the bid.
    pub content_len: u64,
    /// SHA-256 of the bid (hex).
    pub content_sha256: String,
    /// Recipient subjects.
    pub recipients: Vec<String>,
}

/// Sign `input` with `signer` and encrypt it to `recipients` into `output` (`.p7m`).
pub fn seal_file(
    signer: &dyn SigningKey,
    recipients: &[Recipient],
    input: &Path,
    output: &Path,
    opts: &SealOptions,
) -> Result<SealReport> {
    if recipients.is_empty() {
        return Err(CmsError::Invalid("no recipients to seal to".into()));
    }
    let mut sign_opts = opts.sign.clone();
    sign_opts.detached = false;
    let (digest, len) = sign::hash_stream(
        sign_opts.digest,
        BufReader::with_capacity(IO_CHUNK, File::open(input)?),
    )?;
    let parts = sign::prepare(signer, &digest, len, &sign_opts)?;
    let inner_len = parts.total_len();

    let cek = random_bytes(32);
    let mut infos = recipients
        .iter()
        .map(|r| r.recipient_info(&cek, opts.rsa_padding))
        .collect::<Result<Vec<_>>>()?;
    derw::sort_set(&mut infos);
    let has_kari = infos.iter().any(|i| i.first() == Some(&0xA1));
    let recipient_infos = derw::tlv(SET, &infos.concat());

    let (alg, iv, version, ct_oid) = match opts.cipher {
        ContentCipher::Aes256Gcm => {
            let nonce = random_bytes(12);
            let params = derw::tlv_parts(
                SEQUENCE,
                &[&derw::tlv(OCTET_STRING, &nonce), &derw::small_int(16)],
            );
            let alg = derw::tlv_parts(SEQUENCE, &[&derw::oid(&oids::AES256_GCM), &params]);
            (alg, nonce, 0u8, oids::ID_AUTH_ENVELOPED_DATA)
        }
        ContentCipher::Aes256Cbc => {
            let iv = random_bytes(16);
            let alg = derw::tlv_parts(
                SEQUENCE,
                &[&derw::oid(&oids::AES256_CBC), &derw::tlv(OCTET_STRING, &iv)],
            );
            // RFC 5652 §6.1: version 2 when a RecipientInfo is not version 0 (kari is 3).
            (
                alg,
                iv,
                if has_kari { 2 } else { 0 },
                oids::ID_ENVELOPED_DATA,
            )
        }
    };
    let ct_len = EncryptingWriter::<Vec<u8>>::ciphertext_len(opts.cipher, inner_len);
    let data_oid = derw::oid(&oids::ID_DATA);
    let ec_head = derw::header(0x80, ct_len);
    let eci_len = (data_oid.len() + alg.len() + ec_head.len()) as u64 + ct_len;
    let eci_head = derw::header(SEQUENCE, eci_len);
    let version = derw::small_int(version);
    let mac = match opts.cipher {
        ContentCipher::Aes256Gcm => derw::header(OCTET_STRING, 16).len() as u64 + 16,
        ContentCipher::Aes256Cbc => 0,
    };
    let body_len = (version.len() + recipient_infos.len() + eci_head.len()) as u64 + eci_len + mac;
    let body_head = derw::header(SEQUENCE, body_len);
    let explicit_len = body_head.len() as u64 + body_len;
    let ci_oid = derw::oid(&ct_oid);
    let explicit_head = derw::header(CTX0_CONS, explicit_len);
    let total_len = (ci_oid.len() + explicit_head.len()) as u64 + explicit_len;
    let head = [
        derw::header(SEQUENCE, total_len),
        ci_oid,
        explicit_head,
        body_head,
        version,
        recipient_infos,
        eci_head,
        data_oid,
        alg,
        ec_head,
    ]
    .concat();

    let tmp = super::fsx::temp_beside(output)?;
    {
        let mut w = BufWriter::with_capacity(IO_CHUNK, tmp.as_file());
        w.write_all(&head)?;
        let mut enc = match opts.cipher {
            ContentCipher::Aes256Gcm => EncryptingWriter::gcm(&mut w, &cek, &iv)?,
            ContentCipher::Aes256Cbc => EncryptingWriter::cbc(&mut w, &cek, &iv)?,
        };
        enc.write_all(&parts.prefix)?;
        sign::copy_exact(
            File::open(input)?,
            &mut enc,
            len,
            None, // the self-check below re-hashes what was actually written
        )?;
        enc.write_all(&parts.suffix)?;
        let (w, tag) = enc.finish()?;
        if let Some(t) = tag {
            w.write_all(&derw::tlv(OCTET_STRING, &t))?;
        }
        w.flush()?;
    }
    let sealed_size = tmp.as_file().metadata()?.len();
    let expected = derw::tlv_size(total_len);
    if sealed_size != expected {
        return Err(CmsError::SelfCheck(format!(
            "sealed size {sealed_size} differs from the computed {expected}"
        )));
    }

    // Self-check: parse, decrypt with the content key, verify the inner signature and digest.
    let mut r = BerReader::new(BufReader::with_capacity(IO_CHUNK, File::open(tmp.path())?));
    let check = open_stream(
        &mut r,
        CekSource::Known(&cek),
        &mut std::io::sink(),
        &VerifyOptions::default(),
    )
    .map_err(|e| CmsError::SelfCheck(e.to_string()))?;
    drop(cek);
    let content_sha256 = check.content_sha256.clone();
    let same_digest = match sign_opts.digest {
        DigestAlgorithm::Sha256 => hex::encode(&digest) == content_sha256,
        _ => true, // the inner messageDigest check already compared the content
    };
    if !check.signatures_valid() || check.content_len != len || !same_digest {
        return Err(CmsError::SelfCheck(
            "the sealed content or its signature does not match the input (did the file change?)"
                .into(),
        ));
    }
    super::fsx::persist(tmp, output)?;
    Ok(SealReport {
        output: output.display().to_string(),
        sealed_size,
        content_len: len,
        content_sha256,
        recipients: recipients.iter().map(|r| r.subject()).collect(),
    })
}
