//! What `sign --format cms`, `verify`, `seal` and `open` share: choosing the certificate,
//! the trust anchors, the CA certificates found on tokens, and the progress bar.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{CliError, Context};
use crate::bids::trust::TrustStore;
use crate::bids::{Progress, TokenKey, trust};
use crate::certinfo::Usage;
use crate::cms::CmsError;
use crate::config::Paths;
use crate::protocol::ErrorCode;
use crate::token::{CertSelector, CertificateEntry, TokenService};

/// What the chosen certificate must be able to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Sign,
    Decrypt,
}

/// The certificate named by `--cert`, or, without it, the only one on the tokens whose key
/// can do `purpose` (signing: valid now). Several candidates are listed in the error.
pub fn select_certificate(
    service: &TokenService,
    selector: Option<&str>,
    purpose: Purpose,
) -> Result<CertificateEntry, CliError> {
    if let Some(text) = selector {
        let selector: CertSelector = text.parse()?;
        return Ok(service.find_certificate(&selector).wait()?);
    }
    let want = match purpose {
        Purpose::Sign => Usage::Sign,
        Purpose::Decrypt => Usage::Decrypt,
    };
    let now = SystemTime::now();
    let mut candidates: Vec<CertificateEntry> = service
        .certificates()
        .wait()?
        .into_iter()
        .filter(|c| c.usage.contains(&want))
        .filter(|c| purpose == Purpose::Decrypt || c.info.check_validity(now).is_ok())
        .collect();
    let what = match purpose {
        Purpose::Sign => "sign with",
        Purpose::Decrypt => "open bids with",
    };
    if candidates.len() == 1 {
        return Ok(candidates.remove(0));
    }
    match candidates.len() {
        0 => Err(CliError::new(
            ErrorCode::CertificateNotFound,
            format!(
                "no certificate on the tokens can {what} (is the token plugged in? `segel certs` lists what is there)"
            ),
        )),
        _ => {
            let list: Vec<String> = candidates
                .iter()
                .map(|c| {
                    format!(
                        "{}  {}  (token {})",
                        c.info.fingerprint_sha256, c.info.subject, c.token_label
                    )
                })
                .collect();
            Err(CliError::new(
                ErrorCode::CertificateAmbiguous,
                format!(
                    "several certificates can {what}; choose one with --cert FINGERPRINT:\n  {}",
                    list.join("\n  ")
                ),
            ))
        }
    }
}

/// Certificates on the tokens that have no private key there (CA certificates, mostly): the
/// intermediates a signer sends along and a verifier may need.
pub fn token_ca_certificates(service: &TokenService) -> Result<Vec<Vec<u8>>, CliError> {
    Ok(service
        .certificates()
        .wait()?
        .into_iter()
        .filter(|c| c.key_evidence.is_none())
        .map(|c| c.info.der.clone())
        .collect())
}

/// The run's trust anchors: config entries, the trust folder, and `--ca` files.
pub fn trust_store(ctx: &Context, extra: &[PathBuf]) -> Result<TrustStore, CliError> {
    let mut sources = ctx.config.trust_anchors.clone();
    sources.extend(extra.iter().cloned());
    let dir = Paths::for_user().ok().map(|p| p.trust_dir());
    TrustStore::load(&sources, dir.as_deref())
        .map_err(|e| CliError::new(ErrorCode::IoError, e.to_string()))
}

/// A token key for `cert`, with the intermediates to send when signing.
pub fn token_key(
    ctx: &Context,
    service: &TokenService,
    cert: CertificateEntry,
    trust: &TrustStore,
) -> Result<TokenKey, CliError> {
    let mut candidates = token_ca_certificates(service)?;
    candidates.extend(trust.anchors.iter().cloned());
    let chain = trust::chain_for(&cert.info.der, &candidates);
    Ok(TokenKey::new(
        service.clone(),
        cert,
        chain,
        Arc::clone(&ctx.pin_source()),
    ))
}

/// A CMS failure as a command error.
pub fn cms_error(e: &CmsError) -> CliError {
    CliError::new(crate::bids::error_code(e), e.to_string())
}

/// Read a certificate file (PEM or DER) holding exactly one certificate.
pub fn read_one_certificate(path: &Path) -> Result<Vec<u8>, CliError> {
    let mut certs = trust::load_certificates(path)
        .map_err(|e| CliError::new(ErrorCode::BadRequest, e.to_string()))?;
    if certs.len() != 1 {
        return Err(CliError::bad_request(format!(
            "{} holds {} certificates; give one file per recipient",
            path.display(),
            certs.len()
        )));
    }
    Ok(certs.remove(0))
}

/// A progress bar (files and bytes) on stderr when it is a terminal; hidden with `--json`
/// (indicatif draws nothing when stderr is not a terminal).
#[derive(Debug)]
pub struct Bar {
    bar: ProgressBar,
    files_done: AtomicUsize,
    files_total: AtomicUsize,
}

impl Bar {
    pub fn new(verb: &str, json: bool) -> Self {
        let target = if json {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        let bar = ProgressBar::with_draw_target(None, target);
        let style = ProgressStyle::with_template(
            "{prefix} {msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(verb.to_owned());
        Bar {
            bar,
            files_done: AtomicUsize::new(0),
            files_total: AtomicUsize::new(0),
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Progress for Bar {
    fn begin(&self, files: usize, bytes: u64) {
        self.files_done.store(0, Ordering::Relaxed);
        self.files_total.store(files, Ordering::Relaxed);
        self.bar.set_length(bytes);
        self.bar.set_position(0);
        self.bar.set_message(format!("0/{files} files"));
    }

    fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
    }

    fn file_done(&self, _file: &Path, _ok: bool) {
        let done = self.files_done.fetch_add(1, Ordering::Relaxed) + 1;
        let total = self.files_total.load(Ordering::Relaxed);
        self.bar.set_message(format!("{done}/{total} files"));
    }
}
