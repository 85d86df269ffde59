//! Writing key files so that there is never a moment without a valid file: the new bytes go to a
//! temporary file in the same folder (`.NAME.p12.tmp-RANDOM`, which discovery ignores), are
//! flushed with `fsync`, and replace the old file with one `rename` — atomic on POSIX file
//! systems, including the FAT/exFAT of flash drives as far as the kernel's VFS goes — after which
//! the folder itself is flushed so the rename survives a pulled drive or a power cut.

use crate::error::{Error, Result};
use rand_core::{OsRng, RngCore};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Whether the file at `path` may be replaced or must not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A new key file: fail with [`Error::KeyFileExists`] if `path` exists.
    Create,
    /// Replace the existing key file.
    Replace,
}

fn temp_path(path: &Path) -> Result<PathBuf> {
    let dir = path.parent().ok_or(Error::ArgumentsBad)?;
    let name = path
        .file_name()
        .ok_or(Error::ArgumentsBad)?
        .to_string_lossy();
    Ok(dir.join(format!(".{name}.tmp-{:016x}", OsRng.next_u64())))
}

/// Writes `bytes` to `path` atomically (see the module docs). Key files are created `0600`.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: Mode) -> Result<()> {
    if mode == Mode::Create && path.symlink_metadata().is_ok() {
        return Err(Error::KeyFileExists);
    }
    let tmp = temp_path(path)?;
    let result = (|| -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        // A new file must not replace one that appeared meanwhile. The check-then-rename gap is
        // a race only with another writer in the same folder at the same instant; hard links,
        // which would close it, do not exist on FAT flash drives.
        if mode == Mode::Create && path.symlink_metadata().is_ok() {
            return Err(std::io::Error::from(std::io::ErrorKind::AlreadyExists));
        }
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            // Flushing a directory is refused by some file systems (EINVAL); the rename itself
            // has happened then, so that is not a failure of the write.
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!(path = %path.display(), error = %e, "writing the key file failed");
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Err(Error::KeyFileExists)
            } else {
                Err(Error::WriteFailed)
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn replace_swaps_contents_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("k.p12");
        std::fs::write(&p, b"old").expect("write");
        write_atomically(&p, b"new", Mode::Replace).expect("replace");
        assert_eq!(std::fs::read(&p).expect("read"), b"new");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("k.p12")]);
    }

    #[test]
    fn create_refuses_an_existing_file_and_keeps_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("k.p12");
        std::fs::write(&p, b"old").expect("write");
        assert_eq!(
            write_atomically(&p, b"new", Mode::Create),
            Err(Error::KeyFileExists)
        );
        assert_eq!(std::fs::read(&p).expect("read"), b"old");
        write_atomically(&dir.path().join("n.p12"), b"x", Mode::Create).expect("create");
        use std::os::unix::fs::PermissionsExt;
        let perm = std::fs::metadata(dir.path().join("n.p12"))
            .expect("meta")
            .permissions();
        assert_eq!(perm.mode() & 0o777, 0o600);
    }

    #[test]
    fn unwritable_folder_is_write_failed_and_the_old_file_survives() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("missing-dir").join("k.p12");
        assert_eq!(
            write_atomically(&p, b"x", Mode::Replace),
            Err(Error::WriteFailed)
        );
    }
}
