//! `segel certs`: certificates on the tokens, what their keys may do, and when they expire.

use std::time::SystemTime;

use serde::Serialize;

use super::output::{print_json, print_table};
use super::{CliError, Context};
use crate::certinfo::{Usage, rfc3339};
use crate::token::CertificateEntry;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only certificates on the token with this label.
    #[arg(long, value_name = "LABEL")]
    pub token: Option<String>,
    /// Also certificates without a private key on the token (CA certificates).
    #[arg(long)]
    pub all: bool,
}

/// One row of `segel certs --json` (a stable contract).
#[derive(Debug, Serialize)]
pub struct CertRow {
    pub fingerprint_sha256: String,
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
    pub days_left: i64,
    pub key_type: &'static str,
    pub key_bits: Option<usize>,
    pub usage: Vec<Usage>,
    pub token: String,
    pub token_serial: String,
    pub label: String,
    pub id: String,
    /// How the private key was found: "private-key", "public-key" (before login), or null.
    pub private_key: Option<&'static str>,
}

impl CertRow {
    pub fn from_entry(c: &CertificateEntry, now: SystemTime) -> Self {
        CertRow {
            fingerprint_sha256: c.info.fingerprint_sha256.clone(),
            subject: c.info.subject.clone(),
            issuer: c.info.issuer.clone(),
            serial: c.info.serial.clone(),
            not_before: rfc3339(c.info.not_before),
            not_after: rfc3339(c.info.not_after),
            days_left: c.info.days_left(now),
            key_type: c.info.public_key.type_name(),
            key_bits: c.info.public_key.bits(),
            usage: c.usage.clone(),
            token: c.token_label.clone(),
            token_serial: c.token_serial.clone(),
            label: c.label.clone(),
            id: hex::encode(&c.id),
            private_key: c.key_evidence,
        }
    }
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
