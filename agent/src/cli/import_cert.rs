//! `segel import-cert`: put the certificate the CA issued next to its key on the token, with
//! the CA certificates of the chain alongside.

use std::path::PathBuf;

use der::{Decode, Encode};
use x509_cert::Certificate;
use x509_cert::ext::pkix::BasicConstraints;

use super::output::{print_json, read_input};
use super::{CliError, Context};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The token holding the key (its label).
    #[arg(long, value_name = "LABEL")]
    pub token: String,
    /// The certificate: PEM (one or more certificates), DER, or a PKCS#7 chain (.p7b, PEM or DER).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// Every certificate in a PEM, DER or PKCS#7 file (DER each).
pub fn certificates_in(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let text = std::str::from_utf8(bytes).ok();
    if let Some(t) = text.filter(|t| t.contains("-----BEGIN")) {
        if t.contains("-----BEGIN PKCS7-----") {
            let (_, der) = der::pem::decode_vec(t.trim().as_bytes())
                .map_err(|e| format!("not a PEM PKCS#7 file: {e}"))?;
            return pkcs7_certificates(&der);
        }
        let certs = Certificate::load_pem_chain(t.as_bytes())
            .map_err(|e| format!("not a PEM certificate file: {e}"))?;
        return certs
            .iter()
            .map(|c| c.to_der().map_err(|e| e.to_string()))
            .collect();
    }
    if Certificate::from_der(bytes).is_ok() {
        return Ok(vec![bytes.to_vec()]);
    }
    pkcs7_certificates(bytes)
}

fn pkcs7_certificates(der_bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let ci = cms::content_info::ContentInfo::from_der(der_bytes)
        .map_err(|e| format!("neither a certificate nor a PKCS#7 chain: {e}"))?;
    let sd: cms::signed_data::SignedData = ci
        .content
        .decode_as()
        .map_err(|e| format!("PKCS#7 file without a SignedData: {e}"))?;
    let mut out = Vec::new();
    for choice in sd.certificates.map(|s| s.0.into_vec()).unwrap_or_default() {
        if let cms::cert::CertificateChoices::Certificate(c) = choice {
            out.push(c.to_der().map_err(|e| e.to_string())?);
        }
    }
    Ok(out)
}

pub(crate) fn is_ca(der_bytes: &[u8]) -> bool {
    Certificate::from_der(der_bytes).is_ok_and(
        |c| matches!(c.tbs_certificate.get::<BasicConstraints>(), Ok(Some((_, bc))) if bc.ca),
    )
}

pub fn run(ctx: &Context, args: &Args) -> Result<(), CliError> {
    let bytes = read_input(&args.file)?;
    let certs = certificates_in(&bytes)
        .map_err(|e| CliError::bad_request(format!("{}: {e}", args.file.display())))?;
    if certs.is_empty() {
        return Err(CliError::bad_request(format!(
            "{} holds no certificate",
            args.file.display()
        )));
    }
    let (leaves, cas): (Vec<Vec<u8>>, Vec<Vec<u8>>) = certs.into_iter().partition(|c| !is_ca(c));
    if leaves.is_empty() {
        return Err(CliError::bad_request(format!(
            "{} holds only CA certificates; import the certificate issued for your key",
            args.file.display()
        )));
    }
    let service = ctx.token_service()?;
    let mut admin = service.admin(&args.token)?;
    admin.login(ctx.pin_source().as_ref())?;
    let mut last_err = None;
    for leaf in &leaves {
        match admin.import_certificate(leaf, &cas) {
            Ok(outcome) => {
                let info = crate::certinfo::CertInfo::from_der(leaf)
                    .map_err(|e| CliError::bad_request(e.to_string()))?;
                if ctx.global.json {
                    print_json(&serde_json::json!({
                        "token": args.token,
                        "certificate": info.fingerprint_sha256,
                        "subject": info.subject,
                        "key_id": hex::encode(&outcome.id),
                        "label": outcome.label,
                        "intermediates": outcome.intermediates,
                    }))?;
                } else {
                    println!(
                        "Imported {} next to key {:?} on token {:?}{}",
                        info.subject,
                        outcome.label,
                        args.token,
                        if outcome.intermediates.is_empty() {
                            String::new()
                        } else {
                            format!(", with {}", outcome.intermediates.join("; "))
                        }
                    );
                }
                return Ok(());
            }
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.map_or_else(
        || CliError::bad_request("no certificate to import"),
        CliError::from,
    ))
}

/// `segel delete-key`: remove a key pair that has no certificate (e.g. a request never
/// answered). Keys with a certificate are kept.
#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// The token (its label).
    #[arg(long, value_name = "LABEL")]
    pub token: String,
    /// The key's CKA_ID in hex (`key_id` from `segel enroll --json`, `id` in `segel certs`).
    #[arg(long, value_name = "HEX")]
    pub id: String,
}

pub fn delete(ctx: &Context, args: &DeleteArgs) -> Result<(), CliError> {
    let id = hex::decode(args.id.trim())
        .map_err(|_| CliError::bad_request(format!("{:?} is not a hex key id", args.id)))?;
    let service = ctx.token_service()?;
    let mut admin = service.admin(&args.token)?;
    admin.login(ctx.pin_source().as_ref())?;
    let removed = admin.delete_key(&id)?;
    if ctx.global.json {
        print_json(
            &serde_json::json!({"token": args.token, "key_id": args.id, "objects_removed": removed}),
        )
    } else {
        println!(
            "Deleted key {} ({removed} objects) from token {:?}.",
            args.id, args.token
        );
        Ok(())
    }
}
