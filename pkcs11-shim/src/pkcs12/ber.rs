//! BER → DER for PKCS#12 files written by NSS (`pk12util`, Firefox "Backup"), which use
//! indefinite lengths and constructed OCTET STRINGs at every level (X.690 §8.1.3.6, §8.7.3).
//! RustCrypto's `der` reads DER only, so each layer is normalised before it is decoded.
//!
//! The rewrite is: definite minimal lengths; constructed OCTET STRINGs become primitive (the
//! chunks concatenated, which is the value the MAC covers); SET OF elements sorted (X.690
//! §11.6). One schema rule is needed because BER can not tell `[0] IMPLICIT OCTET STRING` sent
//! in chunks from `[0] EXPLICIT` around one OCTET STRING: in a SEQUENCE of OID, SEQUENCE, `[0]`
//! — the shape of PKCS#7 `EncryptedContentInfo` (RFC 5652 §6.1) — a constructed `[0]` holding
//! only OCTET STRINGs is the implicit encrypted content and becomes primitive `[0]`.

use super::{Pkcs12Error, malformed};
use zeroize::Zeroizing;

/// Nesting bound: a PKCS#12 file is about 10 levels deep.
const MAX_DEPTH: usize = 48;

const OCTET_STRING: u8 = 0x04;
const OCTET_STRING_CONSTRUCTED: u8 = 0x24;
const OID: u8 = 0x06;
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const CONTEXT_0_CONSTRUCTED: u8 = 0xA0;
const CONTEXT_0_PRIMITIVE: u8 = 0x80;

#[derive(Debug)]
enum Node {
    Primitive {
        tag: Vec<u8>,
        content: Zeroizing<Vec<u8>>,
    },
    Constructed {
        tag: Vec<u8>,
        children: Vec<Node>,
    },
}

impl Node {
    fn first_tag_byte(&self) -> u8 {
        let tag = match self {
            Node::Primitive { tag, .. } | Node::Constructed { tag, .. } => tag,
        };
        tag.first().copied().unwrap_or(0)
    }

    /// The concatenated content of an OCTET STRING (primitive or chunked).
    fn octets(&self, out: &mut Vec<u8>) -> Result<(), Pkcs12Error> {
        match self {
            Node::Primitive { content, .. } => out.extend_from_slice(content),
            Node::Constructed { children, .. } => {
                for c in children {
                    if !matches!(c.first_tag_byte(), OCTET_STRING | OCTET_STRING_CONSTRUCTED) {
                        return Err(malformed("constructed OCTET STRING holds a non-string"));
                    }
                    c.octets(out)?;
                }
            }
        }
        Ok(())
    }

    fn is_octet_string(&self) -> bool {
        matches!(
            self.first_tag_byte(),
            OCTET_STRING | OCTET_STRING_CONSTRUCTED
        )
    }
}

/// Re-encodes BER `data` (one complete TLV, nothing after it) as DER.
/// The result is wiped on drop: decrypted safe contents may hold unencrypted key bags.
pub(super) fn to_der(data: &[u8]) -> Result<Zeroizing<Vec<u8>>, Pkcs12Error> {
    let mut pos = 0;
    let node = parse(data, &mut pos, 0)?;
    if pos != data.len() {
        return Err(malformed("trailing data after the outer TLV"));
    }
    let node = normalise(node)?;
    let mut out = Zeroizing::new(Vec::with_capacity(data.len()));
    encode(&node, &mut out);
    Ok(out)
}

fn byte(data: &[u8], pos: &mut usize) -> Result<u8, Pkcs12Error> {
    let b = *data.get(*pos).ok_or_else(|| malformed("truncated BER"))?;
    *pos += 1;
    Ok(b)
}

fn parse(data: &[u8], pos: &mut usize, depth: usize) -> Result<Node, Pkcs12Error> {
    if depth > MAX_DEPTH {
        return Err(malformed("BER nested too deep"));
    }
    let start = *pos;
    let first = byte(data, pos)?;
    if first & 0x1f == 0x1f {
        // High tag number form: base-128 bytes, the last without bit 8 (X.690 §8.1.2.4).
        let mut n = 0;
        while byte(data, pos)? & 0x80 != 0 {
            n += 1;
            if n > 4 {
                return Err(malformed("BER tag number too long"));
            }
        }
    }
    let tag = data[start..*pos].to_vec();
    let constructed = first & 0x20 != 0;
    let len_byte = byte(data, pos)?;
    let length = match len_byte {
        0x80 => None,
        b if b < 0x80 => Some(usize::from(b)),
        b => {
            let n = usize::from(b & 0x7f);
            if n > 4 {
                return Err(malformed("BER length too long"));
            }
            let mut l = 0usize;
            for _ in 0..n {
                l = (l << 8) | usize::from(byte(data, pos)?);
            }
            Some(l)
        }
    };
    match (constructed, length) {
        (false, None) => Err(malformed("indefinite length on a primitive")),
        (false, Some(l)) => {
            let end = pos
                .checked_add(l)
                .filter(|e| *e <= data.len())
                .ok_or_else(|| malformed("truncated BER"))?;
            let content = Zeroizing::new(data[*pos..end].to_vec());
            *pos = end;
            Ok(Node::Primitive { tag, content })
        }
        (true, Some(l)) => {
            let end = pos
                .checked_add(l)
                .filter(|e| *e <= data.len())
                .ok_or_else(|| malformed("truncated BER"))?;
            let mut children = Vec::new();
            while *pos < end {
                children.push(parse(&data[..end], pos, depth + 1)?);
            }
            Ok(Node::Constructed { tag, children })
        }
        (true, None) => {
            let mut children = Vec::new();
            loop {
                if data.get(*pos..*pos + 2) == Some(&[0, 0]) {
                    *pos += 2;
                    break;
                }
                if *pos >= data.len() {
                    return Err(malformed("BER missing end-of-contents"));
                }
                children.push(parse(data, pos, depth + 1)?);
            }
            Ok(Node::Constructed { tag, children })
        }
    }
}

fn normalise(node: Node) -> Result<Node, Pkcs12Error> {
    match node {
        Node::Primitive { .. } => Ok(node),
        Node::Constructed { ref tag, .. } if tag.as_slice() == [OCTET_STRING_CONSTRUCTED] => {
            let mut content = Zeroizing::new(Vec::new());
            node.octets(&mut content)?;
            Ok(Node::Primitive {
                tag: vec![OCTET_STRING],
                content,
            })
        }
        Node::Constructed { tag, children } => {
            let mut children = children
                .into_iter()
                .map(normalise)
                .collect::<Result<Vec<_>, _>>()?;
            if tag.as_slice() == [SEQUENCE] && is_encrypted_content_info(&children) {
                let last = children.pop().ok_or_else(|| malformed("empty SEQUENCE"))?;
                let mut content = Zeroizing::new(Vec::new());
                if let Node::Constructed {
                    children: chunks, ..
                } = &last
                {
                    for c in chunks {
                        c.octets(&mut content)?;
                    }
                }
                children.push(Node::Primitive {
                    tag: vec![CONTEXT_0_PRIMITIVE],
                    content,
                });
            }
            if tag.as_slice() == [SET] {
                let mut encoded: Vec<(Zeroizing<Vec<u8>>, Node)> = children
                    .into_iter()
                    .map(|c| {
                        let mut e = Zeroizing::new(Vec::new());
                        encode(&c, &mut e);
                        (e, c)
                    })
                    .collect();
                encoded.sort_by(|a, b| a.0.cmp(&b.0));
                children = encoded.into_iter().map(|(_, c)| c).collect();
            }
            Ok(Node::Constructed { tag, children })
        }
    }
}

/// OID, SEQUENCE, constructed `[0]` of OCTET STRINGs: an `EncryptedContentInfo` in chunks.
fn is_encrypted_content_info(children: &[Node]) -> bool {
    match children {
        [
            oid,
            alg,
            Node::Constructed {
                tag,
                children: inner,
            },
        ] => {
            oid.first_tag_byte() == OID
                && alg.first_tag_byte() == SEQUENCE
                && tag.as_slice() == [CONTEXT_0_CONSTRUCTED]
                && inner.iter().all(Node::is_octet_string)
        }
        _ => false,
    }
}

fn encode(node: &Node, out: &mut Vec<u8>) {
    match node {
        Node::Primitive { tag, content } => {
            out.extend_from_slice(tag);
            encode_len(content.len(), out);
            out.extend_from_slice(content);
        }
        Node::Constructed { tag, children } => {
            let mut body = Zeroizing::new(Vec::new());
            for c in children {
                encode(c, &mut body);
            }
            out.extend_from_slice(tag);
            encode_len(body.len(), out);
            out.extend_from_slice(&body);
        }
    }
}

fn encode_len(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
        return;
    }
    let bytes = len.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    out.push(0x80 | (bytes.len() - skip) as u8);
    out.extend_from_slice(&bytes[skip..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_input_is_returned_unchanged() {
        let der = [0x30, 0x06, 0x02, 0x01, 0x03, 0x04, 0x01, 0xAA];
        assert_eq!(to_der(&der), Ok(Zeroizing::new(der.to_vec())));
    }

    #[test]
    fn indefinite_lengths_and_chunked_octet_strings_become_der() {
        // SEQUENCE(indef) { OCTET STRING(constructed, indef) { "ab", "c" } }
        let ber = [
            0x30, 0x80, 0x24, 0x80, 0x04, 0x02, b'a', b'b', 0x04, 0x01, b'c', 0x00, 0x00, 0x00,
            0x00,
        ];
        assert_eq!(
            to_der(&ber).map(|d| d.to_vec()),
            Ok(vec![0x30, 0x05, 0x04, 0x03, b'a', b'b', b'c'])
        );
    }

    #[test]
    fn chunked_encrypted_content_becomes_primitive_implicit_tag() {
        // SEQUENCE { OID 1.2, SEQUENCE {}, [0] (constructed) { OCTET STRING "xy" } }
        let ber = [
            0x30, 0x80, 0x06, 0x01, 0x2A, 0x30, 0x00, 0xA0, 0x80, 0x04, 0x02, b'x', b'y', 0x00,
            0x00, 0x00, 0x00,
        ];
        assert_eq!(
            to_der(&ber).map(|d| d.to_vec()),
            Ok(vec![
                0x30, 0x09, 0x06, 0x01, 0x2A, 0x30, 0x00, 0x80, 0x02, b'x', b'y'
            ])
        );
    }

    #[test]
    fn truncated_missing_eoc_and_trailing_bytes_are_malformed() {
        for bad in [
            &[0x30, 0x80, 0x04, 0x01][..],
            &[0x30, 0x80, 0x04, 0x00][..],
            &[0x30, 0x00, 0x00][..],
            &[0x04, 0x80, 0x00, 0x00][..],
            &[0x30, 0x85, 1, 1, 1, 1, 1][..],
        ] {
            assert!(to_der(bad).is_err(), "{bad:02x?}");
        }
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut ber = Vec::new();
        for _ in 0..100 {
            ber.extend_from_slice(&[0x30, 0x80]);
        }
        ber.extend(std::iter::repeat_n(0u8, 200));
        assert!(to_der(&ber).is_err());
    }
}
