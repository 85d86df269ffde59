//! `segel decrypt`: decrypt one RSA-encrypted block (key transport) with a token key.
//!
//! For scripts and tests of the token layer; bids are opened with `segel open`. The token
//! is used through raw RSA and the padding is removed in constant time in software.

use std::path::PathBuf;

use super::output::{read_input, write_atomic};
use super::{CliError, Context};
use crate::token::{CertSelector, DecryptPadding};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum PaddingArg {
    /// RSAES-OAEP with SHA-256 and MGF1-SHA-256.
    OaepSha256,
    /// RSAES-OAEP with SHA-1 and MGF1-SHA-1.
    OaepSha1,
    /// RSAES-PKCS1-v1_5 (implicit rejection: bad padding yields a random-looking message).
    Pkcs1,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The certificate: SHA-256 fingerprint (colons optional) or label:NAME.
    #[arg(long, value_name = "SELECTOR")]
    pub cert: String,
    /// The encrypted block (exactly the modulus length).
    #[arg(long = "in", value_name = "FILE")]
    pub input: PathBuf,
    /// Where to write the plaintext (mode 0600, written atomically).
    #[arg(long = "out", value_name = "FILE")]
    pub output: PathBuf,
    #[arg(long, value_enum, default_value = "oaep-sha256")]
    pub padding: PaddingArg,
}

pub fn run(ctx: &Context, args: &Args) -> Result<(), CliError> {
    let selector: CertSelector = args.cert.parse()?;
    let ciphertext = read_input(&args.input)?;
    let padding = match args.padding {
        PaddingArg::OaepSha256 => DecryptPadding::OaepSha256,
        PaddingArg::OaepSha1 => DecryptPadding::OaepSha1,
        PaddingArg::Pkcs1 => DecryptPadding::Pkcs1v15 { expected_len: None },
    };
    let service = ctx.token_service()?;
    let cert = service.find_certificate(&selector).wait()?;
    let result = service
        .decrypt(&cert, padding, ciphertext, ctx.pin_source())
        .wait();
    service.logout_all();
    let plaintext = result?;
    write_atomic(&args.output, &plaintext)
}
