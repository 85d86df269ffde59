//! The key interface between CMS and the token layer.
//!
//! The CMS code never talks PKCS#11: a vendor's token key is a [`SigningKey`], a pokja member's
//! token key is a [`DecryptionKey`]. The token layer (`agent/src/token/`) implements these traits;
//! [`super::software`] implements them over PKCS#8 files for tests and benchmarks.
//!
//! Both traits are object-safe. Implementations need not be `Send` or `Sync`: the CMS code calls a
//! key from one thread at a time, and only for the small operations (one signature per file, one
//! key unwrap per file).

use zeroize::Zeroizing;

/// Digest used for a CMS signature (RFC 5754): the token layer's hash algorithm, so a digest
/// computed here is signed there without conversion.
pub use crate::token::HashAlg as DigestAlgorithm;

/// RSA key-transport padding (RFC 8017; RFC 4055 for OAEP in CMS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyTransportPadding {
    /// RSAES-PKCS1-v1_5 (older tokens).
    Pkcs1v15,
    /// RSAES-OAEP with SHA-1 and MGF1-SHA-1 (the RFC 4055 default parameters).
    OaepSha1,
    /// RSAES-OAEP with SHA-256 and MGF1-SHA-256 (Segel's default).
    OaepSha256,
}

/// A key that can sign: a vendor's token key together with its certificate.
pub trait SigningKey {
    /// The signer's certificate (DER).
    fn certificate_der(&self) -> &[u8];
    /// Intermediate certificates (DER) to include in the SignedData.
    fn chain_der(&self) -> Vec<Vec<u8>>;
    /// Sign a precomputed digest.
    ///
    /// RSA: PKCS#1 v1.5 signature over `DigestInfo(digest)`; EC: ECDSA signature encoded as the
    /// DER `SEQUENCE { r, s }`.
    fn sign_digest(&self, alg: DigestAlgorithm, digest: &[u8]) -> Result<Vec<u8>, KeyError>;
}

/// A key that can decrypt: a pokja member's token key together with its certificate.
pub trait DecryptionKey {
    /// The recipient's certificate (DER).
    fn certificate_der(&self) -> &[u8];
    /// RSA key transport. `expected_len` lets PKCS#1 v1.5 use implicit rejection: on bad
    /// padding the key returns random bytes of that length instead of an error, so a caller
    /// cannot be used as a padding oracle (the content decryption then fails like any tamper).
    fn decrypt_key_transport(
        &self,
        padding: KeyTransportPadding,
        encrypted_key: &[u8],
        expected_len: Option<usize>,
    ) -> Result<Zeroizing<Vec<u8>>, KeyError>;
    /// ECDH (standard or cofactor; the same for P-256/P-384) shared secret Z — the
    /// x-coordinate — with the originator's ephemeral public point (uncompressed SEC1 bytes).
    fn ecdh_shared_secret(&self, peer_point: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError>;
}

/// Why a key operation failed. The token layer boxes its own error into [`KeyError::Token`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The token failed; `code` is a stable string for reports (e.g. `pin_locked`,
    /// `token_absent`), `source` the token layer's error.
    #[error("token error ({code}): {source}")]
    Token {
        /// Stable code, chosen by the token layer.
        code: &'static str,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The key cannot perform this operation (wrong key type, mechanism not supported).
    #[error("operation not supported by this key: {0}")]
    Unsupported(String),
    /// The key refused the input (bad length, bad point, decryption failure).
    #[error("key operation failed: {0}")]
    Failed(String),
}

impl KeyError {
    /// Wrap a token-layer error.
    pub fn token(
        code: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        KeyError::Token {
            code,
            source: source.into(),
        }
    }

    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            KeyError::Token { code, .. } => code,
            KeyError::Unsupported(_) => "key_unsupported",
            KeyError::Failed(_) => "key_failed",
        }
    }
}
