//! Streaming BER/DER reader (ITU-T X.690) in constant memory.
//!
//! No crate in the RustCrypto generation we pin streams: `der` decodes whole buffers, definite
//! lengths only. CMS files can be gigabytes and OpenSSL's `cms -stream` writes indefinite-length
//! BER with the content split into constructed OCTET STRING segments, so this module reads the
//! outer layers of a CMS structure one header at a time and hands the big content out through a
//! [`std::io::Read`] ([`OctetStringReader`]). Small pieces (recipient infos, certificates,
//! signer infos) are read whole with [`BerReader::read_element_der`], which re-encodes them with
//! definite lengths so `der`/`cms` can decode them.
//!
//! Hostile input: nesting depth is limited, a child may not run past its parent's definite end,
//! in-memory elements have a size cap, and every length is checked arithmetic. No panics.

use std::io::Read;

use super::error::{CmsError, Result};

/// Tag classes (X.690 §8.1.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Universal.
    Universal,
    /// Application.
    Application,
    /// Context-specific (`[n]`).
    Context,
    /// Private.
    Private,
}

/// An identifier octet(s), decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    /// Tag class.
    pub class: Class,
    /// Constructed (true) or primitive encoding.
    pub constructed: bool,
    /// Tag number.
    pub number: u32,
}

impl Tag {
    pub const EOC: Tag = Tag::universal(0, false);
    pub const INTEGER: Tag = Tag::universal(2, false);
    pub const BIT_STRING: Tag = Tag::universal(3, false);
    pub const OCTET_STRING: Tag = Tag::universal(4, false);
    pub const OID: Tag = Tag::universal(6, false);
    pub const SEQUENCE: Tag = Tag::universal(16, true);
    pub const SET: Tag = Tag::universal(17, true);

    /// A universal tag.
    pub const fn universal(number: u32, constructed: bool) -> Tag {
        Tag {
            class: Class::Universal,
            constructed,
            number,
        }
    }

    /// A context-specific tag `[number]`.
    pub const fn context(number: u32, constructed: bool) -> Tag {
        Tag {
            class: Class::Context,
            constructed,
            number,
        }
    }

    /// Same class and number, ignoring the constructed bit (BER strings may be either).
    pub fn same_type(self, other: Tag) -> bool {
        self.class == other.class && self.number == other.number
    }

    /// Encode this tag's identifier octets (low tag numbers only; CMS needs no others).
    pub(crate) fn first_octet(self) -> Option<u8> {
        if self.number > 30 {
            return None;
        }
        let class = match self.class {
            Class::Universal => 0x00,
            Class::Application => 0x40,
            Class::Context => 0x80,
            Class::Private => 0xC0,
        };
        let constructed = if self.constructed { 0x20 } else { 0 };
        Some(class | constructed | self.number as u8)
    }
}

/// A length: definite, or indefinite (constructed only, ended by end-of-contents).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Len {
    /// Exactly this many content octets.
    Definite(u64),
    /// Content runs until an end-of-contents marker (`00 00`).
    Indefinite,
}

/// A decoded header (identifier and length octets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The tag.
    pub tag: Tag,
    /// The length.
    pub len: Len,
    /// How many octets the header took.
    pub header_len: u8,
}

impl Header {
    fn is_eoc(&self) -> bool {
        self.tag == Tag::EOC && self.len == Len::Definite(0)
    }
}

/// Where a container ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    At(u64),
    Eoc,
}

/// Limits against hostile input.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Maximum nesting depth of constructed encodings.
    pub max_depth: usize,
    /// Maximum size of an element read into memory.
    pub max_element: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 48,
            max_element: 4 << 20,
        }
    }
}

/// A pull reader over a BER stream that tracks nesting.
#[derive(Debug)]
pub struct BerReader<R> {
    inner: R,
    /// Octets consumed from `inner`.
    consumed: u64,
    peeked: Option<Header>,
    ends: Vec<End>,
    limits: Limits,
}

impl<R: Read> BerReader<R> {
    /// Wrap a reader (give it a `BufReader` for files: headers are read octet by octet).
    pub fn new(inner: R) -> Self {
        Self::with_limits(inner, Limits::default())
    }

    /// Wrap a reader with explicit limits.
    pub fn with_limits(inner: R, limits: Limits) -> Self {
        BerReader {
            inner,
            consumed: 0,
            peeked: None,
            ends: Vec::new(),
            limits,
        }
    }

    /// Give the underlying reader back.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Logical position: octets consumed, not counting a peeked header.
    pub fn pos(&self) -> u64 {
        match self.peeked {
            Some(h) => self.consumed - u64::from(h.header_len),
            None => self.consumed,
        }
    }

    /// Current nesting depth.
    pub fn depth(&self) -> usize {
        self.ends.len()
    }

    fn malformed(&self, reason: &'static str) -> CmsError {
        CmsError::Malformed {
            offset: self.pos(),
            reason,
        }
    }

    fn byte(&mut self) -> Result<u8> {
        let mut b = [0u8; 1];
        loop {
            match self.inner.read(&mut b) {
                Ok(0) => return Err(CmsError::Truncated("input ended inside an ASN.1 header")),
                Ok(_) => {
                    self.consumed += 1;
                    return Ok(b[0]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn read_header_raw(&mut self) -> Result<Header> {
        let start = self.consumed;
        let first = self.byte()?;
        let class = match first >> 6 {
            0 => Class::Universal,
            1 => Class::Application,
            2 => Class::Context,
            _ => Class::Private,
        };
        let constructed = first & 0x20 != 0;
        let mut number = u32::from(first & 0x1F);
        if number == 0x1F {
            number = 0;
            for i in 0.. {
                if i >= 4 {
                    return Err(self.malformed("tag number too large"));
                }
                let b = self.byte()?;
                number = (number << 7) | u32::from(b & 0x7F);
                if b & 0x80 == 0 {
                    break;
                }
            }
        }
        let l = self.byte()?;
        let len = if l < 0x80 {
            Len::Definite(u64::from(l))
        } else if l == 0x80 {
            if !constructed {
                return Err(self.malformed("indefinite length on a primitive encoding"));
            }
            Len::Indefinite
        } else {
            let n = l & 0x7F;
            if n > 8 || l == 0xFF {
                return Err(self.malformed("length of length too large"));
            }
            let mut v: u64 = 0;
            for _ in 0..n {
                v = (v << 8) | u64::from(self.byte()?);
            }
            Len::Definite(v)
        };
        let header_len =
            u8::try_from(self.consumed - start).map_err(|_| self.malformed("header too long"))?;
        Ok(Header {
            tag: Tag {
                class,
                constructed,
                number,
            },
            len,
            header_len,
        })
    }

    /// The innermost definite end that encloses the current position.
    fn limit_end(&self) -> Option<u64> {
        self.ends.iter().rev().find_map(|e| match e {
            End::At(p) => Some(*p),
            End::Eoc => None,
        })
    }

    /// Look at the next header without consuming it.
    pub fn peek_header(&mut self) -> Result<Header> {
        if let Some(h) = self.peeked {
            return Ok(h);
        }
        if let Some(end) = self.limit_end()
            && self.consumed >= end
        {
            return Err(self.malformed("element runs past the end of its container"));
        }
        let h = self.read_header_raw()?;
        if let (Len::Definite(len), Some(end)) = (h.len, self.limit_end()) {
            let stop = self
                .consumed
                .checked_add(len)
                .ok_or_else(|| self.malformed("length overflow"))?;
            if stop > end {
                return Err(self.malformed("element runs past the end of its container"));
            }
        }
        self.peeked = Some(h);
        Ok(h)
    }

    /// Read the next header.
    pub fn read_header(&mut self) -> Result<Header> {
        let h = self.peek_header()?;
        self.peeked = None;
        Ok(h)
    }

    /// Read the next header and require a tag (class and number; the constructed bit must match
    /// too unless `tag` is a string type that BER lets be either).
    pub fn expect(&mut self, tag: Tag, what: &'static str) -> Result<Header> {
        let h = self.read_header()?;
        let ok = if tag == Tag::OCTET_STRING || tag == Tag::BIT_STRING {
            h.tag.same_type(tag)
        } else {
            h.tag == tag
        };
        if !ok {
            return Err(CmsError::Malformed {
                offset: self.pos() - u64::from(h.header_len),
                reason: what,
            });
        }
        Ok(h)
    }

    /// Enter a constructed element whose header was just read.
    pub fn enter(&mut self, h: Header) -> Result<()> {
        if !h.tag.constructed {
            return Err(self.malformed("expected a constructed encoding"));
        }
        if self.ends.len() >= self.limits.max_depth {
            return Err(self.malformed("nesting too deep"));
        }
        let end = match h.len {
            Len::Definite(n) => End::At(self.pos() + n),
            Len::Indefinite => End::Eoc,
        };
        self.ends.push(end);
        Ok(())
    }

    /// Whether the innermost entered container has no more children.
    pub fn at_end(&mut self) -> Result<bool> {
        match self.ends.last().copied() {
            None => Ok(false),
            Some(End::At(p)) => Ok(self.pos() >= p),
            Some(End::Eoc) => Ok(self.peek_header()?.is_eoc()),
        }
    }

    /// Leave the innermost container; it must be at its end.
    pub fn leave(&mut self) -> Result<()> {
        match self.ends.last().copied() {
            None => Err(self.malformed("leave without enter")),
            Some(End::At(p)) => {
                if self.pos() != p {
                    return Err(self.malformed("unexpected data at the end of a structure"));
                }
                self.ends.pop();
                Ok(())
            }
            Some(End::Eoc) => {
                let h = self.read_header()?;
                if !h.is_eoc() {
                    return Err(self.malformed("unexpected data at the end of a structure"));
                }
                self.ends.pop();
                Ok(())
            }
        }
    }

    /// Read up to `buf.len()` content octets (for streaming primitive contents).
    pub fn read_content(&mut self, buf: &mut [u8]) -> Result<usize> {
        if self.peeked.is_some() {
            return Err(self.malformed("content read while a header is pending"));
        }
        loop {
            match self.inner.read(buf) {
                Ok(n) => {
                    self.consumed += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Read exactly `buf.len()` content octets.
    pub fn read_content_exact(&mut self, mut buf: &mut [u8]) -> Result<()> {
        while !buf.is_empty() {
            let n = self.read_content(buf)?;
            if n == 0 {
                return Err(CmsError::Truncated("input ended inside an ASN.1 value"));
            }
            buf = &mut buf[n..];
        }
        Ok(())
    }

    /// Read a small primitive value whose header was just read.
    pub fn read_primitive(&mut self, h: Header, max: usize) -> Result<Vec<u8>> {
        let Len::Definite(len) = h.len else {
            return Err(self.malformed("expected a primitive encoding"));
        };
        if h.tag.constructed {
            return Err(self.malformed("expected a primitive encoding"));
        }
        let len = usize::try_from(len)
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| self.malformed("value too long"))?;
        let mut v = vec![0u8; len];
        self.read_content_exact(&mut v)?;
        Ok(v)
    }

    /// Read the next element whole, re-encoded with definite lengths (constructed universal
    /// OCTET/BIT STRINGs are joined into primitive ones), at most `limits.max_element` octets.
    pub fn read_element_der(&mut self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut budget = self.limits.max_element;
        let h = self.read_header()?;
        self.element_der_into(h, &mut out, &mut budget, 0)?;
        Ok(out)
    }

    fn element_der_into(
        &mut self,
        h: Header,
        out: &mut Vec<u8>,
        budget: &mut usize,
        depth: usize,
    ) -> Result<()> {
        if depth + self.ends.len() >= self.limits.max_depth {
            return Err(self.malformed("nesting too deep"));
        }
        let first = h
            .tag
            .first_octet()
            .ok_or_else(|| self.malformed("high tag numbers are not supported here"))?;
        if !h.tag.constructed {
            let v = self.read_primitive(h, *budget)?;
            *budget -= v.len();
            push_header(out, first, v.len());
            out.extend_from_slice(&v);
            return Ok(());
        }
        let join = h.tag.class == Class::Universal && (h.tag.number == 4 || h.tag.number == 3);
        let mut body = Vec::new();
        self.enter(h)?;
        while !self.at_end()? {
            let child = self.read_header()?;
            if join {
                if !child.tag.same_type(h.tag) {
                    return Err(self.malformed("segment of a constructed string has another type"));
                }
                let mut seg = Vec::new();
                self.element_der_into(child, &mut seg, budget, depth + 1)?;
                // Strip the segment's own header: keep only its content octets.
                let content = strip_header(&seg).ok_or_else(|| self.malformed("bad segment"))?;
                if h.tag.number == 3 && !body.is_empty() {
                    // BIT STRING segments: each carries an unused-bits octet; only the last
                    // may be non-zero. Keep the first octet once.
                    body.extend_from_slice(content.get(1..).unwrap_or(&[]));
                } else {
                    body.extend_from_slice(content);
                }
            } else {
                self.element_der_into(child, &mut body, budget, depth + 1)?;
            }
        }
        self.leave()?;
        let first = if join { first & !0x20 } else { first };
        push_header(out, first, body.len());
        out.extend_from_slice(&body);
        Ok(())
    }

    /// Skip the next element entirely, in constant memory.
    pub fn skip_element(&mut self) -> Result<()> {
        let h = self.read_header()?;
        self.skip_after_header(h)
    }

    /// Skip an element whose header was just read.
    pub fn skip_after_header(&mut self, h: Header) -> Result<()> {
        match h.len {
            Len::Definite(n) => self.discard(n),
            Len::Indefinite => {
                let base = self.ends.len();
                self.enter(h)?;
                while self.ends.len() > base {
                    if self.at_end()? {
                        self.leave()?;
                        continue;
                    }
                    let c = self.read_header()?;
                    match c.len {
                        Len::Definite(n) => self.discard(n)?,
                        Len::Indefinite => self.enter(c)?,
                    }
                }
                Ok(())
            }
        }
    }

    fn discard(&mut self, mut n: u64) -> Result<()> {
        let mut buf = [0u8; 8192];
        while n > 0 {
            let want = usize::try_from(n.min(buf.len() as u64)).unwrap_or(buf.len());
            let got = self.read_content(&mut buf[..want])?;
            if got == 0 {
                return Err(CmsError::Truncated("input ended inside an ASN.1 value"));
            }
            n -= got as u64;
        }
        Ok(())
    }

    /// Stream the contents of an OCTET STRING (or an implicitly tagged one) whose header was
    /// just read: primitive, or constructed from segments nested to any allowed depth.
    pub fn octet_string(&mut self, h: Header) -> Result<OctetStringReader<'_, R>> {
        let base = self.ends.len();
        let remaining = match (h.tag.constructed, h.len) {
            (false, Len::Definite(n)) => n,
            (true, _) => {
                self.enter(h)?;
                0
            }
            (false, Len::Indefinite) => return Err(self.malformed("indefinite primitive")),
        };
        Ok(OctetStringReader {
            ber: self,
            base,
            remaining,
        })
    }
}

fn push_header(out: &mut Vec<u8>, first: u8, len: usize) {
    out.push(first);
    super::derw::push_len(out, len as u64);
}

fn strip_header(tlv: &[u8]) -> Option<&[u8]> {
    let l = *tlv.get(1)?;
    let skip = if l < 0x80 {
        2
    } else {
        2 + usize::from(l & 0x7F)
    };
    tlv.get(skip..)
}

/// The contents of one OCTET STRING, as a byte stream. Reads return 0 at the end of the string;
/// a missing end-of-contents or a short segment is an error, never a silent EOF.
#[derive(Debug)]
pub struct OctetStringReader<'a, R> {
    ber: &'a mut BerReader<R>,
    base: usize,
    remaining: u64,
}

impl<R: Read> OctetStringReader<'_, R> {
    fn next_chunk(&mut self, buf: &mut [u8]) -> Result<usize> {
        loop {
            if self.remaining > 0 {
                let want =
                    usize::try_from(self.remaining.min(buf.len() as u64)).unwrap_or(buf.len());
                let n = self.ber.read_content(&mut buf[..want])?;
                if n == 0 {
                    return Err(CmsError::Truncated("input ended inside encrypted content"));
                }
                self.remaining -= n as u64;
                return Ok(n);
            }
            if self.ber.ends.len() <= self.base {
                return Ok(0);
            }
            if self.ber.at_end()? {
                self.ber.leave()?;
                continue;
            }
            let h = self.ber.read_header()?;
            if !h.tag.same_type(Tag::OCTET_STRING) {
                return Err(self
                    .ber
                    .malformed("segment of a constructed OCTET STRING is not one"));
            }
            match (h.tag.constructed, h.len) {
                (false, Len::Definite(n)) => self.remaining = n,
                (true, _) => self.ber.enter(h)?,
                (false, Len::Indefinite) => return Err(self.ber.malformed("indefinite primitive")),
            }
        }
    }
}

impl<R: Read> Read for OctetStringReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.next_chunk(buf).map_err(into_io)
    }
}

/// Carry a [`CmsError`] through `std::io::Read`, to be recovered with [`from_io`].
pub(crate) fn into_io(e: CmsError) -> std::io::Error {
    match e {
        CmsError::Io(e) => e,
        other => std::io::Error::other(other),
    }
}

/// Recover a [`CmsError`] carried through `std::io`.
pub(crate) fn from_io(e: std::io::Error) -> CmsError {
    if e.get_ref().is_some_and(|r| r.is::<CmsError>()) {
        if let Some(inner) = e.into_inner() {
            if let Ok(c) = inner.downcast::<CmsError>() {
                return *c;
            }
            return CmsError::Invalid("unreadable error".into());
        }
        return CmsError::Invalid("unreadable error".into());
    }
    CmsError::Io(e)
}

#[cfg(test)]
#[path = "ber_tests.rs"]
mod tests;
