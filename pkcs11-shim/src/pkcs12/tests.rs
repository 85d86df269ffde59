use super::*;

#[test]
fn inspect_rejects_garbage_and_every_truncation_without_panicking() {
    assert!(matches!(inspect(b""), Err(Pkcs12Error::Malformed(_))));
    assert!(matches!(
        inspect(b"\x30\x03\x02\x01"),
        Err(Pkcs12Error::Malformed(_))
    ));
    // A minimal PFX: version 3, id-data authSafe holding an empty SEQUENCE, no MAC.
    let pfx: &[u8] = &[
        0x30, 0x16, 0x02, 0x01, 0x03, 0x30, 0x11, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d,
        0x01, 0x07, 0x01, 0xa0, 0x04, 0x04, 0x02, 0x30, 0x00,
    ];
    let ok = inspect(pfx).expect("minimal pfx");
    assert!(ok.public_certs.is_empty() && !ok.has_mac);
    for cut in 0..pfx.len() {
        assert!(inspect(&pfx[..cut]).is_err(), "truncated at {cut}");
    }
}

#[test]
fn open_of_an_empty_pfx_without_mac_yields_nothing() {
    let pfx: &[u8] = &[
        0x30, 0x16, 0x02, 0x01, 0x03, 0x30, 0x11, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d,
        0x01, 0x07, 0x01, 0xa0, 0x04, 0x04, 0x02, 0x30, 0x00,
    ];
    let c = open(pfx, &SecretString::from("x".to_owned())).expect("open");
    assert!(c.keys.is_empty() && c.certs.is_empty());
}

#[test]
fn oversized_input_is_refused_before_parsing() {
    let big = vec![0u8; (MAX_FILE_SIZE + 1) as usize];
    assert_eq!(inspect(&big).err(), Some(Pkcs12Error::TooLarge));
}

#[test]
fn written_file_opens_with_its_passphrase_only_and_keeps_ids_names_and_certificates() {
    use pkcs8::EncodePrivateKey;
    let key = p256::SecretKey::random(&mut rand_core::OsRng);
    let pkcs8 = key.to_pkcs8_der().expect("pkcs8");
    // Any DER stands in for a certificate here; the reader does not parse certificate bags.
    let cert = b"\x30\x03\x02\x01\x07";
    let pass = SecretString::from("sandi-baru ü");
    let file = write::build(
        &[write::KeyToWrite {
            pkcs8_der: pkcs8.as_bytes(),
            local_key_id: Some(b"\x01\x02"),
            friendly_name: Some("Budi ü"),
        }],
        &[write::CertToWrite {
            der: cert,
            local_key_id: Some(b"\x01\x02"),
            friendly_name: Some("Budi ü"),
        }],
        &pass,
        1000,
    )
    .expect("build");
    // Certificates are readable without the passphrase.
    let seen = inspect(&file).expect("inspect");
    assert_eq!(seen.public_certs.len(), 1);
    assert!(seen.has_mac);
    let c = open(&file, &pass).expect("open");
    assert_eq!(c.keys.len(), 1);
    assert_eq!(c.keys[0].pkcs8_der.as_slice(), pkcs8.as_bytes());
    assert_eq!(c.keys[0].local_key_id.as_deref(), Some(&b"\x01\x02"[..]));
    assert_eq!(c.keys[0].friendly_name.as_deref(), Some("Budi ü"));
    assert_eq!(c.certs[0].der, cert);
    assert!(matches!(
        open(&file, &SecretString::from("salah")),
        Err(Pkcs12Error::WrongPassphrase)
    ));
}
