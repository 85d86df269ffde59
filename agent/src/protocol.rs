//! Wire types shared by the CLI, the daemon's API and the browser extension.
//!
//! The error codes here are a stable contract: the page library re-throws them as
//! `Error.code`, scripts match on them in `--json` output. Add codes; never rename one.

use std::time::SystemTime;

use serde::Serialize;

use crate::certinfo::{Usage, rfc3339};
use crate::token::CertificateEntry;

/// A stable, machine-readable error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ErrorCode {
    /// No PKCS#11 module could be found or none was configured.
    NoModule,
    /// A PKCS#11 module could not be loaded or initialised.
    ModuleLoadFailed,
    /// No token matches the request (none inserted, or another label).
    TokenNotFound,
    /// The token was removed or is not present any more.
    TokenAbsent,
    /// The token or its reader reported a device error.
    DeviceError,
    /// The PIN was wrong.
    PinIncorrect,
    /// The PIN is blocked; it needs an unblock with the SO PIN / PUK.
    PinLocked,
    /// One try is left; Segel will not use it without an explicit confirmation.
    PinFinalTry,
    /// A PIN is needed and no source (prompt, file, environment, PIN pad) could give one.
    PinRequired,
    /// The PIN does not have a form the token accepts (length, characters).
    PinInvalid,
    /// The token cannot do the requested mechanism.
    MechanismUnsupported,
    /// No certificate matches the selector.
    CertificateNotFound,
    /// The selector matches more than one certificate.
    CertificateAmbiguous,
    /// The certificate is expired, not yet valid, or its usage forbids the operation.
    CertificateInvalid,
    /// The certificate has no private key on the token.
    KeyNotFound,
    /// Decryption failed (bad padding, wrong key, corrupt data — deliberately not told apart).
    DecryptionFailed,
    /// The request itself is malformed.
    BadRequest,
    /// Any other token failure.
    TokenError,
    /// A bug or an unexpected state inside Segel.
    Internal,
    /// Reading or writing a file failed (missing, unreadable, disk full, already exists).
    IoError,
    /// A CMS file is truncated or not well-formed (or breaks a size/depth limit).
    MalformedInput,
    /// A CMS file uses an algorithm Segel does not implement.
    UnsupportedAlgorithm,
    /// A sealed bid's authentication tag or padding does not check: it was changed or damaged.
    Tampered,
    /// A sealed bid is not addressed to the chosen certificate.
    NotARecipient,
    /// A recipient certificate cannot be used for encryption (e.g. a signing-only certificate).
    RecipientCannotEncrypt,
    /// A signature does not verify.
    SignatureInvalid,
    /// A file breaks the procurement file rules (name length, symbols, duplicates).
    FileRejected,
    /// The PC/SC service (pcscd) is not reachable, so smart cards and readers cannot be seen.
    PcscUnavailable,
    /// Daemon API: the credential (`Authorization: Bearer …`) is missing or wrong.
    Unauthorized,
    /// Daemon API: the Host header is not the daemon's loopback address and port (DNS rebinding).
    HostRejected,
    /// Daemon API: an Origin header is present and is not Segel's extension.
    OriginRejected,
    /// Daemon API: the requesting site's origin is not allowed by policy (or may not do this).
    SiteNotAllowed,
    /// Daemon API: the site is allowed by policy but the user has not granted it consent.
    ConsentRequired,
    /// Daemon API: the request body is larger than the limit.
    PayloadTooLarge,
    /// Daemon API: no such endpoint or object.
    NotFound,
    /// Daemon API: the endpoint does not take this method.
    MethodNotAllowed,
    /// Daemon API: the client was too slow sending the request.
    RequestTimeout,
    /// Daemon API: the body is not of the media type the endpoint takes (application/json).
    UnsupportedMediaType,
    /// The daemon (`segel serve`) is not running for this user.
    DaemonNotRunning,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NoModule => "NO_MODULE",
            ErrorCode::ModuleLoadFailed => "MODULE_LOAD_FAILED",
            ErrorCode::TokenNotFound => "TOKEN_NOT_FOUND",
            ErrorCode::TokenAbsent => "TOKEN_ABSENT",
            ErrorCode::DeviceError => "DEVICE_ERROR",
            ErrorCode::PinIncorrect => "PIN_INCORRECT",
            ErrorCode::PinLocked => "PIN_LOCKED",
            ErrorCode::PinFinalTry => "PIN_FINAL_TRY",
            ErrorCode::PinRequired => "PIN_REQUIRED",
            ErrorCode::PinInvalid => "PIN_INVALID",
            ErrorCode::MechanismUnsupported => "MECHANISM_UNSUPPORTED",
            ErrorCode::CertificateNotFound => "CERTIFICATE_NOT_FOUND",
            ErrorCode::CertificateAmbiguous => "CERTIFICATE_AMBIGUOUS",
            ErrorCode::CertificateInvalid => "CERTIFICATE_INVALID",
            ErrorCode::KeyNotFound => "KEY_NOT_FOUND",
            ErrorCode::DecryptionFailed => "DECRYPTION_FAILED",
            ErrorCode::BadRequest => "BAD_REQUEST",
            ErrorCode::TokenError => "TOKEN_ERROR",
            ErrorCode::Internal => "INTERNAL",
            ErrorCode::IoError => "IO_ERROR",
            ErrorCode::MalformedInput => "MALFORMED_INPUT",
            ErrorCode::UnsupportedAlgorithm => "UNSUPPORTED_ALGORITHM",
            ErrorCode::Tampered => "TAMPERED",
            ErrorCode::NotARecipient => "NOT_A_RECIPIENT",
            ErrorCode::RecipientCannotEncrypt => "RECIPIENT_CANNOT_ENCRYPT",
            ErrorCode::SignatureInvalid => "SIGNATURE_INVALID",
            ErrorCode::FileRejected => "FILE_REJECTED",
            ErrorCode::PcscUnavailable => "PCSC_UNAVAILABLE",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::HostRejected => "HOST_REJECTED",
            ErrorCode::OriginRejected => "ORIGIN_REJECTED",
            ErrorCode::SiteNotAllowed => "SITE_NOT_ALLOWED",
            ErrorCode::ConsentRequired => "CONSENT_REQUIRED",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ErrorCode::RequestTimeout => "REQUEST_TIMEOUT",
            ErrorCode::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            ErrorCode::DaemonNotRunning => "DAEMON_NOT_RUNNING",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One certificate as `segel certs --json` lists it and the API returns it (a stable
/// contract; the API adds `valid_now` and the certificate itself).
#[derive(Debug, Serialize)]
pub struct CertRow {
    pub fingerprint_sha256: String,
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
    pub days_left: i64,
    pub key_type: &'static str,
    pub key_bits: Option<usize>,
    pub usage: Vec<Usage>,
    pub token: String,
    pub token_serial: String,
    pub label: String,
    pub id: String,
    /// How the private key was found: "private-key", "public-key" (before login), or null.
    pub private_key: Option<&'static str>,
}

impl CertRow {
    pub fn from_entry(c: &CertificateEntry, now: SystemTime) -> Self {
        CertRow {
            fingerprint_sha256: c.info.fingerprint_sha256.clone(),
            subject: c.info.subject.clone(),
            issuer: c.info.issuer.clone(),
            serial: c.info.serial.clone(),
            not_before: rfc3339(c.info.not_before),
            not_after: rfc3339(c.info.not_after),
            days_left: c.info.days_left(now),
            key_type: c.info.public_key.type_name(),
            key_bits: c.info.public_key.bits(),
            usage: c.usage.clone(),
            token: c.token_label.clone(),
            token_serial: c.token_serial.clone(),
            label: c.label.clone(),
            id: hex::encode(&c.id),
            private_key: c.key_evidence,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn error_code_serialises_as_its_wire_string() {
        for code in [
            ErrorCode::PinIncorrect,
            ErrorCode::TokenAbsent,
            ErrorCode::NoModule,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }
}
