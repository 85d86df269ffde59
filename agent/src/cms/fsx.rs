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

/// Bytes written between two background flushes.
const WRITEBACK_EVERY: u64 = 32 << 20;

/// A writer that has the file's data flushed to disk in the background while it is still being
/// written, so the fsync before the final rename has little left to do (a sealed or opened bid
/// can be gigabytes, and the disk then works while the CPU encrypts). Errors of the background
/// flushes are ignored: the final fsync reports them.
pub(crate) struct WritebackWriter<W> {
    inner: W,
    tx: Option<std::sync::mpsc::SyncSender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    unsynced: u64,
}

impl<W: std::io::Write> WritebackWriter<W> {
    /// `inner` writes to `file`.
    pub(crate) fn new(inner: W, file: &std::fs::File) -> Self {
        let (tx, thread) = match file.try_clone() {
            Ok(f) => {
                let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
                let thread = std::thread::Builder::new()
                    .name("segel-writeback".into())
                    .spawn(move || {
                        while rx.recv().is_ok() {
                            let _ = f.sync_data();
                        }
                    })
                    .ok();
                (thread.as_ref().map(|_| tx), thread)
            }
            Err(_) => (None, None),
        };
        WritebackWriter {
            inner,
            tx,
            thread,
            unsynced: 0,
        }
    }
}

impl<W: std::io::Write> std::io::Write for WritebackWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.unsynced += n as u64;
        if self.unsynced >= WRITEBACK_EVERY {
            self.unsynced = 0;
            if let Some(tx) = &self.tx {
                // Busy flushing already: the next one will cover these bytes too.
                let _ = tx.try_send(());
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<W> Drop for WritebackWriter<W> {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
