//! The user's per-origin consent grants (`consent.json` in the daemon folder, owner-only).
//!
//! The file is re-read on every check, so `segel consent revoke` takes effect on a running
//! daemon at once. Only the user grants: through the CLI or an API call without a site origin
//! (the extension's own trusted window) — never a site itself.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::files::write_private;
use super::policy::Origin;

/// One grant.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Grant {
    pub origin: String,
    /// RFC 3339 time of the grant.
    pub granted_at: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ConsentFile {
    #[serde(default)]
    grants: Vec<Grant>,
}

/// Problems with the consent file.
#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    #[error("cannot read or write consent file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("consent file {path} is invalid ({message}); fix or delete it")]
    Invalid { path: PathBuf, message: String },
}

/// The consent store at one path.
#[derive(Debug, Clone)]
pub struct ConsentStore {
    path: PathBuf,
}

impl ConsentStore {
    pub fn new(path: PathBuf) -> Self {
        ConsentStore { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> Result<ConsentFile, ConsentError> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| ConsentError::Invalid {
                path: self.path.clone(),
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ConsentFile::default()),
            Err(source) => Err(ConsentError::Io {
                path: self.path.clone(),
                source,
            }),
        }
    }

    fn write(&self, file: &ConsentFile) -> Result<(), ConsentError> {
        let io = |source| ConsentError::Io {
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let text = serde_json::to_vec_pretty(file).map_err(|e| io(std::io::Error::other(e)))?;
        write_private(&self.path, &text, 0o600).map_err(io)
    }

    /// Every grant.
    pub fn list(&self) -> Result<Vec<Grant>, ConsentError> {
        Ok(self.read()?.grants)
    }

    /// Has the user granted consent to this origin?
    pub fn is_granted(&self, origin: &Origin) -> Result<bool, ConsentError> {
        let key = origin.to_string();
        Ok(self.read()?.grants.iter().any(|g| g.origin == key))
    }

    /// Grant consent (idempotent); returns the grant.
    pub fn grant(&self, origin: &Origin) -> Result<Grant, ConsentError> {
        let mut file = self.read()?;
        let key = origin.to_string();
        if let Some(g) = file.grants.iter().find(|g| g.origin == key) {
            return Ok(g.clone());
        }
        let grant = Grant {
            origin: key,
            granted_at: crate::certinfo::rfc3339(std::time::SystemTime::now()),
        };
        file.grants.push(grant.clone());
        self.write(&file)?;
        Ok(grant)
    }

    /// Revoke consent; returns whether there was a grant.
    pub fn revoke(&self, origin: &Origin) -> Result<bool, ConsentError> {
        let mut file = self.read()?;
        let key = origin.to_string();
        let before = file.grants.len();
        file.grants.retain(|g| g.origin != key);
        if file.grants.len() == before {
            return Ok(false);
        }
        self.write(&file)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_list_revoke_round_trip_is_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = ConsentStore::new(dir.path().join("consent.json"));
        let site = Origin::parse("https://spse.lkpp.go.id").unwrap();
        assert!(!store.is_granted(&site).unwrap());
        store.grant(&site).unwrap();
        store.grant(&site).unwrap();
        assert_eq!(store.list().unwrap().len(), 1);
        assert!(
            store
                .is_granted(&Origin::parse("https://SPSE.lkpp.go.id:443").unwrap())
                .unwrap()
        );
        let mode = std::fs::metadata(store.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(store.revoke(&site).unwrap());
        assert!(!store.revoke(&site).unwrap());
        assert!(!store.is_granted(&site).unwrap());
    }
}
