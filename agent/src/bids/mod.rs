//! Sealed bids end to end, shared by the CLI (`segel seal`, `segel open`) and the daemon's API:
//! token keys as CMS keys, the procurement file rules, trust anchors, sealing and opening many
//! files in parallel with progress, and the opening report.
//!
//! The formats themselves live in [`crate::cms`]; this module decides what runs where: files are
//! processed on a few threads while every token operation goes through the token's own workers
//! (one at a time on a hardware token), after a single login.

pub mod names;
pub mod opening;
pub mod report;
pub mod sealing;
pub mod token_keys;
pub mod trust;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::cms::{CmsError, KeyError};
use crate::protocol::ErrorCode;
use crate::token::TokenError;

pub use opening::{OpenOptions, open_many};
pub use report::{OpeningReport, OpeningRun};
pub use sealing::{SealPlan, seal_many};
pub use token_keys::TokenKey;

/// The stable API/CLI code for a CMS failure (a token failure keeps the token's own code).
pub fn error_code(e: &CmsError) -> ErrorCode {
    match e {
        CmsError::Io(_) => ErrorCode::IoError,
        CmsError::Truncated(_) | CmsError::Malformed { .. } | CmsError::Invalid(_) => {
            ErrorCode::MalformedInput
        }
        CmsError::UnsupportedAlgorithm(_) => ErrorCode::UnsupportedAlgorithm,
        CmsError::Tampered(_) => ErrorCode::Tampered,
        CmsError::NotARecipient { .. } => ErrorCode::NotARecipient,
        CmsError::RecipientCannotEncrypt { .. } => ErrorCode::RecipientCannotEncrypt,
        CmsError::SignerUnusable(_) | CmsError::Certificate(_) => ErrorCode::CertificateInvalid,
        CmsError::BadSignature(_) => ErrorCode::SignatureInvalid,
        CmsError::SelfCheck(_) => ErrorCode::Internal,
        CmsError::Key(KeyError::Token { source, .. }) => source
            .downcast_ref::<TokenError>()
            .map_or(ErrorCode::TokenError, TokenError::code),
        CmsError::Key(KeyError::Unsupported(_)) => ErrorCode::MechanismUnsupported,
        CmsError::Key(KeyError::Failed(_)) => ErrorCode::DecryptionFailed,
    }
}

/// Told what a batch is doing (the CLI draws a progress bar; the daemon sends events).
/// Called from several threads at once.
pub trait Progress: Sync {
    /// The batch starts: this many files, this many input bytes in all.
    fn begin(&self, _files: usize, _bytes: u64) {}
    /// Some more input bytes were processed.
    fn advance(&self, _bytes: u64) {}
    /// One file is finished (successfully or not).
    fn file_done(&self, _file: &Path, _ok: bool) {}
}

/// A batch nobody watches.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// Worker threads for a batch of `jobs` files: a few, since the disk and the token are
/// shared; never more than the machine's cores or the number of files.
pub fn default_threads(jobs: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.clamp(1, 4).min(jobs.max(1))
}

/// Run `job(i)` for every `i < count` on `threads` threads; results in input order.
pub(crate) fn run_parallel<T: Send>(
    count: usize,
    threads: usize,
    job: impl Fn(usize) -> T + Sync,
) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let mut results: Vec<(usize, T)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.clamp(1, count.max(1)))
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= count {
                            break done;
                        }
                        done.push((i, job(i)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| match w.join() {
                Ok(done) => done,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_results_keep_input_order() {
        let out = run_parallel(50, 3, |i| i * 2);
        assert_eq!(out, (0..50).map(|i| i * 2).collect::<Vec<_>>());
        assert!(run_parallel(0, 4, |i| i).is_empty());
    }

    #[test]
    fn token_codes_survive_the_cms_layer() {
        let e = CmsError::Key(token_keys::key_error(TokenError::PinLocked));
        assert_eq!(error_code(&e), ErrorCode::PinLocked);
        let t = CmsError::Tampered("tag");
        assert_eq!(error_code(&t), ErrorCode::Tampered);
    }
}
