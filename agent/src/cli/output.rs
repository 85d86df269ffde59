//! Output helpers shared by the commands: errors, JSON, tables, safe file writes.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::protocol::ErrorCode;

/// A command's failure: a stable code and a message for people.
#[derive(Debug)]
pub struct CliError {
    pub code: ErrorCode,
    pub message: String,
}

impl CliError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        CliError {
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Print an error (JSON on stdout with `--json`, text on stderr otherwise); exit code 1.
pub fn report_error(err: &CliError, json: bool) -> i32 {
    if json {
        let body = serde_json::json!({"error": {"code": err.code, "message": err.message}});
        println!("{body}");
    } else {
        eprintln!("segel: error: {} [{}]", err.message, err.code);
    }
    1
}

/// Print a value as pretty JSON on stdout.
pub fn print_json(value: &impl Serialize) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::new(ErrorCode::Internal, e.to_string()))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")
        .map_err(|e| CliError::new(ErrorCode::Internal, format!("writing output: {e}")))
}

/// Print rows as an aligned table.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        s.trim_end().to_owned()
    };
    println!("{}", line(header.to_vec()));
    for row in rows {
        println!("{}", line(row.iter().map(String::as_str).collect()));
    }
}

/// Write a file atomically: a temporary file in the same folder, renamed into place only
/// when complete, so no reader ever sees half a file and a failure leaves nothing behind.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        CliError::bad_request(format!("cannot write {}: {what}: {e}", path.display()))
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".segel-")
        .tempfile_in(dir)
        .map_err(|e| fail("creating a temporary file", &e))?;
    tmp.write_all(bytes).map_err(|e| fail("writing", &e))?;
    tmp.as_file().sync_all().map_err(|e| fail("syncing", &e))?;
    tmp.persist(path)
        .map_err(|e| fail("renaming into place", &e.error))?;
    Ok(())
}

/// Read a whole input file with a clear error.
pub fn read_input(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path)
        .map_err(|e| CliError::bad_request(format!("cannot read {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.bin");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn atomic_write_into_missing_folder_fails_clearly() {
        let e = write_atomic(Path::new("/nonexistent/dir/out"), b"x").unwrap_err();
        assert!(e.message.contains("/nonexistent/dir/out"));
    }
}
