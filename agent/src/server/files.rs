//! The daemon's files in the user's state folder (`$XDG_STATE_HOME/segel/daemon/`):
//!
//! | file             | mode | what                                                          |
//! |------------------|------|---------------------------------------------------------------|
//! | `credential`     | 0600 | the per-user API credential (64 hex digits)                   |
//! | `tls/ca.pem`     | 0644 | the local CA certificate (its key was never written)          |
//! | `tls/server.pem` | 0644 | the server certificate                                        |
//! | `tls/server.key` | 0600 | the server certificate's key                                  |
//! | `endpoint.json`  | 0600 | `{"url", "pid"}` of the running daemon (removed at shutdown)   |
//! | `consent.json`   | 0600 | the user's per-origin consent grants                          |
//!
//! The folder is created owner-only (0700). Writes go to a temporary file renamed into place.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::config::{ConfigError, Paths};

/// Paths of the daemon's files.
#[derive(Debug, Clone)]
pub struct DaemonFiles {
    pub dir: PathBuf,
}

impl DaemonFiles {
    /// The current user's daemon folder (XDG rules, see [`Paths::for_user`]).
    pub fn for_user() -> Result<Self, ConfigError> {
        Ok(Self::in_dir(Paths::for_user()?.state_dir.join("daemon")))
    }

    pub fn in_dir(dir: PathBuf) -> Self {
        DaemonFiles { dir }
    }

    pub fn credential(&self) -> PathBuf {
        self.dir.join("credential")
    }
    pub fn tls_dir(&self) -> PathBuf {
        self.dir.join("tls")
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.tls_dir().join("ca.pem")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.tls_dir().join("server.pem")
    }
    pub fn server_key(&self) -> PathBuf {
        self.tls_dir().join("server.key")
    }
    pub fn endpoint(&self) -> PathBuf {
        self.dir.join("endpoint.json")
    }
    pub fn consent(&self) -> PathBuf {
        self.dir.join("consent.json")
    }

    /// Create the folder and `tls/` owner-only.
    pub fn ensure_dirs(&self) -> std::io::Result<()> {
        for d in [self.dir.clone(), self.tls_dir()] {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&d)?;
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(())
    }
}

/// Write `bytes` to `path` atomically with file mode `mode` (the temporary file is created
/// with that mode, so the content is never readable by others, not even for a moment).
pub fn write_private(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut suffix = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut suffix);
    let tmp = dir.join(format!(".{name}.{}.tmp", hex::encode(suffix)));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Create `dir` (and parents) owner-only.
pub fn ensure_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}
