//! Token keys as CMS keys: a certificate on a token, reached through the [`TokenService`]
//! workers, implements [`SigningKey`] (vendors) and [`DecryptionKey`] (pokja members).

use std::sync::Arc;

use zeroize::Zeroizing;

use crate::cms::{DecryptionKey, DigestAlgorithm, KeyError, KeyTransportPadding, SigningKey};
use crate::pin::PinSource;
use crate::token::{CertificateEntry, DecryptPadding, SignRequest, TokenError, TokenService};

/// A token certificate and its private key, with the PIN source to log in with.
#[derive(Clone)]
pub struct TokenKey {
    service: TokenService,
    cert: CertificateEntry,
    chain: Vec<Vec<u8>>,
    pin: Arc<dyn PinSource>,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKey")
            .field("subject", &self.cert.info.subject)
            .field("token", &self.cert.token_label)
            .finish_non_exhaustive()
    }
}

impl TokenKey {
    /// `chain`: intermediate certificates (DER) to include when signing.
    pub fn new(
        service: TokenService,
        cert: CertificateEntry,
        chain: Vec<Vec<u8>>,
        pin: Arc<dyn PinSource>,
    ) -> Self {
        TokenKey {
            service,
            cert,
            chain,
            pin,
        }
    }

    /// The certificate this key belongs to.
    pub fn certificate(&self) -> &CertificateEntry {
        &self.cert
    }

    /// Log in now (one PIN entry for a whole batch).
    pub fn login(&self) -> Result<(), TokenError> {
        self.service.login(&self.cert, Arc::clone(&self.pin)).wait()
    }
}

/// A token failure as a CMS key error; [`super::error_code`] recovers the token's code.
pub(crate) fn key_error(e: TokenError) -> KeyError {
    KeyError::token(e.code().as_str(), e)
}

impl SigningKey for TokenKey {
    fn certificate_der(&self) -> &[u8] {
        &self.cert.info.der
    }

    fn chain_der(&self) -> Vec<Vec<u8>> {
        self.chain.clone()
    }

    fn sign_digest(&self, alg: DigestAlgorithm, digest: &[u8]) -> Result<Vec<u8>, KeyError> {
        let request = SignRequest {
            scheme: None,
            hash: alg,
        };
        self.service
            .sign_digest(&self.cert, &request, digest.to_vec(), Arc::clone(&self.pin))
            .wait()
            .map_err(key_error)
    }
}

impl DecryptionKey for TokenKey {
    fn certificate_der(&self) -> &[u8] {
        &self.cert.info.der
    }

    fn decrypt_key_transport(
        &self,
        padding: KeyTransportPadding,
        encrypted_key: &[u8],
        expected_len: Option<usize>,
    ) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let padding = match padding {
            KeyTransportPadding::Pkcs1v15 => DecryptPadding::Pkcs1v15 { expected_len },
            KeyTransportPadding::OaepSha1 => DecryptPadding::OaepSha1,
            KeyTransportPadding::OaepSha256 => DecryptPadding::OaepSha256,
        };
        self.service
            .decrypt(
                &self.cert,
                padding,
                encrypted_key.to_vec(),
                Arc::clone(&self.pin),
            )
            .wait()
            .map_err(key_error)
    }

    fn ecdh_shared_secret(&self, peer_point: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        self.service
            .ecdh(&self.cert, peer_point.to_vec(), Arc::clone(&self.pin))
            .wait()
            .map_err(key_error)
    }
}
