//! The token service: every loaded module, every token, each served by its own workers.

mod admin;
mod modules;
pub use admin::{GeneratedKey, ImportOutcome, KeyPurpose, KeySpec, TokenAdmin};

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use cryptoki::mechanism::MechanismType;
use cryptoki::object::ObjectHandle;
use cryptoki::session::{Session, SessionState as CkSessionState, UserType};
use cryptoki::slot::Slot;
use zeroize::Zeroizing;

use super::error::TokenError;
use super::inventory::{self, CertificateEntry, TokenDescription};
use super::module::{self, LoadedModule, ModuleSpec};
use super::ops::{self, DecryptPadding, HashAlg, SignScheme};
use super::unpad::ImplicitRejectionKey;
use super::worker::{Reply, WorkerPool};
use crate::certinfo::{CertInfo, PublicKey, normalise_fingerprint};
use crate::pin::PinSource;

/// Which token, within this service: module index and slot.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TokenRef {
    module: usize,
    slot: u64,
}

/// How a certificate is chosen on the command line or in an API request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertSelector {
    /// SHA-256 fingerprint of the certificate (hex, any case, colons optional).
    Fingerprint(String),
    /// The certificate object's CKA_LABEL.
    Label(String),
}

impl std::str::FromStr for CertSelector {
    type Err = TokenError;
    fn from_str(text: &str) -> Result<Self, TokenError> {
        if let Some(label) = text.strip_prefix("label:") {
            return Ok(CertSelector::Label(label.to_owned()));
        }
        let fp = normalise_fingerprint(text);
        if fp.len() == 64 && fp.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(CertSelector::Fingerprint(fp));
        }
        Err(TokenError::BadRequest(format!(
            "{text:?} is not a certificate selector: give the SHA-256 fingerprint (64 hex digits) or label:NAME"
        )))
    }
}

impl std::fmt::Display for CertSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CertSelector::Fingerprint(fp) => f.write_str(fp),
            CertSelector::Label(l) => write!(f, "label:{l}"),
        }
    }
}

/// A module plus what is needed to re-initialise it after the connection to it broke.
#[derive(Debug)]
struct ModuleHandle {
    loaded: LoadedModule,
    generation: AtomicU64,
    reinit: Mutex<()>,
}

impl ModuleHandle {
    /// Finalize and initialise again (PKCS#11 v2.40 §5.4), unless someone already did
    /// since `seen`. Needed where a module (e.g. p11-kit's client) cannot recover a
    /// broken connection, and for modules that only see new tokens after C_Initialize.
    fn reinitialise(&self, seen: u64) -> Result<(), TokenError> {
        let _guard = lock(&self.reinit);
        if self.generation.load(Ordering::SeqCst) != seen {
            return Ok(());
        }
        tracing::info!(module = %self.loaded.spec.path.display(), "re-initialising module");
        let _ = self.loaded.ctx.clone().finalize();
        self.loaded
            .ctx
            .initialize(module::init_args())
            .map_err(|e| TokenError::ModuleLoad {
                path: self.loaded.spec.path.clone(),
                reason: format!("C_Initialize after a failure: {e}"),
            })?;
        self.generation.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked while holding it; the data
    // (login flags, token maps) stays consistent because every update is a single store.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Login state shared by all workers of one token: PKCS#11 logins are per application
/// and token, not per session (v2.40 §2.6.7).
#[derive(Debug, Default)]
struct LoginShared {
    inner: Mutex<LoginInner>,
}

#[derive(Debug, Default)]
struct LoginInner {
    /// Module generation at which the login happened; `None` when logged out.
    logged_in_at: Option<u64>,
    /// The PIN source whose PIN was just refused: it must not be tried again.
    /// Held weakly: the allocation stays reserved while we remember it, so a later PIN source
    /// can never be mistaken for this one by reusing its address (comparing bare addresses did:
    /// a daemon request's fresh PIN was refused unsent after an earlier request's wrong one).
    refused_source: Option<std::sync::Weak<dyn PinSource>>,
    /// Logins so far: handles of private objects found in an earlier login may be void
    /// (SoftHSM drops them at C_Logout), so each worker looks its keys up again after one.
    logins: u64,
    /// Token administrations ([`TokenAdmin`](admin::TokenAdmin)) logged in now: while one is,
    /// the token is logged in but not by the workers, and a worker's C_Login would not check
    /// its PIN.
    admins: usize,
}

/// Per-token state shared by its workers and the service.
struct TokenHandle {
    description: Mutex<TokenDescription>,
    mechanisms: Vec<MechanismType>,
    pool: WorkerPool<SessionState>,
    /// Threads in `pool` (a module re-initialisation pauses every one of them).
    workers: usize,
    /// The workers' login state, which a [`TokenAdmin`] invalidates when it logs out.
    login: Arc<LoginShared>,
}

/// What each worker thread owns: one session and the key handles it has looked up.
struct SessionState {
    module: Arc<ModuleHandle>,
    slot: Slot,
    label: String,
    serial: String,
    session: Option<(Session, u64)>,
    keys: HashMap<String, ObjectHandle>,
    /// [`LoginInner::logins`] when `keys` were looked up.
    keys_login: u64,
    login: Arc<LoginShared>,
}

impl SessionState {
    /// The open session, opening (or re-opening after a failure / re-initialisation) it.
    fn session(&mut self) -> Result<&Session, TokenError> {
        let generation = self.module.generation.load(Ordering::SeqCst);
        if self.session.as_ref().is_some_and(|(_, g)| *g != generation) {
            // The module was re-initialised: the old handle is already void.
            if let Some((s, _)) = self.session.take() {
                std::mem::forget(s);
            }
            self.keys.clear();
        }
        if self.session.is_none() {
            let session = match self.open() {
                Ok(s) => s,
                Err(e) if e.is_connection_lost() => {
                    self.module.reinitialise(generation)?;
                    self.relocate_slot()?;
                    self.open()?
                }
                Err(e) => return Err(e),
            };
            let generation = self.module.generation.load(Ordering::SeqCst);
            // A fresh session shows the token's real login state. If we believed we were
            // logged in but the token says otherwise, it lost the login (reconnected,
            // re-inserted): forget ours so the next operation logs in again.
            if let Ok(info) = session.get_session_info()
                && matches!(
                    info.session_state(),
                    CkSessionState::RoPublic | CkSessionState::RwPublic
                )
            {
                lock(&self.login.inner).logged_in_at = None;
            }
            self.session = Some((session, generation));
            self.keys.clear();
        }
        match &self.session {
            Some((s, _)) => Ok(s),
            None => Err(TokenError::TokenAbsent),
        }
    }

    fn open(&self) -> Result<Session, TokenError> {
        Ok(self.module.loaded.ctx.open_ro_session(self.slot)?)
    }

    /// After re-initialisation slot IDs may change: find our token again by label+serial.
    fn relocate_slot(&mut self) -> Result<(), TokenError> {
        let ctx = &self.module.loaded.ctx;
        for slot in ctx.get_slots_with_token()? {
            if let Ok(info) = ctx.get_token_info(slot)
                && info.label().trim() == self.label
                && info.serial_number().trim() == self.serial
            {
                self.slot = slot;
                return Ok(());
            }
        }
        Err(TokenError::TokenAbsent)
    }

    /// Forget a broken session so the next job starts afresh.
    fn note_failure(&mut self, err: &TokenError) {
        if let TokenError::Pkcs11 { rv, .. } = err {
            if rv == "UserNotLoggedIn" {
                // Logged out behind our back (a token administration in this process logs out
                // to check its PIN): log in again at the next operation.
                lock(&self.login.inner).logged_in_at = None;
            }
            if rv == "UserNotLoggedIn" || rv == "ObjectHandleInvalid" || rv == "KeyHandleInvalid" {
                // Private objects' handles may die with a logout: look the keys up again.
                self.keys.clear();
            }
        }
        if err.is_connection_lost() {
            if let Some((s, _)) = self.session.take() {
                // Closing may fail on a dead connection; the handle is void either way.
                std::mem::forget(s);
            }
            self.keys.clear();
            lock(&self.login.inner).logged_in_at = None;
        }
    }

    /// Run `f` with the session, recording connection failures.
    fn run<R>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<R, TokenError>,
    ) -> Result<R, TokenError> {
        let result = f(self);
        if let Err(e) = &result {
            self.note_failure(e);
        }
        result
    }

    fn description(&self) -> Result<TokenDescription, TokenError> {
        inventory::describe(
            &self.module.loaded.ctx,
            self.slot,
            &self.module.loaded.spec.path,
        )
    }

    /// Log in once, if needed; never a second attempt with a PIN that was just refused.
    fn ensure_login(&mut self, pin: &Arc<dyn PinSource>) -> Result<(), TokenError> {
        let generation = self.module.generation.load(Ordering::SeqCst);
        self.session()?;
        let login = Arc::clone(&self.login);
        let mut state = lock(&login.inner);
        if state.logged_in_at == Some(generation) {
            self.keys_of_login(state.logins);
            return Ok(());
        }
        let desc = self.description()?;
        if !desc.flags.login_required {
            state.logged_in_at = Some(generation);
            return Ok(());
        }
        if desc.flags.pin_locked {
            return Err(TokenError::PinLocked);
        }
        if state
            .refused_source
            .as_ref()
            .is_some_and(|w| std::ptr::addr_eq(w.as_ptr(), Arc::as_ptr(pin)))
        {
            return Err(pin_incorrect(&desc));
        }
        if desc.flags.pin_final_try && !pin.allow_final_try() {
            return Err(TokenError::PinFinalTry);
        }
        let secret = pin.pin_for(&desc)?;
        let session = self.session()?;
        let result = session.login(UserType::User, secret.as_ref());
        if state.admins > 0
            && matches!(
                result,
                Err(cryptoki::error::Error::Pkcs11(
                    cryptoki::error::RvError::UserAlreadyLoggedIn,
                    _
                ))
            )
        {
            // A token administration is logged in: C_Login did not look at this PIN, and
            // logging out would break the administration. The request waits for neither.
            return Err(TokenError::Pkcs11 {
                function: "C_Login".to_owned(),
                rv: "the token is busy with an enrolment, import or PIN change; try again when it is done"
                    .to_owned(),
            });
        }
        match result {
            // Already logged in with no administration running: by this token's workers
            // (another session of theirs), which is this login.
            Ok(())
            | Err(cryptoki::error::Error::Pkcs11(
                cryptoki::error::RvError::UserAlreadyLoggedIn,
                _,
            )) => {
                state.logged_in_at = Some(generation);
                state.refused_source = None;
                state.logins += 1;
                self.keys_of_login(state.logins);
                Ok(())
            }
            Err(e) => {
                let err = TokenError::from(e);
                if let TokenError::PinIncorrect { .. } = err {
                    state.refused_source = Some(Arc::downgrade(pin));
                    let after = self.description()?;
                    if after.flags.pin_locked {
                        return Err(TokenError::PinLocked);
                    }
                    return Err(pin_incorrect(&after));
                }
                Err(err)
            }
        }
    }

    /// Forget key handles found in an earlier login than `logins`.
    fn keys_of_login(&mut self, logins: u64) {
        if self.keys_login != logins {
            self.keys.clear();
            self.keys_login = logins;
        }
    }

    /// The private key for a certificate: searched once per session, then a map lookup.
    fn key_for(&mut self, cert: &KeyRef) -> Result<ObjectHandle, TokenError> {
        if let Some(h) = self.keys.get(&cert.info.fingerprint_sha256) {
            return Ok(*h);
        }
        let keys = inventory::private_keys(self.session()?)?;
        let key = inventory::key_for_certificate(&cert.info, &cert.id, &keys)
            .ok_or_else(|| TokenError::KeyNotFound(cert.info.subject.clone()))?;
        self.keys
            .insert(cert.info.fingerprint_sha256.clone(), key.handle);
        Ok(key.handle)
    }
}

/// What a job needs to find a certificate's private key: less than a whole
/// [`CertificateEntry`], so queuing an operation copies one short CKA_ID, not five strings.
struct KeyRef {
    info: Arc<CertInfo>,
    id: Vec<u8>,
}

impl KeyRef {
    fn of(cert: &CertificateEntry) -> KeyRef {
        KeyRef {
            info: Arc::clone(&cert.info),
            id: cert.id.clone(),
        }
    }
}

fn pin_incorrect(desc: &TokenDescription) -> TokenError {
    TokenError::PinIncorrect {
        retries_left: desc.flags.pin_final_try.then_some(1),
        count_low: desc.flags.pin_count_low,
    }
}

/// Settings of the service.
#[derive(Clone, Debug, Default)]
pub struct ServiceOptions {
    /// Sessions (worker threads) per software token; hardware and removable tokens get one.
    pub sessions_per_soft_token: Option<usize>,
}

struct Inner {
    /// Loaded modules; only ever appended to (a module's index is part of its tokens' refs).
    modules: Mutex<Vec<Arc<ModuleHandle>>>,
    tokens: Mutex<HashMap<TokenRef, Arc<TokenHandle>>>,
    irk: Arc<ImplicitRejectionKey>,
    options: ServiceOptions,
}

/// Entry point of the token layer. Cheap to clone; all clones share the same workers.
#[derive(Clone)]
pub struct TokenService {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService")
            .field(
                "modules",
                &self
                    .inner
                    .modules()
                    .iter()
                    .map(|m| m.loaded.spec.path.clone())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// What a signature request asks for.
#[derive(Clone, Debug)]
pub struct SignRequest {
    pub scheme: Option<SignScheme>,
    pub hash: HashAlg,
}

impl TokenService {
    /// Load the given modules. Modules the user named must load; searched ones may be skipped.
    pub fn start(specs: &[ModuleSpec], options: ServiceOptions) -> Result<Self, TokenError> {
        let modules = module::load_all(specs)?
            .into_iter()
            .map(|loaded| {
                Arc::new(ModuleHandle {
                    loaded,
                    generation: AtomicU64::new(0),
                    reinit: Mutex::new(()),
                })
            })
            .collect();
        Ok(TokenService {
            inner: Arc::new(Inner {
                modules: Mutex::new(modules),
                tokens: Mutex::new(HashMap::new()),
                irk: Arc::new(ImplicitRejectionKey::new().map_err(|e| TokenError::Pkcs11 {
                    function: "OS random generator".to_owned(),
                    rv: e.to_string(),
                })?),
                options,
            }),
        })
    }

    /// Paths of the loaded modules.
    pub fn modules(&self) -> Vec<ModuleSpec> {
        self.inner
            .modules()
            .iter()
            .map(|m| m.loaded.spec.clone())
            .collect()
    }

    /// Rescan every module's slots and return the tokens present. Runs on a scan thread.
    pub fn tokens(&self) -> Reply<Vec<TokenDescription>> {
        let inner = Arc::clone(&self.inner);
        spawn_once("segel-scan", move || scan(&inner))
    }

    /// [`Self::tokens`] for the modules `include` accepts only (the others are not touched:
    /// the daemon polls software modules and leaves card modules to the PC/SC follower).
    pub fn tokens_where(
        &self,
        include: impl Fn(&ModuleSpec) -> bool + Send + 'static,
    ) -> Reply<Vec<TokenDescription>> {
        let inner = Arc::clone(&self.inner);
        spawn_once("segel-scan", move || scan_some(&inner, &include))
    }

    /// Every certificate on every token, tied to its private key where one is found.
    pub fn certificates(&self) -> Reply<Vec<CertificateEntry>> {
        let inner = Arc::clone(&self.inner);
        spawn_once("segel-certs", move || list_certificates(&inner))
    }

    /// Find the one certificate a selector names.
    pub fn find_certificate(&self, selector: &CertSelector) -> Reply<CertificateEntry> {
        let inner = Arc::clone(&self.inner);
        let selector = selector.clone();
        spawn_once("segel-find", move || {
            let certs = list_certificates(&inner)?;
            let matches: Vec<CertificateEntry> = certs
                .into_iter()
                .filter(|c| match &selector {
                    CertSelector::Fingerprint(fp) => &c.info.fingerprint_sha256 == fp,
                    CertSelector::Label(l) => &c.label == l,
                })
                .collect();
            // The same certificate may sit on two tokens: prefer the one with a key.
            let with_key: Vec<&CertificateEntry> = matches
                .iter()
                .filter(|c| c.key_evidence.is_some())
                .collect();
            match (matches.len(), with_key.len()) {
                (0, _) => Err(TokenError::CertificateNotFound(selector.to_string())),
                (1, _) => Ok(matches[0].clone()),
                (_, 1) => Ok(with_key[0].clone()),
                (n, _) => Err(TokenError::CertificateAmbiguous {
                    selector: selector.to_string(),
                    count: n,
                }),
            }
        })
    }

    fn handle(&self, token: &TokenRef) -> Result<Arc<TokenHandle>, TokenError> {
        lock(&self.inner.tokens)
            .get(token)
            .cloned()
            .ok_or(TokenError::TokenAbsent)
    }

    /// The signature scheme a certificate's key implies, unless one is requested.
    fn scheme_for(
        cert: &CertificateEntry,
        requested: Option<SignScheme>,
    ) -> Result<SignScheme, TokenError> {
        match (&cert.info.public_key, requested) {
            (PublicKey::Rsa { .. }, None) => Ok(SignScheme::RsaPkcs1),
            (PublicKey::Rsa { .. }, Some(s @ (SignScheme::RsaPkcs1 | SignScheme::RsaPss))) => Ok(s),
            (PublicKey::Ec { .. }, None | Some(SignScheme::Ecdsa)) => Ok(SignScheme::Ecdsa),
            (key, Some(s)) => Err(TokenError::BadRequest(format!(
                "a {} key cannot make {s:?} signatures",
                key.type_name()
            ))),
            (PublicKey::Other { oid }, None) => Err(TokenError::MechanismUnsupported(format!(
                "keys of type {oid}"
            ))),
        }
    }

    /// Refuse to sign with a certificate that is not valid now or may not sign.
    fn check_signing_certificate(cert: &CertificateEntry) -> Result<(), TokenError> {
        let invalid = |problem: String| TokenError::CertificateInvalid {
            subject: cert.info.subject.clone(),
            problem,
        };
        cert.info
            .check_validity(std::time::SystemTime::now())
            .map_err(invalid)?;
        if !cert.info.can_sign {
            return Err(invalid("not allowed to sign (its key usage has neither digitalSignature nor nonRepudiation)".to_owned()));
        }
        Ok(())
    }

    /// Checks shared by every signing path: certificate validity and usage, the scheme,
    /// and the token's worker handle.
    fn prepare_signing(
        &self,
        cert: &CertificateEntry,
        request: &SignRequest,
    ) -> Result<(SignScheme, Arc<TokenHandle>), TokenError> {
        Self::check_signing_certificate(cert)?;
        let scheme = Self::scheme_for(cert, request.scheme)?;
        Ok((scheme, self.handle(&cert.token_ref)?))
    }

    /// Queue a signature over a digest on the token's workers.
    fn submit_digest_signature(
        handle: &TokenHandle,
        cert: &CertificateEntry,
        scheme: SignScheme,
        hash: HashAlg,
        digest: Vec<u8>,
        pin: Arc<dyn PinSource>,
    ) -> Reply<Vec<u8>> {
        if !handle.mechanisms.contains(&ops::bare_mechanism(scheme)) {
            return Reply::ready(Err(TokenError::MechanismUnsupported(format!(
                "{scheme:?} over a precomputed hash (only combined hash-and-sign mechanisms); sign the whole message instead"
            ))));
        }
        let cert = KeyRef::of(cert);
        handle.pool.submit(move |state: &mut SessionState| {
            state.run(|state| {
                state.ensure_login(&pin)?;
                let key = state.key_for(&cert)?;
                ops::sign_digest(state.session()?, key, scheme, hash, &digest)
            })
        })
    }

    /// Sign a digest computed by the caller.
    pub fn sign_digest(
        &self,
        cert: &CertificateEntry,
        request: &SignRequest,
        digest: Vec<u8>,
        pin: Arc<dyn PinSource>,
    ) -> Reply<Vec<u8>> {
        match self.prepare_signing(cert, request) {
            Ok((scheme, handle)) => {
                Self::submit_digest_signature(&handle, cert, scheme, request.hash, digest, pin)
            }
            Err(e) => Reply::ready(Err(e)),
        }
    }

    /// Sign a whole message read from `path`: hash in software and sign the digest where the
    /// token has the bare mechanism, else stream it through the combined mechanism.
    pub fn sign_file(
        &self,
        cert: &CertificateEntry,
        request: &SignRequest,
        path: std::path::PathBuf,
        pin: Arc<dyn PinSource>,
    ) -> Reply<Vec<u8>> {
        let (scheme, handle) = match self.prepare_signing(cert, request) {
            Ok(p) => p,
            Err(e) => return Reply::ready(Err(e)),
        };
        let open = |path: &std::path::Path| {
            std::fs::File::open(path)
                .map_err(|e| TokenError::BadRequest(format!("cannot read {}: {e}", path.display())))
        };
        if handle.mechanisms.contains(&ops::bare_mechanism(scheme)) {
            let digest = match open(&path).and_then(|f| hash_reader(request.hash, f)) {
                Ok(d) => d,
                Err(e) => return Reply::ready(Err(e)),
            };
            return Self::submit_digest_signature(&handle, cert, scheme, request.hash, digest, pin);
        }
        if !handle
            .mechanisms
            .contains(&ops::combined_mechanism(scheme, request.hash))
        {
            return Reply::ready(Err(TokenError::MechanismUnsupported(format!(
                "{scheme:?} signatures with {}",
                request.hash.name()
            ))));
        }
        let cert = KeyRef::of(cert);
        let hash = request.hash;
        handle.pool.submit(move |state: &mut SessionState| {
            state.run(|state| {
                let mut file = open(&path)?;
                state.ensure_login(&pin)?;
                let key = state.key_for(&cert)?;
                ops::sign_stream(state.session()?, key, scheme, hash, &mut file)
            })
        })
    }

    /// RSA decryption (key transport). Every failure to decrypt is `DecryptionFailed`.
    pub fn decrypt(
        &self,
        cert: &CertificateEntry,
        padding: DecryptPadding,
        ciphertext: Vec<u8>,
        pin: Arc<dyn PinSource>,
    ) -> Reply<Zeroizing<Vec<u8>>> {
        let PublicKey::Rsa { modulus, .. } = &cert.info.public_key else {
            return Reply::ready(Err(TokenError::BadRequest(
                "key transport needs an RSA key; EC keys use key agreement".to_owned(),
            )));
        };
        let modulus_len = modulus.len();
        let handle = match self.handle(&cert.token_ref) {
            Ok(h) => h,
            Err(e) => return Reply::ready(Err(e)),
        };
        let raw = handle.mechanisms.contains(&MechanismType::RSA_X_509);
        let cert = KeyRef::of(cert);
        let irk = Arc::clone(&self.inner.irk);
        handle.pool.submit(move |state: &mut SessionState| {
            state.run(|state| {
                state.ensure_login(&pin)?;
                let key = state.key_for(&cert)?;
                ops::rsa_decrypt(
                    state.session()?,
                    key,
                    modulus_len,
                    raw,
                    padding,
                    &ciphertext,
                    &irk,
                )
            })
        })
    }

    /// ECDH shared secret with a peer's public point (uncompressed SEC1).
    pub fn ecdh(
        &self,
        cert: &CertificateEntry,
        peer_point: Vec<u8>,
        pin: Arc<dyn PinSource>,
    ) -> Reply<Zeroizing<Vec<u8>>> {
        let PublicKey::Ec { bits, .. } = &cert.info.public_key else {
            return Reply::ready(Err(TokenError::BadRequest(
                "key agreement needs an EC key".to_owned(),
            )));
        };
        let field_len = bits.div_ceil(8);
        let handle = match self.handle(&cert.token_ref) {
            Ok(h) => h,
            Err(e) => return Reply::ready(Err(e)),
        };
        let cert = KeyRef::of(cert);
        handle.pool.submit(move |state: &mut SessionState| {
            state.run(|state| {
                state.ensure_login(&pin)?;
                let key = state.key_for(&cert)?;
                ops::ecdh_shared_secret(state.session()?, key, field_len, &peer_point)
            })
        })
    }

    /// Log in to the token holding `cert` now, before a batch of operations (opening many bids
    /// with one PIN entry): a wrong or missing PIN then fails the batch up front.
    pub fn login(&self, cert: &CertificateEntry, pin: Arc<dyn PinSource>) -> Reply<()> {
        let handle = match self.handle(&cert.token_ref) {
            Ok(h) => h,
            Err(e) => return Reply::ready(Err(e)),
        };
        handle
            .pool
            .submit(move |state: &mut SessionState| state.run(|state| state.ensure_login(&pin)))
    }

    /// End every token's workers once their queued jobs are done, and wait until each has
    /// closed its session. Afterwards the module can be finalised (when the last clone of
    /// the service is dropped) with no session still in use by a thread — for a daemon's
    /// graceful shutdown, or a program that loads the same module again. A clone that
    /// keeps working afterwards starts fresh workers at its next certificate lookup.
    pub fn shutdown(self) {
        let handles: Vec<Arc<TokenHandle>> =
            lock(&self.inner.tokens).drain().map(|(_, h)| h).collect();
        for handle in handles {
            handle.pool.shutdown();
        }
    }

    /// Log out of every token (end of a CLI run, or when a daemon operation is over).
    pub fn logout_all(&self) {
        let handles: Vec<Arc<TokenHandle>> = lock(&self.inner.tokens).values().cloned().collect();
        let replies: Vec<_> = handles
            .iter()
            .map(|h| {
                h.pool.submit(|state: &mut SessionState| {
                    let mut login = lock(&state.login.inner);
                    if login.logged_in_at.take().is_some()
                        && let Some((s, _)) = &state.session
                    {
                        let _ = s.logout();
                    }
                    Ok(())
                })
            })
            .collect();
        for r in replies {
            let _ = r.wait();
        }
    }
}

/// Rescan, then ask every token for its certificates at once (each answers on its own
/// worker). Runs on a scan thread.
fn list_certificates(inner: &Arc<Inner>) -> Result<Vec<CertificateEntry>, TokenError> {
    scan(inner)?;
    let handles: Vec<(TokenRef, Arc<TokenHandle>)> = lock(&inner.tokens)
        .iter()
        .map(|(r, h)| (r.clone(), Arc::clone(h)))
        .collect();
    let replies: Vec<_> = handles
        .into_iter()
        .map(|(token_ref, handle)| {
            let desc = lock(&handle.description).clone();
            handle.pool.submit(move |state: &mut SessionState| {
                state.run(|state| inventory::certificates(state.session()?, &desc, token_ref))
            })
        })
        .collect();
    let mut all = Vec::new();
    for reply in replies {
        match reply.wait() {
            Ok(certs) => all.extend(certs),
            Err(e) if e.is_connection_lost() => {
                tracing::warn!("token went away while listing: {e}")
            }
            Err(e) => return Err(e),
        }
    }
    Ok(all)
}

/// Hash a reader in software.
pub(crate) fn hash_reader(
    hash: HashAlg,
    mut reader: impl std::io::Read,
) -> Result<Vec<u8>, TokenError> {
    use sha2::Digest;
    fn run<D: Digest>(mut d: D, reader: &mut dyn std::io::Read) -> Result<Vec<u8>, TokenError> {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = reader
                .read(&mut buf)
                .map_err(|e| TokenError::BadRequest(format!("reading the input: {e}")))?;
            if n == 0 {
                return Ok(d.finalize().to_vec());
            }
            d.update(&buf[..n]);
        }
    }
    match hash {
        HashAlg::Sha256 => run(sha2::Sha256::new(), &mut reader),
        HashAlg::Sha384 => run(sha2::Sha384::new(), &mut reader),
        HashAlg::Sha512 => run(sha2::Sha512::new(), &mut reader),
    }
}

/// Run `f` on a fresh thread (module-level PKCS#11 calls never run on async threads).
fn spawn_once<R: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> Result<R, TokenError> + Send + 'static,
) -> Reply<R> {
    match WorkerPool::spawn(name, 1, || ()) {
        Ok(pool) => pool.submit(move |_: &mut ()| f()),
        Err(e) => Reply::ready(Err(e)),
    }
}

/// Rescan the slots of every module; start workers for new tokens, drop vanished ones.
fn scan(inner: &Arc<Inner>) -> Result<Vec<TokenDescription>, TokenError> {
    scan_some(inner, &|_| true)
}

/// [`scan`] limited to the modules `include` accepts; other modules' tokens are not touched.
fn scan_some(
    inner: &Arc<Inner>,
    include: &dyn Fn(&ModuleSpec) -> bool,
) -> Result<Vec<TokenDescription>, TokenError> {
    let mut found = Vec::new();
    let mut seen = Vec::new();
    let mut scanned = Vec::new();
    for (index, module) in inner.modules().iter().enumerate() {
        if !include(&module.loaded.spec) {
            continue;
        }
        scanned.push(index);
        let ctx = &module.loaded.ctx;
        let slots = match ctx.get_slots_with_token() {
            Ok(s) => s,
            Err(e) => {
                let err = TokenError::from(e);
                if !err.is_connection_lost() {
                    return Err(err);
                }
                module.reinitialise(module.generation.load(Ordering::SeqCst))?;
                ctx.get_slots_with_token()?
            }
        };
        for slot in slots {
            let desc = match inventory::describe(ctx, slot, &module.loaded.spec.path) {
                Ok(d) => d,
                Err(e) if e.is_connection_lost() => continue, // removed while we looked
                Err(e) => return Err(e),
            };
            if !desc.flags.token_initialized {
                // An empty slot (e.g. SoftHSM's free slot) holds nothing to use.
                continue;
            }
            let token_ref = TokenRef {
                module: index,
                slot: slot.id(),
            };
            let mut tokens = lock(&inner.tokens);
            let replace = tokens.get(&token_ref).is_none_or(|h| {
                let old = lock(&h.description);
                old.serial != desc.serial || old.label != desc.label
            });
            if replace {
                let handle = start_token(inner, module, slot, &desc)?;
                tokens.insert(token_ref.clone(), Arc::new(handle));
            } else if let Some(h) = tokens.get(&token_ref) {
                *lock(&h.description) = desc.clone();
            }
            seen.push(token_ref);
            found.push(desc);
        }
    }
    lock(&inner.tokens).retain(|r, _| seen.contains(r) || !scanned.contains(&r.module));
    Ok(found)
}

fn start_token(
    inner: &Arc<Inner>,
    module: &Arc<ModuleHandle>,
    slot: Slot,
    desc: &TokenDescription,
) -> Result<TokenHandle, TokenError> {
    let mechanisms = module
        .loaded
        .ctx
        .get_mechanism_list(slot)
        .unwrap_or_default();
    // Smart cards and USB tokens run one command at a time; software tokens scale.
    let threads = if desc.flags.hardware || desc.flags.removable {
        1
    } else {
        inner
            .options
            .sessions_per_soft_token
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(4)))
    };
    let login = Arc::new(LoginShared::default());
    let login_for_state = Arc::clone(&login);
    let module_for_state = Arc::clone(module);
    let (label, serial) = (desc.label.clone(), desc.serial.clone());
    let pool = WorkerPool::spawn(&format!("segel-token-{}", slot.id()), threads, move || {
        SessionState {
            module: Arc::clone(&module_for_state),
            slot,
            label: label.clone(),
            serial: serial.clone(),
            session: None,
            keys: HashMap::new(),
            keys_login: 0,
            login: Arc::clone(&login_for_state),
        }
    })?;
    Ok(TokenHandle {
        description: Mutex::new(desc.clone()),
        mechanisms,
        pool,
        workers: threads.max(1),
        login,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_accepts_fingerprints_with_colons_and_labels() {
        let fp = "AB:".repeat(31) + "AB";
        assert_eq!(
            fp.parse::<CertSelector>().unwrap(),
            CertSelector::Fingerprint("ab".repeat(32))
        );
        assert_eq!(
            "label:Budi".parse::<CertSelector>().unwrap(),
            CertSelector::Label("Budi".to_owned())
        );
        assert!(
            "abc"
                .parse::<CertSelector>()
                .unwrap_err()
                .to_string()
                .contains("64 hex digits")
        );
    }
}
