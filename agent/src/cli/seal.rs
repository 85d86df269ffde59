//! `segel seal`: sign each bid file on the vendor's token and encrypt it to the committee's
//! certificates, into `DIR/NAME.p7m`.
//!
//! Everything that can refuse the submission is checked before the first file is sealed: the
//! portal's file rules (unless switched off), recipient certificates that cannot encrypt or
//! are not valid now, output names that would collide. Each output is self-checked before it
//! is renamed into place; a failed file leaves nothing behind.

use std::path::PathBuf;

use super::bidkeys::{
    Bar, Purpose, read_one_certificate, select_certificate, token_key, trust_store,
};
use super::output::print_json;
use super::{CliError, Context};
use crate::bids::sealing::{SealPlan, seal_many};
use crate::bids::{NoProgress, Progress, default_threads};
use crate::cms::ContentCipher;
use crate::cms::recipient::RsaPadding;
use crate::cms::seal::SealOptions;
use crate::cms::sign::SignOptions;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CipherArg {
    /// AES-256-GCM in AuthEnvelopedData (default).
    #[value(name = "aes-256-gcm")]
    Aes256Gcm,
    /// AES-256-CBC in EnvelopedData, for recipients whose software needs it.
    #[value(name = "aes-256-cbc")]
    Aes256Cbc,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RsaPaddingArg {
    /// RSAES-OAEP with SHA-256 (default).
    Oaep,
    /// RSAES-PKCS1-v1_5, for older committee tokens.
    Pkcs1,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The vendor's signing certificate (fingerprint or label:NAME). Without it, the only
    /// certificate on the tokens that can sign.
    #[arg(long, value_name = "SELECTOR")]
    pub cert: Option<String>,
    /// A committee member's certificate (PEM or DER; repeatable; at least one).
    #[arg(long = "to", value_name = "RECIPIENT.pem", required = true)]
    pub to: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "aes-256-gcm")]
    pub cipher: CipherArg,
    #[arg(long, value_enum, default_value = "oaep")]
    pub rsa_padding: RsaPaddingArg,
    /// Where the `.p7m` files go.
    #[arg(long, value_name = "DIR")]
    pub out_dir: PathBuf,
    /// Do not apply the portal's file rules (40 characters, no symbols, unique names).
    #[arg(long)]
    pub no_file_rules: bool,
    /// The bid files.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}

pub fn run(ctx: &Context, args: &Args) -> Result<i32, CliError> {
    let recipients = args
        .to
        .iter()
        .map(|p| read_one_certificate(p))
        .collect::<Result<Vec<_>, _>>()?;
    let file_rules = ctx.config.procurement.file_rules && !args.no_file_rules;
    let plan = SealPlan::new(&args.files, &recipients, &args.out_dir, file_rules)
        .map_err(|e| CliError::new(e.code(), e.to_string()))?;
    let service = ctx.token_service()?;
    let cert = select_certificate(&service, args.cert.as_deref(), Purpose::Sign)?;
    let trust = trust_store(ctx, &[])?;
    let key = token_key(ctx, &service, cert, &trust)?;
    let opts = SealOptions {
        sign: SignOptions::default(),
        cipher: match args.cipher {
            CipherArg::Aes256Gcm => ContentCipher::Aes256Gcm,
            CipherArg::Aes256Cbc => ContentCipher::Aes256Cbc,
        },
        rsa_padding: match args.rsa_padding {
            RsaPaddingArg::Oaep => RsaPadding::OaepSha256,
            RsaPaddingArg::Pkcs1 => RsaPadding::Pkcs1v15,
        },
    };
    // One PIN entry for the whole submission; a wrong PIN stops here, before any file.
    let login = key.login();
    let lines = login.map(|()| {
        let bar = Bar::new("Sealing", ctx.global.json);
        let progress: &dyn Progress = if ctx.global.json { &NoProgress } else { &bar };
        let lines = seal_many(
            &key,
            &plan,
            &opts,
            default_threads(plan.files().len()),
            progress,
        );
        bar.finish();
        lines
    });
    service.logout_all();
    let lines = lines?;
    let failed = lines.iter().filter(|l| l.error.is_some()).count();
    if ctx.global.json {
        print_json(&serde_json::json!({
            "signer": key.certificate().info.subject,
            "recipients": plan.recipient_subjects(),
            "files": lines,
        }))?;
    } else {
        for l in &lines {
            match (&l.sealed, &l.error) {
                (Some(r), _) => println!(
                    "sealed  {} → {} ({} bytes)",
                    l.file, r.output, r.sealed_size
                ),
                (None, Some(e)) => println!("FAILED  {}: {e}", l.file),
                (None, None) => {}
            }
        }
        println!(
            "{} of {} files sealed for {}",
            lines.len() - failed,
            lines.len(),
            plan.recipient_subjects().join("; ")
        );
    }
    if failed > 0 {
        if !ctx.global.json {
            eprintln!("segel: error: {failed} file(s) could not be sealed (see above)");
        }
        return Ok(1);
    }
    Ok(0)
}
