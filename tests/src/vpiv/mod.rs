//! A virtual PIV smart card for tests: a [`VirtualCard`] plugs into a vpcd reader of a private
//! pcscd ([`crate::pcscd`]) and answers OpenSC's PIV driver like a real card (NIST SP 800-73-4).
//!
//! - [`applet`]: the PIV application — SELECT, GET DATA, VERIFY (real retry counter, `63Cx`,
//!   blocking with `6983`), CHANGE REFERENCE DATA, RESET RETRY COUNTER, GENERAL AUTHENTICATE
//!   (raw RSA-2048 for signing and decryption, P-256 ECDSA and ECDH, 3DES management key),
//!   GENERATE ASYMMETRIC KEY PAIR, PUT DATA, command and response chaining.
//! - [`vpcd`]: the vpcd socket protocol (TESTSTACK.md): inserting is connecting, removing is
//!   closing the socket — at any moment, also in the middle of a command.
//! - [`keys`]: the slot keys (RustCrypto).
//!
//! The card's state (PIN counters, keys, objects) survives removal, like a real card; tests read
//! it through [`VirtualCard::state`] to check what the agent did (e.g. exactly one PIN try used).
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use segel_tests::pcscd::Pcscd;
//! use segel_tests::vpiv::{CardBuilder, VirtualCard};
//! let pcscd = Pcscd::start(2)?;
//! let card = CardBuilder::new("123456").slot(0x9a, "vendor-rsa2048")?.build()?;
//! card.insert(pcscd.reader_port(0))?;
//! // … use OpenSC with pcscd.envs() …
//! card.remove();
//! # Ok(()) }
//! ```

pub mod apdu;
pub mod applet;
pub mod keys;
pub mod tlv;
pub mod vpcd;

pub use applet::CardState;
pub use vpcd::VirtualCard;

use anyhow::{Context, Result};

use crate::fixtures::fixtures_dir;
use keys::SlotKey;

/// A generic ATR for the virtual card: T=1, historical bytes "Segel vPIV" (not in any module
/// table, so OpenSC finds the PIV applet by selecting it, as with an unknown PIV card).
pub const DEFAULT_ATR: [u8; 15] = [
    0x3b, 0x8a, 0x80, 0x01, b'S', b'e', b'g', b'e', b'l', b' ', b'v', b'P', b'I', b'V', 0x00,
];

/// The ATR with its check byte TCK (ISO/IEC 7816-3, 8.2.5: XOR of T0 … last byte) filled in.
pub fn with_tck(mut atr: Vec<u8>) -> Vec<u8> {
    if let Some((last, body)) = atr.split_last_mut() {
        *last = body[1..].iter().fold(0, |acc, b| acc ^ b);
    }
    atr
}

/// Builds a card: PIN, PUK, retry limits, keys and certificates from the test fixtures.
#[derive(Debug)]
pub struct CardBuilder {
    pin: String,
    puk: String,
    pin_tries: u8,
    puk_tries: u8,
    guid: [u8; 16],
    atr: Vec<u8>,
    slots: Vec<(u8, SlotKey, Vec<u8>)>,
}

impl CardBuilder {
    /// A card with this PIN, PUK `12345678`, 3 PIN tries, 3 PUK tries, a random GUID.
    pub fn new(pin: &str) -> Self {
        let mut guid = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut guid);
        CardBuilder {
            pin: pin.to_owned(),
            puk: "12345678".to_owned(),
            pin_tries: 3,
            puk_tries: 3,
            guid,
            atr: with_tck(DEFAULT_ATR.to_vec()),
            slots: Vec::new(),
        }
    }

    /// Sets the PUK.
    pub fn puk(mut self, puk: &str) -> Self {
        self.puk = puk.to_owned();
        self
    }

    /// Sets the PIN retry limit.
    pub fn pin_tries(mut self, tries: u8) -> Self {
        self.pin_tries = tries;
        self
    }

    /// Sets the ATR the card presents (used as given; see [`with_tck`]).
    pub fn atr(mut self, atr: &[u8]) -> Self {
        self.atr = atr.to_vec();
        self
    }

    /// Puts fixture `name` (key and certificate) into key slot `slot` (9A, 9C, 9D, 9E).
    pub fn slot(mut self, slot: u8, fixture: &str) -> Result<Self> {
        let dir = fixtures_dir();
        let pem = std::fs::read_to_string(dir.join(format!("{fixture}.key.pem")))
            .with_context(|| format!("reading fixture {fixture} key"))?;
        let cert = std::fs::read(dir.join(format!("{fixture}.crt.der")))
            .with_context(|| format!("reading fixture {fixture} certificate"))?;
        self.slots
            .push((slot, SlotKey::from_pkcs8_pem(&pem)?, cert));
        Ok(self)
    }

    /// The card, not yet inserted.
    pub fn build(self) -> Result<VirtualCard> {
        let mut state = CardState::new(
            &self.pin,
            &self.puk,
            self.pin_tries,
            self.puk_tries,
            self.guid,
        )?;
        for (slot, key, cert) in self.slots {
            state.install(slot, key, &cert)?;
        }
        Ok(VirtualCard::new(state, self.atr))
    }
}
