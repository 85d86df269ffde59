//! Files the API holds for a caller: uploaded bids (streamed in, never base64) and the results
//! of seal and open (streamed out). Each lives in its own folder `work/<id>/NAME` under the
//! daemon's owner-only folder, under a random 128-bit id, visible only to the caller that made
//! it. A file is deleted when its caller deletes it, [`HELD_FILE_IDLE`] after its last use
//! (an opened bid must not linger on disk), and the work folder is emptied when the daemon
//! starts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand_core::{OsRng, RngCore};

use super::error::ApiError;
use super::files::ensure_private_dir;
use crate::protocol::ErrorCode;

/// How long a held file stays after it was last made, read or named in a request.
pub const HELD_FILE_IDLE: Duration = Duration::from_secs(60 * 60);

/// One held file.
#[derive(Debug, Clone)]
pub struct Stored {
    pub path: PathBuf,
    pub owner: String,
    /// When it was last made or looked up.
    used: Instant,
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
                used: Instant::now(),
            },
        );
    }

    /// The file `id`, if `owner` made it.
    pub fn get(&self, id: &str, owner: &str) -> Result<Stored, ApiError> {
        match self.files().get_mut(id) {
            Some(s) if s.owner == owner => {
                s.used = Instant::now();
                Ok(s.clone())
            }
            _ => Err(not_found(id)),
        }
    }

    /// Delete every file not used for `max_idle` (with its folder); how many went. A download
    /// still streaming keeps its open file; slots still being filled are not held yet.
    pub fn sweep(&self, max_idle: Duration) -> usize {
        let stale: Vec<Stored> = {
            let mut files = self.files();
            let ids: Vec<String> = files
                .iter()
                .filter(|(_, s)| s.used.elapsed() >= max_idle)
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter().filter_map(|id| files.remove(id)).collect()
        };
        for s in &stale {
            if let Some(dir) = s.path.parent() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        stale.len()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn held(store: &Store, owner: &str) -> (String, PathBuf) {
        let (id, dir) = store.new_slot().unwrap();
        let path = dir.join("penawaran.pdf.p7m");
        std::fs::write(&path, b"bid").unwrap();
        store.insert(&id, path.clone(), owner);
        (id, path)
    }

    #[test]
    fn files_unused_for_the_idle_time_are_deleted_and_used_ones_stay() {
        let work = tempfile::tempdir().unwrap();
        let store = Store::new(work.path().to_path_buf());
        let (old, old_path) = held(&store, "site-a");
        std::thread::sleep(Duration::from_millis(60));
        let (fresh, fresh_path) = held(&store, "site-a");
        assert_eq!(store.sweep(Duration::from_millis(50)), 1);
        assert!(!old_path.exists() && !old_path.parent().unwrap().exists());
        assert!(matches!(store.get(&old, "site-a"), Err(e) if e.code == ErrorCode::NotFound));
        assert!(fresh_path.exists());
        // A lookup counts as use: the fresh file survives a sweep after its idle time, if used.
        std::thread::sleep(Duration::from_millis(60));
        store.get(&fresh, "site-a").unwrap();
        assert_eq!(store.sweep(Duration::from_millis(50)), 0);
        assert!(fresh_path.exists());
        assert_eq!(store.sweep(Duration::ZERO), 1);
        assert!(!fresh_path.exists());
    }

    #[test]
    fn another_callers_lookup_does_not_keep_a_file() {
        let work = tempfile::tempdir().unwrap();
        let store = Store::new(work.path().to_path_buf());
        let (id, path) = held(&store, "site-a");
        std::thread::sleep(Duration::from_millis(60));
        assert!(store.get(&id, "site-b").is_err());
        assert_eq!(store.sweep(Duration::from_millis(50)), 1);
        assert!(!path.exists());
    }
}
