//! The request gate: every request passes here, in this order, before anything executes.
//!
//! 1. `Host` must be exactly `127.0.0.1:PORT` or `localhost:PORT` (one header; an absolute
//!    request URI must name the same): a DNS-rebinding page's requests carry its own name.
//! 2. An `Origin` header, when present, must be one of Segel's extension origins. Web pages
//!    always send `Origin` on cross-origin fetches; it is refused, never reflected, and no
//!    CORS headers are ever sent.
//! 3. `Authorization: Bearer <credential>` must match (constant-time).
//! 4. `X-Segel-Site-Origin` (set by the extension from the browser's `sender`, never by the
//!    page): absent means a local program of the same user; present, it must parse as an
//!    origin, be admitted by policy, and have the user's consent.
//!
//! Body limits and timeouts are applied by the handlers that read bodies (`body.rs`) and by the
//! connection setup (`mod.rs`).

use hyper::header::{AUTHORIZATION, HOST, HeaderMap, ORIGIN};

use super::consent::ConsentStore;
use super::credential::Credential;
use super::error::ApiError;
use super::policy::{Origin, Policy};
use crate::protocol::ErrorCode;

/// The header carrying the requesting site's origin, relayed by the extension.
pub const SITE_ORIGIN_HEADER: &str = "x-segel-site-origin";

/// Who is calling, once the gate let the request through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// A local program of the same user (credential, no site origin): CLI, scripts, the
    /// extension's own trusted window.
    Local,
    /// The extension acting for this allowed, consented site.
    Site(Origin),
}

impl Caller {
    pub fn describe(&self) -> String {
        match self {
            Caller::Local => "local".to_owned(),
            Caller::Site(o) => o.to_string(),
        }
    }
}

/// The gate's configuration.
#[derive(Debug)]
pub struct Gate {
    hosts: Vec<String>,
    credential: Credential,
    policy: Policy,
    consent: ConsentStore,
}

impl Gate {
    pub fn new(port: u16, credential: Credential, policy: Policy, consent: ConsentStore) -> Self {
        Gate {
            hosts: vec![format!("127.0.0.1:{port}"), format!("localhost:{port}")],
            credential,
            policy,
            consent,
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn consent(&self) -> &ConsentStore {
        &self.consent
    }

    /// Apply rules 1–4; `Ok` says who the caller is.
    pub fn check(&self, uri: &hyper::Uri, headers: &HeaderMap) -> Result<Caller, ApiError> {
        self.check_host(uri, headers)?;
        self.check_origin(headers)?;
        self.check_credential(headers)?;
        self.check_site(headers)
    }

    fn check_host(&self, uri: &hyper::Uri, headers: &HeaderMap) -> Result<(), ApiError> {
        let refuse = || {
            ApiError::new(
                ErrorCode::HostRejected,
                format!("the Host header must be {}", self.hosts[0]),
            )
        };
        let mut hosts = headers.get_all(HOST).iter();
        let host = hosts.next().ok_or_else(refuse)?;
        if hosts.next().is_some() {
            return Err(refuse());
        }
        let host = host.to_str().map_err(|_| refuse())?.to_ascii_lowercase();
        if !self.hosts.contains(&host) {
            return Err(refuse());
        }
        if let Some(authority) = uri.authority()
            && authority.as_str().to_ascii_lowercase() != host
        {
            return Err(refuse());
        }
        Ok(())
    }

    fn check_origin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        for origin in headers.get_all(ORIGIN) {
            let ok = origin
                .to_str()
                .is_ok_and(|o| self.policy.extension_origins.iter().any(|e| e == o));
            if !ok {
                return Err(ApiError::new(
                    ErrorCode::OriginRejected,
                    "requests from web pages are refused; only Segel's extension may call the daemon",
                ));
            }
        }
        Ok(())
    }

    fn check_credential(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let mut values = headers.get_all(AUTHORIZATION).iter();
        let presented = values
            .next()
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
            .filter(|_| values.next().is_none());
        match presented {
            Some(token) if self.credential.matches(token) => Ok(()),
            Some(_) => Err(ApiError::new(
                ErrorCode::Unauthorized,
                "the credential is wrong (see `segel endpoint`)",
            )),
            None => Err(ApiError::new(
                ErrorCode::Unauthorized,
                "the credential is missing: send Authorization: Bearer <credential> (see `segel endpoint`)",
            )),
        }
    }

    fn check_site(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let mut values = headers.get_all(SITE_ORIGIN_HEADER).iter();
        let Some(value) = values.next() else {
            return Ok(Caller::Local);
        };
        let site = value
            .to_str()
            .ok()
            .filter(|_| values.next().is_none())
            .and_then(Origin::parse)
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::SiteNotAllowed,
                    "the site origin is not a valid origin (scheme://host[:port])",
                )
            })?;
        if !self.policy.allows(&site) {
            return Err(ApiError::new(
                ErrorCode::SiteNotAllowed,
                format!("{site} is not an allowed procurement site (policy)"),
            ));
        }
        match self.consent.is_granted(&site) {
            Ok(true) => Ok(Caller::Site(site)),
            Ok(false) => Err(ApiError::new(
                ErrorCode::ConsentRequired,
                format!("the user has not allowed {site} to use Segel"),
            )),
            Err(e) => Err(ApiError::internal(e.to_string())),
        }
    }
}
