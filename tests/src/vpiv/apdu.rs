//! Command APDUs (ISO/IEC 7816-4, 5.1): short and extended forms, and the status words the card
//! answers with.

use anyhow::{Result, bail, ensure};

/// A parsed command APDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub cla: u8,
    pub ins: u8,
    pub p1: u8,
    pub p2: u8,
    pub data: Vec<u8>,
    /// Expected response length (`Le`); 256 (short) or 65536 (extended) when coded as zero;
    /// `None` when absent.
    pub le: Option<usize>,
    /// Whether the command used extended lengths (the response may then be sent in one piece).
    pub extended: bool,
}

impl Command {
    /// Parses the four ISO cases in short and extended form.
    pub fn parse(b: &[u8]) -> Result<Self> {
        ensure!(
            b.len() >= 4,
            "APDU shorter than its header ({} bytes)",
            b.len()
        );
        let mut cmd = Command {
            cla: b[0],
            ins: b[1],
            p1: b[2],
            p2: b[3],
            data: Vec::new(),
            le: None,
            extended: false,
        };
        let body = &b[4..];
        match body.len() {
            0 => {}
            1 => cmd.le = Some(short_le(body[0])),
            _ if body[0] != 0 => {
                let lc = body[0] as usize;
                match body.len() - 1 {
                    n if n == lc => {}
                    n if n == lc + 1 => cmd.le = Some(short_le(body[lc + 1])),
                    n => bail!("short APDU: Lc {lc} but {n} bytes follow"),
                }
                cmd.data = body[1..1 + lc].to_vec();
            }
            3 => {
                cmd.extended = true;
                cmd.le = Some(extended_le(body[1], body[2]));
            }
            n => {
                ensure!(
                    n >= 3,
                    "APDU body of {n} bytes is neither short nor extended"
                );
                cmd.extended = true;
                let lc = (body[1] as usize) << 8 | body[2] as usize;
                ensure!(lc > 0, "extended APDU with Lc 0");
                match n - 3 {
                    m if m == lc => {}
                    m if m == lc + 2 => cmd.le = Some(extended_le(body[3 + lc], body[4 + lc])),
                    m => bail!("extended APDU: Lc {lc} but {m} bytes follow"),
                }
                cmd.data = body[3..3 + lc].to_vec();
            }
        }
        Ok(cmd)
    }

    /// True when bit 5 of CLA says more command data follows (command chaining, 7816-4 5.1.1).
    pub fn chained(&self) -> bool {
        self.cla & 0x10 != 0
    }
}

fn short_le(b: u8) -> usize {
    if b == 0 { 256 } else { b as usize }
}

fn extended_le(hi: u8, lo: u8) -> usize {
    match (hi as usize) << 8 | lo as usize {
        0 => 65536,
        n => n,
    }
}

/// Status words used by the PIV applet (SP 800-73-4 Part 2, Table 6 and 7816-4 5.1.3).
pub mod sw {
    pub const OK: u16 = 0x9000;
    pub const WRONG_LENGTH: u16 = 0x6700;
    pub const SECURITY_NOT_SATISFIED: u16 = 0x6982;
    pub const AUTH_BLOCKED: u16 = 0x6983;
    pub const CONDITIONS_NOT_SATISFIED: u16 = 0x6985;
    pub const WRONG_DATA: u16 = 0x6a80;
    pub const FUNC_NOT_SUPPORTED: u16 = 0x6a81;
    pub const NOT_FOUND: u16 = 0x6a82;
    pub const INCORRECT_P1P2: u16 = 0x6a86;
    pub const REF_NOT_FOUND: u16 = 0x6a88;
    pub const INS_NOT_SUPPORTED: u16 = 0x6d00;
    pub const CLA_NOT_SUPPORTED: u16 = 0x6e00;
    pub const NO_PRECISE_DIAGNOSIS: u16 = 0x6f00;

    /// `63Cx`: verification failed, `tries` left.
    pub fn tries_left(tries: u8) -> u16 {
        0x63c0 | u16::from(tries.min(15))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apdu_parse_handles_the_four_cases_short_and_extended() -> Result<()> {
        let c = Command::parse(&[0, 0x20, 0, 0x80])?;
        assert!(c.data.is_empty() && c.le.is_none());
        let c = Command::parse(&[0, 0xc0, 0, 0, 0])?;
        assert_eq!(c.le, Some(256));
        let c = Command::parse(&[0, 0x20, 0, 0x80, 2, 1, 2])?;
        assert_eq!((c.data.as_slice(), c.le), (&[1u8, 2][..], None));
        let c = Command::parse(&[0x10, 0x87, 7, 0x9a, 1, 9, 0])?;
        assert_eq!(
            (c.data.as_slice(), c.le, c.chained()),
            (&[9u8][..], Some(256), true)
        );
        let c = Command::parse(&[0, 0xcb, 0x3f, 0xff, 0, 0, 1, 0x5c, 0, 0])?;
        assert_eq!(
            (c.data.as_slice(), c.le, c.extended),
            (&[0x5cu8][..], Some(65536), true)
        );
        let c = Command::parse(&[0, 0xcb, 0x3f, 0xff, 0, 0, 0])?;
        assert_eq!((c.le, c.extended), (Some(65536), true));
        assert!(Command::parse(&[0, 0x20, 0, 0x80, 3, 1]).is_err());
        Ok(())
    }
}
