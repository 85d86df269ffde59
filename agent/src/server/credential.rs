//! The per-user API credential: 32 random bytes, kept as 64 hex digits in an owner-only file,
//! sent by clients as `Authorization: Bearer <hex>` and compared in constant time.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rand_core::{OsRng, RngCore};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::files::write_private;

/// The credential the daemon checks every request against.
pub struct Credential {
    hex: Zeroizing<String>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential(..)")
    }
}

/// Problems with the credential file.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("cannot read or write the credential file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the credential file {0} is malformed (expected 64 hex digits); delete it to make a new one"
    )]
    Malformed(String),
}

impl Credential {
    /// Load the credential from `path`, creating it (mode 0600) when absent. An existing
    /// file readable by others has its mode reset to 0600.
    pub fn load_or_create(path: &Path) -> Result<Self, CredentialError> {
        let io = |source| CredentialError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let text = Zeroizing::new(text);
                let meta = std::fs::metadata(path).map_err(io)?;
                if meta.permissions().mode() & 0o077 != 0 {
                    tracing::warn!(path = %path.display(), "credential file was readable by others; reset to 0600");
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                        .map_err(io)?;
                }
                Self::parse(&text)
                    .ok_or_else(|| CredentialError::Malformed(path.display().to_string()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut raw = Zeroizing::new([0u8; 32]);
                OsRng.fill_bytes(raw.as_mut());
                let hex = Zeroizing::new(hex::encode(raw.as_ref()));
                write_private(path, format!("{}\n", hex.as_str()).as_bytes(), 0o600).map_err(io)?;
                Ok(Credential { hex })
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Read an existing credential (for `segel endpoint`), without creating one.
    pub fn load(path: &Path) -> Result<Self, CredentialError> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
            CredentialError::Io {
                path: path.display().to_string(),
                source,
            }
        })?);
        Self::parse(&text).ok_or_else(|| CredentialError::Malformed(path.display().to_string()))
    }

    fn parse(text: &str) -> Option<Self> {
        let t = text.trim();
        (t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit())).then(|| Credential {
            hex: Zeroizing::new(t.to_ascii_lowercase()),
        })
    }

    /// The credential as sent by clients (for `segel endpoint` and the native host only).
    pub fn expose(&self) -> &str {
        &self.hex
    }

    /// Constant-time check of a presented credential (length is not secret: always 64).
    pub fn matches(&self, presented: &[u8]) -> bool {
        presented.len() == self.hex.len() && bool::from(presented.ct_eq(self.hex.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_is_created_owner_only_and_reloaded_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("credential");
        let a = Credential::load_or_create(&p).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = Credential::load_or_create(&p).unwrap();
        assert_eq!(a.expose(), b.expose());
        assert!(a.matches(b.expose().as_bytes()));
        assert!(!a.matches(b"00"));
        let mut wrong = a.expose().as_bytes().to_vec();
        wrong[0] = if wrong[0] == b'0' { b'1' } else { b'0' };
        assert!(!a.matches(&wrong));
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn group_readable_credential_is_reset_to_0600() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("credential");
        Credential::load_or_create(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        Credential::load_or_create(&p).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
