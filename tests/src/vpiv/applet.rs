//! The PIV card application (NIST SP 800-73-4 Part 2): what it stores, who may use it, and one
//! function that turns a command APDU into a response APDU, including command chaining (7816-4
//! 5.1.1.1) and response chaining with `61xx` / GET RESPONSE (7816-4 5.3.4).
//!
//! [`CardState`] survives removal and re-insertion (PIN counters, keys, data objects); a
//! [`Session`] lasts from power-on to power-off (selection, PIN verified, management key
//! authenticated, pending chained data).

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use des::cipher::{BlockEncrypt as _, KeyInit as _};
use rand::RngCore as _;

use super::apdu::{Command, sw};
use super::keys::{SlotKey, alg};
use super::tlv;

/// The PIV card application identifier (SP 800-73-4 Part 1, 2.2).
pub const PIV_AID: [u8; 11] = [
    0xa0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00,
];
/// The default 3DES card application administration key (as on YubiKeys and in OpenSC docs).
pub const DEFAULT_MANAGEMENT_KEY: [u8; 24] = [
    1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8,
];

/// Key references (SP 800-73-4 Part 1, Table 4b).
pub mod key_ref {
    pub const PIN: u8 = 0x80;
    pub const PUK: u8 = 0x81;
    pub const MANAGEMENT: u8 = 0x9b;
    pub const AUTHENTICATION: u8 = 0x9a;
    pub const SIGNATURE: u8 = 0x9c;
    pub const KEY_MANAGEMENT: u8 = 0x9d;
    pub const CARD_AUTHENTICATION: u8 = 0x9e;
}

/// Data object tag of the certificate for a key slot (SP 800-73-4 Part 1, Table 3).
pub fn cert_object_tag(slot: u8) -> Option<[u8; 3]> {
    match slot {
        key_ref::AUTHENTICATION => Some([0x5f, 0xc1, 0x05]),
        key_ref::SIGNATURE => Some([0x5f, 0xc1, 0x0a]),
        key_ref::KEY_MANAGEMENT => Some([0x5f, 0xc1, 0x0b]),
        key_ref::CARD_AUTHENTICATION => Some([0x5f, 0xc1, 0x01]),
        _ => None,
    }
}

const CHUID_TAG: [u8; 3] = [0x5f, 0xc1, 0x02];
const CCC_TAG: [u8; 3] = [0x5f, 0xc1, 0x07];
const DISCOVERY_TAG: [u8; 1] = [0x7e];

/// What the card remembers across removal: reference data, retry counters, keys, data objects.
#[derive(Clone, Debug)]
pub struct CardState {
    pin: [u8; 8],
    puk: [u8; 8],
    /// PIN tries left before it blocks.
    pub pin_tries_left: u8,
    pub pin_max_tries: u8,
    /// PUK tries left before it blocks.
    pub puk_tries_left: u8,
    pub puk_max_tries: u8,
    management_key: [u8; 24],
    keys: BTreeMap<u8, SlotKey>,
    /// Data objects by tag: the value inside the `53` wrapper (the discovery object is stored
    /// whole, it has no wrapper).
    objects: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Counts GENERAL AUTHENTICATE operations done with a private key (tests observe it).
    pub private_operations: u64,
}

/// Pads a PIN/PUK to the 8-byte reference data format (SP 800-73-4 Part 2, 2.4.3: `FF` padding).
pub fn pad_reference(value: &str) -> Result<[u8; 8]> {
    anyhow::ensure!(
        !value.is_empty() && value.len() <= 8,
        "PIN/PUK must be 1–8 bytes"
    );
    let mut out = [0xff; 8];
    out[..value.len()].copy_from_slice(value.as_bytes());
    Ok(out)
}

impl CardState {
    /// A card with this PIN/PUK, retry limits, and a CHUID carrying `guid` (OpenSC derives the
    /// token serial from it, so two cards need two GUIDs).
    pub fn new(pin: &str, puk: &str, pin_tries: u8, puk_tries: u8, guid: [u8; 16]) -> Result<Self> {
        let mut state = CardState {
            pin: pad_reference(pin)?,
            puk: pad_reference(puk)?,
            pin_tries_left: pin_tries,
            pin_max_tries: pin_tries,
            puk_tries_left: puk_tries,
            puk_max_tries: puk_tries,
            management_key: DEFAULT_MANAGEMENT_KEY,
            keys: BTreeMap::new(),
            objects: BTreeMap::new(),
            private_operations: 0,
        };
        state
            .objects
            .insert(DISCOVERY_TAG.to_vec(), discovery_object());
        state.objects.insert(CHUID_TAG.to_vec(), chuid(&guid));
        state.objects.insert(CCC_TAG.to_vec(), ccc(&guid));
        Ok(state)
    }

    /// Puts a key and its certificate (DER) into `slot`.
    pub fn install(&mut self, slot: u8, key: SlotKey, cert_der: &[u8]) -> Result<()> {
        let tag = cert_object_tag(slot).with_context(|| format!("{slot:#04x} is no key slot"))?;
        self.keys.insert(slot, key);
        self.objects.insert(tag.to_vec(), cert_object(cert_der));
        Ok(())
    }

    /// The key in `slot`, if any.
    pub fn key(&self, slot: u8) -> Option<&SlotKey> {
        self.keys.get(&slot)
    }

    /// The stored value of a data object (inside its `53` wrapper).
    pub fn object(&self, tag: &[u8]) -> Option<&[u8]> {
        self.objects.get(tag).map(Vec::as_slice)
    }
}

/// `70 cert 71 00 FE 00` (SP 800-73-4 Part 1, Appendix A, certificate objects; uncompressed).
pub fn cert_object(cert_der: &[u8]) -> Vec<u8> {
    let mut v = tlv::tlv(&[0x70], cert_der);
    tlv::put(&mut v, &[0x71], &[0x00]);
    tlv::put(&mut v, &[0xfe], &[]);
    v
}

fn discovery_object() -> Vec<u8> {
    let mut inner = tlv::tlv(&[0x4f], &PIV_AID);
    // PIN usage policy: PIV card application PIN only (Part 1, 3.3.2).
    tlv::put(&mut inner, &[0x5f, 0x2f], &[0x40, 0x00]);
    tlv::tlv(&DISCOVERY_TAG, &inner)
}

fn chuid(guid: &[u8; 16]) -> Vec<u8> {
    // FASC-N: a fixed, syntactically valid-looking value.
    let fascn = [
        0xd4, 0x32, 0x10, 0x5a, 0x15, 0x2c, 0x11, 0x48, 0x58, 0x21, 0x08, 0x42, 0x10, 0x84, 0x21,
        0x08, 0x42, 0x10, 0x84, 0x21, 0x08, 0x42, 0x10, 0xc3, 0xeb,
    ];
    // OpenSC makes the token serial from the FASC-N's last 8 bytes: make them the GUID's.
    let mut fascn = fascn;
    fascn[17..].copy_from_slice(&guid[..8]);
    let mut v = tlv::tlv(&[0x30], &fascn);
    tlv::put(&mut v, &[0x34], guid);
    tlv::put(&mut v, &[0x35], b"20991231");
    tlv::put(&mut v, &[0x3e], &[]);
    tlv::put(&mut v, &[0xfe], &[]);
    v
}

fn ccc(guid: &[u8; 16]) -> Vec<u8> {
    // Card Capability Container (Part 1, Appendix A, Table 8), minimal values.
    let mut id = vec![0xa0, 0x00, 0x00, 0x01, 0x16];
    id.extend_from_slice(guid);
    let mut v = tlv::tlv(&[0xf0], &id);
    for (tag, value) in [
        (0xf1u8, &[0x21u8][..]),
        (0xf2, &[0x21]),
        (0xf3, &[]),
        (0xf4, &[0x00]),
        (0xf5, &[0x10]),
        (0xf6, &[]),
        (0xf7, &[]),
        (0xfa, &[]),
        (0xfb, &[]),
        (0xfc, &[]),
        (0xfd, &[]),
        (0xfe, &[]),
    ] {
        tlv::put(&mut v, &[tag], value);
    }
    v
}

/// State of one card session (power-on to power-off).
#[derive(Debug, Default)]
pub struct Session {
    selected: bool,
    pin_verified: bool,
    /// The PIN was verified by the command just before (the signature key 9C needs that).
    pin_just_verified: bool,
    admin: bool,
    witness: Option<[u8; 8]>,
    challenge: Option<[u8; 8]>,
    chain: Option<(u8, u8, u8, Vec<u8>)>,
    pending: Vec<u8>,
}

impl Session {
    /// Whether the PIN has been verified in this session.
    pub fn pin_verified(&self) -> bool {
        self.pin_verified
    }
}

/// One response APDU: data and status word.
type Reply = (Vec<u8>, u16);

fn status(sw: u16) -> Reply {
    (Vec::new(), sw)
}

/// Processes one command APDU and returns the response APDU bytes (data ‖ SW1 SW2).
pub fn handle_apdu(state: &mut CardState, session: &mut Session, raw: &[u8]) -> Vec<u8> {
    let (data, sw) = match Command::parse(raw) {
        Ok(cmd) => handle_command(state, session, cmd),
        Err(_) => status(sw::WRONG_LENGTH),
    };
    let mut out = data;
    out.extend_from_slice(&sw.to_be_bytes());
    out
}

fn handle_command(state: &mut CardState, session: &mut Session, cmd: Command) -> Reply {
    if cmd.cla & !0x10 != 0 {
        return status(sw::CLA_NOT_SUPPORTED);
    }
    // GET RESPONSE continues response chaining; anything else drops what was pending.
    if cmd.ins == 0xc0 {
        if session.pending.is_empty() {
            return status(sw::CONDITIONS_NOT_SATISFIED);
        }
        let pending = std::mem::take(&mut session.pending);
        return respond(session, pending, &cmd);
    }
    session.pending.clear();
    let just_verified = std::mem::take(&mut session.pin_just_verified);
    if cmd.chained() {
        match &mut session.chain {
            Some((ins, p1, p2, data)) if (*ins, *p1, *p2) == (cmd.ins, cmd.p1, cmd.p2) => {
                data.extend_from_slice(&cmd.data)
            }
            _ => session.chain = Some((cmd.ins, cmd.p1, cmd.p2, cmd.data.clone())),
        }
        // Chaining does not count as "another command" for the 9C PIN-always rule.
        session.pin_just_verified = just_verified;
        return status(sw::OK);
    }
    let mut cmd = cmd;
    if let Some((ins, p1, p2, mut data)) = session.chain.take() {
        if (ins, p1, p2) != (cmd.ins, cmd.p1, cmd.p2) {
            return status(sw::CONDITIONS_NOT_SATISFIED);
        }
        data.extend_from_slice(&cmd.data);
        cmd.data = data;
    }
    let (data, sw) = dispatch(state, session, &cmd, just_verified);
    if sw != sw::OK || data.is_empty() {
        return (data, sw);
    }
    respond(session, data, &cmd)
}

/// Sends as much of `data` as `Le` allows; the rest waits for GET RESPONSE (`61xx`).
fn respond(session: &mut Session, mut data: Vec<u8>, cmd: &Command) -> Reply {
    let max = match cmd.le {
        Some(le) => le,
        None if cmd.extended => 65536,
        None => 256,
    };
    if data.len() <= max {
        return (data, sw::OK);
    }
    session.pending = data.split_off(max);
    let left = session.pending.len();
    (data, 0x6100 | if left >= 256 { 0 } else { left as u16 })
}

fn dispatch(state: &mut CardState, session: &mut Session, cmd: &Command, just: bool) -> Reply {
    if cmd.ins == 0xa4 {
        return select(session, cmd);
    }
    if !session.selected {
        return status(match cmd.ins {
            0x20 | 0x24 | 0x2c | 0x47 | 0x87 | 0xcb | 0xdb => sw::CONDITIONS_NOT_SATISFIED,
            _ => sw::INS_NOT_SUPPORTED,
        });
    }
    match cmd.ins {
        0xcb => get_data(state, cmd),
        0x20 => verify(state, session, cmd),
        0x24 => change_reference(state, session, cmd),
        0x2c => reset_retry_counter(state, cmd),
        0x87 => general_authenticate(state, session, cmd, just),
        0x47 => generate(state, session, cmd),
        0xdb => put_data(state, session, cmd),
        _ => status(sw::INS_NOT_SUPPORTED),
    }
}

fn select(session: &mut Session, cmd: &Command) -> Reply {
    // By DF name with a (possibly truncated) AID: SP 800-73-4 Part 2, 3.1.1.
    if cmd.p1 != 0x04 || cmd.data.is_empty() || !PIV_AID.starts_with(&cmd.data) {
        return status(sw::NOT_FOUND);
    }
    *session = Session {
        selected: true,
        ..Session::default()
    };
    // Application property template (Part 2, Table 3).
    let mut inner = tlv::tlv(&[0x4f], &PIV_AID[5..]);
    tlv::put(&mut inner, &[0x79], &tlv::tlv(&[0x4f], &PIV_AID));
    tlv::put(&mut inner, &[0x50], b"Segel virtual PIV");
    let mut algs = Vec::new();
    for a in [alg::TDES, alg::RSA2048, alg::P256] {
        tlv::put(&mut algs, &[0x80], &[a]);
    }
    tlv::put(&mut algs, &[0x06], &[]);
    tlv::put(&mut inner, &[0xac], &algs);
    (tlv::tlv(&[0x61], &inner), sw::OK)
}

fn get_data(state: &CardState, cmd: &Command) -> Reply {
    if (cmd.p1, cmd.p2) != (0x3f, 0xff) {
        return status(sw::INCORRECT_P1P2);
    }
    let Ok((el, _)) = tlv::parse_one(&cmd.data) else {
        return status(sw::WRONG_DATA);
    };
    if el.tag != [0x5c] {
        return status(sw::WRONG_DATA);
    }
    match state.objects.get(el.value) {
        Some(v) if el.value == DISCOVERY_TAG => (v.clone(), sw::OK),
        Some(v) => (tlv::tlv(&[0x53], v), sw::OK),
        None => status(sw::NOT_FOUND),
    }
}

fn verify(state: &mut CardState, session: &mut Session, cmd: &Command) -> Reply {
    if cmd.p2 != key_ref::PIN {
        return status(sw::REF_NOT_FOUND);
    }
    match (cmd.p1, cmd.data.len()) {
        // Reset the security status (Part 2, 3.2.1).
        (0xff, 0) => {
            session.pin_verified = false;
            status(sw::OK)
        }
        (0x00, 0) if session.pin_verified => status(sw::OK),
        (0x00, 0) if state.pin_tries_left == 0 => status(sw::AUTH_BLOCKED),
        (0x00, 0) => status(sw::tries_left(state.pin_tries_left)),
        (0x00, 8) => {
            let ok = check_reference(&state.pin, &mut state.pin_tries_left, &cmd.data);
            session.pin_verified = ok == sw::OK;
            session.pin_just_verified = session.pin_verified;
            if ok == sw::OK {
                state.pin_tries_left = state.pin_max_tries;
            }
            status(ok)
        }
        (0x00, _) => status(sw::WRONG_DATA),
        _ => status(sw::INCORRECT_P1P2),
    }
}

/// Compares `given` with `reference`, counting a failure; `9000`, `63Cx` or `6983`.
fn check_reference(reference: &[u8; 8], tries_left: &mut u8, given: &[u8]) -> u16 {
    if *tries_left == 0 {
        return sw::AUTH_BLOCKED;
    }
    if given == reference {
        sw::OK
    } else {
        *tries_left -= 1;
        sw::tries_left(*tries_left)
    }
}

fn valid_pin(p: &[u8]) -> bool {
    // 6–8 ASCII digits, then FF padding (Part 2, 2.4.3).
    let len = p.iter().position(|&b| b == 0xff).unwrap_or(8);
    (6..=8).contains(&len)
        && p[..len].iter().all(u8::is_ascii_digit)
        && p[len..].iter().all(|&b| b == 0xff)
}

fn change_reference(state: &mut CardState, session: &mut Session, cmd: &Command) -> Reply {
    if cmd.p1 != 0 || cmd.data.len() != 16 {
        return status(sw::WRONG_DATA);
    }
    let (old, new) = cmd.data.split_at(8);
    match cmd.p2 {
        key_ref::PIN => {
            if !valid_pin(new) {
                return status(sw::WRONG_DATA);
            }
            let sw = check_reference(&state.pin, &mut state.pin_tries_left, old);
            if sw == sw::OK {
                state.pin.copy_from_slice(new);
                state.pin_tries_left = state.pin_max_tries;
                session.pin_verified = true;
            }
            status(sw)
        }
        key_ref::PUK => {
            let sw = check_reference(&state.puk, &mut state.puk_tries_left, old);
            if sw == sw::OK {
                state.puk.copy_from_slice(new);
                state.puk_tries_left = state.puk_max_tries;
            }
            status(sw)
        }
        _ => status(sw::REF_NOT_FOUND),
    }
}

fn reset_retry_counter(state: &mut CardState, cmd: &Command) -> Reply {
    if (cmd.p1, cmd.p2) != (0x00, key_ref::PIN) {
        return status(sw::REF_NOT_FOUND);
    }
    if cmd.data.len() != 16 || !valid_pin(&cmd.data[8..]) {
        return status(sw::WRONG_DATA);
    }
    let sw = check_reference(&state.puk, &mut state.puk_tries_left, &cmd.data[..8]);
    if sw == sw::OK {
        state.puk_tries_left = state.puk_max_tries;
        state.pin.copy_from_slice(&cmd.data[8..]);
        state.pin_tries_left = state.pin_max_tries;
    }
    status(sw)
}

fn general_authenticate(
    state: &mut CardState,
    session: &mut Session,
    cmd: &Command,
    just_verified: bool,
) -> Reply {
    let Ok((template, _)) = tlv::parse_one(&cmd.data) else {
        return status(sw::WRONG_DATA);
    };
    if template.tag != [0x7c] {
        return status(sw::WRONG_DATA);
    }
    let Ok(items) = tlv::parse(template.value) else {
        return status(sw::WRONG_DATA);
    };
    if cmd.p2 == key_ref::MANAGEMENT {
        return management_authenticate(state, session, cmd.p1, &items);
    }
    let Some(key) = state.keys.get(&cmd.p2) else {
        return status(sw::REF_NOT_FOUND);
    };
    if key.algorithm() != cmd.p1 {
        return status(sw::INCORRECT_P1P2);
    }
    // Access rules (Part 1, Table 4b): 9E needs nothing; 9A and 9D the PIN; 9C the PIN
    // verified right before ("PIN always").
    let allowed = match cmd.p2 {
        key_ref::CARD_AUTHENTICATION => true,
        key_ref::SIGNATURE => session.pin_verified && just_verified,
        _ => session.pin_verified,
    };
    if !allowed {
        return status(sw::SECURITY_NOT_SATISFIED);
    }
    let wants_response = tlv::find(&items, &[0x82]).is_some_and(<[u8]>::is_empty);
    if !wants_response {
        return status(sw::WRONG_DATA);
    }
    let result = if let Some(challenge) = tlv::find(&items, &[0x81]) {
        key.private_operation(challenge)
    } else if let Some(point) = tlv::find(&items, &[0x85]) {
        key.key_agreement(point)
    } else {
        return status(sw::WRONG_DATA);
    };
    match result {
        Ok(out) => {
            state.private_operations += 1;
            (tlv::tlv(&[0x7c], &tlv::tlv(&[0x82], &out)), sw::OK)
        }
        Err(_) => status(sw::WRONG_DATA),
    }
}

/// Card application administrator authentication with the 3DES management key 9B
/// (Part 2, Appendix A.1 mutual authentication and A.2 external authentication).
fn management_authenticate(
    state: &CardState,
    session: &mut Session,
    algorithm: u8,
    items: &[tlv::Element<'_>],
) -> Reply {
    if algorithm != alg::TDES {
        return status(sw::INCORRECT_P1P2);
    }
    let Ok(cipher) = des::TdesEde3::new_from_slice(&state.management_key) else {
        return status(sw::NO_PRECISE_DIAGNOSIS);
    };
    let encrypt = |block: &[u8; 8]| {
        let mut b = (*block).into();
        cipher.encrypt_block(&mut b);
        b.to_vec()
    };
    let witness = tlv::find(items, &[0x80]);
    let challenge = tlv::find(items, &[0x81]);
    let response = tlv::find(items, &[0x82]);
    let reply = |tag: u8, value: &[u8]| (tlv::tlv(&[0x7c], &tlv::tlv(&[tag], value)), sw::OK);
    match (witness, challenge, response) {
        // Mutual, step 1: the card sends an encrypted witness.
        (Some([]), None, None) => {
            let mut w = [0u8; 8];
            rand::thread_rng().fill_bytes(&mut w);
            session.witness = Some(w);
            // The host decrypts E(W) with its copy of the key and sends W back.
            reply(0x80, &encrypt(&w))
        }
        // Mutual, step 2: the host returns the decrypted witness and its own challenge.
        (Some(w), Some(c), Some([]) | None) if w.len() == 8 && c.len() == 8 => {
            let expected = session.witness.take();
            if expected.as_ref().map(|e| &e[..]) != Some(w) {
                session.admin = false;
                return status(sw::SECURITY_NOT_SATISFIED);
            }
            session.admin = true;
            let mut cb = [0u8; 8];
            cb.copy_from_slice(c);
            reply(0x82, &encrypt(&cb))
        }
        // External, step 1: the card sends a challenge.
        (None, Some([]), None) => {
            let mut c = [0u8; 8];
            rand::thread_rng().fill_bytes(&mut c);
            session.challenge = Some(c);
            reply(0x81, &c)
        }
        // External, step 2: the host returns the encrypted challenge.
        (None, None, Some(r)) if r.len() == 8 => {
            let ok = session.challenge.take().is_some_and(|c| encrypt(&c) == r);
            session.admin = ok;
            status(if ok {
                sw::OK
            } else {
                sw::SECURITY_NOT_SATISFIED
            })
        }
        _ => status(sw::WRONG_DATA),
    }
}

fn generate(state: &mut CardState, session: &Session, cmd: &Command) -> Reply {
    if !session.admin {
        return status(sw::SECURITY_NOT_SATISFIED);
    }
    if cmd.p1 != 0 || cert_object_tag(cmd.p2).is_none() {
        return status(sw::INCORRECT_P1P2);
    }
    // Control reference template AC { 80 algorithm } (Part 2, 3.3.2).
    let algorithm = tlv::parse_one(&cmd.data)
        .ok()
        .filter(|(el, _)| el.tag == [0xac])
        .and_then(|(el, _)| tlv::parse(el.value).ok())
        .and_then(|items| tlv::find(&items, &[0x80]).map(<[u8]>::to_vec));
    let Some([algorithm]) = algorithm.as_deref() else {
        return status(sw::WRONG_DATA);
    };
    match SlotKey::generate(*algorithm) {
        Ok(key) => {
            let template = key.public_template();
            state.keys.insert(cmd.p2, key);
            (template, sw::OK)
        }
        Err(_) => status(sw::FUNC_NOT_SUPPORTED),
    }
}

fn put_data(state: &mut CardState, session: &Session, cmd: &Command) -> Reply {
    if !session.admin {
        return status(sw::SECURITY_NOT_SATISFIED);
    }
    if (cmd.p1, cmd.p2) != (0x3f, 0xff) {
        return status(sw::INCORRECT_P1P2);
    }
    let Ok(items) = tlv::parse(&cmd.data) else {
        return status(sw::WRONG_DATA);
    };
    match items.as_slice() {
        // The discovery object is written whole (Part 2, 3.3.1).
        [d] if d.tag == DISCOVERY_TAG => {
            state
                .objects
                .insert(DISCOVERY_TAG.to_vec(), cmd.data.clone());
            status(sw::OK)
        }
        [tag, value] if tag.tag == [0x5c] && value.tag == [0x53] => {
            state
                .objects
                .insert(tag.value.to_vec(), value.value.to_vec());
            status(sw::OK)
        }
        _ => status(sw::WRONG_DATA),
    }
}

#[cfg(test)]
#[path = "applet_tests.rs"]
mod tests;
