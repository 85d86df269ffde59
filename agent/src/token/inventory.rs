//! What is on a token: its description, certificates, and the private keys behind them.

use std::path::PathBuf;

use cryptoki::context::Pkcs11;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki::slot::{Slot, TokenInfo};
use serde::Serialize;

use super::error::TokenError;
use crate::certinfo::{CertInfo, PublicKey, Usage, strip_leading_zeros};

/// Flags of a token that matter to a user (PKCS#11 v2.40 §3.2, CK_TOKEN_INFO).
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct TokenFlags {
    pub present: bool,
    pub login_required: bool,
    /// A PIN pad or other protected authentication path: the PIN is not typed on the computer.
    pub protected_authentication_path: bool,
    pub user_pin_initialized: bool,
    pub token_initialized: bool,
    pub pin_count_low: bool,
    pub pin_final_try: bool,
    pub pin_locked: bool,
    pub pin_to_be_changed: bool,
    pub write_protected: bool,
    pub removable: bool,
    pub hardware: bool,
}

/// A token as `segel tokens` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct TokenDescription {
    pub label: String,
    pub manufacturer: String,
    pub model: String,
    pub serial: String,
    pub module: PathBuf,
    pub slot_id: u64,
    pub slot_description: String,
    pub flags: TokenFlags,
}

/// Read a token's description (module-level calls; safe from any thread with OS locking).
pub(crate) fn describe(
    ctx: &Pkcs11,
    slot: Slot,
    module: &std::path::Path,
) -> Result<TokenDescription, TokenError> {
    let slot_info = ctx.get_slot_info(slot)?;
    let info = ctx.get_token_info(slot)?;
    Ok(TokenDescription {
        label: info.label().trim().to_owned(),
        manufacturer: info.manufacturer_id().trim().to_owned(),
        model: info.model().trim().to_owned(),
        serial: info.serial_number().trim().to_owned(),
        module: module.to_path_buf(),
        slot_id: slot.id(),
        slot_description: slot_info.slot_description().trim().to_owned(),
        flags: flags_of(
            &info,
            slot_info.token_present(),
            slot_info.removable_device(),
            slot_info.hardware_slot(),
        ),
    })
}

pub(crate) fn flags_of(
    info: &TokenInfo,
    present: bool,
    removable: bool,
    hardware: bool,
) -> TokenFlags {
    TokenFlags {
        present,
        login_required: info.login_required(),
        protected_authentication_path: info.protected_authentication_path(),
        user_pin_initialized: info.user_pin_initialized(),
        token_initialized: info.token_initialized(),
        pin_count_low: info.user_pin_count_low(),
        pin_final_try: info.user_pin_final_try(),
        pin_locked: info.user_pin_locked(),
        pin_to_be_changed: info.user_pin_to_be_changed(),
        write_protected: info.write_protected(),
        removable,
        hardware,
    }
}

/// A private key object as found on the token.
#[derive(Clone, Debug)]
pub(crate) struct KeyObject {
    pub handle: ObjectHandle,
    pub id: Vec<u8>,
    pub key_type: Option<KeyType>,
    pub can_sign: bool,
    pub can_decrypt: bool,
    pub can_derive: bool,
    pub modulus: Option<Vec<u8>>,
}

/// A public key object (used to tie a certificate to its key before login).
#[derive(Clone, Debug)]
struct PublicKeyObject {
    id: Vec<u8>,
    modulus: Option<Vec<u8>>,
    ec_point: Option<Vec<u8>>,
}

/// A certificate on a token, with its key if one was found.
#[derive(Clone, Debug)]
pub struct CertificateEntry {
    /// Shared: the entry is cloned into every job, the certificate need not be.
    pub info: std::sync::Arc<CertInfo>,
    pub label: String,
    pub id: Vec<u8>,
    /// Token label and serial the certificate lives on.
    pub token_label: String,
    pub token_serial: String,
    /// How the private key was found: `private-key` (seen), `public-key` (inferred from a
    /// public key object with the same CKA_ID, before login), or none.
    pub key_evidence: Option<&'static str>,
    pub usage: Vec<Usage>,
    pub(crate) token_ref: super::TokenRef,
}

/// CKA_EC_POINT is a DER OCTET STRING holding the point (PKCS#11 v2.40 §2.3.3); some
/// tokens return the bare point. Accept both.
pub(crate) fn unwrap_ec_point(raw: &[u8]) -> Vec<u8> {
    use der::Decode;
    match der::asn1::OctetString::from_der(raw) {
        Ok(os) if matches!(os.as_bytes().first(), Some(0x04)) => os.as_bytes().to_vec(),
        _ => raw.to_vec(),
    }
}

fn bytes_attr(attrs: &[Attribute], kind: AttributeType) -> Option<Vec<u8>> {
    attrs.iter().find_map(|a| match (kind, a) {
        (AttributeType::Id, Attribute::Id(v))
        | (AttributeType::Label, Attribute::Label(v))
        | (AttributeType::Value, Attribute::Value(v))
        | (AttributeType::Modulus, Attribute::Modulus(v))
        | (AttributeType::EcPoint, Attribute::EcPoint(v))
        | (AttributeType::EcParams, Attribute::EcParams(v)) => Some(v.clone()),
        _ => None,
    })
}

fn bool_attr(attrs: &[Attribute], kind: AttributeType) -> bool {
    attrs.iter().any(|a| match (kind, a) {
        (AttributeType::Sign, Attribute::Sign(v))
        | (AttributeType::Decrypt, Attribute::Decrypt(v))
        | (AttributeType::Derive, Attribute::Derive(v))
        | (AttributeType::Unwrap, Attribute::Unwrap(v)) => *v,
        _ => false,
    })
}

pub(crate) fn private_keys(session: &Session) -> Result<Vec<KeyObject>, TokenError> {
    let handles = session.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])?;
    let mut keys = Vec::with_capacity(handles.len());
    for handle in handles {
        let attrs = session.get_attributes(
            handle,
            &[
                AttributeType::Id,
                AttributeType::KeyType,
                AttributeType::Sign,
                AttributeType::Decrypt,
                AttributeType::Derive,
                AttributeType::Unwrap,
                AttributeType::Modulus,
            ],
        )?;
        keys.push(KeyObject {
            handle,
            id: bytes_attr(&attrs, AttributeType::Id).unwrap_or_default(),
            key_type: attrs.iter().find_map(|a| match a {
                Attribute::KeyType(k) => Some(*k),
                _ => None,
            }),
            can_sign: bool_attr(&attrs, AttributeType::Sign),
            can_decrypt: bool_attr(&attrs, AttributeType::Decrypt)
                || bool_attr(&attrs, AttributeType::Unwrap),
            can_derive: bool_attr(&attrs, AttributeType::Derive),
            modulus: bytes_attr(&attrs, AttributeType::Modulus),
        });
    }
    Ok(keys)
}

fn public_keys(session: &Session) -> Result<Vec<PublicKeyObject>, TokenError> {
    let handles = session.find_objects(&[Attribute::Class(ObjectClass::PUBLIC_KEY)])?;
    let mut keys = Vec::with_capacity(handles.len());
    for handle in handles {
        let attrs = session.get_attributes(
            handle,
            &[
                AttributeType::Id,
                AttributeType::Modulus,
                AttributeType::EcPoint,
            ],
        )?;
        keys.push(PublicKeyObject {
            id: bytes_attr(&attrs, AttributeType::Id).unwrap_or_default(),
            modulus: bytes_attr(&attrs, AttributeType::Modulus),
            ec_point: bytes_attr(&attrs, AttributeType::EcPoint).map(|p| unwrap_ec_point(&p)),
        });
    }
    Ok(keys)
}

/// Does this private key belong to the certificate? `None` when the key does not expose
/// enough to tell (EC private keys carry no point): then CKA_ID decides.
fn private_key_matches(cert: &CertInfo, key: &KeyObject) -> Option<bool> {
    match (&cert.public_key, key.key_type) {
        (PublicKey::Rsa { modulus, .. }, Some(KeyType::RSA)) => key
            .modulus
            .as_ref()
            .map(|m| strip_leading_zeros(m) == strip_leading_zeros(modulus)),
        (PublicKey::Ec { .. }, Some(KeyType::EC)) => None,
        _ => Some(false),
    }
}

/// The private key for a certificate: same CKA_ID and (where visible) same public key;
/// failing that, an RSA key with the same modulus whatever its CKA_ID.
pub(crate) fn key_for_certificate<'k>(
    cert: &CertInfo,
    id: &[u8],
    keys: &'k [KeyObject],
) -> Option<&'k KeyObject> {
    keys.iter()
        .find(|k| k.id == id && private_key_matches(cert, k) != Some(false))
        .or_else(|| {
            keys.iter()
                .find(|k| private_key_matches(cert, k) == Some(true))
        })
}

fn public_key_matches(cert: &CertInfo, id: &[u8], key: &PublicKeyObject) -> bool {
    let same_key = match &cert.public_key {
        PublicKey::Rsa { modulus, .. } => {
            key.modulus.as_deref().map(strip_leading_zeros) == Some(strip_leading_zeros(modulus))
        }
        PublicKey::Ec { point, .. } => key.ec_point.as_deref() == Some(point.as_slice()),
        PublicKey::Other { .. } => false,
    };
    same_key || (key.id == id && key.modulus.is_none() && key.ec_point.is_none())
}

/// Usage of a certificate with a key: what the certificate allows AND the key can do.
fn usage_of(cert: &CertInfo, key: Option<&KeyObject>) -> Vec<Usage> {
    let mut usage = Vec::new();
    let (key_sign, key_decrypt) = match key {
        Some(k) => (k.can_sign, k.can_decrypt || k.can_derive),
        None => (true, true),
    };
    if cert.can_sign && key_sign {
        usage.push(Usage::Sign);
    }
    if cert.can_decrypt && key_decrypt {
        usage.push(Usage::Decrypt);
    }
    usage
}

/// List the certificates on a token and tie each to its private key where one is found.
/// Before login, private keys are usually hidden; then a public key object with the same
/// CKA_ID and key stands in as evidence that the private key is there.
pub(crate) fn certificates(
    session: &Session,
    token: &TokenDescription,
    token_ref: super::TokenRef,
) -> Result<Vec<CertificateEntry>, TokenError> {
    let handles = session.find_objects(&[Attribute::Class(ObjectClass::CERTIFICATE)])?;
    let privs = private_keys(session)?;
    let pubs = public_keys(session)?;
    let mut out = Vec::new();
    for handle in handles {
        let attrs = session.get_attributes(
            handle,
            &[
                AttributeType::Value,
                AttributeType::Id,
                AttributeType::Label,
            ],
        )?;
        let Some(der) = bytes_attr(&attrs, AttributeType::Value) else {
            continue;
        };
        let info = match CertInfo::from_der(&der) {
            Ok(info) => info,
            Err(e) => {
                tracing::warn!(token = %token.label, "skipping unreadable certificate object: {e}");
                continue;
            }
        };
        let id = bytes_attr(&attrs, AttributeType::Id).unwrap_or_default();
        let label = bytes_attr(&attrs, AttributeType::Label)
            .map(|l| String::from_utf8_lossy(&l).trim().to_owned())
            .unwrap_or_default();
        let key = key_for_certificate(&info, &id, &privs);
        let evidence = if key.is_some() {
            Some("private-key")
        } else if pubs.iter().any(|p| public_key_matches(&info, &id, p)) {
            Some("public-key")
        } else {
            None
        };
        let usage = if evidence.is_some() {
            usage_of(&info, key)
        } else {
            Vec::new()
        };
        out.push(CertificateEntry {
            info: std::sync::Arc::new(info),
            label,
            id,
            token_label: token.label.clone(),
            token_serial: token.serial.clone(),
            key_evidence: evidence,
            usage,
            token_ref: token_ref.clone(),
        });
    }
    Ok(out)
}
