//! `segel certs`: certificates on the tokens, what their keys may do, and when they expire.

use std::time::SystemTime;

use super::output::{print_json, print_table};
use super::{CliError, Context};
use crate::certinfo::Usage;
use crate::protocol::CertRow;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only certificates on the token with this label.
    #[arg(long, value_name = "LABEL")]
    pub token: Option<String>,
    /// Also certificates without a private key on the token (CA certificates).
    #[arg(long)]
    pub all: bool,
}

/// The first RDN of a subject (normally CN=…): the full subject is in `--json`.
fn common_name(subject: &str) -> String {
    subject.split(',').next().unwrap_or(subject).to_owned()
}

pub fn run(ctx: &Context, args: &Args) -> Result<(), CliError> {
    let service = ctx.token_service()?;
    let now = SystemTime::now();
    let rows: Vec<CertRow> = service
        .certificates()
        .wait()?
        .iter()
        .filter(|c| args.token.as_ref().is_none_or(|t| &c.token_label == t))
        .filter(|c| args.all || c.key_evidence.is_some())
        .map(|c| CertRow::from_entry(c, now))
        .collect();
    if ctx.global.json {
        return print_json(&rows);
    }
    if rows.is_empty() {
        println!("No certificates with keys found (use --all to include CA certificates).");
        return Ok(());
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let usage: Vec<&str> = r
                .usage
                .iter()
                .map(|u| match u {
                    Usage::Sign => "sign",
                    Usage::Decrypt => "decrypt",
                })
                .collect();
            let expiry = if r.days_left < 0 {
                format!("EXPIRED {}", &r.not_after[..10])
            } else {
                format!("{} ({} days)", &r.not_after[..10], r.days_left)
            };
            vec![
                r.fingerprint_sha256[..16].to_owned(),
                common_name(&r.subject),
                format!(
                    "{}{}",
                    r.key_type,
                    r.key_bits.map(|b| format!("-{b}")).unwrap_or_default()
                ),
                usage.join(","),
                expiry,
                r.token.clone(),
            ]
        })
        .collect();
    print_table(
        &[
            "FINGERPRINT",
            "SUBJECT",
            "KEY",
            "USAGE",
            "VALID UNTIL",
            "TOKEN",
        ],
        &table,
    );
    Ok(())
}
