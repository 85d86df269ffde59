use super::*;

fn reader(b: &[u8]) -> BerReader<&[u8]> {
    BerReader::new(b)
}

#[test]
fn definite_sequence_is_walked_child_by_child() {
    let data = [0x30, 0x06, 0x02, 0x01, 0x05, 0x04, 0x01, 0xAA];
    let mut r = reader(&data);
    let h = r.expect(Tag::SEQUENCE, "seq").unwrap();
    r.enter(h).unwrap();
    let i = r.expect(Tag::INTEGER, "int").unwrap();
    assert_eq!(r.read_primitive(i, 10).unwrap(), [5]);
    assert!(!r.at_end().unwrap());
    let o = r.expect(Tag::OCTET_STRING, "os").unwrap();
    assert_eq!(r.read_primitive(o, 10).unwrap(), [0xAA]);
    assert!(r.at_end().unwrap());
    r.leave().unwrap();
}

#[test]
fn indefinite_constructed_octet_string_streams_all_segments() {
    // [0] indefinite { OCTET STRING "ab", OCTET STRING (constructed, indefinite) { "c" }, "de" }
    let data = [
        0xA0, 0x80, 0x04, 0x02, b'a', b'b', 0x24, 0x80, 0x04, 0x01, b'c', 0x00, 0x00, 0x04, 0x02,
        b'd', b'e', 0x00, 0x00, 0x05, 0x00,
    ];
    let mut r = reader(&data);
    let h = r.read_header().unwrap();
    let mut s = Vec::new();
    r.octet_string(h).unwrap().read_to_end(&mut s).unwrap();
    assert_eq!(s, b"abcde");
    assert_eq!(r.read_header().unwrap().tag, Tag::universal(5, false));
}

#[test]
fn read_element_der_normalises_indefinite_lengths_and_joins_strings() {
    let data = [
        0x30, 0x80, 0x24, 0x80, 0x04, 0x01, 1, 0x04, 0x01, 2, 0x00, 0x00, 0x00, 0x00,
    ];
    let mut r = reader(&data);
    assert_eq!(
        r.read_element_der().unwrap(),
        [0x30, 0x04, 0x04, 0x02, 1, 2]
    );
}

#[test]
fn skip_element_skips_nested_indefinite_structures() {
    let data = [
        0x30, 0x80, 0x30, 0x80, 0x02, 0x01, 1, 0x00, 0x00, 0x00, 0x00, 0x02, 0x01, 9,
    ];
    let mut r = reader(&data);
    r.skip_element().unwrap();
    let h = r.expect(Tag::INTEGER, "int").unwrap();
    assert_eq!(r.read_primitive(h, 4).unwrap(), [9]);
}

#[test]
fn deep_nesting_is_rejected_not_overflowed() {
    let mut data = Vec::new();
    for _ in 0..10_000 {
        data.extend_from_slice(&[0x30, 0x80]);
    }
    let mut r = reader(&data);
    assert!(matches!(
        r.read_element_der(),
        Err(CmsError::Malformed { .. })
    ));
    let mut r = reader(&data);
    assert!(matches!(r.skip_element(), Err(CmsError::Malformed { .. })));
}

#[test]
fn huge_length_is_rejected_without_allocating() {
    let data = [
        0x04, 0x88, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00,
    ];
    let mut r = reader(&data);
    assert!(matches!(
        r.read_element_der(),
        Err(CmsError::Malformed { .. })
    ));
    // Streaming it just runs out of input.
    let mut r = reader(&data);
    let h = r.read_header().unwrap();
    let e = r
        .octet_string(h)
        .unwrap()
        .read_to_end(&mut Vec::new())
        .unwrap_err();
    assert!(matches!(from_io(e), CmsError::Truncated(_)));
}

#[test]
fn child_longer_than_parent_is_malformed() {
    let data = [0x30, 0x03, 0x04, 0x05, 1, 2, 3, 4, 5];
    let mut r = reader(&data);
    let h = r.read_header().unwrap();
    r.enter(h).unwrap();
    assert!(matches!(r.read_header(), Err(CmsError::Malformed { .. })));
}

#[test]
fn truncated_header_and_missing_eoc_are_truncation_errors() {
    let mut r = reader(&[0x30]);
    assert!(matches!(r.read_header(), Err(CmsError::Truncated(_))));
    let data = [0x24, 0x80, 0x04, 0x01, 7];
    let mut r = reader(&data);
    let h = r.read_header().unwrap();
    let e = r
        .octet_string(h)
        .unwrap()
        .read_to_end(&mut Vec::new())
        .unwrap_err();
    assert!(matches!(from_io(e), CmsError::Truncated(_)));
}

#[test]
fn indefinite_primitive_and_reserved_length_are_malformed() {
    assert!(matches!(
        reader(&[0x04, 0x80]).read_header(),
        Err(CmsError::Malformed { .. })
    ));
    assert!(matches!(
        reader(&[0x04, 0xFF]).read_header(),
        Err(CmsError::Malformed { .. })
    ));
}

#[test]
fn random_inputs_never_panic() {
    // A tiny deterministic fuzz loop; the real fuzz target is agent/fuzz.
    let mut x: u64 = 0x9E3779B97F4A7C15;
    for _ in 0..20_000 {
        let len = (x % 40) as usize;
        let mut buf = Vec::with_capacity(len);
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf.push((x >> 24) as u8);
        }
        let _ = reader(&buf).read_element_der();
        let _ = reader(&buf).skip_element();
        let mut r = reader(&buf);
        if let Ok(h) = r.read_header()
            && let Ok(mut s) = r.octet_string(h)
        {
            let _ = s.read_to_end(&mut Vec::new());
        }
    }
}
