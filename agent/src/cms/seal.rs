//! Sealing a bid: sign, then encrypt to the committee (DESIGN.md "Sealed bids").
//!
//! The SignedData is never stored: its DER size is known up front, so the outer
//! AuthEnvelopedData/EnvelopedData is written with definite lengths directly, in constant memory.
//! With an RSA signer the signature's length is the modulus length, so one pass over the input
//! suffices (hash and encrypt together, sign at the end); an ECDSA signature's length varies, so
//! the input is hashed first and signed before the encrypting pass.
//!
//! Every byte written to the output also goes to a checker thread that parses it, decrypts it
//! under the content key still in memory, and verifies the inner signature and content digest
//! (the self-check) while sealing runs on the other core. The file is renamed into place only
//! when the check passed; the key is zeroized on drop.

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
    let signer = sign::Signer::new(signer, &sign_opts)?;
    // RSA: one pass, signed at the end. ECDSA: hash and sign first (the length must be known).
    let (presigned, len, suffix_len) = match signer.suffix_len_before_signing()? {
        Some(n) => (None, std::fs::metadata(input)?.len(), n),
        None => {
            let (digest, len) = sign::hash_stream(
                sign_opts.digest,
                BufReader::with_capacity(IO_CHUNK, File::open(input)?),
            )?;
            let suffix = signer.sign(&digest)?;
            let n = suffix.len();
            (Some((digest, suffix)), len, n)
        }
    };
    let prefix = signer.prefix(len, suffix_len);
    let inner_len = prefix.len() as u64 + len + suffix_len as u64;

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
    let (written, checked) = std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
        let cek_ref: &[u8] = &cek;
        let checker = scope.spawn(move || {
            let mut r = BerReader::new(BufReader::with_capacity(
                IO_CHUNK,
                ChannelReader {
                    rx,
                    chunk: Vec::new(),
                    pos: 0,
                },
            ));
            open_stream(
                &mut r,
                CekSource::Known(cek_ref),
                &mut std::io::sink(),
                &VerifyOptions::default(),
            )
        });
        let written = (|| -> Result<Vec<u8>> {
            let tee = Tee {
                file: super::fsx::WritebackWriter::new(tmp.as_file(), tmp.as_file()),
                tx,
            };
            let mut w = BufWriter::with_capacity(IO_CHUNK, tee);
            w.write_all(&head)?;
            let mut enc = match opts.cipher {
                ContentCipher::Aes256Gcm => EncryptingWriter::gcm(&mut w, &cek, &iv)?,
                ContentCipher::Aes256Cbc => EncryptingWriter::cbc(&mut w, &cek, &iv)?,
            };
            enc.write_all(&prefix)?;
            let mut hasher = sign::ContentHasher::new(sign_opts.digest);
            sign::copy_exact(File::open(input)?, &mut enc, len, Some(&mut hasher))?;
            let digest = hasher.finish();
            let suffix = match &presigned {
                Some((signed_digest, suffix)) if *signed_digest == digest => suffix.clone(),
                Some(_) => {
                    return Err(CmsError::Invalid(
                        "input file changed while being sealed".into(),
                    ));
                }
                None => signer.sign(&digest)?,
            };
            if suffix.len() != suffix_len {
                return Err(CmsError::SelfCheck(format!(
                    "signature block of {} octets where {suffix_len} were laid out",
                    suffix.len()
                )));
            }
            enc.write_all(&suffix)?;
            let (w, tag) = enc.finish()?;
            if let Some(t) = tag {
                w.write_all(&derw::tlv(OCTET_STRING, &t))?;
            }
            w.flush()?;
            Ok(digest)
        })();
        // The writer (and with it the channel's sender) is gone: the checker sees the end.
        let checked = checker
            .join()
            .unwrap_or_else(|_| Err(CmsError::SelfCheck("the checker thread panicked".into())));
        (written, checked)
    });
    drop(cek);
    let digest = match (written, &checked) {
        (Ok(d), _) => d,
        // The checker stopped reading: its error explains the broken channel.
        (Err(CmsError::Io(e)), Err(c)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            return Err(CmsError::SelfCheck(c.to_string()));
        }
        (Err(e), _) => return Err(e),
    };
    let check = checked.map_err(|e| CmsError::SelfCheck(e.to_string()))?;
    let sealed_size = tmp.as_file().metadata()?.len();
    let expected = derw::tlv_size(total_len);
    if sealed_size != expected {
        return Err(CmsError::SelfCheck(format!(
            "sealed size {sealed_size} differs from the computed {expected}"
        )));
    }
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

/// The output file, with a copy of every write for the checker thread.
struct Tee<'f> {
    file: super::fsx::WritebackWriter<&'f File>,
    tx: std::sync::mpsc::SyncSender<Vec<u8>>,
}

impl Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write_all(buf)?;
        self.tx.send(buf.to_vec()).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the self-check stopped reading",
            )
        })?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// The checker's side: the written bytes, in order, until the writer is dropped.
struct ChannelReader {
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(next) => {
                    self.chunk = next;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
