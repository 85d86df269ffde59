//! The endpoint file: where the running daemon listens, for `segel endpoint`, the native host,
//! scripts and tests. Written after the socket is bound, removed at shutdown.

use serde::{Deserialize, Serialize};

use super::files::{DaemonFiles, write_private};

/// `endpoint.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointFile {
    pub url: String,
    pub pid: u32,
}

pub fn write(files: &DaemonFiles, url: &str) -> std::io::Result<()> {
    let body = EndpointFile {
        url: url.to_owned(),
        pid: std::process::id(),
    };
    let text = serde_json::to_vec_pretty(&body).map_err(std::io::Error::other)?;
    write_private(&files.endpoint(), &text, 0o600)
}

/// Read the endpoint file; `None` when the daemon is not running (no file, or its process
/// is gone).
pub fn read(files: &DaemonFiles) -> Option<EndpointFile> {
    let text = std::fs::read_to_string(files.endpoint()).ok()?;
    let e: EndpointFile = serde_json::from_str(&text).ok()?;
    std::path::Path::new(&format!("/proc/{}", e.pid))
        .exists()
        .then_some(e)
}

/// Remove the endpoint file if it is this process's.
pub fn remove(files: &DaemonFiles) {
    if let Ok(text) = std::fs::read_to_string(files.endpoint())
        && let Ok(e) = serde_json::from_str::<EndpointFile>(&text)
        && e.pid == std::process::id()
    {
        let _ = std::fs::remove_file(files.endpoint());
    }
}
