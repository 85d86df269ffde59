//! The procurement portal's file rules (seed 001, "Hal-hal yang harus diperhatikan"): a bid file
//! name has at most 40 characters including its extension, contains none of
//! `/ \ , : ' " + - ( )`, and names are unique within one submission.
//!
//! The rules are a site policy that can be switched off (`[procurement] file_rules = false`
//! in the config file, or `--no-file-rules`). Every offending file gets its own message, so a
//! vendor can fix them all at once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Longest allowed file name, in characters, extension included.
pub const MAX_NAME_CHARS: usize = 40;

/// Characters the portal refuses in file names. The typographic quotes are the ones the
/// seed document prints; word processors turn `'` and `"` into them.
pub const FORBIDDEN: &[char] = &[
    '/', '\\', ',', ':', '\'', '"', '+', '-', '(', ')', '\u{2018}', '\u{2019}', '\u{201C}',
    '\u{201D}',
];

/// One file that breaks the rules, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NameProblem {
    pub file: PathBuf,
    pub problem: String,
}

impl std::fmt::Display for NameProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.problem)
    }
}

/// Problems with a single file name (empty when it is acceptable).
pub fn check_name(name: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let chars = name.chars().count();
    if chars > MAX_NAME_CHARS {
        problems.push(format!(
            "the name has {chars} characters; the portal allows at most {MAX_NAME_CHARS}, extension included"
        ));
    }
    let mut bad: Vec<char> = name.chars().filter(|c| FORBIDDEN.contains(c)).collect();
    bad.sort_unstable();
    bad.dedup();
    if !bad.is_empty() {
        let list: Vec<String> = bad.iter().map(|c| format!("'{c}'")).collect();
        problems.push(format!(
            "the name contains {} which the portal does not allow",
            list.join(" ")
        ));
    }
    if name.chars().any(char::is_control) {
        problems.push("the name contains control characters".to_owned());
    }
    problems
}

/// Check a whole submission: every name, and that no two files share a name (compared without
/// regard to case, as the committee's Windows machines do).
pub fn check_submission(files: &[PathBuf]) -> Vec<NameProblem> {
    let mut problems = Vec::new();
    let mut seen: HashMap<String, &Path> = HashMap::new();
    for file in files {
        let Some(name) = file.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            problems.push(NameProblem {
                file: file.clone(),
                problem: "not a file name".to_owned(),
            });
            continue;
        };
        for problem in check_name(&name) {
            problems.push(NameProblem {
                file: file.clone(),
                problem,
            });
        }
        if let Some(first) = seen.insert(name.to_lowercase(), file) {
            problems.push(NameProblem {
                file: file.clone(),
                problem: format!(
                    "has the same name as {} (names must be unique in one submission)",
                    first.display()
                ),
            });
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_pass() {
        assert!(check_name("Penawaran Harga.pdf").is_empty());
        assert!(check_name("dokumen_teknis_2026.xlsx").is_empty());
        // exactly 40 characters, extension included
        let forty = format!("{}.pdf", "a".repeat(36));
        assert_eq!(forty.chars().count(), 40);
        assert!(check_name(&forty).is_empty());
    }

    #[test]
    fn long_names_are_refused_with_the_count() {
        let name = format!("{}.pdf", "a".repeat(37));
        let p = check_name(&name);
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("41 characters"), "{p:?}");
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        let name = format!("{}.pdf", "é".repeat(36));
        assert!(check_name(&name).is_empty());
    }

    #[test]
    fn each_forbidden_symbol_is_named() {
        for c in ['\\', ',', ':', '\'', '"', '+', '-', '(', ')', '\u{201C}'] {
            let name = format!("bid{c}1.pdf");
            let p = check_name(&name);
            assert_eq!(p.len(), 1, "{name}: {p:?}");
            assert!(p[0].contains(&format!("'{c}'")), "{p:?}");
        }
        let p = check_name("harga-(final).pdf");
        assert!(p[0].contains("'(' ')' '-'"), "{p:?}");
    }

    #[test]
    fn duplicate_names_in_a_submission_are_reported_once_each() {
        let files = vec![
            PathBuf::from("/media/usb/harga.pdf"),
            PathBuf::from("/home/v/HARGA.pdf"),
            PathBuf::from("/home/v/teknis.pdf"),
        ];
        let p = check_submission(&files);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].file, PathBuf::from("/home/v/HARGA.pdf"));
        assert!(p[0].problem.contains("/media/usb/harga.pdf"));
    }

    #[test]
    fn every_offending_file_gets_its_message() {
        let files = vec![
            PathBuf::from("a-b.pdf"),
            PathBuf::from(format!("{}.doc", "x".repeat(50))),
            PathBuf::from("ok.pdf"),
        ];
        let p = check_submission(&files);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p.iter().all(|p| p.file != Path::new("ok.pdf")));
    }
}
