//! `segel verify`: check a CMS signature (Segel's, OpenSSL's, the portal's).
//!
//! Reports the signer, the signing time, the chain to the trust anchors (config, the trust
//! folder, `--ca`), the certificate's validity at signing time and its key usage.
//! Exit code: 0 valid and trusted; 2 the signature is valid but the signer's certificate is
//! not trusted, expired or not for signing; 1 the signature is invalid or the file unreadable.

use std::path::PathBuf;

use super::bidkeys::{cms_error, trust_store};
use super::output::print_json;
use super::{CliError, Context};
use crate::cms::verify::verify_file;

/// Signature valid, but the signer's certificate has a problem.
pub const EXIT_UNTRUSTED: i32 = 2;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The signature (`.p7s`, or a `.p7m` SignedData with the content inside).
    #[arg(long = "in", value_name = "FILE")]
    pub input: PathBuf,
    /// The signed file, for a detached signature.
    #[arg(long, value_name = "FILE")]
    pub content: Option<PathBuf>,
    /// A trust anchor (PEM or DER; repeatable), besides the configured ones.
    #[arg(long = "ca", value_name = "CA.pem")]
    pub ca: Vec<PathBuf>,
}

pub fn run(ctx: &Context, args: &Args) -> Result<i32, CliError> {
    let trust = trust_store(ctx, &args.ca)?;
    let report = verify_file(
        &args.input,
        args.content.as_deref(),
        &trust.verify_options(Vec::new()),
    )
    .map_err(|e| cms_error(&e))?;
    if ctx.global.json {
        print_json(&serde_json::json!({
            "file": args.input,
            "signature_valid": report.signatures_valid(),
            "trusted": report.ok(),
            "report": report,
        }))?;
    } else {
        for s in &report.signers {
            let chain = s.chain.as_ref();
            println!(
                "Signer:        {}",
                s.subject.as_deref().unwrap_or(&s.signer_id)
            );
            println!(
                "Signing time:  {}",
                s.signing_time.as_deref().unwrap_or("(not given)")
            );
            println!(
                "Signature:     {}",
                if s.digest_matches && s.signature_valid {
                    "valid"
                } else {
                    "INVALID"
                }
            );
            if let Some(c) = chain {
                println!("Chain:         {:?}: {}", c.status, c.path.join(" → "));
                println!("Validity:      {:?} at signing time", c.validity);
                println!(
                    "Key usage:     {}",
                    if c.key_usage_ok && c.eku_ok {
                        "allows signing"
                    } else {
                        "does NOT allow document signing"
                    }
                );
            }
            for e in s
                .errors
                .iter()
                .chain(chain.map(|c| c.problems.iter()).into_iter().flatten())
            {
                println!("Problem:       {e}");
            }
        }
        println!(
            "Content:       {} bytes, SHA-256 {}",
            report.content_len, report.content_sha256
        );
    }
    if !report.signatures_valid() {
        if ctx.global.json {
            return Ok(1); // the report above says why
        }
        return Err(CliError::new(
            crate::protocol::ErrorCode::SignatureInvalid,
            format!("the signature in {} does not verify", args.input.display()),
        ));
    }
    Ok(if report.ok() { 0 } else { EXIT_UNTRUSTED })
}
