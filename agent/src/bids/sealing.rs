//! Sealing a vendor's submission: every check that can refuse the whole submission runs
//! before the first file is touched (file rules, recipients, output names), then each file is
//! signed on the vendor's token and encrypted to the committee, on a few threads. Each output
//! is written to a temporary file, checked, and renamed into place.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;

use crate::cms::recipient::Recipient;
use crate::cms::seal::{SealOptions, SealReport, seal_file};
use crate::cms::{CmsError, SigningKey};
use crate::protocol::ErrorCode;

use super::names::{NameProblem, check_submission};
use super::{Progress, run_parallel};

/// A submission that passed the checks, ready to seal.
#[derive(Debug)]
pub struct SealPlan {
    files: Vec<(PathBuf, PathBuf)>,
    recipients: Vec<Recipient>,
}

/// Why a submission was refused before anything was sealed.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{} file(s) break the procurement file rules:\n  {}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    FileRules(Vec<NameProblem>),
    #[error("{0}")]
    Recipient(CmsError),
    #[error("{0}")]
    BadInput(String),
}

impl PlanError {
    pub fn code(&self) -> ErrorCode {
        match self {
            PlanError::FileRules(_) => ErrorCode::FileRejected,
            PlanError::Recipient(e) => super::error_code(e),
            PlanError::BadInput(_) => ErrorCode::BadRequest,
        }
    }
}

/// The outcome for one file.
#[derive(Debug, Clone, Serialize)]
pub struct SealLine {
    pub file: String,
    #[serde(flatten)]
    pub sealed: Option<SealReport>,
    pub error: Option<String>,
    pub error_code: Option<String>,
}

impl SealPlan {
    /// Check a submission: readable regular files, the file rules when `file_rules` is on,
    /// output names unique, and recipient certificates (DER) that can encrypt and are valid now.
    pub fn new(
        files: &[PathBuf],
        recipients_der: &[Vec<u8>],
        out_dir: &Path,
        file_rules: bool,
    ) -> Result<Self, PlanError> {
        if files.is_empty() {
            return Err(PlanError::BadInput("no files to seal".to_owned()));
        }
        if recipients_der.is_empty() {
            return Err(PlanError::BadInput(
                "no recipients: name the committee's certificates with --to".to_owned(),
            ));
        }
        if !out_dir.is_dir() {
            return Err(PlanError::BadInput(format!(
                "output folder {} does not exist",
                out_dir.display()
            )));
        }
        for f in files {
            if !f.is_file() {
                return Err(PlanError::BadInput(format!(
                    "{} is not a readable file",
                    f.display()
                )));
            }
        }
        if file_rules {
            let problems = check_submission(files);
            if !problems.is_empty() {
                return Err(PlanError::FileRules(problems));
            }
        }
        let mut outputs: HashMap<PathBuf, &Path> = HashMap::new();
        let mut planned = Vec::new();
        for f in files {
            let Some(name) = f.file_name() else {
                return Err(PlanError::BadInput(format!(
                    "{} has no file name",
                    f.display()
                )));
            };
            let mut out_name = name.to_os_string();
            out_name.push(".p7m");
            let out = out_dir.join(out_name);
            if let Some(first) = outputs.insert(out.clone(), f) {
                return Err(PlanError::BadInput(format!(
                    "{} and {} would both be sealed to {}",
                    first.display(),
                    f.display(),
                    out.display()
                )));
            }
            planned.push((f.clone(), out));
        }
        let now = SystemTime::now();
        let mut recipients = Vec::new();
        for der in recipients_der {
            let r = Recipient::from_der(der).map_err(PlanError::Recipient)?;
            let info = crate::certinfo::CertInfo::from_der(der)
                .map_err(|e| PlanError::BadInput(e.to_string()))?;
            if let Err(problem) = info.check_validity(now) {
                return Err(PlanError::Recipient(CmsError::RecipientCannotEncrypt {
                    subject: info.subject,
                    reason: problem,
                }));
            }
            recipients.push(r);
        }
        Ok(SealPlan {
            files: planned,
            recipients,
        })
    }

    /// The recipients' subjects.
    pub fn recipient_subjects(&self) -> Vec<String> {
        self.recipients.iter().map(Recipient::subject).collect()
    }

    /// Input and output of every file.
    pub fn files(&self) -> &[(PathBuf, PathBuf)] {
        &self.files
    }
}

/// Seal every file of the plan; one line per file, in input order. A failed file leaves
/// nothing behind (an earlier output of the same name stays as it was).
pub fn seal_many(
    signer: &(dyn SigningKey + Sync),
    plan: &SealPlan,
    opts: &SealOptions,
    threads: usize,
    progress: &dyn Progress,
) -> Vec<SealLine> {
    let total: u64 = plan
        .files
        .iter()
        .filter_map(|(f, _)| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    progress.begin(plan.files.len(), total);
    run_parallel(plan.files.len(), threads, |i| {
        let (input, output) = &plan.files[i];
        let result = seal_file(signer, &plan.recipients, input, output, opts);
        progress.file_done(input, result.is_ok());
        match result {
            Ok(rep) => {
                progress.advance(rep.content_len);
                SealLine {
                    file: input.display().to_string(),
                    sealed: Some(rep),
                    error: None,
                    error_code: None,
                }
            }
            Err(e) => SealLine {
                file: input.display().to_string(),
                sealed: None,
                error: Some(e.to_string()),
                error_code: Some(super::error_code(&e).as_str().to_owned()),
            },
        }
    })
}
