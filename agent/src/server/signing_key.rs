//! A token key as a CMS [`SigningKey`], for `POST /v1/sign` with `format: cms`.
//! Called from a blocking thread (the CMS code is synchronous), so it waits on the token reply.

use std::sync::Arc;

use crate::cms::{DigestAlgorithm, KeyError, SigningKey};
use crate::pin::PinSource;
use crate::token::{CertificateEntry, HashAlg, SignRequest, TokenService};

/// A certificate on a token, its key reached through the token service.
pub struct TokenSigningKey {
    pub service: TokenService,
    pub cert: CertificateEntry,
    pub pin: Arc<dyn PinSource>,
}

impl std::fmt::Debug for TokenSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigningKey")
            .field("certificate", &self.cert.info.fingerprint_sha256)
            .finish_non_exhaustive()
    }
}

impl SigningKey for TokenSigningKey {
    fn certificate_der(&self) -> &[u8] {
        &self.cert.info.der
    }

    fn chain_der(&self) -> Vec<Vec<u8>> {
        Vec::new()
    }

    fn sign_digest(&self, alg: DigestAlgorithm, digest: &[u8]) -> Result<Vec<u8>, KeyError> {
        let hash = match alg {
            DigestAlgorithm::Sha256 => HashAlg::Sha256,
            DigestAlgorithm::Sha384 => HashAlg::Sha384,
            DigestAlgorithm::Sha512 => HashAlg::Sha512,
        };
        let request = SignRequest { scheme: None, hash };
        self.service
            .sign_digest(&self.cert, &request, digest.to_vec(), Arc::clone(&self.pin))
            .wait()
            .map_err(|e| KeyError::token(e.code().as_str(), e))
    }
}
