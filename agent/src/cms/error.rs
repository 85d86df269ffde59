//! The CMS layer's error type. One enum; each variant names the cause a user can act on.

use std::io;

/// Everything that can go wrong while signing, verifying, sealing or opening.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CmsError {
    /// Reading or writing a file failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// The input ended before the structure did.
    #[error("truncated input: {0}")]
    Truncated(&'static str),
    /// The input is not well-formed BER/DER, or breaks a limit (depth, length).
    #[error("malformed ASN.1 at byte {offset}: {reason}")]
    Malformed {
        /// Byte offset in the stream where the problem was seen.
        offset: u64,
        /// What was wrong.
        reason: &'static str,
    },
    /// A structure decoded but its content is not what RFC 5652 allows.
    #[error("invalid CMS structure: {0}")]
    Invalid(String),
    /// An algorithm (cipher, digest, signature, key transport) Segel does not implement.
    #[error("unsupported algorithm: {0}")]
    UnsupportedAlgorithm(String),
    /// The authentication tag (GCM) or padding (CBC) check failed: the file was changed.
    #[error("the encrypted content was tampered with or corrupted ({0})")]
    Tampered(&'static str),
    /// The bid is not addressed to the key's certificate.
    #[error("not addressed to this certificate; recipients are: {}", .recipients.join("; "))]
    NotARecipient {
        /// The recipients the file is addressed to (issuer + serial, or SKI).
        recipients: Vec<String>,
    },
    /// A recipient certificate cannot be used to encrypt.
    #[error("recipient certificate {subject} cannot be used for encryption: {reason}")]
    RecipientCannotEncrypt {
        /// Subject of the offending certificate.
        subject: String,
        /// Why (key usage, key type).
        reason: String,
    },
    /// The signer's certificate or key cannot sign.
    #[error("signing certificate cannot be used: {0}")]
    SignerUnusable(String),
    /// The inner signature did not verify.
    #[error("bad signature: {0}")]
    BadSignature(String),
    /// The self-check after sealing failed (should never happen; nothing is written).
    #[error("self-check of the sealed file failed: {0}")]
    SelfCheck(String),
    /// A certificate could not be parsed.
    #[error("bad certificate: {0}")]
    Certificate(String),
    /// The token (or software key) failed.
    #[error(transparent)]
    Key(#[from] super::keys::KeyError),
}

impl CmsError {
    /// A stable machine-readable code for reports and the HTTP API.
    pub fn code(&self) -> &'static str {
        match self {
            CmsError::Io(_) => "io",
            CmsError::Truncated(_) => "truncated",
            CmsError::Malformed { .. } => "malformed",
            CmsError::Invalid(_) => "invalid_structure",
            CmsError::UnsupportedAlgorithm(_) => "unsupported_algorithm",
            CmsError::Tampered(_) => "tampered",
            CmsError::NotARecipient { .. } => "not_a_recipient",
            CmsError::RecipientCannotEncrypt { .. } => "recipient_cannot_encrypt",
            CmsError::SignerUnusable(_) => "signer_unusable",
            CmsError::BadSignature(_) => "bad_signature",
            CmsError::SelfCheck(_) => "self_check_failed",
            CmsError::Certificate(_) => "bad_certificate",
            CmsError::Key(e) => e.code(),
        }
    }
}

impl From<der::Error> for CmsError {
    fn from(e: der::Error) -> Self {
        CmsError::Invalid(e.to_string())
    }
}

/// Shorthand used across the module.
pub type Result<T> = std::result::Result<T, CmsError>;
