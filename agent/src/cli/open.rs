//! `segel open`: the committee opens every bid with one PIN entry.
//!
//! For each bid: unwrap the content key on the token, decrypt to a temporary file, verify the
//! vendor's signature and chain, then rename into `--out-dir`. Files run in parallel; token
//! operations go through the token's workers. A failed bid leaves no plaintext and does not stop
//! the others. The report (`--report` HTML, `--json-report` JSON, and a table on stdout or the
//! JSON with `--json`) lists every bid.
//!
//! Exit code: 0 every bid opened with a valid signature from a trusted, valid certificate;
//! 2 every bid opened but some vendor's certificate has a problem; 1 some bid could not be
//! opened (or the run failed before opening, e.g. a wrong PIN).

use std::path::PathBuf;

use super::bidkeys::{
    Bar, Purpose, select_certificate, token_ca_certificates, token_key, trust_store,
};
use super::output::{print_json, print_table, write_atomic};
use super::{CliError, Context};
use crate::bids::report::BidStatus;
use crate::bids::{NoProgress, OpenOptions, OpeningRun, Progress, default_threads, open_many};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The committee member's certificate (fingerprint or label:NAME). Without it, the only
    /// certificate on the tokens that can decrypt.
    #[arg(long, value_name = "SELECTOR")]
    pub cert: Option<String>,
    /// Where the opened bids go (must exist; existing files are never replaced).
    #[arg(long, value_name = "DIR")]
    pub out_dir: PathBuf,
    /// A trust anchor for vendors' certificates (PEM or DER; repeatable).
    #[arg(long = "ca", value_name = "CA.pem")]
    pub ca: Vec<PathBuf>,
    /// Write the opening report as an HTML page.
    #[arg(long, value_name = "REPORT.html")]
    pub report: Option<PathBuf>,
    /// Write the opening report as JSON.
    #[arg(long = "json-report", value_name = "REPORT.json")]
    pub json_report: Option<PathBuf>,
    /// Bids opened at once (default: up to 4, by cores).
    #[arg(long, value_name = "N")]
    pub parallel: Option<usize>,
    /// The sealed bids (`.p7m`).
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}

pub fn run(ctx: &Context, args: &Args) -> Result<i32, CliError> {
    if !args.out_dir.is_dir() {
        return Err(CliError::bad_request(format!(
            "output folder {} does not exist",
            args.out_dir.display()
        )));
    }
    if args.parallel == Some(0) {
        return Err(CliError::bad_request("--parallel needs at least 1"));
    }
    let trust = trust_store(ctx, &args.ca)?;
    let service = ctx.token_service()?;
    let cert = select_certificate(&service, args.cert.as_deref(), Purpose::Decrypt)?;
    let intermediates = token_ca_certificates(&service)?;
    let key = token_key(ctx, &service, cert, &trust)?;
    let opts = OpenOptions {
        verify: trust.verify_options(intermediates),
        threads: args
            .parallel
            .unwrap_or_else(|| default_threads(args.files.len())),
    };
    // One PIN entry for the whole opening; a wrong PIN stops the run before any bid.
    let bids = key.login().map(|()| {
        let bar = Bar::new("Opening", ctx.global.json);
        let progress: &dyn Progress = if ctx.global.json { &NoProgress } else { &bar };
        let bids = open_many(&key, &args.files, &args.out_dir, &opts, progress);
        bar.finish();
        bids
    });
    service.logout_all();
    let run = OpeningRun::new(
        key.certificate().info.subject.clone(),
        key.certificate().token_label.clone(),
        bids?,
    );
    if let Some(path) = &args.report {
        write_atomic(path, run.to_html().as_bytes())?;
    }
    if let Some(path) = &args.json_report {
        write_atomic(path, run.to_json().as_bytes())?;
    }
    if ctx.global.json {
        print_json(&run)?;
    } else {
        let rows: Vec<Vec<String>> = run
            .bids
            .iter()
            .map(|b| {
                let name = std::path::Path::new(&b.file)
                    .file_name()
                    .map_or_else(|| b.file.clone(), |n| n.to_string_lossy().into_owned());
                let vendor = b.vendor.as_deref().unwrap_or_default();
                vec![
                    name,
                    match b.status {
                        BidStatus::Opened => "opened".to_owned(),
                        BidStatus::OpenedWithWarnings => "WARNING".to_owned(),
                        BidStatus::Failed => "FAILED".to_owned(),
                    },
                    vendor.split(',').next().unwrap_or(vendor).to_owned(),
                    b.signing_time.clone().unwrap_or_default(),
                    b.error.clone().unwrap_or_default(),
                ]
            })
            .collect();
        print_table(&["FILE", "STATUS", "VENDOR", "SIGNED AT", "PROBLEM"], &rows);
        let s = &run.summary;
        println!(
            "{} bids: {} opened, {} opened with warnings, {} failed",
            s.total, s.opened, s.opened_with_warnings, s.failed
        );
    }
    Ok(if run.summary.failed > 0 {
        1
    } else if run.all_clean() {
        0
    } else {
        super::verify::EXIT_UNTRUSTED
    })
}
