//! BER-TLV as PIV uses it (NIST SP 800-73-4 Part 2, 3.3 "BER-TLV"): tags of one to three bytes,
//! definite lengths in one to three bytes. Enough to build responses and to read the command data
//! OpenSC sends; not a general BER parser.

use anyhow::{Result, bail, ensure};

/// Appends `tag || length || value` to `out`.
pub fn put(out: &mut Vec<u8>, tag: &[u8], value: &[u8]) {
    out.extend_from_slice(tag);
    put_len(out, value.len());
    out.extend_from_slice(value);
}

/// `tag || length || value` as a new vector.
pub fn tlv(tag: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 6);
    put(&mut out, tag, value);
    out
}

/// Appends a definite BER length.
pub fn put_len(out: &mut Vec<u8>, len: usize) {
    match len {
        0..=0x7f => out.push(len as u8),
        0x80..=0xff => out.extend_from_slice(&[0x81, len as u8]),
        _ => out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]),
    }
}

/// One element read from a byte string: its tag bytes and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element<'a> {
    pub tag: &'a [u8],
    pub value: &'a [u8],
}

/// Splits `data` into consecutive TLV elements; fails on truncation or a bad length form.
pub fn parse(mut data: &[u8]) -> Result<Vec<Element<'_>>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let (el, rest) = parse_one(data)?;
        out.push(el);
        data = rest;
    }
    Ok(out)
}

/// Reads one element from the front of `data`, returning it and the rest.
pub fn parse_one(data: &[u8]) -> Result<(Element<'_>, &[u8])> {
    ensure!(!data.is_empty(), "empty TLV");
    // Tag: low five bits all set means more tag bytes follow, each with bit 8 set except the last.
    let mut tag_len = 1;
    if data[0] & 0x1f == 0x1f {
        loop {
            ensure!(tag_len < data.len(), "truncated tag");
            tag_len += 1;
            if data[tag_len - 1] & 0x80 == 0 {
                break;
            }
        }
    }
    let rest = &data[tag_len..];
    ensure!(!rest.is_empty(), "TLV without length");
    let (len, len_len) = match rest[0] {
        n @ 0..=0x7f => (n as usize, 1),
        0x81 if rest.len() >= 2 => (rest[1] as usize, 2),
        0x82 if rest.len() >= 3 => ((rest[1] as usize) << 8 | rest[2] as usize, 3),
        0x83 if rest.len() >= 4 => (
            (rest[1] as usize) << 16 | (rest[2] as usize) << 8 | rest[3] as usize,
            4,
        ),
        other => bail!("unsupported TLV length byte {other:#04x}"),
    };
    let rest = &rest[len_len..];
    ensure!(
        rest.len() >= len,
        "TLV value truncated: {len} bytes announced, {} present",
        rest.len()
    );
    Ok((
        Element {
            tag: &data[..tag_len],
            value: &rest[..len],
        },
        &rest[len..],
    ))
}

/// The value of the first element tagged `tag` among `elements`.
pub fn find<'a>(elements: &[Element<'a>], tag: &[u8]) -> Option<&'a [u8]> {
    elements.iter().find(|e| e.tag == tag).map(|e| e.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tlv_round_trips_short_and_long_lengths_and_multibyte_tags() -> Result<()> {
        for len in [0usize, 1, 127, 128, 255, 256, 1500] {
            let value = vec![0xab; len];
            let mut data = tlv(&[0x5f, 0xc1, 0x05], &value);
            data.extend(tlv(&[0x7c], &[1, 2]));
            let els = parse(&data)?;
            assert_eq!(els.len(), 2);
            assert_eq!(els[0].tag, &[0x5f, 0xc1, 0x05]);
            assert_eq!(els[0].value.len(), len);
            assert_eq!(find(&els, &[0x7c]), Some(&[1u8, 2][..]));
        }
        Ok(())
    }

    #[test]
    fn tlv_parse_rejects_truncated_value() {
        assert!(parse(&[0x53, 0x05, 1, 2]).is_err());
        assert!(parse(&[0x5f]).is_err());
    }
}
