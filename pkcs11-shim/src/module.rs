//! The module's state between `C_Initialize` and `C_Finalize`: slots (one per key file path, with
//! stable IDs), tokens, sessions — and the safe form of every PKCS#11 function the FFI layer
//! exposes. One mutex guards it; the expensive crypto runs after the lock is released.

use crate::discovery::{self, SearchConfig};
use crate::error::{Error, Result};
use crate::mechanism::{Ecdh1Params, Mechanism};
use crate::object::{AttrLookup, Object, Visibility};
use crate::session::{DecryptOp, FindState, Session, SignOp};
use crate::token::{FileIdentity, HandleCounter, Token};
use cryptoki_sys::*;
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use zeroize::Zeroizing;

mod enrol;
pub use enrol::{KeyKind, KeyPairSpec};

static MODULE: Mutex<Option<Module>> = Mutex::new(None);

fn lock() -> MutexGuard<'static, Option<Module>> {
    // A panic while holding the lock was caught at the FFI boundary; the state it left is still
    // memory-safe, and refusing every later call would be worse for the host program.
    MODULE.lock().unwrap_or_else(|p| p.into_inner())
}

/// `C_Initialize`: reads the search configuration and scans for key files.
pub fn initialize() -> Result<()> {
    let mut guard = lock();
    if guard.is_some() {
        return Err(Error::AlreadyInitialized);
    }
    let mut m = Module::new(SearchConfig::from_environment());
    m.rescan();
    *guard = Some(m);
    Ok(())
}

/// `C_Finalize`: drops every session, token and key (key memory is wiped on drop).
pub fn finalize() -> Result<()> {
    let mut guard = lock();
    match guard.take() {
        Some(m) => {
            drop(m);
            Ok(())
        }
        None => Err(Error::NotInitialized),
    }
}

/// Runs `f` on the initialised module.
pub fn with<T>(f: impl FnOnce(&mut Module) -> Result<T>) -> Result<T> {
    let mut guard = lock();
    let m = guard.as_mut().ok_or(Error::NotInitialized)?;
    f(m)
}

/// Outcome of a call that fills a caller buffer (v2.40 §5.2 "returning output").
#[derive(Debug, PartialEq, Eq)]
pub enum Output {
    /// The caller passed no buffer: this many bytes are needed (an upper bound for decryption).
    Size(usize),
    /// The caller's buffer holds fewer bytes than this.
    TooSmall(usize),
    /// The result.
    Data(Zeroizing<Vec<u8>>),
}

/// `CK_SLOT_INFO` contents.
#[derive(Debug, Clone)]
pub struct SlotInfo {
    pub description: String,
    pub token_present: bool,
}

/// `CK_TOKEN_INFO` contents.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub label: String,
    pub serial: String,
    pub flags: CK_FLAGS,
    pub min_pin_len: usize,
    pub session_count: usize,
    pub rw_session_count: usize,
}

/// Shortest passphrase accepted for a new or changed key file (existing files may have any).
pub const MIN_NEW_PIN_LEN: usize = 8;

/// `CK_SESSION_INFO` contents.
#[derive(Debug, Clone, Copy)]
pub struct SessionInfo {
    pub slot: CK_SLOT_ID,
    pub state: CK_STATE,
    pub flags: CK_FLAGS,
}

/// One requested attribute in `C_GetAttributeValue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrResult {
    Value(Zeroizing<Vec<u8>>),
    Sensitive,
    Invalid,
}

#[derive(Debug)]
struct Slot {
    /// The key file, or for a blank slot the folder a new key file would go to.
    path: PathBuf,
    token: Option<Token>,
    /// The identity of a file that failed to load, so it is not re-read until it changes.
    rejected: Option<FileIdentity>,
    /// A blank slot: an empty place in a configured folder where a key file can be enrolled.
    blank: Option<Blank>,
}

/// What `C_InitToken` told a blank slot: the new file's name and the SO PIN guarding
/// `C_InitPIN`. Kept in memory only, until `C_InitPIN` writes the file.
#[derive(Debug, Default)]
struct Blank {
    label: Option<String>,
    so_pin: Option<SecretString>,
}

/// The initialised module.
#[derive(Debug)]
pub struct Module {
    config: SearchConfig,
    slots: BTreeMap<CK_SLOT_ID, Slot>,
    slot_by_path: BTreeMap<PathBuf, CK_SLOT_ID>,
    next_slot: CK_SLOT_ID,
    sessions: BTreeMap<CK_SESSION_HANDLE, Session>,
    next_session: CK_SESSION_HANDLE,
    handles: HandleCounter,
    next_generation: u64,
}

impl Module {
    pub fn new(config: SearchConfig) -> Self {
        Module {
            config,
            slots: BTreeMap::new(),
            slot_by_path: BTreeMap::new(),
            next_slot: 1,
            sessions: BTreeMap::new(),
            next_session: 1,
            handles: HandleCounter::default(),
            next_generation: 1,
        }
    }

    /// Follows files appearing and disappearing. A slot keeps its ID for the module's lifetime.
    pub fn rescan(&mut self) {
        let found = discovery::scan(&self.config);
        for path in &found {
            if !self.slot_by_path.contains_key(path) {
                let id = self.next_slot;
                self.next_slot += 1;
                self.slot_by_path.insert(path.clone(), id);
                self.slots.insert(
                    id,
                    Slot {
                        path: path.clone(),
                        token: None,
                        rejected: None,
                        blank: None,
                    },
                );
            }
        }
        // One blank slot per configured folder that can be written (enrolment).
        for folder in &self.config.folders {
            let writable =
                std::fs::metadata(folder).is_ok_and(|m| m.is_dir() && !m.permissions().readonly());
            if writable && !self.slot_by_path.contains_key(folder) {
                let id = self.next_slot;
                self.next_slot += 1;
                self.slot_by_path.insert(folder.clone(), id);
                self.slots.insert(
                    id,
                    Slot {
                        path: folder.clone(),
                        token: None,
                        rejected: None,
                        blank: Some(Blank::default()),
                    },
                );
            }
        }
        let ids: Vec<CK_SLOT_ID> = self.slots.keys().copied().collect();
        for id in ids {
            self.refresh_slot(id);
        }
    }

    /// Re-checks one slot's file: gone → no token; changed → a new token (old sessions see
    /// `CKR_DEVICE_REMOVED`); unchanged → nothing.
    fn refresh_slot(&mut self, id: CK_SLOT_ID) {
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        if slot.blank.is_some() {
            if !slot.path.is_dir() {
                slot.token = None;
            } else if slot.token.is_none() {
                slot.token = Some(Token::blank(&slot.path, self.next_generation));
                self.next_generation += 1;
            }
            return;
        }
        let identity = FileIdentity::of(&slot.path);
        let current = slot.token.as_ref().map(|t| t.identity);
        if identity.is_some() && identity == current {
            return;
        }
        if let Some(old) = slot.token.take() {
            tracing::info!(path = %old.path.display(), "key file removed or changed");
        }
        let Some(identity) = identity else {
            slot.rejected = None;
            return;
        };
        if slot.rejected == Some(identity) {
            return;
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        slot.token = Token::load(&slot.path, generation, &mut self.handles);
        slot.rejected = if slot.token.is_none() {
            Some(identity)
        } else {
            None
        };
    }

    fn slot(&self, id: CK_SLOT_ID) -> Result<&Slot> {
        self.slots.get(&id).ok_or(Error::SlotIdInvalid)
    }

    pub fn slot_list(&mut self, token_present: bool) -> Vec<CK_SLOT_ID> {
        self.rescan();
        self.slots
            .iter()
            .filter(|(_, s)| !token_present || s.token.is_some())
            .map(|(id, _)| *id)
            .collect()
    }

    pub fn slot_info(&mut self, id: CK_SLOT_ID) -> Result<SlotInfo> {
        self.slot(id)?;
        self.refresh_slot(id);
        let slot = self.slot(id)?;
        let what = if slot.blank.is_some() {
            "Segel new key file in"
        } else {
            "Segel key file"
        };
        Ok(SlotInfo {
            description: format!("{what} {}", slot.path.display()),
            token_present: slot.token.is_some(),
        })
    }

    pub fn token_info(&mut self, id: CK_SLOT_ID) -> Result<TokenInfo> {
        self.slot(id)?;
        self.refresh_slot(id);
        let slot = self.slot(id)?;
        let token = slot.token.as_ref().ok_or(Error::TokenNotPresent)?;
        let (flags, min_pin_len) = match &slot.blank {
            // Blank: initialised once C_InitToken named the file; no user PIN until C_InitPIN.
            Some(b) => (
                CKF_RNG
                    | CKF_LOGIN_REQUIRED
                    | if b.label.is_some() {
                        CKF_TOKEN_INITIALIZED
                    } else {
                        0
                    },
                MIN_NEW_PIN_LEN,
            ),
            None => (
                CKF_RNG | CKF_LOGIN_REQUIRED | CKF_USER_PIN_INITIALIZED | CKF_TOKEN_INITIALIZED,
                0,
            ),
        };
        let sessions = self
            .sessions
            .values()
            .filter(|s| s.slot == id && s.generation == token.generation);
        let (mut all, mut rw) = (0, 0);
        for s in sessions {
            all += 1;
            rw += usize::from(s.rw);
        }
        Ok(TokenInfo {
            label: token.label.clone(),
            serial: token.serial.clone(),
            flags,
            min_pin_len,
            session_count: all,
            rw_session_count: rw,
        })
    }

    /// The slot must exist and hold a token (for the mechanism queries).
    pub fn check_token_present(&mut self, id: CK_SLOT_ID) -> Result<()> {
        self.slot(id)?;
        self.refresh_slot(id);
        self.slot(id)?
            .token
            .as_ref()
            .map(|_| ())
            .ok_or(Error::TokenNotPresent)
    }

    pub fn open_session(&mut self, slot: CK_SLOT_ID, flags: CK_FLAGS) -> Result<CK_SESSION_HANDLE> {
        self.slot(slot)?;
        if flags & CKF_SERIAL_SESSION == 0 {
            return Err(Error::SessionParallelNotSupported);
        }
        self.refresh_slot(slot);
        let generation = self
            .slot(slot)?
            .token
            .as_ref()
            .ok_or(Error::TokenNotPresent)?
            .generation;
        let h = self.next_session;
        self.next_session += 1;
        self.sessions.insert(
            h,
            Session::new(slot, generation, flags & CKF_RW_SESSION != 0),
        );
        Ok(h)
    }

    /// Removes a session and its objects; the last session on a token logs it out (v2.40 §5.6).
    pub fn close_session(&mut self, h: CK_SESSION_HANDLE) -> Result<()> {
        let session = self
            .sessions
            .remove(&h)
            .ok_or(Error::SessionHandleInvalid)?;
        let remaining = self.sessions.values().any(|s| s.slot == session.slot);
        if let Some(token) = self
            .slots
            .get_mut(&session.slot)
            .and_then(|s| s.token.as_mut())
        {
            token
                .objects
                .retain(|_, o| o.visibility != Visibility::Session(h));
            if !remaining {
                token.logout();
            }
        }
        Ok(())
    }

    pub fn close_all_sessions(&mut self, slot: CK_SLOT_ID) -> Result<()> {
        self.slot(slot)?;
        let handles: Vec<_> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.slot == slot)
            .map(|(h, _)| *h)
            .collect();
        for h in handles {
            self.close_session(h)?;
        }
        // Also covers a token logged in with no session left (not reachable, but cheap).
        if let Some(t) = self.slots.get_mut(&slot).and_then(|s| s.token.as_mut()) {
            t.logout();
        }
        Ok(())
    }

    /// The session and its token, after checking the file is still the one it was opened on.
    fn session_token(&mut self, h: CK_SESSION_HANDLE) -> Result<(&mut Session, &mut Token)> {
        let slot_id = self
            .sessions
            .get(&h)
            .ok_or(Error::SessionHandleInvalid)?
            .slot;
        self.refresh_slot(slot_id);
        let session = self
            .sessions
            .get_mut(&h)
            .ok_or(Error::SessionHandleInvalid)?;
        let token = self
            .slots
            .get_mut(&slot_id)
            .and_then(|s| s.token.as_mut())
            .filter(|t| t.generation == session.generation)
            .ok_or(Error::DeviceRemoved)?;
        Ok((session, token))
    }

    pub fn session_info(&mut self, h: CK_SESSION_HANDLE) -> Result<SessionInfo> {
        let (session, token) = self.session_token(h)?;
        let state = if token.so_logged_in {
            CKS_RW_SO_FUNCTIONS
        } else {
            session.state(token.logged_in)
        };
        Ok(SessionInfo {
            slot: session.slot,
            state,
            flags: CKF_SERIAL_SESSION | if session.rw { CKF_RW_SESSION } else { 0 },
        })
    }

    #[tracing::instrument(skip_all)]
    pub fn login(
        &mut self,
        h: CK_SESSION_HANDLE,
        user: CK_USER_TYPE,
        pin: &SecretString,
    ) -> Result<()> {
        let (session, token) = self.session_token(h)?;
        let slot_id = session.slot;
        if token.so_logged_in {
            return Err(if user == CKU_SO {
                Error::UserAlreadyLoggedIn
            } else {
                Error::UserAnotherAlreadyLoggedIn
            });
        }
        let blank = self.slots.get(&slot_id).and_then(|s| s.blank.as_ref());
        if blank.is_some() {
            return self.login_blank(slot_id, user, pin);
        }
        let (_, token) = self.session_token(h)?;
        match user {
            CKU_USER => {}
            // The key file has one passphrase; there is no security officer.
            CKU_SO => return Err(Error::UserTypeInvalid),
            // No key here has CKA_ALWAYS_AUTHENTICATE (v2.40 §5.5, C_Login).
            CKU_CONTEXT_SPECIFIC => return Err(Error::OperationNotInitialized),
            _ => return Err(Error::UserTypeInvalid),
        }
        if token.logged_in {
            return Err(Error::UserAlreadyLoggedIn);
        }
        let slot_id = self
            .sessions
            .get(&h)
            .ok_or(Error::SessionHandleInvalid)?
            .slot;
        let Module { slots, handles, .. } = self;
        let token = slots
            .get_mut(&slot_id)
            .and_then(|s| s.token.as_mut())
            .ok_or(Error::DeviceRemoved)?;
        token.login(pin, handles)
    }

    pub fn logout(&mut self, h: CK_SESSION_HANDLE) -> Result<()> {
        let (session, token) = self.session_token(h)?;
        if token.so_logged_in {
            token.so_logged_in = false;
            return Ok(());
        }
        if !token.logged_in {
            return Err(Error::UserNotLoggedIn);
        }
        token.logout();
        let slot = session.slot;
        for s in self.sessions.values_mut().filter(|s| s.slot == slot) {
            s.end_key_operations();
        }
        Ok(())
    }

    pub fn find_init(
        &mut self,
        h: CK_SESSION_HANDLE,
        template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    ) -> Result<()> {
        let (session, token) = self.session_token(h)?;
        if session.find.is_some() {
            return Err(Error::OperationActive);
        }
        let handles = token
            .objects
            .iter()
            .filter(|(_, o)| o.matches(template))
            .map(|(h, _)| *h)
            .collect();
        session.find = Some(FindState { handles, pos: 0 });
        Ok(())
    }

    pub fn find_next(&mut self, h: CK_SESSION_HANDLE, max: usize) -> Result<Vec<CK_OBJECT_HANDLE>> {
        let (session, _) = self.session_token(h)?;
        let find = session
            .find
            .as_mut()
            .ok_or(Error::OperationNotInitialized)?;
        Ok(find.next_batch(max))
    }

    pub fn find_final(&mut self, h: CK_SESSION_HANDLE) -> Result<()> {
        let (session, _) = self.session_token(h)?;
        session
            .find
            .take()
            .map(|_| ())
            .ok_or(Error::OperationNotInitialized)
    }

    pub fn attributes(
        &mut self,
        h: CK_SESSION_HANDLE,
        object: CK_OBJECT_HANDLE,
        types: &[CK_ATTRIBUTE_TYPE],
    ) -> Result<Vec<AttrResult>> {
        let (_, token) = self.session_token(h)?;
        let obj = token
            .objects
            .get(&object)
            .ok_or(Error::ObjectHandleInvalid)?;
        Ok(types
            .iter()
            .map(|t| match obj.attr(*t) {
                AttrLookup::Value(v) => AttrResult::Value(Zeroizing::new(v.to_vec())),
                AttrLookup::Sensitive => AttrResult::Sensitive,
                AttrLookup::Invalid => AttrResult::Invalid,
            })
            .collect())
    }

    pub fn destroy_object(&mut self, h: CK_SESSION_HANDLE, object: CK_OBJECT_HANDLE) -> Result<()> {
        let (_, token) = self.session_token(h)?;
        let obj = token
            .objects
            .get(&object)
            .ok_or(Error::ObjectHandleInvalid)?;
        if !matches!(obj.visibility, Visibility::Session(_)) {
            // Token objects live in the key file, which this module never rewrites here.
            return Err(Error::FunctionNotSupported);
        }
        token.objects.remove(&object);
        Ok(())
    }

    /// The private key behind `key` if it may be used for `usage` (`CKA_SIGN`, `CKA_DECRYPT`,
    /// `CKA_DERIVE`).
    fn usable_key(
        token: &Token,
        key: CK_OBJECT_HANDLE,
        usage: CK_ATTRIBUTE_TYPE,
    ) -> Result<std::sync::Arc<crate::keys::PrivateKey>> {
        let obj = token.objects.get(&key).ok_or(Error::KeyHandleInvalid)?;
        let k = match (&obj.key, obj.class()) {
            (Some(k), Some(CKO_PRIVATE_KEY)) => k.clone(),
            _ => return Err(Error::KeyFunctionNotPermitted),
        };
        if !obj.flag(usage) {
            return Err(Error::KeyFunctionNotPermitted);
        }
        Ok(k)
    }

    pub fn sign_init(
        &mut self,
        h: CK_SESSION_HANDLE,
        mech: Mechanism,
        key: CK_OBJECT_HANDLE,
    ) -> Result<()> {
        let (session, token) = self.session_token(h)?;
        if session.sign.is_some() {
            return Err(Error::OperationActive);
        }
        let mech = mech.for_signing()?;
        let k = Self::usable_key(token, key, CKA_SIGN)?;
        k.signature_len(&mech)?;
        session.sign = Some(SignOp::new(k, mech));
        Ok(())
    }

    pub fn sign_update(&mut self, h: CK_SESSION_HANDLE, data: &[u8]) -> Result<()> {
        let (session, _) = self.session_token(h)?;
        let op = session
            .sign
            .as_mut()
            .ok_or(Error::OperationNotInitialized)?;
        op.multipart = true;
        let r = op.update(data);
        if r.is_err() {
            session.sign = None;
        }
        r
    }

    /// The first half of `C_Sign` / `C_SignFinal`: answers size queries under the lock, or takes
    /// the operation out of the session so the signature is computed without the lock.
    pub fn sign_take(
        &mut self,
        h: CK_SESSION_HANDLE,
        single: Option<&[u8]>,
        capacity: Option<usize>,
    ) -> Result<std::result::Result<SignOp, Output>> {
        let (session, _) = self.session_token(h)?;
        let op = session
            .sign
            .as_ref()
            .ok_or(Error::OperationNotInitialized)?;
        if single.is_some() && op.multipart {
            return Err(Error::OperationActive);
        }
        let len = op.key.signature_len(&op.mech)?;
        match capacity {
            None => return Ok(Err(Output::Size(len))),
            Some(c) if c < len => return Ok(Err(Output::TooSmall(len))),
            Some(_) => {}
        }
        let mut op = session.sign.take().ok_or(Error::OperationNotInitialized)?;
        if let Some(data) = single {
            op.update(data)?;
        }
        Ok(Ok(op))
    }

    pub fn decrypt_init(
        &mut self,
        h: CK_SESSION_HANDLE,
        mech: Mechanism,
        key: CK_OBJECT_HANDLE,
    ) -> Result<()> {
        let (session, token) = self.session_token(h)?;
        if session.decrypt.is_some() {
            return Err(Error::OperationActive);
        }
        let mech = mech.for_decryption()?;
        let k = Self::usable_key(token, key, CKA_DECRYPT)?;
        k.decrypt_len()?;
        session.decrypt = Some(DecryptOp { key: k, mech });
        Ok(())
    }

    /// The first half of `C_Decrypt`, like [`Module::sign_take`].
    pub fn decrypt_take(
        &mut self,
        h: CK_SESSION_HANDLE,
        capacity: Option<usize>,
    ) -> Result<std::result::Result<DecryptOp, Output>> {
        let (session, _) = self.session_token(h)?;
        let op = session
            .decrypt
            .as_ref()
            .ok_or(Error::OperationNotInitialized)?;
        if capacity.is_none() {
            return Ok(Err(Output::Size(op.key.decrypt_len()?)));
        }
        Ok(Ok(session
            .decrypt
            .take()
            .ok_or(Error::OperationNotInitialized)?))
    }

    /// Puts back a decryption whose output did not fit the caller's buffer (v2.40 §5.2: a
    /// `CKR_BUFFER_TOO_SMALL` does not end the operation).
    pub fn decrypt_restore(&mut self, h: CK_SESSION_HANDLE, op: DecryptOp) {
        if let Some(s) = self.sessions.get_mut(&h)
            && s.decrypt.is_none()
        {
            s.decrypt = Some(op);
        }
    }

    /// `C_DeriveKey` with `CKM_ECDH1_DERIVE`: a session secret key object.
    pub fn derive(
        &mut self,
        h: CK_SESSION_HANDLE,
        params: &Ecdh1Params,
        base: CK_OBJECT_HANDLE,
        template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    ) -> Result<CK_OBJECT_HANDLE> {
        let (_, token) = self.session_token(h)?;
        let k = Self::usable_key(token, base, CKA_DERIVE)?;
        let t = DeriveTemplate::parse(template)?;
        let mut secret = k.ecdh(&params.public_data)?;
        if let Some(len) = t.value_len {
            if len == 0 || len > secret.len() {
                return Err(Error::TemplateInconsistent);
            }
            secret.truncate(len);
        }
        let obj = Object::derived_secret(
            h,
            secret,
            t.key_type,
            t.sensitive,
            t.extractable,
            &t.label,
            &t.id,
        );
        let handle = self.handles.allocate();
        let (_, token) = self.session_token(h)?;
        token.objects.insert(handle, obj);
        Ok(handle)
    }

    pub fn check_session(&mut self, h: CK_SESSION_HANDLE) -> Result<()> {
        self.session_token(h).map(|_| ())
    }
}

/// The attributes `C_DeriveKey` accepts for the new secret.
#[derive(Debug)]
struct DeriveTemplate {
    key_type: CK_KEY_TYPE,
    value_len: Option<usize>,
    sensitive: bool,
    extractable: bool,
    label: Vec<u8>,
    id: Vec<u8>,
}

impl DeriveTemplate {
    fn parse(template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)]) -> Result<Self> {
        let mut t = DeriveTemplate {
            key_type: CKK_GENERIC_SECRET,
            value_len: None,
            sensitive: false,
            extractable: true,
            label: Vec::new(),
            id: Vec::new(),
        };
        let ulong = |v: &[u8]| -> Result<CK_ULONG> {
            Ok(CK_ULONG::from_ne_bytes(
                v.try_into().map_err(|_| Error::AttributeValueInvalid)?,
            ))
        };
        let flag = |v: &[u8]| -> Result<bool> {
            match v {
                [b] => Ok(*b != CK_FALSE),
                _ => Err(Error::AttributeValueInvalid),
            }
        };
        for (ty, v) in template {
            match *ty {
                CKA_CLASS if ulong(v)? != CKO_SECRET_KEY => {
                    return Err(Error::TemplateInconsistent);
                }
                CKA_CLASS => {}
                CKA_KEY_TYPE => {
                    t.key_type = match ulong(v)? {
                        k @ (CKK_GENERIC_SECRET | CKK_AES) => k,
                        _ => return Err(Error::TemplateInconsistent),
                    }
                }
                CKA_VALUE_LEN => {
                    t.value_len =
                        Some(usize::try_from(ulong(v)?).map_err(|_| Error::AttributeValueInvalid)?)
                }
                // A derived secret can only be a session object here.
                CKA_TOKEN if flag(v)? => return Err(Error::AttributeValueInvalid),
                CKA_SENSITIVE => t.sensitive = flag(v)?,
                CKA_EXTRACTABLE => t.extractable = flag(v)?,
                CKA_LABEL => t.label = v.clone(),
                CKA_ID => t.id = v.clone(),
                // Usage flags and CKA_PRIVATE etc. are accepted and ignored.
                _ => {}
            }
        }
        Ok(t)
    }
}
