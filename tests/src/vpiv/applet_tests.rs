//! Unit tests of the PIV applet: APDU in, APDU out, no sockets.

use super::*;
use crate::vpiv::CardBuilder;

fn apdu(state: &mut CardState, session: &mut Session, hex_apdu: &str) -> (Vec<u8>, u16) {
    let raw = hex::decode(hex_apdu.replace(' ', "")).unwrap_or_default();
    let mut out = handle_apdu(state, session, &raw);
    let sw = out.split_off(out.len() - 2);
    (out, u16::from_be_bytes([sw[0], sw[1]]))
}

fn selected_card() -> anyhow::Result<(CardState, Session)> {
    let card = CardBuilder::new("123456")
        .slot(0x9a, "vendor-rsa2048")?
        .build()?;
    let mut state = card.state().clone();
    let mut session = Session::default();
    let (_, sw) = apdu(
        &mut state,
        &mut session,
        "00 A4 04 00 09 A0 00 00 03 08 00 00 10 00 00",
    );
    assert_eq!(sw, 0x9000);
    Ok((state, session))
}

const PIN_OK: &str = "00 20 00 80 08 31 32 33 34 35 36 FF FF";
const PIN_BAD: &str = "00 20 00 80 08 39 39 39 39 39 39 FF FF";

#[test]
fn verify_counts_down_blocks_and_puk_reset_restores() -> anyhow::Result<()> {
    let (mut st, mut se) = selected_card()?;
    assert_eq!(apdu(&mut st, &mut se, "00 20 00 80").1, 0x63c3);
    assert_eq!(apdu(&mut st, &mut se, PIN_BAD).1, 0x63c2);
    assert_eq!(apdu(&mut st, &mut se, PIN_OK).1, 0x9000);
    assert_eq!(st.pin_tries_left, 3, "a good PIN resets the counter");
    assert_eq!(apdu(&mut st, &mut se, "00 20 00 80").1, 0x9000);
    for expected in [0x63c2, 0x63c1, 0x63c0] {
        assert_eq!(apdu(&mut st, &mut se, PIN_BAD).1, expected);
    }
    assert!(!se.pin_verified());
    assert_eq!(
        apdu(&mut st, &mut se, PIN_OK).1,
        0x6983,
        "blocked even for the right PIN"
    );
    // RESET RETRY COUNTER: wrong PUK counts down, right PUK sets PIN 654321.
    let bad_puk = "00 2C 00 80 10 3838383838383838 3635343332310000";
    assert_eq!(
        apdu(&mut st, &mut se, bad_puk).1,
        0x6a80,
        "new PIN must be digits + FF"
    );
    let bad_puk = "00 2C 00 80 10 3838383838383838 363534333231FFFF";
    assert_eq!(apdu(&mut st, &mut se, bad_puk).1, 0x63c2);
    let good_puk = "00 2C 00 80 10 3132333435363738 363534333231FFFF";
    assert_eq!(apdu(&mut st, &mut se, good_puk).1, 0x9000);
    assert_eq!(st.puk_tries_left, 3);
    assert_eq!(
        apdu(&mut st, &mut se, "00 20 00 80 08 363534333231FFFF").1,
        0x9000
    );
    // CHANGE REFERENCE DATA back to 123456.
    let change = "00 24 00 80 10 363534333231FFFF 313233343536FFFF";
    assert_eq!(apdu(&mut st, &mut se, change).1, 0x9000);
    assert_eq!(apdu(&mut st, &mut se, PIN_OK).1, 0x9000);
    Ok(())
}

#[test]
fn get_data_chains_a_certificate_over_get_response() -> anyhow::Result<()> {
    let (mut st, mut se) = selected_card()?;
    let (mut data, mut sw) = apdu(&mut st, &mut se, "00 CB 3F FF 05 5C 03 5F C1 05 00");
    while sw & 0xff00 == 0x6100 {
        let (more, next) = apdu(&mut st, &mut se, "00 C0 00 00 00");
        data.extend(more);
        sw = next;
    }
    assert_eq!(sw, 0x9000);
    let (outer, _) = tlv::parse_one(&data)?;
    assert_eq!(outer.tag, [0x53]);
    let inner = tlv::parse(outer.value)?;
    let cert = std::fs::read(crate::fixtures::fixtures_dir().join("vendor-rsa2048.crt.der"))?;
    assert_eq!(tlv::find(&inner, &[0x70]), Some(cert.as_slice()));
    assert_eq!(
        apdu(&mut st, &mut se, "00 CB 3F FF 05 5C 03 5F C1 0B 00").1,
        0x6a82
    );
    Ok(())
}

#[test]
fn general_authenticate_needs_pin_and_accepts_chained_command() -> anyhow::Result<()> {
    let (mut st, mut se) = selected_card()?;
    // 7C 82 01 06 { 82 00, 81 82 01 00 <256 bytes> }, sent in two chained parts.
    let mut body = hex::decode("7C820106820081820100")?;
    body.extend([0x01u8; 256]);
    let first = [&[0x10, 0x87, 0x07, 0x9a, 0x80][..], &body[..0x80]].concat();
    let last = [
        &[0x00, 0x87, 0x07, 0x9a, (body.len() - 0x80) as u8][..],
        &body[0x80..],
        &[0],
    ]
    .concat();
    let run = |st: &mut CardState, se: &mut Session| {
        assert_eq!(apdu(st, se, &hex::encode(&first)).1, 0x9000);
        apdu(st, se, &hex::encode(&last))
    };
    assert_eq!(run(&mut st, &mut se).1, 0x6982, "no PIN yet");
    assert_eq!(apdu(&mut st, &mut se, PIN_OK).1, 0x9000);
    let (mut data, mut sw) = run(&mut st, &mut se);
    while sw & 0xff00 == 0x6100 {
        let (more, next) = apdu(&mut st, &mut se, "00 C0 00 00 00");
        data.extend(more);
        sw = next;
    }
    assert_eq!(sw, 0x9000);
    let (outer, _) = tlv::parse_one(&data)?;
    let inner = tlv::parse(outer.value)?;
    assert_eq!(tlv::find(&inner, &[0x82]).map(<[u8]>::len), Some(256));
    assert_eq!(st.private_operations, 1);
    Ok(())
}

#[test]
fn generate_and_put_data_need_the_management_key() -> anyhow::Result<()> {
    let (mut st, mut se) = selected_card()?;
    let generate = "00 47 00 9D 05 AC 03 80 01 11 00";
    assert_eq!(apdu(&mut st, &mut se, generate).1, 0x6982);
    // External authentication with the default 3DES key.
    let (data, sw) = apdu(&mut st, &mut se, "00 87 03 9B 04 7C 02 81 00 00");
    assert_eq!(sw, 0x9000);
    let challenge: [u8; 8] = data[4..12].try_into()?;
    let cipher = des::TdesEde3::new_from_slice(&DEFAULT_MANAGEMENT_KEY)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut block = challenge.into();
    cipher.encrypt_block(&mut block);
    let answer = format!("00 87 03 9B 0C 7C 0A 82 08 {}", hex::encode(block));
    assert_eq!(apdu(&mut st, &mut se, &answer).1, 0x9000);
    let (template, sw) = apdu(&mut st, &mut se, generate);
    assert_eq!(sw, 0x9000);
    assert_eq!(&template[..2], &[0x7f, 0x49]);
    assert_eq!(st.key(0x9d).map(SlotKey::algorithm), Some(alg::P256));
    let put = "00 DB 3F FF 0B 5C 03 5F C1 0B 53 04 70 02 30 00";
    assert_eq!(apdu(&mut st, &mut se, put).1, 0x9000);
    assert_eq!(
        st.object(&[0x5f, 0xc1, 0x0b]),
        Some(&[0x70, 0x02, 0x30, 0x00][..])
    );
    Ok(())
}

#[test]
fn signature_key_9c_needs_the_pin_right_before_each_use() -> anyhow::Result<()> {
    let card = CardBuilder::new("123456")
        .slot(0x9c, "vendor-p256")?
        .build()?;
    let mut st = card.state().clone();
    let mut se = Session::default();
    apdu(&mut st, &mut se, "00 A4 04 00 05 A0 00 00 03 08");
    // 7C 24 { 82 00, 81 20 <32-byte hash> }
    let sign = format!("00 87 11 9C 26 7C 24 82 00 81 20 {} 00", "42".repeat(32));
    assert_eq!(apdu(&mut st, &mut se, &sign).1, 0x6982, "no PIN");
    assert_eq!(apdu(&mut st, &mut se, PIN_OK).1, 0x9000);
    assert_eq!(apdu(&mut st, &mut se, &sign).1, 0x9000, "PIN just verified");
    assert_eq!(
        apdu(&mut st, &mut se, &sign).1,
        0x6982,
        "used up: verify again"
    );
    assert_eq!(apdu(&mut st, &mut se, PIN_OK).1, 0x9000);
    assert_eq!(
        apdu(&mut st, &mut se, "00 CB 3F FF 03 5C 01 7E 00").1,
        0x9000
    );
    assert_eq!(
        apdu(&mut st, &mut se, &sign).1,
        0x6982,
        "another command in between"
    );
    Ok(())
}
