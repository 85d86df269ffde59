//! Temporary files beside the destination and atomic rename: nothing partial is ever visible
//! under the final name, and a dropped temporary file is deleted.

use std::path::Path;

use tempfile::NamedTempFile;

use super::error::{CmsError, Result};

/// A temporary file in the directory of `dest` (so the final rename stays on one file system).
pub(crate) fn temp_beside(dest: &Path) -> Result<NamedTempFile> {
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Ok(tempfile::Builder::new()
        .prefix(".segel-")
        .suffix(".part")
        .tempfile_in(dir)?)
}

/// Flush to disk and rename over `dest`.
pub(crate) fn persist(tmp: NamedTempFile, dest: &Path) -> Result<()> {
    tmp.as_file().sync_all()?;
    tmp.persist(dest).map_err(|e| CmsError::Io(e.error))?;
    Ok(())
}

/// Flush to disk and rename to `dest`, failing if `dest` appeared meanwhile (never replaces a
/// file, e.g. an earlier opening's plaintext).
pub(crate) fn persist_new(tmp: NamedTempFile, dest: &Path) -> Result<()> {
    tmp.as_file().sync_all()?;
    tmp.persist_noclobber(dest).map_err(|e| {
        CmsError::Io(std::io::Error::new(
            e.error.kind(),
            format!("cannot create {}: {}", dest.display(), e.error),
        ))
    })?;
    Ok(())
}
