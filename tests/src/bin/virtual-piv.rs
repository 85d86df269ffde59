//! Runs a virtual PIV card (segel_tests::vpiv) against a vpcd reader until killed, for trying
//! OpenSC or Segel by hand against a private pcscd:
//!
//! ```text
//! virtual-piv PORT [PIN] [SLOT=FIXTURE ...] [--delay-ms N] [--atr HEX]
//! virtual-piv 35963 123456 9a=vendor-rsa2048 9d=pokja-p256
//! ```
//! Defaults: PIN 123456, 9A vendor-rsa2048, 9C vendor-p256, 9D pokja-rsa2048, 9E pokja-p256.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use segel_tests::vpiv::CardBuilder;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args
        .next()
        .context("usage: virtual-piv PORT [PIN] [SLOT=FIXTURE ...] [--delay-ms N] [--atr HEX]")?
        .parse()?;
    let mut pin = "123456".to_owned();
    let mut slots = Vec::new();
    let mut delay = Duration::ZERO;
    let mut atr = None;
    while let Some(arg) = args.next() {
        if arg == "--delay-ms" {
            delay = Duration::from_millis(args.next().context("--delay-ms N")?.parse()?);
        } else if arg == "--atr" {
            atr = Some(hex::decode(args.next().context("--atr HEX")?)?);
        } else if let Some((slot, fixture)) = arg.split_once('=') {
            slots.push((u8::from_str_radix(slot, 16)?, fixture.to_owned()));
        } else if arg.chars().all(|c| c.is_ascii_digit()) {
            pin = arg;
        } else {
            bail!("unknown argument {arg:?}");
        }
    }
    if slots.is_empty() {
        for (slot, fixture) in [
            (0x9a, "vendor-rsa2048"),
            (0x9c, "vendor-p256"),
            (0x9d, "pokja-rsa2048"),
            (0x9e, "pokja-p256"),
        ] {
            slots.push((slot, fixture.to_owned()));
        }
    }
    let mut builder = CardBuilder::new(&pin);
    if let Some(atr) = atr {
        builder = builder.atr(&atr);
    }
    for (slot, fixture) in &slots {
        builder = builder.slot(*slot, fixture)?;
    }
    let card = builder.build()?;
    card.set_delay(delay);
    card.insert(port)?;
    eprintln!("virtual PIV card inserted into 127.0.0.1:{port}; Ctrl-C removes it");
    while card.is_inserted() {
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("reader closed the connection");
    Ok(())
}
