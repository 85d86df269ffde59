//! A token: one PKCS#12 key file, its objects, and whether the user is logged in.
//!
//! Login state belongs to the token, not the session (PKCS#11 v2.40 §5.5). The public objects
//! (certificates, public keys) found at login stay visible after logout, so a certificate can be
//! listed before login even when the file encrypts its certificate bags (as OpenSSL does).

use crate::error::{Error, Result};
use crate::keys::{PrivateKey, PublicKey};
use crate::object::{Object, Visibility};
use crate::pkcs12::{self, CertEntry, Contents, MAX_FILE_SIZE};
use crate::store::{self, Mode};
use cryptoki_sys::CK_OBJECT_HANDLE;
use secrecy::SecretString;
use sha2::Digest;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What identifies one version of a file: replaced or rewritten files are new tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FileIdentity {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl FileIdentity {
    pub fn of(path: &Path) -> Option<Self> {
        let m = std::fs::metadata(path).ok()?;
        m.is_file().then_some(FileIdentity {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
        })
    }
}

/// Hands out object handles, never reusing one while the module is initialised.
#[derive(Debug)]
pub struct HandleCounter(CK_OBJECT_HANDLE);

impl Default for HandleCounter {
    fn default() -> Self {
        HandleCounter(1)
    }
}

impl HandleCounter {
    pub fn allocate(&mut self) -> CK_OBJECT_HANDLE {
        let h = self.0;
        self.0 += 1;
        h
    }
}

/// One key file presented as a token.
#[derive(Debug)]
pub struct Token {
    pub path: PathBuf,
    /// Distinguishes this load of the file from earlier ones: sessions opened on an earlier
    /// load see `CKR_DEVICE_REMOVED`.
    pub generation: u64,
    pub identity: FileIdentity,
    data: Vec<u8>,
    pub label: String,
    pub serial: String,
    pub logged_in: bool,
    /// The security officer of a blank slot (see [`crate::module`], enrolment).
    pub so_logged_in: bool,
    pub objects: BTreeMap<CK_OBJECT_HANDLE, Object>,
    /// While the user is logged in: the passphrase and the decrypted file, so the file can be
    /// rewritten with a new key, certificate or passphrase. Wiped at logout.
    unlocked: Option<Unlocked>,
}

#[derive(Debug)]
struct Unlocked {
    pin: SecretString,
    contents: Contents,
}

/// Label of a blank slot's token before `C_InitToken` names the new file.
pub const BLANK_LABEL: &str = "new key file";

/// Token label: the file name without extension, at most 32 bytes (cut at a char boundary).
pub fn label_for(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    truncate(&stem, 32)
}

/// Serial number: the first 8 bytes of SHA-256 of the path, as 16 hex digits.
pub fn serial_for(path: &Path) -> String {
    let d = sha2::Sha256::digest(path.as_os_str().as_encoded_bytes());
    d[..8].iter().map(|b| format!("{b:02X}")).collect()
}

/// `s` cut to at most `max` bytes without splitting a character.
pub fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

impl Token {
    /// Reads and inspects `path`; `None` (with a log line) if it is not a usable key file.
    pub fn load(path: &Path, generation: u64, handles: &mut HandleCounter) -> Option<Token> {
        let identity = FileIdentity::of(path)?;
        if identity.len > MAX_FILE_SIZE {
            tracing::warn!(path = %path.display(), "file too large to be a key file");
            return None;
        }
        let data = std::fs::read(path).ok()?;
        let inspection = match pkcs12::inspect(&data) {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "not a usable PKCS#12 file");
                return None;
            }
        };
        let label = label_for(path);
        let mut token = Token {
            path: path.to_path_buf(),
            generation,
            identity,
            data,
            serial: serial_for(path),
            label,
            logged_in: false,
            so_logged_in: false,
            objects: BTreeMap::new(),
            unlocked: None,
        };
        let public = public_objects(&[], &inspection.public_certs, &token.label);
        token.install(Visibility::Public, public, handles);
        Some(token)
    }

    /// The placeholder token of a blank slot: a folder where a new key file can be made.
    pub fn blank(folder: &Path, generation: u64) -> Token {
        Token {
            path: folder.to_path_buf(),
            generation,
            identity: FileIdentity::default(),
            data: Vec::new(),
            label: BLANK_LABEL.to_owned(),
            serial: serial_for(folder),
            logged_in: false,
            so_logged_in: false,
            objects: BTreeMap::new(),
            unlocked: None,
        }
    }

    /// Decrypts the file with `pin` and shows its private keys.
    #[tracing::instrument(skip_all)]
    pub fn login(&mut self, pin: &SecretString, handles: &mut HandleCounter) -> Result<()> {
        if self.logged_in {
            return Err(Error::UserAlreadyLoggedIn);
        }
        let contents = pkcs12::open(&self.data, pin)?;
        self.unlock(contents, pin.clone(), handles)
    }

    /// Shows the objects of decrypted `contents`, keeping the handles of unchanged objects.
    fn unlock(
        &mut self,
        contents: Contents,
        pin: SecretString,
        handles: &mut HandleCounter,
    ) -> Result<()> {
        let mut keys = Vec::new();
        for entry in &contents.keys {
            match PrivateKey::from_pkcs8(&entry.pkcs8_der)? {
                Some(k) => keys.push(KeyInfo {
                    key: Arc::new(k),
                    local_key_id: entry.local_key_id.clone(),
                    friendly_name: entry.friendly_name.clone(),
                }),
                None => {
                    tracing::warn!(path = %self.path.display(), "skipping a key of an unsupported algorithm")
                }
            }
        }
        let public = public_objects(&keys, &contents.certs, &self.label);
        self.install(Visibility::Public, public, handles);
        let mut private = Vec::new();
        for k in &keys {
            let public = k.key.public();
            let id = key_id(k, &public);
            let cert = matching_cert(&public, &contents.certs);
            let label = k
                .friendly_name
                .clone()
                .or_else(|| cert.and_then(|c| c.friendly_name.clone()))
                .unwrap_or_else(|| self.label.clone());
            let subject = cert.and_then(|c| Object::certificate_subject(&c.der));
            private.push(Object::private_key(
                k.key.clone(),
                &id,
                &label,
                subject.as_deref(),
            ));
        }
        self.install(Visibility::Private, private, handles);
        self.logged_in = true;
        self.unlocked = Some(Unlocked { pin, contents });
        Ok(())
    }

    /// Forgets the private keys and the passphrase (their memory is wiped as the last reference
    /// drops).
    pub fn logout(&mut self) {
        self.objects
            .retain(|_, o| o.visibility != Visibility::Private);
        self.logged_in = false;
        self.so_logged_in = false;
        self.unlocked = None;
    }

    /// The decrypted file and its passphrase (the user must be logged in).
    pub fn unlocked(&self) -> Result<(&Contents, &SecretString)> {
        self.unlocked
            .as_ref()
            .map(|u| (&u.contents, &u.pin))
            .ok_or(Error::UserNotLoggedIn)
    }

    /// The file's bytes as last read or written.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Writes `contents` under `pin` to the token's file atomically and shows the result; with
    /// `Mode::Create` the file must not exist yet. The token stays the same token (same
    /// generation, sessions go on), and stays logged in with `pin` if it was.
    #[tracing::instrument(skip_all)]
    pub fn rewrite(
        &mut self,
        contents: Contents,
        pin: &SecretString,
        mode: Mode,
        handles: &mut HandleCounter,
    ) -> Result<()> {
        let bytes =
            pkcs12::build(&contents, pin, pkcs12::write::DEFAULT_ITERATIONS).map_err(|e| {
                tracing::warn!(error = %e, "building the key file failed");
                Error::GeneralError
            })?;
        store::write_atomically(&self.path, &bytes, mode)?;
        self.identity = FileIdentity::of(&self.path).ok_or(Error::WriteFailed)?;
        self.data = bytes;
        if self.logged_in {
            self.unlock(contents, pin.clone(), handles)
        } else {
            let public = pkcs12::inspect(&self.data)?.public_certs;
            let objects = public_objects(&[], &public, &self.label);
            self.install(Visibility::Public, objects, handles);
            Ok(())
        }
    }

    /// Replaces the token objects of one visibility, keeping the handles of those that did not
    /// change (a client's handles stay valid across a rewrite of the file).
    fn install(&mut self, visibility: Visibility, new: Vec<Object>, handles: &mut HandleCounter) {
        let old: Vec<CK_OBJECT_HANDLE> = self
            .objects
            .iter()
            .filter(|(_, o)| o.visibility == visibility)
            .map(|(h, _)| *h)
            .collect();
        let mut kept = Vec::new();
        for obj in new {
            let existing = old
                .iter()
                .find(|h| self.objects.get(h).is_some_and(|o| o.same_as(&obj)));
            match existing {
                Some(h) => kept.push(*h),
                None => {
                    let h = handles.allocate();
                    self.objects.insert(h, obj);
                    kept.push(h);
                }
            }
        }
        for h in old {
            if !kept.contains(&h) {
                self.objects.remove(&h);
            }
        }
    }
}

/// A decrypted key with its bag attributes.
struct KeyInfo {
    key: Arc<PrivateKey>,
    local_key_id: Option<Vec<u8>>,
    friendly_name: Option<String>,
}

fn key_id(k: &KeyInfo, public: &PublicKey) -> Vec<u8> {
    k.local_key_id.clone().unwrap_or_else(|| public.id())
}

fn matching_cert<'a>(public: &PublicKey, certs: &'a [CertEntry]) -> Option<&'a CertEntry> {
    certs
        .iter()
        .find(|c| Object::certificate_public_key(&c.der).as_ref() == Some(public))
}

/// Certificates and public keys. With keys (after login) each key gets a public-key object and
/// the certificate of a key carries the key's `CKA_ID`; without (before login) certificates that
/// carry a localKeyId are taken to belong to a key.
fn public_objects(keys: &[KeyInfo], certs: &[CertEntry], token_label: &str) -> Vec<Object> {
    let mut out = Vec::new();
    for cert in certs {
        let cert_key = Object::certificate_public_key(&cert.der);
        let owner = keys
            .iter()
            .find(|k| cert_key.as_ref() == Some(&k.key.public()));
        let id = match (owner, &cert_key) {
            (Some(k), Some(p)) => key_id(k, p),
            _ => cert
                .local_key_id
                .clone()
                .or_else(|| cert_key.as_ref().map(PublicKey::id))
                .unwrap_or_default(),
        };
        let label = cert
            .friendly_name
            .clone()
            .or_else(|| owner.and_then(|k| k.friendly_name.clone()))
            .unwrap_or_else(|| token_label.to_owned());
        if let Some(obj) = Object::certificate(&cert.der, &id, &label) {
            out.push(obj);
        }
        if keys.is_empty()
            && cert.local_key_id.is_some()
            && let Some(p) = &cert_key
        {
            let subject = Object::certificate_subject(&cert.der);
            out.push(Object::public_key(p, &id, &label, subject.as_deref()));
        }
    }
    for k in keys {
        let public = k.key.public();
        let cert = matching_cert(&public, certs);
        let label = k
            .friendly_name
            .clone()
            .or_else(|| cert.and_then(|c| c.friendly_name.clone()))
            .unwrap_or_else(|| token_label.to_owned());
        let subject = cert.and_then(|c| Object::certificate_subject(&c.der));
        out.push(Object::public_key(
            &public,
            &key_id(k, &public),
            &label,
            subject.as_deref(),
        ));
    }
    out
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn label_is_the_file_stem_cut_to_32_bytes_on_a_char_boundary() {
        assert_eq!(
            label_for(Path::new("/media/x/kunci-budi.p12")),
            "kunci-budi"
        );
        let long = format!("/m/{}é.p12", "a".repeat(31));
        assert_eq!(label_for(Path::new(&long)), "a".repeat(31));
    }

    #[test]
    fn serial_is_16_hex_digits_and_differs_by_path() {
        let a = serial_for(Path::new("/a/k.p12"));
        let b = serial_for(Path::new("/b/k.p12"));
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
