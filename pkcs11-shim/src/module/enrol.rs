//! Enrolment onto a flash drive or folder, and passphrase changes — the functions that write key
//! files (PKCS#11 v2.40 §5.5 `C_InitToken`/`C_InitPIN`/`C_SetPIN`, §5.7 `C_CreateObject`, §5.14
//! `C_GenerateKeyPair`).
//!
//! Every writable configured folder shows a *blank slot*. Its token works like a new smart card:
//! 1. `C_InitToken(slot, soPin, label)` names the new file `LABEL.p12` (which must not exist) and
//!    sets an SO PIN that lives in memory only — it guards step 2 and is then forgotten, because
//!    a key file has exactly one passphrase;
//! 2. `C_Login(CKU_SO, soPin)` + `C_InitPIN(pin)` writes `LABEL.p12`: an empty PKCS#12 whose
//!    passphrase is `pin`. The slot is now that file's slot (same slot ID, sessions go on) and the
//!    folder gets a new blank slot at the next scan.
//!
//! On any key-file token, with the user logged in and a read/write session:
//! - `C_GenerateKeyPair` (RSA 2048–4096, EC P-256/P-384) adds the key to the file at once, so a
//!   key whose certificate takes days to arrive is never only in memory;
//! - `C_CreateObject` of an X.509 certificate adds it; a certificate whose public key matches a
//!   key gets that key's `CKA_ID` (localKeyId), others (a CA chain) are stored unlinked.
//!
//! `C_SetPIN(old, new)` re-encrypts the file under the new passphrase. Every write builds the
//! whole file anew (PBES2 AES-256-CBC, PBKDF2-HMAC-SHA256, SHA-256 MAC, 600,000 iterations) and
//! replaces the old one atomically ([`crate::store`]). New passphrases must be at least
//! [`MIN_NEW_PIN_LEN`] bytes.

use super::{MIN_NEW_PIN_LEN, Module};
use crate::error::{Error, Result};
use crate::keys::{Curve, PrivateKey, PublicKey};
use crate::object::{Object, ulong};
use crate::pkcs12::{self, CertEntry, Contents, KeyEntry};
use crate::store::Mode;
use crate::token::Token;
use cryptoki_sys::*;
use secrecy::{ExposeSecret, SecretString};

/// Largest RSA key generated (larger keys are slow to use and no CA here asks for them).
const RSA_MAX_BITS: usize = 4096;

/// What `C_GenerateKeyPair` was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPairSpec {
    pub kind: KeyKind,
    pub id: Option<Vec<u8>>,
    pub label: Option<String>,
}

/// Algorithm and size of a key to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa(usize),
    Ec(Curve),
}

impl KeyKind {
    /// Generates the key (slow for RSA: call it without the module lock).
    pub fn generate(self) -> Result<PrivateKey> {
        match self {
            KeyKind::Rsa(bits) => PrivateKey::generate_rsa(bits),
            KeyKind::Ec(curve) => Ok(PrivateKey::generate_ec(curve)),
        }
    }
}

fn ulong_value(v: &[u8]) -> Result<CK_ULONG> {
    Ok(CK_ULONG::from_ne_bytes(
        v.try_into().map_err(|_| Error::AttributeValueInvalid)?,
    ))
}

fn flag_value(v: &[u8]) -> Result<bool> {
    match v {
        [b] => Ok(*b != CK_FALSE),
        _ => Err(Error::AttributeValueInvalid),
    }
}

fn find(template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)], t: CK_ATTRIBUTE_TYPE) -> Option<&[u8]> {
    template
        .iter()
        .find(|(ty, _)| *ty == t)
        .map(|(_, v)| v.as_slice())
}

/// Objects here are token objects in the file: `CKA_TOKEN = false` can not be honoured.
fn check_token_attribute(template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)]) -> Result<()> {
    match find(template, CKA_TOKEN) {
        Some(v) if !flag_value(v)? => Err(Error::AttributeValueInvalid),
        _ => Ok(()),
    }
}

fn label_value(v: &[u8]) -> Result<String> {
    String::from_utf8(v.to_vec()).map_err(|_| Error::AttributeValueInvalid)
}

impl KeyPairSpec {
    /// Reads the mechanism and templates of `C_GenerateKeyPair` (v2.40 §2.1.4, §2.3.6).
    pub fn parse(
        mechanism: CK_MECHANISM_TYPE,
        public: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
        private: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    ) -> Result<Self> {
        check_token_attribute(public)?;
        check_token_attribute(private)?;
        let kind = match mechanism {
            CKM_RSA_PKCS_KEY_PAIR_GEN => {
                let bits = find(public, CKA_MODULUS_BITS).ok_or(Error::TemplateIncomplete)?;
                let bits = usize::try_from(ulong_value(bits)?)
                    .map_err(|_| Error::AttributeValueInvalid)?;
                if !(2048..=RSA_MAX_BITS).contains(&bits) || bits % 8 != 0 {
                    return Err(Error::KeySizeRange);
                }
                if let Some(e) = find(public, CKA_PUBLIC_EXPONENT) {
                    let start = e.iter().take_while(|b| **b == 0).count();
                    if e[start..] != [1, 0, 1] {
                        return Err(Error::AttributeValueInvalid);
                    }
                }
                KeyKind::Rsa(bits)
            }
            CKM_EC_KEY_PAIR_GEN => {
                let params = find(public, CKA_EC_PARAMS)
                    .or_else(|| find(private, CKA_EC_PARAMS))
                    .ok_or(Error::TemplateIncomplete)?;
                KeyKind::Ec(Curve::from_ec_params(params).ok_or(Error::AttributeValueInvalid)?)
            }
            _ => return Err(Error::MechanismInvalid),
        };
        let id = find(private, CKA_ID)
            .or_else(|| find(public, CKA_ID))
            .filter(|v| !v.is_empty())
            .map(<[u8]>::to_vec);
        let label = find(private, CKA_LABEL)
            .or_else(|| find(public, CKA_LABEL))
            .filter(|v| !v.is_empty())
            .map(label_value)
            .transpose()?;
        Ok(KeyPairSpec { kind, id, label })
    }
}

/// The file name `C_InitToken` makes from a 32-byte blank-padded label.
fn file_label(label: &str) -> Result<String> {
    let name = label.trim_end_matches([' ', '\0']).trim_start();
    let bad = name.is_empty()
        || name.starts_with('.')
        || name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control());
    if bad {
        return Err(Error::ArgumentsBad);
    }
    Ok(name.to_owned())
}

fn check_new_pin(pin: &SecretString) -> Result<()> {
    if pin.expose_secret().len() < MIN_NEW_PIN_LEN {
        return Err(Error::PinLenRange);
    }
    Ok(())
}

fn public_of(entry: &KeyEntry) -> Option<PublicKey> {
    PrivateKey::from_pkcs8(&entry.pkcs8_der)
        .ok()
        .flatten()
        .map(|k| k.public())
}

impl Module {
    /// `C_Login` on a blank slot: only the SO set by `C_InitToken` (v2.40 §5.5).
    pub(super) fn login_blank(
        &mut self,
        slot_id: CK_SLOT_ID,
        user: CK_USER_TYPE,
        pin: &SecretString,
    ) -> Result<()> {
        let slot = self.slots.get_mut(&slot_id).ok_or(Error::SlotIdInvalid)?;
        let blank = slot.blank.as_ref().ok_or(Error::GeneralError)?;
        let token = slot.token.as_mut().ok_or(Error::DeviceRemoved)?;
        match user {
            CKU_SO => {
                let so_pin = blank.so_pin.as_ref().ok_or(Error::UserPinNotInitialized)?;
                if so_pin.expose_secret() != pin.expose_secret() {
                    return Err(Error::PinIncorrect);
                }
                token.so_logged_in = true;
                Ok(())
            }
            CKU_USER => Err(Error::UserPinNotInitialized),
            _ => Err(Error::UserTypeInvalid),
        }
    }

    /// `C_InitToken` on a blank slot: names the new key file and sets the SO PIN.
    pub fn init_token(
        &mut self,
        slot_id: CK_SLOT_ID,
        so_pin: &SecretString,
        label: &str,
    ) -> Result<()> {
        self.slot(slot_id)?;
        self.refresh_slot(slot_id);
        if self.sessions.values().any(|s| s.slot == slot_id) {
            return Err(Error::SessionExists);
        }
        let slot = self.slots.get_mut(&slot_id).ok_or(Error::SlotIdInvalid)?;
        // A key file is never re-initialised: that would destroy the vendor's only key.
        let blank = slot.blank.as_mut().ok_or(Error::FunctionNotSupported)?;
        let token = slot.token.as_mut().ok_or(Error::TokenNotPresent)?;
        if let Some(existing) = &blank.so_pin
            && existing.expose_secret() != so_pin.expose_secret()
        {
            return Err(Error::PinIncorrect);
        }
        check_new_pin(so_pin)?;
        let name = file_label(label)?;
        let path = slot.path.join(format!("{name}.p12"));
        if path.symlink_metadata().is_ok() {
            return Err(Error::KeyFileExists);
        }
        token.label = name.clone();
        blank.label = Some(name);
        blank.so_pin = Some(so_pin.clone());
        Ok(())
    }

    /// `C_InitPIN` by the SO of a blank slot: writes the new, empty key file with passphrase
    /// `pin`; the slot becomes that file's slot.
    pub fn init_pin(&mut self, h: CK_SESSION_HANDLE, pin: &SecretString) -> Result<()> {
        let (session, token) = self.session_token(h)?;
        let (slot_id, rw, generation) = (session.slot, session.rw, session.generation);
        if !rw {
            return Err(Error::SessionReadOnly);
        }
        if !token.so_logged_in {
            return Err(Error::UserNotLoggedIn);
        }
        check_new_pin(pin)?;
        let slot = self.slots.get_mut(&slot_id).ok_or(Error::SlotIdInvalid)?;
        let Some(label) = slot.blank.as_ref().and_then(|b| b.label.clone()) else {
            // SO logged in on a file token can not happen (C_Login refuses CKU_SO there).
            return Err(Error::UserNotLoggedIn);
        };
        let folder = slot.path.clone();
        let path = folder.join(format!("{label}.p12"));
        let bytes = pkcs12::build(&Contents::default(), pin, pkcs12::write::DEFAULT_ITERATIONS)
            .map_err(|_| Error::GeneralError)?;
        crate::store::write_atomically(&path, &bytes, Mode::Create)?;
        let mut token = Token::load(&path, generation, &mut self.handles).ok_or_else(|| {
            tracing::warn!(path = %path.display(), "the key file just written does not load");
            Error::WriteFailed
        })?;
        // The SO stays logged in until C_Logout (v2.40 §5.5); it can do nothing on a file token.
        token.so_logged_in = true;
        slot.path = path.clone();
        slot.blank = None;
        slot.token = Some(token);
        self.slot_by_path.remove(&folder);
        self.slot_by_path.insert(path, slot_id);
        Ok(())
    }

    /// The slot of a read/write session whose user is logged in, for the writing functions.
    fn writable(&mut self, h: CK_SESSION_HANDLE) -> Result<CK_SLOT_ID> {
        let (session, token) = self.session_token(h)?;
        if !session.rw {
            return Err(Error::SessionReadOnly);
        }
        if !token.logged_in {
            return Err(Error::UserNotLoggedIn);
        }
        Ok(session.slot)
    }

    /// Rewrites the file of `slot_id`'s (logged-in) token with `contents`.
    fn rewrite(&mut self, slot_id: CK_SLOT_ID, contents: Contents) -> Result<()> {
        let Module { slots, handles, .. } = self;
        let token = slots
            .get_mut(&slot_id)
            .and_then(|s| s.token.as_mut())
            .ok_or(Error::DeviceRemoved)?;
        let pin = token.unlocked()?.1.clone();
        token.rewrite(contents, &pin, Mode::Replace, handles)
    }

    fn token_mut(&mut self, slot_id: CK_SLOT_ID) -> Result<&mut Token> {
        self.slots
            .get_mut(&slot_id)
            .and_then(|s| s.token.as_mut())
            .ok_or(Error::DeviceRemoved)
    }

    /// `C_SetPIN`: re-encrypts the key file under `new` (the user need not be logged in).
    #[tracing::instrument(skip_all)]
    pub fn set_pin(
        &mut self,
        h: CK_SESSION_HANDLE,
        old: &SecretString,
        new: &SecretString,
    ) -> Result<()> {
        let (session, _) = self.session_token(h)?;
        let (slot_id, rw) = (session.slot, session.rw);
        if !rw {
            return Err(Error::SessionReadOnly);
        }
        if self.slot(slot_id)?.blank.is_some() {
            return Err(Error::UserPinNotInitialized);
        }
        let contents = pkcs12::open(self.token_mut(slot_id)?.data(), old)?;
        check_new_pin(new)?;
        let Module { slots, handles, .. } = self;
        let token = slots
            .get_mut(&slot_id)
            .and_then(|s| s.token.as_mut())
            .ok_or(Error::DeviceRemoved)?;
        token.rewrite(contents, new, Mode::Replace, handles)
    }

    /// First half of `C_GenerateKeyPair`: may this session add a key?
    pub fn check_key_pair(&mut self, h: CK_SESSION_HANDLE) -> Result<()> {
        self.writable(h).map(|_| ())
    }

    /// Second half of `C_GenerateKeyPair`: stores the generated `key` in the file and returns
    /// the handles of its public and private key objects.
    pub fn store_key_pair(
        &mut self,
        h: CK_SESSION_HANDLE,
        key: PrivateKey,
        spec: &KeyPairSpec,
    ) -> Result<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE)> {
        let slot_id = self.writable(h)?;
        let public = key.public();
        let id = spec.id.clone().unwrap_or_else(|| public.id());
        let token = self.token_mut(slot_id)?;
        let mut contents = token.unlocked()?.0.clone();
        let taken = contents.keys.iter().any(|k| {
            let existing = k
                .local_key_id
                .clone()
                .or_else(|| public_of(k).map(|p| p.id()));
            existing.as_deref() == Some(id.as_slice())
        });
        if taken {
            return Err(Error::AttributeValueInvalid);
        }
        contents.keys.push(KeyEntry {
            pkcs8_der: key.to_pkcs8()?,
            local_key_id: Some(id.clone()),
            friendly_name: Some(spec.label.clone().unwrap_or_else(|| token.label.clone())),
        });
        self.rewrite(slot_id, contents)?;
        let token = self.token_mut(slot_id)?;
        let handle_of = |class: CK_OBJECT_CLASS| {
            token
                .objects
                .iter()
                .find(|(_, o)| o.matches(&[(CKA_CLASS, ulong(class)), (CKA_ID, id.clone())]))
                .map(|(h, _)| *h)
                .ok_or(Error::GeneralError)
        };
        Ok((handle_of(CKO_PUBLIC_KEY)?, handle_of(CKO_PRIVATE_KEY)?))
    }

    /// `C_CreateObject`: imports an X.509 certificate into the key file.
    pub fn create_object(
        &mut self,
        h: CK_SESSION_HANDLE,
        template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    ) -> Result<CK_OBJECT_HANDLE> {
        let class = find(template, CKA_CLASS).ok_or(Error::TemplateIncomplete)?;
        if ulong_value(class)? != CKO_CERTIFICATE {
            // Keys come from C_GenerateKeyPair; importing key material is not offered.
            return Err(Error::AttributeValueInvalid);
        }
        if let Some(t) = find(template, CKA_CERTIFICATE_TYPE)
            && ulong_value(t)? != CKC_X_509
        {
            return Err(Error::AttributeValueInvalid);
        }
        check_token_attribute(template)?;
        let der = find(template, CKA_VALUE)
            .ok_or(Error::TemplateIncomplete)?
            .to_vec();
        let cert_key = Object::certificate_public_key(&der).ok_or(Error::AttributeValueInvalid)?;
        let slot_id = self.writable(h)?;
        let token = self.token_mut(slot_id)?;
        let mut contents = token.unlocked()?.0.clone();
        if !contents.certs.iter().any(|c| c.der == der) {
            // The key holding this certificate's public key decides the link, whatever CKA_ID
            // the caller chose; an unmatched certificate (a CA) keeps the caller's id and label.
            let owner = contents
                .keys
                .iter()
                .find(|k| public_of(k).as_ref() == Some(&cert_key));
            let template_label = find(template, CKA_LABEL)
                .filter(|v| !v.is_empty())
                .map(label_value)
                .transpose()?;
            let (local_key_id, friendly_name) = match owner {
                Some(k) => (
                    k.local_key_id.clone().or_else(|| Some(cert_key.id())),
                    k.friendly_name.clone().or(template_label),
                ),
                None => (
                    find(template, CKA_ID)
                        .filter(|v| !v.is_empty())
                        .map(<[u8]>::to_vec),
                    template_label,
                ),
            };
            contents.certs.push(CertEntry {
                der: der.clone(),
                local_key_id,
                friendly_name,
            });
            self.rewrite(slot_id, contents)?;
        }
        let token = self.token_mut(slot_id)?;
        token
            .objects
            .iter()
            .find(|(_, o)| {
                o.matches(&[
                    (CKA_CLASS, ulong(CKO_CERTIFICATE)),
                    (CKA_VALUE, der.clone()),
                ])
            })
            .map(|(h, _)| *h)
            .ok_or(Error::GeneralError)
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn key_pair_templates_are_checked() {
        let bits = |n: CK_ULONG| vec![(CKA_MODULUS_BITS, ulong(n))];
        let rsa = KeyPairSpec::parse(CKM_RSA_PKCS_KEY_PAIR_GEN, &bits(3072), &[]).expect("rsa");
        assert_eq!(rsa.kind, KeyKind::Rsa(3072));
        assert_eq!(
            KeyPairSpec::parse(CKM_RSA_PKCS_KEY_PAIR_GEN, &bits(1024), &[]),
            Err(Error::KeySizeRange)
        );
        assert_eq!(
            KeyPairSpec::parse(CKM_RSA_PKCS_KEY_PAIR_GEN, &[], &[]),
            Err(Error::TemplateIncomplete)
        );
        let mut e3 = bits(2048);
        e3.push((CKA_PUBLIC_EXPONENT, vec![3]));
        assert_eq!(
            KeyPairSpec::parse(CKM_RSA_PKCS_KEY_PAIR_GEN, &e3, &[]),
            Err(Error::AttributeValueInvalid)
        );
        let p384 = vec![(CKA_EC_PARAMS, Curve::P384.ec_params())];
        let private = vec![(CKA_ID, vec![7]), (CKA_LABEL, b"budi".to_vec())];
        let ec = KeyPairSpec::parse(CKM_EC_KEY_PAIR_GEN, &p384, &private).expect("ec");
        assert_eq!(ec.kind, KeyKind::Ec(Curve::P384));
        assert_eq!(ec.id, Some(vec![7]));
        assert_eq!(ec.label.as_deref(), Some("budi"));
        // secp256k1 is not offered.
        let k1 = vec![(CKA_EC_PARAMS, vec![6, 5, 0x2b, 0x81, 4, 0, 10])];
        assert_eq!(
            KeyPairSpec::parse(CKM_EC_KEY_PAIR_GEN, &k1, &[]),
            Err(Error::AttributeValueInvalid)
        );
        let session_key = vec![(CKA_TOKEN, vec![CK_FALSE])];
        assert_eq!(
            KeyPairSpec::parse(CKM_EC_KEY_PAIR_GEN, &p384, &session_key),
            Err(Error::AttributeValueInvalid)
        );
        assert_eq!(
            KeyPairSpec::parse(CKM_AES_KEY_GEN, &p384, &[]),
            Err(Error::MechanismInvalid)
        );
    }

    #[test]
    fn init_token_labels_must_be_plain_file_names() {
        assert_eq!(file_label("budi   ").as_deref(), Ok("budi"));
        for bad in ["", "   ", ".hidden", "a/b", "..", "x\u{1}"] {
            assert_eq!(file_label(bad), Err(Error::ArgumentsBad), "{bad:?}");
        }
    }
}
