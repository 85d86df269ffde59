//! Object identifiers used by the CMS code, with the RFC that defines each.

use const_oid::ObjectIdentifier as Oid;

// RFC 5652 content types.
pub const ID_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.1");
pub const ID_SIGNED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.2");
pub const ID_ENVELOPED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.3");
/// RFC 5083.
pub const ID_AUTH_ENVELOPED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.1.23");

// RFC 5652 §11 signed attributes; RFC 5035 signing-certificate-v2.
pub const ATTR_CONTENT_TYPE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.3");
pub const ATTR_MESSAGE_DIGEST: Oid = Oid::new_unwrap("1.2.840.113549.1.9.4");
pub const ATTR_SIGNING_TIME: Oid = Oid::new_unwrap("1.2.840.113549.1.9.5");
pub const ATTR_SIGNING_CERT_V2: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.2.47");

// Digests (RFC 5754, RFC 3370).
pub const SHA1: Oid = Oid::new_unwrap("1.3.14.3.2.26");
pub const SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
pub const SHA384: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.2");
pub const SHA512: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.3");

// RSA (RFC 8017, RFC 4055).
pub const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
pub const RSAES_OAEP: Oid = Oid::new_unwrap("1.2.840.113549.1.1.7");
pub const MGF1: Oid = Oid::new_unwrap("1.2.840.113549.1.1.8");
pub const RSASSA_PSS: Oid = Oid::new_unwrap("1.2.840.113549.1.1.10");
pub const SHA1_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.5");
pub const SHA256_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.11");
pub const SHA384_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.12");
pub const SHA512_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.13");

// EC (RFC 5480, RFC 5758, RFC 5753).
pub const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
pub const SECP256R1: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
pub const SECP384R1: Oid = Oid::new_unwrap("1.3.132.0.34");
pub const ECDSA_SHA256: Oid = Oid::new_unwrap("1.2.840.10045.4.3.2");
pub const ECDSA_SHA384: Oid = Oid::new_unwrap("1.2.840.10045.4.3.3");
pub const ECDSA_SHA512: Oid = Oid::new_unwrap("1.2.840.10045.4.3.4");
pub const DH_STD_SHA1KDF: Oid = Oid::new_unwrap("1.3.133.16.840.63.0.2");
pub const DH_STD_SHA224KDF: Oid = Oid::new_unwrap("1.3.132.1.11.0");
pub const DH_STD_SHA256KDF: Oid = Oid::new_unwrap("1.3.132.1.11.1");
pub const DH_STD_SHA384KDF: Oid = Oid::new_unwrap("1.3.132.1.11.2");
pub const DH_STD_SHA512KDF: Oid = Oid::new_unwrap("1.3.132.1.11.3");
pub const DH_COF_SHA1KDF: Oid = Oid::new_unwrap("1.3.133.16.840.63.0.3");
pub const DH_COF_SHA256KDF: Oid = Oid::new_unwrap("1.3.132.1.14.1");
pub const DH_COF_SHA384KDF: Oid = Oid::new_unwrap("1.3.132.1.14.2");
pub const DH_COF_SHA512KDF: Oid = Oid::new_unwrap("1.3.132.1.14.3");

// AES (RFC 3565, RFC 5084).
pub const AES128_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.2");
pub const AES192_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.22");
pub const AES256_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.42");
pub const AES128_GCM: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.6");
pub const AES192_GCM: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.26");
pub const AES256_GCM: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.46");
pub const AES128_WRAP: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.5");
pub const AES192_WRAP: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.25");
pub const AES256_WRAP: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.45");

// X.509 extensions and extended key usages (RFC 5280).
pub const EXT_KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.15");
pub const EXT_BASIC_CONSTRAINTS: Oid = Oid::new_unwrap("2.5.29.19");
pub const EXT_EXTENDED_KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.37");
pub const EXT_SUBJECT_KEY_ID: Oid = Oid::new_unwrap("2.5.29.14");
pub const EKU_ANY: Oid = Oid::new_unwrap("2.5.29.37.0");
pub const EKU_EMAIL_PROTECTION: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.4");
pub const EKU_DOCUMENT_SIGNING: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.36");
/// Adobe Authentic Documents Trust: the only EKU on BSrE user certificates.
pub const EKU_ADOBE_AUTHENTIC_DOCUMENTS: Oid = Oid::new_unwrap("1.2.840.113583.1.1.5");
/// Microsoft Document Signing.
pub const EKU_MS_DOCUMENT_SIGNING: Oid = Oid::new_unwrap("1.3.6.1.4.1.311.10.3.12");
