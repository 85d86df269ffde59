//! The opening report (berita acara pembukaan): one line per bid, as JSON and as a readable
//! HTML page.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::cms::CmsError;
use crate::cms::chain::ChainReport;
use crate::cms::verify::VerifyReport;

/// How one bid fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BidStatus {
    /// Opened; the signature verifies and the vendor's certificate is trusted and was valid.
    Opened,
    /// Opened, but the vendor's certificate is untrusted, expired, or not allowed to sign.
    OpenedWithWarnings,
    /// Not opened; nothing was written.
    Failed,
}

/// One line of the opening report.
#[derive(Debug, Clone, Serialize)]
pub struct OpeningReport {
    /// The sealed file.
    pub file: String,
    pub status: BidStatus,
    /// Where the plaintext was written (only when opened).
    pub output: Option<String>,
    /// Vendor: the signer certificate's subject.
    pub vendor: Option<String>,
    /// The inner signature (and message digest) verify.
    pub signature_valid: bool,
    /// Signer certificate path, validity at signing time, key usage.
    pub chain: Option<ChainReport>,
    /// Claimed signing time (RFC 3339).
    pub signing_time: Option<String>,
    /// SHA-256 of the plaintext (hex).
    pub plaintext_sha256: Option<String>,
    /// Plaintext size in octets.
    pub size: Option<u64>,
    /// Why opening failed, or the problems with the vendor's certificate.
    pub error: Option<String>,
    /// Stable error code (see the API's error codes) when opening failed.
    pub error_code: Option<String>,
}

impl OpeningReport {
    /// The line for a bid that was opened.
    pub fn opened(file: &Path, output: &Path, rep: &VerifyReport) -> Self {
        let signer = rep.signers.first();
        let chain = signer.and_then(|s| s.chain.clone());
        let mut problems: Vec<String> = signer.map(|s| s.errors.clone()).unwrap_or_default();
        if let Some(c) = &chain {
            problems.extend(c.problems.iter().cloned());
        }
        let clean = rep.signatures_valid() && chain.as_ref().is_some_and(ChainReport::ok);
        if chain.is_none() {
            problems.push("the vendor's certificate chain was not checked".to_owned());
        }
        OpeningReport {
            file: file.display().to_string(),
            status: if clean {
                BidStatus::Opened
            } else {
                BidStatus::OpenedWithWarnings
            },
            output: Some(output.display().to_string()),
            vendor: signer.and_then(|s| s.subject.clone()),
            signature_valid: rep.signatures_valid(),
            chain,
            signing_time: signer.and_then(|s| s.signing_time.clone()),
            plaintext_sha256: Some(rep.content_sha256.clone()),
            size: Some(rep.content_len),
            error: (!problems.is_empty()).then(|| problems.join("; ")),
            error_code: None,
        }
    }

    /// The line for a bid that could not be opened.
    pub fn failed(file: &Path, code: &str, message: String) -> Self {
        OpeningReport {
            file: file.display().to_string(),
            status: BidStatus::Failed,
            output: None,
            vendor: None,
            signature_valid: false,
            chain: None,
            signing_time: None,
            plaintext_sha256: None,
            size: None,
            error: Some(message),
            error_code: Some(code.to_owned()),
        }
    }

    /// The line for a CMS failure.
    pub fn from_error(file: &Path, e: &CmsError) -> Self {
        Self::failed(file, super::error_code(e).as_str(), e.to_string())
    }
}

/// Counts for the report's header.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub total: usize,
    pub opened: usize,
    pub opened_with_warnings: usize,
    pub failed: usize,
}

/// A whole opening run.
#[derive(Debug, Clone, Serialize)]
pub struct OpeningRun {
    /// When the run finished (RFC 3339, UTC).
    pub opened_at: String,
    /// The committee member's certificate subject.
    pub opened_by: String,
    /// The token holding that certificate.
    pub token: String,
    pub summary: Summary,
    pub bids: Vec<OpeningReport>,
}

impl OpeningRun {
    pub fn new(opened_by: String, token: String, bids: Vec<OpeningReport>) -> Self {
        let count = |s: BidStatus| bids.iter().filter(|b| b.status == s).count();
        let summary = Summary {
            total: bids.len(),
            opened: count(BidStatus::Opened),
            opened_with_warnings: count(BidStatus::OpenedWithWarnings),
            failed: count(BidStatus::Failed),
        };
        OpeningRun {
            opened_at: crate::certinfo::rfc3339(std::time::SystemTime::now()),
            opened_by,
            token,
            summary,
            bids,
        }
    }

    /// Every bid opened, with valid signatures and trusted vendors.
    pub fn all_clean(&self) -> bool {
        self.summary.opened == self.summary.total
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        // Serialising plain strings, numbers and enums cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// The report as a self-contained HTML page (no scripts, no external resources).
    pub fn to_html(&self) -> String {
        let mut h = String::new();
        let s = &self.summary;
        let _ = write!(
            h,
            "<!DOCTYPE html>\n<html lang=\"id\">\n<head>\n<meta charset=\"utf-8\">\n\
             <title>Berita acara pembukaan penawaran — Segel</title>\n<style>\n\
             body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse;width:100%}}\n\
             th,td{{border:1px solid #999;padding:4px 6px;text-align:left;vertical-align:top;font-size:90%}}\n\
             th{{background:#eee}} .opened{{background:#e8f5e9}} .opened_with_warnings{{background:#fff8e1}}\n\
             .failed{{background:#ffebee}} code{{word-break:break-all}}\n</style>\n</head>\n<body>\n\
             <h1>Berita acara pembukaan penawaran / Bid opening report</h1>\n\
             <p>Dibuka oleh / opened by: {}<br>Token: {}<br>Waktu / time: {}</p>\n\
             <p>Jumlah / total: {} — dibuka / opened: {} — dengan peringatan / with warnings: {} — gagal / failed: {}</p>\n",
            esc(&self.opened_by),
            esc(&self.token),
            esc(&self.opened_at),
            s.total,
            s.opened,
            s.opened_with_warnings,
            s.failed
        );
        h.push_str(
            "<table>\n<tr><th>#</th><th>File</th><th>Status</th><th>Vendor (penyedia)</th>\
             <th>Signature</th><th>Certificate chain</th><th>Signing time</th>\
             <th>SHA-256</th><th>Size (bytes)</th><th>Error / problems</th></tr>\n",
        );
        for (i, b) in self.bids.iter().enumerate() {
            let status = match b.status {
                BidStatus::Opened => "opened",
                BidStatus::OpenedWithWarnings => "opened_with_warnings",
                BidStatus::Failed => "failed",
            };
            let chain = b.chain.as_ref().map_or(String::new(), |c| {
                format!("{:?}, {:?}: {}", c.status, c.validity, c.path.join(" → "))
            });
            let _ = writeln!(
                h,
                "<tr class=\"{status}\"><td>{}</td><td>{}</td><td>{status}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                i + 1,
                esc(&b.file),
                esc(b.vendor.as_deref().unwrap_or("")),
                if b.status == BidStatus::Failed {
                    "—"
                } else if b.signature_valid {
                    "valid"
                } else {
                    "INVALID"
                },
                esc(&chain),
                esc(b.signing_time.as_deref().unwrap_or("")),
                esc(b.plaintext_sha256.as_deref().unwrap_or("")),
                b.size.map_or(String::new(), |s| s.to_string()),
                esc(&match (&b.error_code, &b.error) {
                    (Some(c), Some(e)) => format!("[{c}] {e}"),
                    (None, Some(e)) => e.clone(),
                    _ => String::new(),
                }),
            );
        }
        h.push_str("</table>\n</body>\n</html>\n");
        h
    }
}

/// HTML-escape text (element content and quoted attribute values).
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_hostile_names_and_counts() {
        let bids = vec![
            OpeningReport::failed(
                Path::new("<script>alert(1)</script>.p7m"),
                "TAMPERED",
                "tag & padding".into(),
            ),
            OpeningReport::failed(Path::new("b.p7m"), "NOT_A_RECIPIENT", "x".into()),
        ];
        let run = OpeningRun::new("CN=Pokja".into(), "tok".into(), bids);
        assert_eq!(run.summary.failed, 2);
        assert!(!run.all_clean());
        let html = run.to_html();
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("tag &amp; padding"));
        let json: serde_json::Value = serde_json::from_str(&run.to_json()).unwrap();
        assert_eq!(json["bids"][0]["status"], "failed");
        assert_eq!(json["bids"][1]["error_code"], "NOT_A_RECIPIENT");
    }
}
