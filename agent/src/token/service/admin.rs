//! Token administration: key generation, certificate import, PIN change and unblock.
//!
//! These are rare, interactive operations on one token, so they run on the caller's thread
//! with a read-write session of their own (the signing workers keep their read-only sessions).
//! A [`TokenAdmin`] logs in at most once; it blocks, so async callers use `spawn_blocking`.
//!
//! PKCS#11 logins belong to the application and token, not to a session (v2.40 §2.6.7): while
//! the signing workers are logged in, C_Login answers CKR_USER_ALREADY_LOGGED_IN without
//! looking at the PIN. So [`TokenAdmin::login`] logs out first and the token checks every PIN
//! an administration is given; the workers' login is forgotten and they log in again (with
//! their request's PIN) at their next operation. A `TokenAdmin` logs out again when dropped,
//! so an administration never leaves the token logged in.

use std::sync::Arc;

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, CertificateType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use secrecy::{ExposeSecret, SecretString};

use super::{LoginInner, LoginShared, ModuleHandle, TokenRef, TokenService, lock, pin_incorrect};
use crate::certinfo::{CertInfo, PublicKey, strip_leading_zeros};
use crate::pin::PinSource;
use crate::token::error::TokenError;
use crate::token::inventory::{self, TokenDescription};
use crate::token::ops::{self, HashAlg, SignScheme};

/// A key pair to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySpec {
    Rsa(u32),
    P256,
    P384,
}

impl KeySpec {
    /// Parse `rsa2048|rsa3072|rsa4096|p256|p384`; smaller RSA keys are refused with a reason.
    pub fn parse(text: &str) -> Result<Self, TokenError> {
        match text {
            "rsa2048" => Ok(KeySpec::Rsa(2048)),
            "rsa3072" => Ok(KeySpec::Rsa(3072)),
            "rsa4096" => Ok(KeySpec::Rsa(4096)),
            "p256" => Ok(KeySpec::P256),
            "p384" => Ok(KeySpec::P384),
            t if t.starts_with("rsa") && t[3..].parse::<u32>().is_ok_and(|b| b < 2048) => {
                Err(TokenError::BadRequest(format!(
                    "{t}: RSA keys under 2048 bits are refused (breakable, and no CA issues for them any more); use rsa2048 or larger"
                )))
            }
            t => Err(TokenError::BadRequest(format!(
                "unknown key type {t:?}: use rsa2048, rsa3072, rsa4096, p256 or p384"
            ))),
        }
    }

    /// The signature scheme the key's own request is signed with.
    pub fn signature(self) -> (SignScheme, HashAlg) {
        match self {
            KeySpec::Rsa(_) => (SignScheme::RsaPkcs1, HashAlg::Sha256),
            KeySpec::P256 => (SignScheme::Ecdsa, HashAlg::Sha256),
            KeySpec::P384 => (SignScheme::Ecdsa, HashAlg::Sha384),
        }
    }
}

impl std::fmt::Display for KeySpec {
    /// The name [`KeySpec::parse`] takes (`rsa2048`, `p256`, …).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySpec::Rsa(bits) => write!(f, "rsa{bits}"),
            KeySpec::P256 => f.write_str("p256"),
            KeySpec::P384 => f.write_str("p384"),
        }
    }
}

/// What the new key is for (sets CKA_SIGN / CKA_DECRYPT / CKA_DERIVE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyPurpose {
    /// Signing bids (digitalSignature, nonRepudiation).
    Sign,
    /// Opening bids (key transport for RSA, key agreement for EC).
    Encrypt,
}

/// A key pair made on the token.
#[derive(Clone, Debug)]
pub struct GeneratedKey {
    /// CKA_ID shared by the key pair (and later the certificate).
    pub id: Vec<u8>,
    /// The public key as a DER SubjectPublicKeyInfo.
    pub spki_der: Vec<u8>,
    pub spec: KeySpec,
    private: ObjectHandle,
}

/// What an import placed on the token.
#[derive(Clone, Debug)]
pub struct ImportOutcome {
    /// CKA_ID of the key the certificate belongs to.
    pub id: Vec<u8>,
    /// Label given to the certificate (the key's label).
    pub label: String,
    /// Subjects of the CA certificates stored alongside (those not already there).
    pub intermediates: Vec<String>,
}

/// A read-write session on one token for administration.
pub struct TokenAdmin {
    module: Arc<ModuleHandle>,
    slot: Slot,
    description: TokenDescription,
    session: Session,
    logged_in: bool,
    read_only: bool,
    /// The signing workers' login state for this token, if it has workers.
    workers_login: Option<Arc<LoginShared>>,
}

impl Drop for TokenAdmin {
    fn drop(&mut self) {
        if self.logged_in {
            let shared = self.workers_login.clone();
            let mut state = shared.as_deref().map(|s| lock(&s.inner));
            let _ = self.log_out(state.as_deref_mut());
        }
    }
}

impl std::fmt::Debug for TokenAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAdmin")
            .field("token", &self.description.label)
            .finish_non_exhaustive()
    }
}

impl TokenService {
    /// A read-write session on the token labelled `label` (blocking). Uninitialised tokens
    /// count too, so an empty slot can be enrolled.
    pub fn admin(&self, label: &str) -> Result<TokenAdmin, TokenError> {
        let mut found = Vec::new();
        for (index, module) in self.inner.modules().iter().enumerate() {
            let ctx = &module.loaded.ctx;
            for slot in ctx.get_slots_with_token()? {
                let desc = inventory::describe(ctx, slot, &module.loaded.spec.path)?;
                if desc.label == label {
                    let token_ref = TokenRef {
                        module: index,
                        slot: slot.id(),
                    };
                    found.push((Arc::clone(module), slot, desc, token_ref));
                }
            }
        }
        if found.len() > 1 {
            return Err(TokenError::BadRequest(format!(
                "{} tokens are labelled {label:?}; remove all but one",
                found.len()
            )));
        }
        let (module, slot, description, token_ref) = found
            .pop()
            .ok_or_else(|| TokenError::TokenNotFound(Some(label.to_owned())))?;
        let workers_login = lock(&self.inner.tokens)
            .get(&token_ref)
            .map(|h| Arc::clone(&h.login));
        // A write-protected token still answers status questions on a read-only session.
        let (session, read_only) = match module.loaded.ctx.open_rw_session(slot) {
            Ok(s) => (s, false),
            Err(cryptoki::error::Error::Pkcs11(
                cryptoki::error::RvError::TokenWriteProtected,
                _,
            )) => (module.loaded.ctx.open_ro_session(slot)?, true),
            Err(e) => return Err(e.into()),
        };
        Ok(TokenAdmin {
            module,
            slot,
            description,
            session,
            logged_in: false,
            read_only,
            workers_login,
        })
    }
}

fn secret(s: &SecretString) -> cryptoki::types::AuthPin {
    cryptoki::types::AuthPin::new(s.expose_secret().into())
}

impl TokenAdmin {
    /// The token as it was when last read.
    pub fn description(&self) -> &TokenDescription {
        &self.description
    }

    /// Read the token's flags again (retry counters after a PIN operation).
    pub fn refresh(&mut self) -> Result<&TokenDescription, TokenError> {
        self.description = inventory::describe(
            &self.module.loaded.ctx,
            self.slot,
            &self.module.loaded.spec.path,
        )?;
        Ok(&self.description)
    }

    /// Log in as the user once, always with the PIN checked by the token (see the module
    /// notes: a login of the signing workers is ended first); a refused PIN is reported with
    /// the token's retry state and never tried again.
    pub fn login(&mut self, pin: &dyn PinSource) -> Result<(), TokenError> {
        if self.logged_in || !self.description.flags.login_required {
            return Ok(());
        }
        if self.description.flags.pin_locked {
            return Err(TokenError::PinLocked);
        }
        if self.description.flags.pin_final_try && !pin.allow_final_try() {
            return Err(TokenError::PinFinalTry);
        }
        let given = pin.pin_for(&self.description)?;
        // The workers' login state stays locked until this login is done, so none of them
        // logs in between the logout and the check of this PIN.
        let shared = self.workers_login.clone();
        let mut state = shared.as_deref().map(|s| lock(&s.inner));
        self.log_out(state.as_deref_mut())?;
        // CKR_USER_ALREADY_LOGGED_IN now would mean the PIN went unchecked: an error.
        match self.session.login(UserType::User, given.as_ref()) {
            Ok(()) => {
                self.logged_in = true;
                if let Some(state) = state.as_deref_mut() {
                    state.admins += 1;
                }
                Ok(())
            }
            Err(e) => Err(self.explain_pin_error(TokenError::from(e))),
        }
    }

    /// C_Logout: ends this application's login on the token, the signing workers' too, so
    /// they are told to log in again at their next operation (`state`, locked by the caller).
    fn log_out(&mut self, state: Option<&mut LoginInner>) -> Result<(), TokenError> {
        if let Some(state) = state {
            state.logged_in_at = None;
            if self.logged_in {
                state.admins = state.admins.saturating_sub(1);
            }
        }
        self.logged_in = false;
        match self.session.logout() {
            Ok(())
            | Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::UserNotLoggedIn, _)) => {
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A refused PIN, with what the token now says about retries and blocking.
    fn explain_pin_error(&mut self, err: TokenError) -> TokenError {
        if !matches!(err, TokenError::PinIncorrect { .. }) {
            return err;
        }
        match self.refresh() {
            Ok(d) if d.flags.pin_locked => TokenError::PinLocked,
            Ok(d) => pin_incorrect(d),
            Err(_) => err,
        }
    }

    fn writable(&self) -> Result<(), TokenError> {
        if self.read_only {
            return Err(TokenError::MechanismUnsupported(format!(
                "storing keys or certificates: token {:?} is write-protected",
                self.description.label
            )));
        }
        Ok(())
    }

    /// Generate a key pair on the token (never in software): private key sensitive and not
    /// extractable; both halves share a fresh random CKA_ID and `label`. Every key may sign:
    /// the certificate request proves possession with a signature (RFC 2986), also for an
    /// encryption key; the certificate's key usage then limits what it is used for.
    pub fn generate_key_pair(
        &mut self,
        spec: KeySpec,
        purpose: KeyPurpose,
        label: &str,
    ) -> Result<GeneratedKey, TokenError> {
        self.writable()?;
        let mut id = vec![0u8; 16];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut id);
        let common = |private: bool| {
            vec![
                Attribute::Token(true),
                Attribute::Private(private),
                Attribute::Id(id.clone()),
                Attribute::Label(label.as_bytes().to_vec()),
            ]
        };
        let mut public = common(false);
        let mut private = common(true);
        private.extend([Attribute::Sensitive(true), Attribute::Extractable(false)]);
        let sign = purpose == KeyPurpose::Sign;
        let mechanism = match spec {
            KeySpec::Rsa(bits) => {
                public.extend([
                    Attribute::ModulusBits(u64::from(bits).into()),
                    Attribute::PublicExponent(vec![1, 0, 1]),
                    Attribute::Verify(true),
                    Attribute::Encrypt(!sign),
                    Attribute::Wrap(!sign),
                ]);
                private.extend([
                    Attribute::Sign(true),
                    Attribute::Decrypt(!sign),
                    Attribute::Unwrap(!sign),
                ]);
                Mechanism::RsaPkcsKeyPairGen
            }
            KeySpec::P256 | KeySpec::P384 => {
                let curve = if spec == KeySpec::P256 {
                    crate::cms::oids::SECP256R1
                } else {
                    crate::cms::oids::SECP384R1
                };
                let params = der::Encode::to_der(&curve)
                    .map_err(|e| TokenError::BadRequest(format!("curve parameters: {e}")))?;
                public.extend([Attribute::EcParams(params), Attribute::Verify(true)]);
                private.extend([Attribute::Sign(true), Attribute::Derive(!sign)]);
                Mechanism::EccKeyPairGen
            }
        };
        let (pub_handle, priv_handle) = self
            .session
            .generate_key_pair(&mechanism, &public, &private)
            .map_err(|e| match TokenError::from(e) {
                TokenError::MechanismUnsupported(_) => TokenError::MechanismUnsupported(
                    "generating this kind of key (the token cannot make key pairs of this type)"
                        .to_owned(),
                ),
                other => other,
            })?;
        let spki_der = self.public_key_info(pub_handle, spec)?;
        Ok(GeneratedKey {
            id,
            spki_der,
            spec,
            private: priv_handle,
        })
    }

    fn public_key_info(&self, handle: ObjectHandle, spec: KeySpec) -> Result<Vec<u8>, TokenError> {
        let bad = |e: String| TokenError::Pkcs11 {
            function: "C_GetAttributeValue (public key)".to_owned(),
            rv: e,
        };
        let attrs = self.session.get_attributes(
            handle,
            &[
                AttributeType::Modulus,
                AttributeType::PublicExponent,
                AttributeType::EcPoint,
            ],
        )?;
        let get = |want: AttributeType| {
            attrs.iter().find_map(|a| match (want, a) {
                (AttributeType::Modulus, Attribute::Modulus(v))
                | (AttributeType::PublicExponent, Attribute::PublicExponent(v))
                | (AttributeType::EcPoint, Attribute::EcPoint(v)) => Some(v.clone()),
                _ => None,
            })
        };
        match spec {
            KeySpec::Rsa(_) => {
                use rsa::pkcs8::EncodePublicKey;
                let n = get(AttributeType::Modulus).ok_or_else(|| bad("no modulus".into()))?;
                let e = get(AttributeType::PublicExponent)
                    .ok_or_else(|| bad("no public exponent".into()))?;
                let key = rsa::RsaPublicKey::new(
                    rsa::BigUint::from_bytes_be(&n),
                    rsa::BigUint::from_bytes_be(&e),
                )
                .map_err(|e| bad(e.to_string()))?;
                Ok(key
                    .to_public_key_der()
                    .map_err(|e| bad(e.to_string()))?
                    .into_vec())
            }
            KeySpec::P256 | KeySpec::P384 => {
                use p256::pkcs8::EncodePublicKey;
                let raw = get(AttributeType::EcPoint).ok_or_else(|| bad("no EC point".into()))?;
                let point = inventory::unwrap_ec_point(&raw);
                let der = if spec == KeySpec::P256 {
                    p256::PublicKey::from_sec1_bytes(&point)
                        .map_err(|e| bad(e.to_string()))?
                        .to_public_key_der()
                } else {
                    p384::PublicKey::from_sec1_bytes(&point)
                        .map_err(|e| bad(e.to_string()))?
                        .to_public_key_der()
                };
                Ok(der.map_err(|e| bad(e.to_string()))?.into_vec())
            }
        }
    }

    /// Sign a digest with a key made by [`Self::generate_key_pair`] (its certificate request).
    pub fn sign_with(&self, key: &GeneratedKey, digest: &[u8]) -> Result<Vec<u8>, TokenError> {
        let (scheme, hash) = key.spec.signature();
        ops::sign_digest(&self.session, key.private, scheme, hash, digest)
    }

    /// Store `leaf` next to the key whose public key it carries (same CKA_ID and label), and
    /// the CA certificates of `chain` that are not on the token yet. A certificate that
    /// matches no key on the token is refused.
    pub fn import_certificate(
        &mut self,
        leaf: &[u8],
        chain: &[Vec<u8>],
    ) -> Result<ImportOutcome, TokenError> {
        self.writable()?;
        let info = CertInfo::from_der(leaf).map_err(|e| TokenError::BadRequest(e.to_string()))?;
        let (id, label) = self.key_id_for(&info)?;
        let existing = self.certificate_values()?;
        if !existing.iter().any(|c| c == leaf) {
            self.store_certificate(leaf, &info, &id, &label)?;
        }
        let mut intermediates = Vec::new();
        for ca in chain {
            if ca.as_slice() == leaf || existing.contains(ca) {
                continue;
            }
            let ca_info =
                CertInfo::from_der(ca).map_err(|e| TokenError::BadRequest(e.to_string()))?;
            let ca_id = HashAlg::Sha256.digest(ca)[..8].to_vec();
            let ca_label = ca_info.subject.split(',').next().unwrap_or("CA").to_owned();
            self.store_certificate(ca, &ca_info, &ca_id, &ca_label)?;
            intermediates.push(ca_info.subject);
        }
        Ok(ImportOutcome {
            id,
            label,
            intermediates,
        })
    }

    /// CKA_ID and label of the private key `cert` belongs to.
    fn key_id_for(&self, cert: &CertInfo) -> Result<(Vec<u8>, String), TokenError> {
        let handles = self
            .session
            .find_objects(&[Attribute::Class(ObjectClass::PUBLIC_KEY)])?;
        for handle in handles {
            let attrs = self.session.get_attributes(
                handle,
                &[
                    AttributeType::Id,
                    AttributeType::Label,
                    AttributeType::KeyType,
                    AttributeType::Modulus,
                    AttributeType::EcPoint,
                ],
            )?;
            let mut id = Vec::new();
            let mut label = String::new();
            let mut same = false;
            for a in &attrs {
                match (a, &cert.public_key) {
                    (Attribute::Id(v), _) => id = v.clone(),
                    (Attribute::Label(v), _) => label = String::from_utf8_lossy(v).into_owned(),
                    (Attribute::Modulus(m), PublicKey::Rsa { modulus, .. }) => {
                        same = strip_leading_zeros(m) == strip_leading_zeros(modulus);
                    }
                    (Attribute::EcPoint(p), PublicKey::Ec { point, .. }) => {
                        same = inventory::unwrap_ec_point(p) == *point;
                    }
                    _ => {}
                }
            }
            if same && self.has_private_key(&id)? {
                return Ok((id, label));
            }
        }
        Err(TokenError::KeyNotFound(format!(
            "{} (no key pair on token {:?} has this certificate's public key; it was issued for another key)",
            cert.subject, self.description.label
        )))
    }

    fn has_private_key(&self, id: &[u8]) -> Result<bool, TokenError> {
        Ok(!self
            .session
            .find_objects(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Id(id.to_vec()),
            ])?
            .is_empty())
    }

    fn certificate_values(&self) -> Result<Vec<Vec<u8>>, TokenError> {
        let handles = self
            .session
            .find_objects(&[Attribute::Class(ObjectClass::CERTIFICATE)])?;
        let mut values = Vec::new();
        for h in handles {
            for a in self.session.get_attributes(h, &[AttributeType::Value])? {
                if let Attribute::Value(v) = a {
                    values.push(v);
                }
            }
        }
        Ok(values)
    }

    fn store_certificate(
        &self,
        der_bytes: &[u8],
        info: &CertInfo,
        id: &[u8],
        label: &str,
    ) -> Result<(), TokenError> {
        use der::{Decode, Encode};
        let cert = x509_cert::Certificate::from_der(der_bytes)
            .map_err(|e| TokenError::BadRequest(format!("certificate: {e}")))?;
        let enc = |r: Result<Vec<u8>, der::Error>| {
            r.map_err(|e| TokenError::BadRequest(format!("certificate {}: {e}", info.subject)))
        };
        let subject = enc(cert.tbs_certificate.subject.to_der())?;
        let issuer = enc(cert.tbs_certificate.issuer.to_der())?;
        let serial = enc(cert.tbs_certificate.serial_number.to_der())?;
        let created = self.session.create_object(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::CertificateType(CertificateType::X_509),
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Id(id.to_vec()),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Subject(subject),
            Attribute::Issuer(issuer),
            Attribute::SerialNumber(serial),
            Attribute::Value(der_bytes.to_vec()),
        ]);
        match created {
            Ok(_) => Ok(()),
            // E.g. OpenSC on a PIV card: it writes objects only through a pkcs15init driver,
            // and has none for PIV ("unable to locate pkcs15init driver for 'PIV-II'").
            Err(cryptoki::error::Error::Pkcs11(
                cryptoki::error::RvError::FunctionNotSupported,
                _,
            )) => Err(TokenError::MechanismUnsupported(format!(
                "storing certificates on token {:?} (its PKCS#11 module cannot create objects there; use the card vendor's tool, e.g. piv-tool for PIV cards)",
                self.description.label
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// C_SetPIN: change the user PIN (the old one is checked by the token).
    ///
    /// On an OpenSC PIV card the session is logged in first: OpenSC treats C_SetPIN in a
    /// session that is not logged in as an unblock with the PUK where so configured (see
    /// [`Self::unblock_pin`]), which would spend a PUK try on the old PIN.
    pub fn change_pin(&mut self, old: &SecretString, new: &SecretString) -> Result<(), TokenError> {
        self.writable()?;
        if self.description.flags.pin_locked {
            return Err(TokenError::PinLocked);
        }
        if self.is_opensc_piv() && !self.logged_in {
            self.login(&crate::pin::FixedPin(old.clone()))?;
        }
        self.session
            .set_pin(&secret(old), &secret(new))
            .map_err(|e| self.explain_pin_error(TokenError::from(e)))
    }

    /// Whether this is a PIV card driven by OpenSC's PIV driver (its PKCS#15 emulation names
    /// the manufacturer `piv_II`), whose PUK is no SO PIN (see [`Self::unblock_pin`]).
    pub fn is_opensc_piv(&self) -> bool {
        self.description.manufacturer == "piv_II"
    }

    /// Unblock (or reset) the user PIN with the security officer's PIN: C_Login(SO), then
    /// C_InitPIN. A wrong SO PIN is reported as PIN_INCORRECT.
    ///
    /// PIV cards (OpenSC) have a PUK instead: a PIV card takes the PUK only in RESET RETRY
    /// COUNTER and CHANGE REFERENCE DATA, never in VERIFY (NIST SP 800-73-4 Part 2, 3.2.1:
    /// VERIFY knows key references 00, 80, 96, 97), so OpenSC's C_Login(CKU_SO) — VERIFY with
    /// reference 81 — is refused (`6A88`) and C_InitPIN is never reached. OpenSC unblocks a PIV
    /// PIN with C_SetPIN(PUK, new PIN) in a session that is not logged in (framework-pkcs15.c,
    /// `pkcs15_change_pin` → `sc_pkcs15_unblock_pin` → RESET RETRY COUNTER `00 2C 00 80` with
    /// PUK ‖ new PIN) when its configuration has `user_pin_unblock_style =
    /// set_pin_in_unlogged_session` in the `pkcs11` block. Without it OpenSC 0.23 makes the same
    /// call a PIN change with the PUK as the old PIN, so Segel checks the configuration first
    /// ([`crate::token::opensc`]) and otherwise refuses with that advice, touching nothing.
    pub fn unblock_pin(
        &mut self,
        so_pin: &SecretString,
        new: &SecretString,
    ) -> Result<(), TokenError> {
        self.writable()?;
        // No user may be logged in for the SO login (CKR_USER_ANOTHER_ALREADY_LOGGED_IN),
        // nor for OpenSC's unblock in a session that is not logged in: end the workers' login
        // too, and keep them from logging in until the unblock is done.
        let shared = self.workers_login.clone();
        let mut state = shared.as_deref().map(|s| lock(&s.inner));
        self.log_out(state.as_deref_mut())?;
        if self.is_opensc_piv() {
            if !crate::token::opensc::unblocks_with_set_pin() {
                return Err(TokenError::MechanismUnsupported(format!(
                    "unblocking a PIV PIN with the PUK in this OpenSC configuration: add `pkcs11 {{ user_pin_unblock_style = set_pin_in_unlogged_session; }}` to the `app default` block of {}",
                    crate::token::opensc::config_path().display()
                )));
            }
            return self
                .session
                .set_pin(&secret(so_pin), &secret(new))
                // A wrong PUK: RESET RETRY COUNTER answered 63Cx (PUK tries left) or 6983 (PUK
                // blocked): PIN_INCORRECT / PIN_LOCKED; PKCS#11 has no PUK counter to report.
                .map_err(TokenError::from);
        }
        self.session
            .login(UserType::So, Some(&secret(so_pin)))
            .map_err(TokenError::from)?;
        let result = self
            .session
            .init_pin(&secret(new))
            .map_err(TokenError::from);
        let _ = self.session.logout();
        result
    }

    /// Delete a key pair (by CKA_ID) that has no certificate. A key with a certificate is
    /// refused: an encryption key may still be needed to open old bids, a signing key is the
    /// vendor's identity until the certificate is removed with the token vendor's tools.
    pub fn delete_key(&mut self, id: &[u8]) -> Result<usize, TokenError> {
        self.writable()?;
        let with_id = |class| {
            self.session
                .find_objects(&[Attribute::Class(class), Attribute::Id(id.to_vec())])
        };
        if let Some(&cert) = with_id(ObjectClass::CERTIFICATE)?.first() {
            let subject = self
                .session
                .get_attributes(cert, &[AttributeType::Value])?
                .into_iter()
                .find_map(|a| match a {
                    Attribute::Value(v) => CertInfo::from_der(&v).ok().map(|c| c.subject),
                    _ => None,
                })
                .unwrap_or_else(|| "a certificate".to_owned());
            return Err(TokenError::BadRequest(format!(
                "key {} still has the certificate {subject}; it is kept (it may be needed to open old bids)",
                hex::encode(id)
            )));
        }
        let mut objects = with_id(ObjectClass::PRIVATE_KEY)?;
        if objects.is_empty() {
            return Err(TokenError::KeyNotFound(format!(
                "id {} on token {:?}",
                hex::encode(id),
                self.description.label
            )));
        }
        objects.extend(with_id(ObjectClass::PUBLIC_KEY)?);
        for o in &objects {
            self.session.destroy_object(*o)?;
        }
        Ok(objects.len())
    }

    /// Whether a key type can be generated here (from the token's mechanism list).
    pub fn can_generate(&self, spec: KeySpec) -> Result<bool, TokenError> {
        let want = match spec {
            KeySpec::Rsa(_) => cryptoki::mechanism::MechanismType::RSA_PKCS_KEY_PAIR_GEN,
            KeySpec::P256 | KeySpec::P384 => cryptoki::mechanism::MechanismType::ECC_KEY_PAIR_GEN,
        };
        Ok(self
            .module
            .loaded
            .ctx
            .get_mechanism_list(self.slot)?
            .contains(&want))
    }
}
