//! Who may use the daemon: Segel's extension origins (the `Origin` header a request may carry)
//! and the procurement sites (the site origin the extension relays) — from the user's config
//! (`[daemon]` in config.toml) and an administrator's policy file that overrides it.
//!
//! ```toml
//! # config.toml (user) — or the same keys at the top of the admin policy file
//! [daemon]
//! port = 24842
//! extension_origins = ["chrome-extension://abcdefghijklmnopabcdefghijklmnop"]
//! allowed_origins = ["https://*.lkpp.go.id", "https://spse.inaproc.id"]
//! login_idle_seconds = 60
//! ```
//!
//! The admin policy file is `/etc/segel/policy.toml` (or `$SEGEL_POLICY_FILE`); any key it
//! sets replaces the user's value.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Default daemon port.
pub const DEFAULT_PORT: u16 = 24842;
/// The administrator's policy file.
pub const ADMIN_POLICY_FILE: &str = "/etc/segel/policy.toml";
/// Environment variable naming another admin policy file (packaging, tests).
pub const POLICY_ENV: &str = "SEGEL_POLICY_FILE";

/// The procurement sites allowed when neither the user nor the administrator says otherwise.
pub const DEFAULT_ALLOWED_ORIGINS: [&str; 2] = ["https://*.lkpp.go.id", "https://spse.inaproc.id"];

/// `[daemon]` in the user's config.toml (all optional).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    pub port: Option<u16>,
    pub extension_origins: Option<Vec<String>>,
    pub allowed_origins: Option<Vec<String>>,
    /// Log out of tokens after this many seconds without an operation (0: after each one).
    pub login_idle_seconds: Option<u64>,
}

/// The administrator's policy file: the same keys, overriding the user's.
pub type AdminPolicy = DaemonConfig;

/// Problems with the policy.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("policy file {path} is invalid: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error(
        "{0:?} is not an origin pattern (e.g. https://spse.inaproc.id or https://*.lkpp.go.id)"
    )]
    BadPattern(String),
    #[error("{0:?} is not an extension origin (chrome-extension://ID or moz-extension://UUID)")]
    BadExtensionOrigin(String),
}

/// Read the admin policy file: `explicit`, else `$SEGEL_POLICY_FILE`, else the system path;
/// a missing system file means "no admin policy".
pub fn load_admin_policy(
    explicit: Option<&Path>,
) -> Result<(AdminPolicy, Option<PathBuf>), PolicyError> {
    let (path, must_exist) = match explicit {
        Some(p) => (p.to_path_buf(), true),
        None => match std::env::var_os(POLICY_ENV) {
            Some(p) => (PathBuf::from(p), true),
            None => (PathBuf::from(ADMIN_POLICY_FILE), false),
        },
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let p: AdminPolicy = toml::from_str(&text).map_err(|e| PolicyError::Invalid {
                path: path.clone(),
                message: e.to_string(),
            })?;
            Ok((p, Some(path)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => {
            Ok((AdminPolicy::default(), None))
        }
        Err(source) => Err(PolicyError::Read { path, source }),
    }
}

/// A parsed web origin: scheme, lower-case host, port (RFC 6454).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub scheme: String,
    pub host: String,
    pub port: u16,
}

impl Origin {
    /// Parse `scheme://host[:port]` — exactly an origin: no path, query, user info or
    /// trailing dot; scheme https (http only for localhost, for test sites on this machine).
    pub fn parse(text: &str) -> Option<Origin> {
        let (scheme, rest) = text.split_once("://")?;
        let default_port = match scheme {
            "https" => 443,
            "http" => 80,
            _ => return None,
        };
        if rest.is_empty() || rest.contains(['/', '?', '#', '@', '\\', ' ']) {
            return None;
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.contains(']') || h.ends_with(']') => {
                (h, p.parse::<u16>().ok().filter(|p| *p != 0)?)
            }
            _ => (rest, default_port),
        };
        let host = host.to_ascii_lowercase();
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if host.is_empty() || !host.split('.').all(label_ok) {
            return None;
        }
        if scheme == "http" && host != "localhost" {
            return None;
        }
        Some(Origin {
            scheme: scheme.to_owned(),
            host,
            port,
        })
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let default = if self.scheme == "https" { 443 } else { 80 };
        if self.port == default {
            write!(f, "{}://{}", self.scheme, self.host)
        } else {
            write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
        }
    }
}

/// An allowlist entry: an exact origin, or `https://*.domain` (any subdomain, at any depth,
/// not the domain itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginPattern {
    wildcard: bool,
    origin: Origin,
}

impl OriginPattern {
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let bad = || PolicyError::BadPattern(text.to_owned());
        let (wildcard, plain) = match text.split_once("://*.") {
            Some((scheme, rest)) => (true, format!("{scheme}://{rest}")),
            None => (false, text.to_owned()),
        };
        let origin = Origin::parse(&plain).ok_or_else(bad)?;
        if wildcard && !origin.host.contains('.') {
            return Err(bad()); // `https://*.id` would allow a whole top-level domain
        }
        Ok(OriginPattern { wildcard, origin })
    }

    pub fn matches(&self, o: &Origin) -> bool {
        if o.scheme != self.origin.scheme || o.port != self.origin.port {
            return false;
        }
        if self.wildcard {
            o.host
                .strip_suffix(&self.origin.host)
                .is_some_and(|prefix| prefix.len() > 1 && prefix.ends_with('.'))
        } else {
            o.host == self.origin.host
        }
    }
}

impl std::fmt::Display for OriginPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.wildcard {
            let s = self.origin.to_string();
            let (scheme, rest) = s.split_once("://").unwrap_or(("https", &s));
            write!(f, "{scheme}://*.{rest}")
        } else {
            write!(f, "{}", self.origin)
        }
    }
}

/// The effective policy the gate applies.
#[derive(Clone, Debug)]
pub struct Policy {
    pub port: u16,
    pub extension_origins: Vec<String>,
    pub allowed_origins: Vec<OriginPattern>,
    pub login_idle_seconds: u64,
    /// Which file the allowlist came from (for `status` and logs).
    pub admin_file: Option<PathBuf>,
}

impl Policy {
    /// The user's config overridden by the admin policy.
    pub fn effective(
        user: &DaemonConfig,
        admin: &AdminPolicy,
        admin_file: Option<PathBuf>,
    ) -> Result<Self, PolicyError> {
        let pick =
            |a: &Option<Vec<String>>, u: &Option<Vec<String>>| a.clone().or_else(|| u.clone());
        let extension_origins =
            pick(&admin.extension_origins, &user.extension_origins).unwrap_or_default();
        for o in &extension_origins {
            let ok = ["chrome-extension://", "moz-extension://"].iter().any(|p| {
                o.strip_prefix(p).is_some_and(|id| {
                    !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                })
            });
            if !ok {
                return Err(PolicyError::BadExtensionOrigin(o.clone()));
            }
        }
        let allowed = pick(&admin.allowed_origins, &user.allowed_origins).unwrap_or_else(|| {
            DEFAULT_ALLOWED_ORIGINS
                .iter()
                .map(|s| s.to_string())
                .collect()
        });
        Ok(Policy {
            port: admin.port.or(user.port).unwrap_or(DEFAULT_PORT),
            extension_origins,
            allowed_origins: allowed
                .iter()
                .map(|s| OriginPattern::parse(s))
                .collect::<Result<_, _>>()?,
            login_idle_seconds: admin
                .login_idle_seconds
                .or(user.login_idle_seconds)
                .unwrap_or(60),
            admin_file,
        })
    }

    /// Does the allowlist admit this site?
    pub fn allows(&self, site: &Origin) -> bool {
        self.allowed_origins.iter().any(|p| p.matches(site))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(s: &str) -> Origin {
        Origin::parse(s).unwrap()
    }

    #[test]
    fn wildcard_pattern_admits_subdomains_only_on_the_same_scheme_and_port() {
        let p = OriginPattern::parse("https://*.lkpp.go.id").unwrap();
        assert!(p.matches(&o("https://spse.lkpp.go.id")));
        assert!(p.matches(&o("https://a.b.lkpp.go.id")));
        assert!(p.matches(&o("https://SPSE.LKPP.GO.ID:443")));
        assert!(!p.matches(&o("https://lkpp.go.id")));
        assert!(!p.matches(&o("https://evillkpp.go.id")));
        assert!(!p.matches(&o("https://spse.lkpp.go.id.evil.example")));
        assert!(!p.matches(&o("https://spse.lkpp.go.id:8443")));
        assert!(OriginPattern::parse("https://*.id").is_err());
        assert_eq!(p.to_string(), "https://*.lkpp.go.id");
    }

    #[test]
    fn origin_parser_takes_only_bare_origins() {
        assert_eq!(
            o("https://spse.inaproc.id").to_string(),
            "https://spse.inaproc.id"
        );
        assert_eq!(o("https://x.example:8443").port, 8443);
        for bad in [
            "https://a.example/path",
            "https://user@a.example",
            "ftp://a.example",
            "http://a.example",
            "https://",
            "null",
            "https://a..example",
            "https://a.example:0",
            "https://a.example:99999",
            "https://-a.example",
        ] {
            assert!(Origin::parse(bad).is_none(), "{bad}");
        }
        assert!(Origin::parse("http://localhost:8080").is_some());
    }

    #[test]
    fn admin_policy_overrides_user_config() {
        let user = DaemonConfig {
            allowed_origins: Some(vec!["https://a.example".into()]),
            port: Some(9000),
            ..Default::default()
        };
        let admin = AdminPolicy {
            allowed_origins: Some(vec!["https://b.example".into()]),
            ..Default::default()
        };
        let p = Policy::effective(&user, &admin, None).unwrap();
        assert!(p.allows(&o("https://b.example")));
        assert!(!p.allows(&o("https://a.example")));
        assert_eq!(p.port, 9000);
        let p = Policy::effective(&DaemonConfig::default(), &AdminPolicy::default(), None).unwrap();
        assert!(p.allows(&o("https://spse.lkpp.go.id")));
        let bad = DaemonConfig {
            extension_origins: Some(vec!["https://evil.example".into()]),
            ..Default::default()
        };
        assert!(Policy::effective(&bad, &AdminPolicy::default(), None).is_err());
    }
}
