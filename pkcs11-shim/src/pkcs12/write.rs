//! Writing PKCS#12 key files (RFC 7292) for enrolment and passphrase changes.
//!
//! The layout is what `openssl pkcs12 -export -certpbe NONE` writes, with modern parameters:
//! - an unencrypted `Data` safe holding the certificate bags (certificates are public; a token
//!   shows them before login, so Firefox and the agent can list them without the passphrase);
//! - a `Data` safe holding one `pkcs8ShroudedKeyBag` per key, PBES2 with PBKDF2-HMAC-SHA256 and
//!   AES-256-CBC (RFC 8018), random 16-byte salt and IV;
//! - a SHA-256 MAC (RFC 7292 Appendix B KDF) with the same iteration count, so guessing the
//!   passphrase through the MAC is no cheaper than through the key.
//!
//! Keys and certificates carry `localKeyId` and, when given, `friendlyName` (RFC 7292 §4.2,
//! PKCS#9), which is how every reader (OpenSSL, NSS, Windows, this module) pairs them.

use super::{FRIENDLY_NAME, ID_DATA, LOCAL_KEY_ID, Pkcs12Error, malformed};
use der::asn1::{BmpString, OctetString, SetOfVec};
use der::{Any, Encode};
use hmac::{Hmac, Mac};
use pkcs12::kdf::{Pkcs12KeyType, derive_key_utf8};
use rand_core::{OsRng, RngCore};
use secrecy::{ExposeSecret, SecretString};
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::Attribute;
use zeroize::Zeroizing;

/// PBKDF2 and MAC iterations of files the module writes (OWASP 2023 figure for PBKDF2-SHA256,
/// and what NSS 3.87 `pk12util` uses).
pub const DEFAULT_ITERATIONS: u32 = 600_000;

const SHA256: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");

/// A private key to store: PKCS#8 `PrivateKeyInfo` DER.
#[derive(Debug)]
pub struct KeyToWrite<'a> {
    pub pkcs8_der: &'a [u8],
    pub local_key_id: Option<&'a [u8]>,
    pub friendly_name: Option<&'a str>,
}

/// A certificate to store (DER).
#[derive(Debug)]
pub struct CertToWrite<'a> {
    pub der: &'a [u8],
    pub local_key_id: Option<&'a [u8]>,
    pub friendly_name: Option<&'a str>,
}

fn enc_err(e: impl std::fmt::Display) -> Pkcs12Error {
    Pkcs12Error::Malformed(format!("encoding PKCS#12: {e}"))
}

fn attributes(
    local_key_id: Option<&[u8]>,
    friendly_name: Option<&str>,
) -> Result<Option<x509_cert::attr::Attributes>, Pkcs12Error> {
    let mut set = SetOfVec::new();
    if let Some(id) = local_key_id {
        let mut values = SetOfVec::new();
        values
            .insert(Any::encode_from(&OctetString::new(id).map_err(enc_err)?).map_err(enc_err)?)
            .map_err(enc_err)?;
        set.insert(Attribute {
            oid: LOCAL_KEY_ID,
            values,
        })
        .map_err(enc_err)?;
    }
    if let Some(name) = friendly_name {
        let mut values = SetOfVec::new();
        values
            .insert(
                Any::encode_from(&BmpString::from_utf8(name).map_err(enc_err)?).map_err(enc_err)?,
            )
            .map_err(enc_err)?;
        set.insert(Attribute {
            oid: FRIENDLY_NAME,
            values,
        })
        .map_err(enc_err)?;
    }
    Ok((!set.is_empty()).then_some(set))
}

fn data_content_info(
    bags: &[pkcs12::safe_bag::SafeBag],
) -> Result<cms::content_info::ContentInfo, Pkcs12Error> {
    let safe_contents = bags.to_vec().to_der().map_err(enc_err)?;
    Ok(cms::content_info::ContentInfo {
        content_type: ID_DATA,
        content: Any::encode_from(&OctetString::new(safe_contents).map_err(enc_err)?)
            .map_err(enc_err)?,
    })
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    OsRng.fill_bytes(&mut b);
    b
}

/// PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) encryption of one PKCS#8 key.
fn shroud(pkcs8: &[u8], password: &str, iterations: u32) -> Result<Vec<u8>, Pkcs12Error> {
    let salt: [u8; 16] = random();
    let iv: [u8; 16] = random();
    let params = pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(iterations, &salt, &iv)
        .map_err(enc_err)?;
    let scheme = pkcs5::EncryptionScheme::from(params);
    let ct = scheme
        .encrypt(password.as_bytes(), pkcs8)
        .map_err(enc_err)?;
    let alg: AlgorithmIdentifierOwned =
        der::Decode::from_der(&scheme.to_der().map_err(enc_err)?).map_err(malformed)?;
    pkcs12::pbe_params::EncryptedPrivateKeyInfo {
        encryption_algorithm: alg,
        encrypted_data: OctetString::new(ct).map_err(enc_err)?,
    }
    .to_der()
    .map_err(enc_err)
}

/// Builds a PKCS#12 file holding `keys` and `certs`, protected by `passphrase`.
#[tracing::instrument(skip_all)]
pub fn build(
    keys: &[KeyToWrite<'_>],
    certs: &[CertToWrite<'_>],
    passphrase: &SecretString,
    iterations: u32,
) -> Result<Vec<u8>, Pkcs12Error> {
    let password = passphrase.expose_secret();
    let mac_iterations = i32::try_from(iterations).map_err(enc_err)?;
    let mut cert_bags = Vec::new();
    for c in certs {
        let cert_bag = pkcs12::cert_type::CertBag {
            cert_id: pkcs12::PKCS_12_X509_CERT_OID,
            cert_value: OctetString::new(c.der).map_err(enc_err)?,
        };
        cert_bags.push(pkcs12::safe_bag::SafeBag {
            bag_id: pkcs12::PKCS_12_CERT_BAG_OID,
            bag_value: cert_bag.to_der().map_err(enc_err)?,
            bag_attributes: attributes(c.local_key_id, c.friendly_name)?,
        });
    }
    let mut key_bags = Vec::new();
    for k in keys {
        key_bags.push(pkcs12::safe_bag::SafeBag {
            bag_id: pkcs12::PKCS_12_PKCS8_KEY_BAG_OID,
            bag_value: shroud(k.pkcs8_der, password, iterations)?,
            bag_attributes: attributes(k.local_key_id, k.friendly_name)?,
        });
    }
    let mut safes = Vec::new();
    if !cert_bags.is_empty() {
        safes.push(data_content_info(&cert_bags)?);
    }
    if !key_bags.is_empty() {
        safes.push(data_content_info(&key_bags)?);
    }
    let auth_safe = safes.to_der().map_err(enc_err)?;

    let mac_salt: [u8; 16] = random();
    let mac_key = Zeroizing::new(
        derive_key_utf8::<sha2::Sha256>(
            password,
            &mac_salt,
            Pkcs12KeyType::Mac,
            mac_iterations,
            32,
        )
        .map_err(enc_err)?,
    );
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&mac_key).map_err(enc_err)?;
    mac.update(&auth_safe);
    let digest = mac.finalize().into_bytes();

    let pfx = pkcs12::pfx::Pfx {
        version: pkcs12::pfx::Version::V3,
        auth_safe: cms::content_info::ContentInfo {
            content_type: ID_DATA,
            content: Any::encode_from(&OctetString::new(auth_safe).map_err(enc_err)?)
                .map_err(enc_err)?,
        },
        mac_data: Some(pkcs12::mac_data::MacData {
            mac: pkcs12::digest_info::DigestInfo {
                algorithm: AlgorithmIdentifierOwned {
                    oid: SHA256,
                    parameters: Some(Any::encode_from(&der::asn1::Null).map_err(enc_err)?),
                },
                digest: OctetString::new(digest.to_vec()).map_err(enc_err)?,
            },
            mac_salt: OctetString::new(mac_salt.to_vec()).map_err(enc_err)?,
            iterations: mac_iterations,
        }),
    };
    pfx.to_der().map_err(enc_err)
}
