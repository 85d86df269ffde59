//! Small DER writing helpers for the parts of CMS Segel streams (X.690 §10: definite lengths).

/// Append a DER length.
pub(crate) fn push_len(out: &mut Vec<u8>, len: u64) {
    if len < 0x80 {
        out.push(len as u8);
        return;
    }
    let bytes = len.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    out.push(0x80 | (8 - skip) as u8);
    out.extend_from_slice(&bytes[skip..]);
}

/// A header (tag octet + DER length) as bytes.
pub(crate) fn header(tag: u8, len: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(10);
    v.push(tag);
    push_len(&mut v, len);
    v
}

/// Total encoded size of an element with `len` content octets and a one-octet tag.
pub(crate) fn tlv_size(len: u64) -> u64 {
    header(0, len).len() as u64 + len
}

/// A complete element.
pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = header(tag, content.len() as u64);
    v.extend_from_slice(content);
    v
}

/// Concatenate parts into one element.
pub(crate) fn tlv_parts(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut v = header(tag, len as u64);
    for p in parts {
        v.extend_from_slice(p);
    }
    v
}

pub(crate) const SEQUENCE: u8 = 0x30;
pub(crate) const SET: u8 = 0x31;
pub(crate) const OCTET_STRING: u8 = 0x04;
pub(crate) const CTX0_CONS: u8 = 0xA0;

/// DER of an OBJECT IDENTIFIER.
pub(crate) fn oid(o: &const_oid::ObjectIdentifier) -> Vec<u8> {
    tlv(0x06, o.as_bytes())
}

/// DER of a small non-negative INTEGER.
pub(crate) fn small_int(v: u8) -> Vec<u8> {
    if v < 0x80 {
        vec![0x02, 1, v]
    } else {
        vec![0x02, 2, 0, v]
    }
}

/// AlgorithmIdentifier with absent parameters.
pub(crate) fn alg_id(o: &const_oid::ObjectIdentifier) -> Vec<u8> {
    tlv(SEQUENCE, &oid(o))
}

/// AlgorithmIdentifier with NULL parameters.
pub(crate) fn alg_id_null(o: &const_oid::ObjectIdentifier) -> Vec<u8> {
    tlv_parts(SEQUENCE, &[&oid(o), &[0x05, 0x00]])
}

/// Sort DER encodings as a DER SET OF requires (X.690 §11.6).
pub(crate) fn sort_set(items: &mut [Vec<u8>]) {
    items.sort_by(|a, b| {
        let n = a.len().max(b.len());
        let pa = a.iter().copied().chain(std::iter::repeat(0)).take(n);
        let pb = b.iter().copied().chain(std::iter::repeat(0)).take(n);
        pa.cmp(pb)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_len_short_and_long_forms_match_x690() {
        let mut v = Vec::new();
        push_len(&mut v, 5);
        push_len(&mut v, 0x80);
        push_len(&mut v, 0x1_0000);
        assert_eq!(v, [5, 0x81, 0x80, 0x83, 1, 0, 0]);
        assert_eq!(tlv_size(0x80), 3 + 0x80);
    }
}
