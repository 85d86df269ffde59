//! Streaming content encryption: AES-GCM (RFC 5084, for AuthEnvelopedData) and AES-CBC
//! (RFC 3565, for EnvelopedData), with AES key sizes 128/192/256.
//!
//! GCM streams through OpenSSL's EVP interface (the `aes-gcm` crate is one-shot, whole message
//! in memory; OpenSSL's stitched AES+GHASH is also the fastest GCM available). CBC uses the
//! RustCrypto `cbc`/`aes` crates (AES-NI when the CPU has it).

use std::io::{self, Read, Write};

use aes::{Aes128, Aes192, Aes256};
use cipher::inout::InOutBuf;
use cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use openssl::cipher::Cipher as OsslCipher;
use openssl::cipher_ctx::CipherCtx;

use super::error::{CmsError, Result};

use aes::cipher;

/// Content-encryption algorithm for sealing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContentCipher {
    /// AES-256-GCM in AuthEnvelopedData (RFC 5083/5084) — the default.
    #[default]
    Aes256Gcm,
    /// AES-256-CBC in EnvelopedData (RFC 3565), for recipients that need it.
    Aes256Cbc,
}

fn bad_key() -> CmsError {
    CmsError::Invalid("content-encryption key has the wrong length".into())
}

/// AES-GCM over a stream (no additional authenticated data: CMS AuthEnvelopedData without
/// authAttrs, which is what Segel and OpenSSL write). Runs through OpenSSL's EVP interface,
/// whose GCM is stitched AES-NI/VAES + (V)PCLMULQDQ code — several times the speed of an
/// AES-CTR pass followed by a separate GHASH pass.
pub(crate) struct Gcm {
    ctx: CipherCtx,
    encrypting: bool,
}

fn ossl(e: openssl::error::ErrorStack) -> CmsError {
    CmsError::Invalid(format!("AES-GCM (OpenSSL): {e}"))
}

impl Gcm {
    fn init(key: &[u8], nonce: &[u8], encrypting: bool) -> Result<Self> {
        if nonce.is_empty() || nonce.len() > 64 {
            return Err(CmsError::Invalid("GCM nonce length".into()));
        }
        let c = match key.len() {
            16 => OsslCipher::aes_128_gcm(),
            24 => OsslCipher::aes_192_gcm(),
            32 => OsslCipher::aes_256_gcm(),
            _ => return Err(bad_key()),
        };
        let mut ctx = CipherCtx::new().map_err(ossl)?;
        if encrypting {
            ctx.encrypt_init(Some(c), None, None).map_err(ossl)?;
        } else {
            ctx.decrypt_init(Some(c), None, None).map_err(ossl)?;
        }
        // Any nonce length (SP 800-38D §7.1: a 96-bit nonce is used directly, others are
        // GHASHed into J0 — OpenSSL does both).
        ctx.set_iv_length(nonce.len()).map_err(ossl)?;
        if encrypting {
            ctx.encrypt_init(None, Some(key), Some(nonce))
                .map_err(ossl)?;
        } else {
            ctx.decrypt_init(None, Some(key), Some(nonce))
                .map_err(ossl)?;
        }
        Ok(Gcm { ctx, encrypting })
    }

    /// A context for encryption ([`Gcm::encrypt`], then [`Gcm::tag`]).
    pub(crate) fn new_encrypt(key: &[u8], nonce: &[u8]) -> Result<Self> {
        Self::init(key, nonce, true)
    }

    /// A context for decryption ([`Gcm::decrypt`], then [`Gcm::verify`]).
    pub(crate) fn new_decrypt(key: &[u8], nonce: &[u8]) -> Result<Self> {
        Self::init(key, nonce, false)
    }

    fn update(&mut self, buf: &mut [u8]) -> Result<()> {
        // GCM is a stream mode in EVP (block size 1): every input octet comes out at once.
        let n = self
            .ctx
            .cipher_update_inplace(buf, buf.len())
            .map_err(ossl)?;
        if n != buf.len() {
            return Err(CmsError::Invalid(
                "AES-GCM (OpenSSL) held back output".into(),
            ));
        }
        Ok(())
    }

    pub(crate) fn encrypt(&mut self, buf: &mut [u8]) -> Result<()> {
        debug_assert!(self.encrypting);
        self.update(buf)
    }

    pub(crate) fn decrypt(&mut self, buf: &mut [u8]) -> Result<()> {
        debug_assert!(!self.encrypting);
        self.update(buf)
    }

    /// The full 16-octet tag (encryption only).
    pub(crate) fn tag(mut self) -> Result<[u8; 16]> {
        if !self.encrypting {
            return Err(CmsError::Invalid("GCM tag asked of a decryption".into()));
        }
        let mut rest = [0u8; 16];
        self.ctx.cipher_final(&mut rest).map_err(ossl)?;
        let mut t = [0u8; 16];
        self.ctx.tag(&mut t).map_err(ossl)?;
        Ok(t)
    }

    /// Check a received tag (12..=16 octets, RFC 5084 §3.2); OpenSSL compares in constant
    /// time (CRYPTO_memcmp).
    pub(crate) fn verify(mut self, received: &[u8]) -> Result<()> {
        if !(12..=16).contains(&received.len()) {
            return Err(CmsError::Invalid("GCM tag length".into()));
        }
        if self.encrypting {
            return Err(CmsError::Invalid(
                "GCM verify asked of an encryption".into(),
            ));
        }
        self.ctx.set_tag(received).map_err(ossl)?;
        let mut rest = [0u8; 16];
        match self.ctx.cipher_final(&mut rest) {
            Ok(_) => Ok(()),
            Err(_) => Err(CmsError::Tampered("GCM authentication tag mismatch")),
        }
    }
}

pub(crate) enum CbcDec {
    A128(cbc::Decryptor<Aes128>),
    A192(cbc::Decryptor<Aes192>),
    A256(cbc::Decryptor<Aes256>),
}

impl CbcDec {
    fn new(key: &[u8], iv: &[u8]) -> Result<Self> {
        if iv.len() != 16 {
            return Err(CmsError::Invalid("CBC IV must be 16 octets".into()));
        }
        Ok(match key.len() {
            16 => CbcDec::A128(cbc::Decryptor::new_from_slices(key, iv).map_err(|_| bad_key())?),
            24 => CbcDec::A192(cbc::Decryptor::new_from_slices(key, iv).map_err(|_| bad_key())?),
            32 => CbcDec::A256(cbc::Decryptor::new_from_slices(key, iv).map_err(|_| bad_key())?),
            _ => return Err(bad_key()),
        })
    }

    fn blocks(&mut self, buf: &mut [u8]) {
        let (blocks, _) = InOutBuf::from(buf).into_chunks();
        match self {
            CbcDec::A128(d) => d.decrypt_blocks_inout_mut(blocks),
            CbcDec::A192(d) => d.decrypt_blocks_inout_mut(blocks),
            CbcDec::A256(d) => d.decrypt_blocks_inout_mut(blocks),
        }
    }
}

/// How to decrypt a content stream.
pub(crate) enum Decryptor {
    Gcm(Box<Gcm>),
    Cbc(Box<CbcDec>),
}

impl Decryptor {
    pub(crate) fn gcm(key: &[u8], nonce: &[u8]) -> Result<Self> {
        Ok(Decryptor::Gcm(Box::new(Gcm::new_decrypt(key, nonce)?)))
    }
    pub(crate) fn cbc(key: &[u8], iv: &[u8]) -> Result<Self> {
        Ok(Decryptor::Cbc(Box::new(CbcDec::new(key, iv)?)))
    }
}

const CHUNK: usize = 256 * 1024;

/// Plaintext out of a ciphertext stream. CBC holds back the last block until the end so the
/// padding can be checked; GCM's tag is checked by [`DecryptingReader::finish`] — plaintext
/// handed out before that is unauthenticated and must only go to a temporary file.
pub(crate) struct DecryptingReader<R> {
    inner: R,
    dec: Decryptor,
    buf: Vec<u8>,
    start: usize,
    ready: usize,
    filled: usize,
    eof: bool,
    done: bool,
}

impl<R: Read> DecryptingReader<R> {
    pub(crate) fn new(inner: R, dec: Decryptor) -> Self {
        DecryptingReader {
            inner,
            dec,
            buf: vec![0; CHUNK + 32],
            start: 0,
            ready: 0,
            filled: 0,
            eof: false,
            done: false,
        }
    }

    fn refill(&mut self) -> io::Result<()> {
        // Keep unprocessed octets (CBC: partial block and held-back block) at the front.
        self.buf.copy_within(self.ready..self.filled, 0);
        self.filled -= self.ready;
        self.start = 0;
        self.ready = 0;
        while !self.eof && self.filled < CHUNK {
            let n = self.inner.read(&mut self.buf[self.filled..CHUNK + 32])?;
            if n == 0 {
                self.eof = true;
            }
            self.filled += n;
        }
        let map = |e: CmsError| super::ber::into_io(e);
        match &mut self.dec {
            Decryptor::Gcm(g) => {
                g.decrypt(&mut self.buf[..self.filled]).map_err(map)?;
                self.ready = self.filled;
                self.done = self.eof;
            }
            Decryptor::Cbc(d) => {
                let full = self.filled - self.filled % 16;
                // Decrypt all full blocks except the last, unless the stream ended.
                let process = if self.eof {
                    full
                } else {
                    full.saturating_sub(16)
                };
                // Already-decrypted held-back block is never at the front here: held back
                // blocks are left *encrypted* until the next round.
                d.blocks(&mut self.buf[..process]);
                self.ready = process;
                if self.eof {
                    self.done = true;
                    if !self.filled.is_multiple_of(16) {
                        return Err(map(CmsError::Tampered(
                            "CBC ciphertext is not whole blocks",
                        )));
                    }
                    if process == 0 {
                        return Err(map(CmsError::Tampered("CBC ciphertext is empty")));
                    }
                    let pad = usize::from(self.buf[process - 1]);
                    let ok = (1..=16).contains(&pad)
                        && self.buf[process - pad..process]
                            .iter()
                            .all(|b| usize::from(*b) == pad);
                    if !ok {
                        return Err(map(CmsError::Tampered("CBC padding is invalid")));
                    }
                    self.ready = process - pad;
                    self.filled = process - pad;
                }
            }
        }
        Ok(())
    }

    /// After the stream is exhausted: check the GCM tag (CBC padding was checked at the end of
    /// the stream). Gives the ciphertext reader back.
    #[cfg(test)]
    pub(crate) fn finish(mut self, tag: Option<&[u8]>) -> Result<R> {
        let mut sink = [0u8; 4096];
        while self.read(&mut sink).map_err(super::ber::from_io)? > 0 {}
        match (self.dec, tag) {
            (Decryptor::Gcm(g), Some(t)) => g.verify(t)?,
            (Decryptor::Gcm(_), None) => return Err(CmsError::Invalid("missing GCM tag".into())),
            (Decryptor::Cbc(_), _) => {}
        }
        Ok(self.inner)
    }

    /// Drain the rest of the ciphertext (to reach the MAC) and hand back the pieces.
    pub(crate) fn drain_into_parts(mut self) -> Result<(R, Decryptor)> {
        let mut sink = [0u8; 4096];
        while self.read(&mut sink).map_err(super::ber::from_io)? > 0 {}
        Ok((self.inner, self.dec))
    }
}

impl<R: Read> Read for DecryptingReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.start == self.ready {
            if self.done {
                return Ok(0);
            }
            self.refill()?;
        }
        let n = out.len().min(self.ready - self.start);
        out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
        self.start += n;
        Ok(n)
    }
}

/// Encrypts what is written to it (AES-256 only; that is all Segel seals with).
pub(crate) struct EncryptingWriter<W: Write> {
    inner: W,
    enc: Enc,
    buf: Vec<u8>,
}

enum Enc {
    Gcm(Box<Gcm>),
    Cbc(Box<cbc::Encryptor<Aes256>>),
}

impl<W: Write> EncryptingWriter<W> {
    pub(crate) fn gcm(inner: W, key: &[u8], nonce: &[u8]) -> Result<Self> {
        Ok(EncryptingWriter {
            inner,
            enc: Enc::Gcm(Box::new(Gcm::new_encrypt(key, nonce)?)),
            buf: Vec::with_capacity(CHUNK),
        })
    }

    pub(crate) fn cbc(inner: W, key: &[u8], iv: &[u8]) -> Result<Self> {
        let e = cbc::Encryptor::<Aes256>::new_from_slices(key, iv).map_err(|_| bad_key())?;
        Ok(EncryptingWriter {
            inner,
            enc: Enc::Cbc(Box::new(e)),
            buf: Vec::with_capacity(CHUNK),
        })
    }

    /// Ciphertext length for `plain` octets of plaintext.
    pub(crate) fn ciphertext_len(cipher: ContentCipher, plain: u64) -> u64 {
        match cipher {
            ContentCipher::Aes256Gcm => plain,
            ContentCipher::Aes256Cbc => (plain / 16 + 1) * 16,
        }
    }

    fn flush_full(&mut self, all: bool) -> io::Result<()> {
        let n = match self.enc {
            Enc::Gcm(_) => self.buf.len(),
            Enc::Cbc(_) => self.buf.len() - self.buf.len() % 16,
        };
        if n == 0 || (!all && self.buf.len() < CHUNK) {
            return Ok(());
        }
        match &mut self.enc {
            Enc::Gcm(g) => g.encrypt(&mut self.buf[..n]).map_err(super::ber::into_io)?,
            Enc::Cbc(e) => {
                let (blocks, _) = InOutBuf::from(&mut self.buf[..n]).into_chunks();
                e.encrypt_blocks_inout_mut(blocks);
            }
        }
        self.inner.write_all(&self.buf[..n])?;
        self.buf.drain(..n);
        Ok(())
    }

    /// Pad (CBC), flush, and return the inner writer and the GCM tag (if GCM).
    pub(crate) fn finish(mut self) -> Result<(W, Option<[u8; 16]>)> {
        if let Enc::Cbc(_) = self.enc {
            let pad = 16 - self.buf.len() % 16;
            self.buf.extend(std::iter::repeat_n(pad as u8, pad));
        }
        self.flush_full(true)?;
        let tag = match self.enc {
            Enc::Gcm(g) => Some(g.tag()?),
            Enc::Cbc(_) => None,
        };
        Ok((self.inner, tag))
    }
}

impl<W: Write> Write for EncryptingWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let take = data.len().min(CHUNK.saturating_sub(self.buf.len()).max(16));
        self.buf.extend_from_slice(&data[..take]);
        if self.buf.len() >= CHUNK {
            self.flush_full(true)?;
        }
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    // NIST GCM test vector (gcmEncryptExtIV256.rsp style; McGrew & Viega test case 15).
    #[test]
    fn gcm_matches_test_case_15_in_uneven_chunks() {
        let key = hex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
        let iv = hex("cafebabefacedbaddecaf888");
        let pt = hex(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
        );
        let ct = hex(
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
        );
        let tag = hex("b094dac5d93471bdec1a502270e3cc6c");
        let mut g = Gcm::new_encrypt(&key, &iv).unwrap();
        let mut buf = pt.clone();
        let (a, b) = buf.split_at_mut(7);
        g.encrypt(a).unwrap();
        let (b1, b2) = b.split_at_mut(33);
        g.encrypt(b1).unwrap();
        g.encrypt(b2).unwrap();
        assert_eq!(buf, ct);
        assert_eq!(g.tag().unwrap().to_vec(), tag);

        let mut d = Gcm::new_decrypt(&key, &iv).unwrap();
        d.decrypt(&mut buf).unwrap();
        assert_eq!(buf, pt);
        d.verify(&tag).unwrap();
    }

    #[test]
    fn gcm_verify_rejects_flipped_tag() {
        let key = [7u8; 32];
        let mut g = Gcm::new_encrypt(&key, &[1u8; 12]).unwrap();
        let mut buf = *b"hello";
        g.encrypt(&mut buf).unwrap();
        let mut t = g.tag().unwrap();
        t[3] ^= 1;
        let mut d = Gcm::new_decrypt(&key, &[1u8; 12]).unwrap();
        d.decrypt(&mut buf).unwrap();
        assert!(matches!(d.verify(&t), Err(CmsError::Tampered(_))));
    }

    fn roundtrip(cipher: ContentCipher, len: usize) {
        let key = [9u8; 32];
        let iv = [3u8; 16];
        let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        let mut w = match cipher {
            ContentCipher::Aes256Gcm => EncryptingWriter::gcm(Vec::new(), &key, &iv[..12]),
            ContentCipher::Aes256Cbc => EncryptingWriter::cbc(Vec::new(), &key, &iv),
        }
        .unwrap();
        for c in data.chunks(1000) {
            w.write_all(c).unwrap();
        }
        let (ct, tag) = w.finish().unwrap();
        assert_eq!(
            ct.len() as u64,
            EncryptingWriter::<Vec<u8>>::ciphertext_len(cipher, len as u64)
        );
        let dec = match cipher {
            ContentCipher::Aes256Gcm => Decryptor::gcm(&key, &iv[..12]),
            ContentCipher::Aes256Cbc => Decryptor::cbc(&key, &iv),
        }
        .unwrap();
        let mut r = DecryptingReader::new(&ct[..], dec);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        r.finish(tag.as_ref().map(|t| &t[..])).unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn gcm_and_cbc_stream_roundtrip_at_block_and_chunk_boundaries() {
        for len in [
            0,
            1,
            15,
            16,
            17,
            1024,
            CHUNK - 1,
            CHUNK,
            CHUNK + 17,
            3 * CHUNK + 5,
        ] {
            roundtrip(ContentCipher::Aes256Gcm, len);
            roundtrip(ContentCipher::Aes256Cbc, len);
        }
    }

    #[test]
    fn cbc_with_bad_padding_is_reported_as_tampered() {
        let key = [9u8; 32];
        let iv = [3u8; 16];
        let mut w = EncryptingWriter::cbc(Vec::new(), &key, &iv).unwrap();
        w.write_all(&[0u8; 40]).unwrap();
        let (mut ct, _) = w.finish().unwrap();
        let n = ct.len();
        ct[n - 17] ^= 0x55; // flips the last plaintext block's padding
        let mut r = DecryptingReader::new(&ct[..], Decryptor::cbc(&key, &iv).unwrap());
        let err = r.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(matches!(
            super::super::ber::from_io(err),
            CmsError::Tampered(_)
        ));
    }
}
