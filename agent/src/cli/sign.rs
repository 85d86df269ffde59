//! `segel sign`: sign a file with a token key.
//!
//! `--format raw` writes the bare signature: RSA PKCS#1 v1.5 or PSS bytes, or ECDSA as DER
//! `SEQUENCE { r, s }` — what `openssl dgst -verify` and `openssl pkeyutl -verify` take.
//! `--format cms` writes a CMS SignedData with CAdES-BES signed attributes, the signer's
//! certificate and its chain (`openssl cms -verify` and `segel verify` read it); with
//! `--detached` the content is left out.

use std::path::PathBuf;

use super::bidkeys::{Purpose, cms_error, select_certificate, token_key, trust_store};
use super::output::{print_json, write_atomic};
use super::{CliError, Context};
use crate::cms::sign::{SignOptions, sign_file};
use crate::token::{HashAlg, SignRequest, SignScheme};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The bare signature value.
    Raw,
    /// CMS SignedData (CAdES-BES), DER.
    Cms,
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
    /// The certificate: SHA-256 fingerprint (colons optional) or label:NAME. Without it, the
    /// only certificate on the tokens that can sign.
    #[arg(long, value_name = "SELECTOR")]
    pub cert: Option<String>,
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
    /// RSA-PSS instead of PKCS#1 v1.5 (RSA keys, raw format only).
    #[arg(long)]
    pub pss: bool,
    /// CMS without the content (a `.p7s` beside the file).
    #[arg(long)]
    pub detached: bool,
}

pub fn run(ctx: &Context, args: &Args) -> Result<(), CliError> {
    if !args.input.is_file() {
        return Err(CliError::bad_request(format!(
            "{} is not a readable file",
            args.input.display()
        )));
    }
    match args.format {
        Format::Raw if args.detached => {
            return Err(CliError::bad_request(
                "--detached applies to --format cms; a raw signature never holds the content",
            ));
        }
        Format::Cms if args.pss => {
            return Err(CliError::bad_request(
                "CMS signatures use RSA PKCS#1 v1.5 (what the portal and OpenSSL verify); drop --pss",
            ));
        }
        _ => {}
    }
    let service = ctx.token_service()?;
    let cert = select_certificate(&service, args.cert.as_deref(), Purpose::Sign)?;
    let hash: HashAlg = args.hash.into();
    let result = match args.format {
        Format::Raw => {
            let request = SignRequest {
                scheme: args.pss.then_some(SignScheme::RsaPss),
                hash,
            };
            service
                .sign_file(&cert, &request, args.input.clone(), ctx.pin_source())
                .wait()
                .map_err(CliError::from)
                .and_then(|signature| {
                    write_atomic(&args.output, &signature).map(|()| signature.len())
                })
        }
        Format::Cms => {
            let trust = trust_store(ctx, &[])?;
            let key = token_key(ctx, &service, cert.clone(), &trust)?;
            let opts = SignOptions {
                digest: hash,
                detached: args.detached,
                signing_time: None,
            };
            sign_file(&key, &args.input, &args.output, &opts)
                .map_err(|e| cms_error(&e))
                .and_then(|()| {
                    std::fs::metadata(&args.output)
                        .map(|m| m.len() as usize)
                        .map_err(|e| {
                            CliError::new(crate::protocol::ErrorCode::IoError, e.to_string())
                        })
                })
        }
    };
    service.logout_all();
    let bytes = result?;
    if ctx.global.json {
        print_json(&serde_json::json!({
            "signature_file": args.output,
            "format": match args.format { Format::Raw => "raw", Format::Cms => "cms" },
            "detached": args.detached,
            "certificate": cert.info.fingerprint_sha256,
            "subject": cert.info.subject,
            "hash": hash.name(),
            "bytes": bytes,
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
