//! Certificates the API has looked up, by selector, for a short time: finding a certificate
//! lists every object on every token (many PKCS#11 calls and X.509 parses), far more work than
//! the signature itself. An entry is dropped after its time-to-live, and all are dropped when
//! an operation reports the token or key gone (the caller then looks again, once).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::token::{CertSelector, CertificateEntry, TokenError, TokenService};

/// Selector → (when found, certificate).
#[derive(Debug)]
pub struct CertCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, CertificateEntry)>>,
}

impl CertCache {
    pub fn new(ttl: Duration) -> Self {
        CertCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, CertificateEntry)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The certificate a selector names, from the cache or the tokens.
    pub async fn find(
        &self,
        service: &TokenService,
        selector: &CertSelector,
    ) -> Result<CertificateEntry, TokenError> {
        let key = selector.to_string();
        if let Some((at, entry)) = self.entries().get(&key)
            && at.elapsed() < self.ttl
        {
            return Ok(entry.clone());
        }
        let entry = service.find_certificate(selector).await?;
        self.entries().insert(key, (Instant::now(), entry.clone()));
        Ok(entry)
    }

    /// Forget everything (a token or key went away).
    pub fn clear(&self) {
        self.entries().clear();
    }

    /// Does this error mean the cached entry may be stale (so a fresh lookup may help)?
    /// Only errors raised before any PIN is tried or after a successful login qualify, so a
    /// retry never spends a PIN try.
    pub fn is_stale_error(e: &TokenError) -> bool {
        matches!(e, TokenError::TokenAbsent | TokenError::KeyNotFound(_))
    }
}
