//! PKCS#12 (RFC 7292) key files as real tools write them: OpenSSL 3 (PBES2 AES-256-CBC with
//! PBKDF2-HMAC-SHA256, SHA-256 MAC), `openssl -legacy` and older Windows / NSS exports
//! (pbeWithSHAAnd3-KeyTripleDES-CBC keys, pbeWithSHAAnd40BitRC2-CBC certificates, SHA-1 MAC).
//!
//! [`inspect`] reads what is visible without the passphrase (structure, unencrypted certificates);
//! [`open`] checks the MAC and decrypts every bag. Decrypted key bytes live in `Zeroizing`.

mod ber;
mod pbe;
pub mod write;

use der::asn1::{BmpString, OctetString};
use der::{Decode, Encode};
use secrecy::{ExposeSecret, SecretString};
use spki::AlgorithmIdentifierOwned;
use zeroize::Zeroizing;

/// Files larger than this are not key files (a PKCS#12 with a key and a chain is a few KB).
pub const MAX_FILE_SIZE: u64 = 1 << 20;

const ID_DATA: der::oid::ObjectIdentifier = const_oid::db::rfc5911::ID_DATA;
const ID_ENCRYPTED_DATA: der::oid::ObjectIdentifier = const_oid::db::rfc5911::ID_ENCRYPTED_DATA;
const LOCAL_KEY_ID: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.21");
const FRIENDLY_NAME: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.20");
const PBES2: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.13");

/// Why a key file could not be read.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Pkcs12Error {
    /// The MAC did not verify, or decryption failed with this passphrase.
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// Not DER PKCS#12, or truncated.
    #[error("malformed PKCS#12: {0}")]
    Malformed(String),
    /// Valid PKCS#12 using something this module does not implement (public-key mode, RC4, ...).
    #[error("unsupported PKCS#12 feature: {0}")]
    Unsupported(String),
    /// Larger than [`MAX_FILE_SIZE`].
    #[error("file too large to be a key file")]
    TooLarge,
}

fn malformed(e: impl std::fmt::Display) -> Pkcs12Error {
    Pkcs12Error::Malformed(e.to_string())
}

/// A certificate bag: the DER certificate and the bag attributes that link it to a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertEntry {
    pub der: Vec<u8>,
    pub local_key_id: Option<Vec<u8>>,
    pub friendly_name: Option<String>,
}

/// A decrypted private key bag (PKCS#8 `PrivateKeyInfo` DER, wiped on drop).
#[derive(Debug, Clone)]
pub struct KeyEntry {
    pub pkcs8_der: Zeroizing<Vec<u8>>,
    pub local_key_id: Option<Vec<u8>>,
    pub friendly_name: Option<String>,
}

/// What [`inspect`] sees without the passphrase.
#[derive(Debug, Default)]
pub struct Inspection {
    /// Certificates stored unencrypted (OpenSSL `-certpbe NONE`, some Java exports).
    pub public_certs: Vec<CertEntry>,
    /// Whether a MAC is present (otherwise a wrong passphrase shows only as a decryption failure).
    pub has_mac: bool,
}

/// Everything inside the file, after [`open`].
#[derive(Debug, Default, Clone)]
pub struct Contents {
    pub keys: Vec<KeyEntry>,
    pub certs: Vec<CertEntry>,
}

/// The authenticated-safe bytes of a PFX and its MAC data.
fn outer(data: &[u8]) -> Result<(Vec<u8>, Option<::pkcs12::mac_data::MacData>), Pkcs12Error> {
    if data.len() as u64 > MAX_FILE_SIZE {
        return Err(Pkcs12Error::TooLarge);
    }
    // NSS writes BER (indefinite lengths, chunked OCTET STRINGs); the MAC covers the content
    // octets, which normalising does not change.
    let der = ber::to_der(data)?;
    let pfx = ::pkcs12::pfx::Pfx::from_der(&der).map_err(malformed)?;
    if pfx.auth_safe.content_type != ID_DATA {
        return Err(Pkcs12Error::Unsupported(
            "public-key integrity mode (signed authSafe)".into(),
        ));
    }
    let content = pfx
        .auth_safe
        .content
        .decode_as::<OctetString>()
        .map_err(malformed)?;
    Ok((content.into_bytes(), pfx.mac_data))
}

fn content_infos(auth_safe: &[u8]) -> Result<Vec<cms::content_info::ContentInfo>, Pkcs12Error> {
    Vec::<cms::content_info::ContentInfo>::from_der(&ber::to_der(auth_safe)?).map_err(malformed)
}

/// Reads what a PKCS#12 file shows without its passphrase. Fails on anything that is not a
/// structurally valid PFX, so corrupt and truncated files never become tokens.
pub fn inspect(data: &[u8]) -> Result<Inspection, Pkcs12Error> {
    let (auth_safe, mac) = outer(data)?;
    let mut out = Inspection {
        has_mac: mac.is_some(),
        ..Inspection::default()
    };
    for ci in content_infos(&auth_safe)? {
        if ci.content_type == ID_DATA {
            let bytes = ci.content.decode_as::<OctetString>().map_err(malformed)?;
            let mut keys = Vec::new();
            collect_bags(bytes.as_bytes(), None, &mut keys, &mut out.public_certs, 0)?;
            // Unencrypted key bags are not "public": they are only shown after login.
        } else if ci.content_type != ID_ENCRYPTED_DATA {
            return Err(Pkcs12Error::Unsupported(format!(
                "authSafe content type {}",
                ci.content_type
            )));
        }
    }
    Ok(out)
}

/// Writes `contents` as a new file protected by `passphrase` (see [`write`]). Keys without a
/// localKeyId keep none; CRL and secret bags of the original are not carried over.
pub fn build(
    contents: &Contents,
    passphrase: &SecretString,
    iterations: u32,
) -> Result<Vec<u8>, Pkcs12Error> {
    let keys: Vec<write::KeyToWrite<'_>> = contents
        .keys
        .iter()
        .map(|k| write::KeyToWrite {
            pkcs8_der: &k.pkcs8_der,
            local_key_id: k.local_key_id.as_deref(),
            friendly_name: k.friendly_name.as_deref(),
        })
        .collect();
    let certs: Vec<write::CertToWrite<'_>> = contents
        .certs
        .iter()
        .map(|c| write::CertToWrite {
            der: &c.der,
            local_key_id: c.local_key_id.as_deref(),
            friendly_name: c.friendly_name.as_deref(),
        })
        .collect();
    write::build(&keys, &certs, passphrase, iterations)
}

/// Checks the MAC with `passphrase` and decrypts every bag.
#[tracing::instrument(skip_all)]
pub fn open(data: &[u8], passphrase: &SecretString) -> Result<Contents, Pkcs12Error> {
    let (auth_safe, mac) = outer(data)?;
    let password = passphrase.expose_secret();
    if let Some(mac) = &mac {
        pbe::verify_mac(mac, password, &auth_safe)?;
    }
    let mut out = Contents::default();
    for ci in content_infos(&auth_safe)? {
        if ci.content_type == ID_DATA {
            let bytes = ci.content.decode_as::<OctetString>().map_err(malformed)?;
            collect_bags(
                bytes.as_bytes(),
                Some(password),
                &mut out.keys,
                &mut out.certs,
                0,
            )?;
        } else if ci.content_type == ID_ENCRYPTED_DATA {
            let ed = ci
                .content
                .decode_as::<cms::encrypted_data::EncryptedData>()
                .map_err(malformed)?;
            let eci = ed.enc_content_info;
            let Some(ct) = eci.encrypted_content else {
                continue;
            };
            let plain = decrypt(&eci.content_enc_alg, password, ct.as_bytes(), mac.is_some())?;
            collect_bags(&plain, Some(password), &mut out.keys, &mut out.certs, 0)?;
        } else {
            return Err(Pkcs12Error::Unsupported(format!(
                "authSafe content type {}",
                ci.content_type
            )));
        }
    }
    Ok(out)
}

/// Password-based decryption of a bag or an `EncryptedData`. Without a MAC, a padding failure is
/// the only sign of a wrong passphrase.
fn decrypt(
    alg: &AlgorithmIdentifierOwned,
    password: &str,
    ct: &[u8],
    mac_checked: bool,
) -> Result<Zeroizing<Vec<u8>>, Pkcs12Error> {
    let failed = || {
        if mac_checked {
            Pkcs12Error::Malformed("decryption failed although the MAC verified".into())
        } else {
            Pkcs12Error::WrongPassphrase
        }
    };
    if alg.oid == PBES2 {
        let der = with_null_prf_parameters(alg).to_der().map_err(malformed)?;
        let scheme = pkcs5::EncryptionScheme::from_der(&der)
            .map_err(|e| Pkcs12Error::Unsupported(format!("PBES2 parameters: {e}")))?;
        // PBES2 passwords are the UTF-8 bytes (RFC 8018 §3); OpenSSL and NSS agree.
        return scheme
            .decrypt(password.as_bytes(), ct)
            .map(Zeroizing::new)
            .map_err(|_| failed());
    }
    match pbe::LegacyPbe::from_algorithm(alg)? {
        Some(legacy) => legacy.decrypt(password, ct).ok_or_else(failed),
        None => Err(Pkcs12Error::Unsupported(format!(
            "encryption algorithm {}",
            alg.oid
        ))),
    }
}

/// The PBES2 algorithm with explicit NULL parameters on the PBKDF2 PRF. NSS omits them (RFC 8018
/// Appendix B.1.2 gives them as NULL); `pkcs5` 0.7 insists on them. Anything that does not decode
/// as PBES2 with PBKDF2 is returned unchanged for `pkcs5` to judge.
fn with_null_prf_parameters(alg: &AlgorithmIdentifierOwned) -> AlgorithmIdentifierOwned {
    use ::pkcs12::pbe_params::{Pbes2Params, Pbkdf2Params};
    let patched = || -> Option<AlgorithmIdentifierOwned> {
        let mut params: Pbes2Params = alg.parameters.as_ref()?.decode_as().ok()?;
        let mut kdf: Pbkdf2Params = params.kdf.parameters.as_ref()?.decode_as().ok()?;
        if kdf.prf.parameters.is_some() {
            return None;
        }
        kdf.prf.parameters = Some(der::Any::encode_from(&der::asn1::Null).ok()?);
        params.kdf.parameters = Some(der::Any::encode_from(&kdf).ok()?);
        Some(AlgorithmIdentifierOwned {
            oid: alg.oid,
            parameters: Some(der::Any::encode_from(&params).ok()?),
        })
    };
    patched().unwrap_or_else(|| alg.clone())
}

/// Reads bag attributes: localKeyId and friendlyName (RFC 7292 §4.2).
fn bag_attributes(bag: &::pkcs12::safe_bag::SafeBag) -> (Option<Vec<u8>>, Option<String>) {
    let mut id = None;
    let mut name = None;
    for attr in bag.bag_attributes.iter().flat_map(|s| s.iter()) {
        let Some(value) = attr.values.iter().next() else {
            continue;
        };
        if attr.oid == LOCAL_KEY_ID {
            id = value
                .decode_as::<OctetString>()
                .ok()
                .map(OctetString::into_bytes);
        } else if attr.oid == FRIENDLY_NAME {
            name = value.decode_as::<BmpString>().ok().map(|s| s.to_string());
        }
    }
    (id, name)
}

/// The bag's value with the `[0] EXPLICIT` wrapper removed.
fn bag_value(bag: &::pkcs12::safe_bag::SafeBag) -> Result<Vec<u8>, Pkcs12Error> {
    // pkcs12 0.1 keeps the whole `[0]` TLV in `bag_value`; unwrap it if so.
    let any = der::asn1::AnyRef::from_der(&bag.bag_value).map_err(malformed)?;
    let explicit0 = der::Tag::ContextSpecific {
        constructed: true,
        number: der::TagNumber::N0,
    };
    if der::Tagged::tag(&any) == explicit0 {
        Ok(any.value().to_vec())
    } else {
        Ok(bag.bag_value.clone())
    }
}

fn collect_bags(
    safe_contents: &[u8],
    password: Option<&str>,
    keys: &mut Vec<KeyEntry>,
    certs: &mut Vec<CertEntry>,
    depth: u8,
) -> Result<(), Pkcs12Error> {
    if depth > 4 {
        return Err(malformed("safeContents nested too deep"));
    }
    let safe_contents = ber::to_der(safe_contents)?;
    let bags = Vec::<::pkcs12::safe_bag::SafeBag>::from_der(&safe_contents).map_err(malformed)?;
    for bag in &bags {
        let (local_key_id, friendly_name) = bag_attributes(bag);
        let value = bag_value(bag)?;
        if bag.bag_id == ::pkcs12::PKCS_12_CERT_BAG_OID {
            let cb = ::pkcs12::cert_type::CertBag::from_der(&value).map_err(malformed)?;
            if cb.cert_id != ::pkcs12::PKCS_12_X509_CERT_OID {
                continue;
            }
            certs.push(CertEntry {
                der: cb.cert_value.as_bytes().to_vec(),
                local_key_id,
                friendly_name,
            });
        } else if bag.bag_id == ::pkcs12::PKCS_12_PKCS8_KEY_BAG_OID {
            let Some(password) = password else { continue };
            let epki = ::pkcs12::pbe_params::EncryptedPrivateKeyInfo::from_der(&value)
                .map_err(malformed)?;
            // A shrouded key inside an already-MAC-checked file: wrong-password is impossible
            // only if there is a MAC, which `open` checked first.
            let plain = decrypt(
                &epki.encryption_algorithm,
                password,
                epki.encrypted_data.as_bytes(),
                false,
            )?;
            keys.push(KeyEntry {
                pkcs8_der: plain,
                local_key_id,
                friendly_name,
            });
        } else if bag.bag_id == ::pkcs12::PKCS_12_KEY_BAG_OID {
            if password.is_none() {
                continue;
            }
            keys.push(KeyEntry {
                pkcs8_der: Zeroizing::new(value),
                local_key_id,
                friendly_name,
            });
        } else if bag.bag_id == ::pkcs12::PKCS_12_SAFE_CONTENTS_BAG_OID {
            collect_bags(&value, password, keys, certs, depth + 1)?;
        }
        // CRL and secret bags carry nothing a signing token shows.
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests;
