//! `segel sign`: sign a file with a token key.
//!
//! `--format raw` writes the bare signature: RSA PKCS#1 v1.5 or PSS bytes, or ECDSA as DER
//! `SEQUENCE { r, s }` — what `openssl dgst -verify` and `openssl pkeyutl -verify` take.

use std::path::PathBuf;

use super::output::{print_json, write_atomic};
use super::{CliError, Context};
use crate::token::{CertSelector, HashAlg, SignRequest, SignScheme};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// The bare signature value.
    Raw,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum HashArg {
    Sha256,
    Sha384,
    Sha512,
}

impl From<HashArg> for HashAlg {
    fn from(h: HashArg) -> Self {
        match h {
            HashArg::Sha256 => HashAlg::Sha256,
            HashArg::Sha384 => HashAlg::Sha384,
            HashArg::Sha512 => HashAlg::Sha512,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The certificate: SHA-256 fingerprint (colons optional) or label:NAME.
    #[arg(long, value_name = "SELECTOR")]
    pub cert: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "raw")]
    pub format: Format,
    /// The file to sign.
    #[arg(long = "in", value_name = "FILE")]
    pub input: PathBuf,
    /// Where to write the signature.
    #[arg(long = "out", value_name = "FILE")]
    pub output: PathBuf,
    /// Hash algorithm.
    #[arg(long, value_enum, default_value = "sha256")]
    pub hash: HashArg,
    /// RSA-PSS instead of PKCS#1 v1.5 (RSA keys only).
    #[arg(long)]
    pub pss: bool,
}

pub fn run(ctx: &Context, args: &Args) -> Result<(), CliError> {
    let selector: CertSelector = args.cert.parse()?;
    if !args.input.is_file() {
        return Err(CliError::bad_request(format!(
            "{} is not a readable file",
            args.input.display()
        )));
    }
    let service = ctx.token_service()?;
    let cert = service.find_certificate(&selector).wait()?;
    let request = SignRequest {
        scheme: args.pss.then_some(SignScheme::RsaPss),
        hash: args.hash.into(),
    };
    let result = service
        .sign_file(&cert, &request, args.input.clone(), ctx.pin_source())
        .wait();
    service.logout_all();
    let signature = result?;
    match args.format {
        Format::Raw => write_atomic(&args.output, &signature)?,
    }
    if ctx.global.json {
        print_json(&serde_json::json!({
            "signature_file": args.output,
            "certificate": cert.info.fingerprint_sha256,
            "subject": cert.info.subject,
            "hash": request.hash.name(),
            "bytes": signature.len(),
        }))?;
    } else {
        eprintln!(
            "Signed {} with {} → {}",
            args.input.display(),
            cert.info.subject,
            args.output.display()
        );
    }
    Ok(())
}
