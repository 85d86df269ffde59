//! Files the API holds for a caller: uploaded bids (streamed in, never base64) and the results
//! of seal and open (streamed out). Each lives in its own folder `work/<id>/NAME` under the
//! daemon's owner-only folder, under a random 128-bit id, visible only to the caller that made
//! it. The work folder is emptied when the daemon starts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rand_core::{OsRng, RngCore};

use super::error::ApiError;
use super::files::ensure_private_dir;
use crate::protocol::ErrorCode;

/// One held file.
#[derive(Debug, Clone)]
pub struct Stored {
    pub path: PathBuf,
    pub owner: String,
}

/// The files the daemon holds.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    files: Mutex<HashMap<String, Stored>>,
}

/// A file name as given by a caller: one path component, printable, not too long.
pub fn safe_name(name: &str) -> Result<String, ApiError> {
    let ok = !name.is_empty()
        && name.chars().count() <= 200
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control());
    if ok {
        Ok(name.to_owned())
    } else {
        Err(ApiError::bad_request(format!(
            "{name:?} is not a file name (one name, no folders, at most 200 bytes)"
        )))
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("no file {id}"))
}

impl Store {
    pub fn new(dir: PathBuf) -> Self {
        Store {
            dir,
            files: Mutex::new(HashMap::new()),
        }
    }

    fn files(&self) -> std::sync::MutexGuard<'_, HashMap<String, Stored>> {
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new empty folder and its id.
    pub fn new_slot(&self) -> Result<(String, PathBuf), ApiError> {
        let mut raw = [0u8; 16];
        OsRng.fill_bytes(&mut raw);
        let id = hex::encode(raw);
        let dir = self.dir.join(&id);
        ensure_private_dir(&dir)
            .map_err(|e| ApiError::internal(format!("cannot make a work folder: {e}")))?;
        Ok((id, dir))
    }

    /// Hold `path` (inside the slot `id`) for `owner`.
    pub fn insert(&self, id: &str, path: PathBuf, owner: &str) {
        self.files().insert(
            id.to_owned(),
            Stored {
                path,
                owner: owner.to_owned(),
            },
        );
    }

    /// The file `id`, if `owner` made it.
    pub fn get(&self, id: &str, owner: &str) -> Result<Stored, ApiError> {
        match self.files().get(id) {
            Some(s) if s.owner == owner => Ok(s.clone()),
            _ => Err(not_found(id)),
        }
    }

    /// Delete the file `id` and its folder.
    pub fn remove(&self, id: &str, owner: &str) -> Result<(), ApiError> {
        let stored = self.get(id, owner)?;
        self.files().remove(id);
        if let Some(dir) = stored.path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
        Ok(())
    }

    /// Forget a slot that failed (removes its folder).
    pub fn discard(&self, dir: &Path) {
        let _ = std::fs::remove_dir_all(dir);
    }
}
