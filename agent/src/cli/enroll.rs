//! `segel enroll`: make a key pair on the token and a certificate request (PKCS#10) signed by
//! it, with the printable summary to take to the registration authority (seed 000).

use std::path::{Path, PathBuf};

use super::output::{print_json, write_atomic};
use super::{CliError, Context};
use crate::enroll::{Applicant, Profile, enrol};
use crate::token::{KeyPurpose, KeySpec};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum PurposeArg {
    /// A signing key (vendors sign and seal bids with it).
    Sign,
    /// An encryption key (committee members open bids with it).
    Encrypt,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ProfileArg {
    Modern,
    Legacy,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The token to make the key on (its label, see `segel tokens`).
    #[arg(long, value_name = "LABEL")]
    pub token: String,
    /// Key type: rsa2048, rsa3072, rsa4096, p256 or p384.
    #[arg(long, value_name = "TYPE")]
    pub key: String,
    /// What the key is for.
    #[arg(long, value_enum, default_value = "sign")]
    pub purpose: PurposeArg,
    /// Nama.
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub email: String,
    /// Perusahaan / instansi.
    #[arg(long)]
    pub org: String,
    /// Bagian / Unit / Jabatan.
    #[arg(long)]
    pub unit: String,
    /// Kabupaten / Kota.
    #[arg(long)]
    pub city: String,
    /// Propinsi.
    #[arg(long)]
    pub province: String,
    /// NPWP perusahaan: NN.NNN.NNN.N-NNN.NNN or 16 digits.
    #[arg(long)]
    pub npwp: Option<String>,
    /// NIK (No KTP): 16 digits.
    #[arg(long)]
    pub nik: Option<String>,
    /// Where NIK and NPWP go (default from the config file, else modern).
    #[arg(long, value_enum)]
    pub profile: Option<ProfileArg>,
    /// Label for the key on the token (default: the name).
    #[arg(long)]
    pub label: Option<String>,
    /// The request (PEM); the summary goes beside it as FILE.txt.
    #[arg(long, value_name = "REQUEST.csr")]
    pub out: PathBuf,
}

fn summary_path(out: &Path) -> PathBuf {
    let mut p = out.as_os_str().to_owned();
    p.push(".txt");
    PathBuf::from(p)
}

pub fn run(ctx: &Context, args: &Args) -> Result<(), CliError> {
    let applicant = Applicant {
        name: args.name.clone(),
        email: args.email.clone(),
        org: args.org.clone(),
        unit: args.unit.clone(),
        city: args.city.clone(),
        province: args.province.clone(),
        npwp: args.npwp.clone(),
        nik: args.nik.clone(),
    }
    .validate()
    .map_err(|problems| {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        CliError::bad_request(format!(
            "the request data needs fixing:\n  {}",
            list.join("\n  ")
        ))
    })?;
    let spec = KeySpec::parse(&args.key)?;
    let purpose = match args.purpose {
        PurposeArg::Sign => KeyPurpose::Sign,
        PurposeArg::Encrypt => KeyPurpose::Encrypt,
    };
    let config = ctx
        .config
        .enrollment
        .with_profile(args.profile.map(|p| match p {
            ProfileArg::Modern => Profile::Modern,
            ProfileArg::Legacy => Profile::Legacy,
        }));
    // Check where the files go before a key is made, so no key is left without its request.
    let summary_file = summary_path(&args.out);
    for p in [&args.out, &summary_file] {
        if p.exists() {
            return Err(CliError::bad_request(format!(
                "{} already exists; choose another name (an earlier request is never replaced)",
                p.display()
            )));
        }
    }
    let dir = args.out.parent().filter(|d| !d.as_os_str().is_empty());
    if dir.is_some_and(|d| !d.is_dir()) {
        return Err(CliError::bad_request(format!(
            "folder {} does not exist",
            dir.map(Path::display)
                .map(|d| d.to_string())
                .unwrap_or_default()
        )));
    }

    let service = ctx.token_service()?;
    let mut admin = service.admin(&args.token)?;
    let label = args.label.clone().unwrap_or_else(|| applicant.name.clone());
    let made = enrol(
        &mut admin,
        ctx.pin_source().as_ref(),
        &applicant,
        &config,
        spec,
        purpose,
        &label,
    )
    .map_err(|e| CliError::new(e.code, e.message))?;
    write_atomic(&args.out, made.request_pem.as_bytes())?;
    let text = made.summary;
    write_atomic(&summary_file, text.as_bytes())?;
    if ctx.global.json {
        print_json(&serde_json::json!({
            "request": args.out,
            "summary": summary_file,
            "token": args.token,
            "key_id": hex::encode(&made.key_id),
            "key_label": label,
            "public_key_sha256": crate::certinfo::sha256_hex(&made.spki_der),
            "applicant": applicant,
        }))?;
    } else {
        println!("{text}");
        println!(
            "Request written to {} (summary: {}).",
            args.out.display(),
            summary_file.display()
        );
    }
    Ok(())
}
