//! Segel's folders and its configuration file.
//!
//! Folders follow the XDG base directory rules (`XDG_CONFIG_HOME`, `XDG_STATE_HOME`,
//! `XDG_DATA_HOME`, then `HOME`), so tests and administrators can relocate everything.
//! The config file is `$XDG_CONFIG_HOME/segel/config.toml`:
//!
//! ```toml
//! # PKCS#11 modules to load besides those registered with p11-kit
//! modules = ["/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"]
//! # look for p11-kit registrations and the usual vendor module paths (default true)
//! search_modules = true
//! # load the module the ATR table names for a card present or inserted (default true)
//! modules_by_atr = true
//! # log level: error, warn, info, debug, trace
//! log = "warn"
//! # trust anchors for vendors' certificates (files or folders, PEM or DER), besides the
//! # folder $XDG_CONFIG_HOME/segel/trust/
//! trust_anchors = ["/etc/ssl/bsre/root.pem"]
//!
//! [enrollment]          # for `segel enroll` and the daemon's `POST /v1/enroll`
//! profile = "modern"      # or "legacy" (NPWP as a DNS name, NIK as a request attribute)
//! # npwp_oid = "…"        # the CA's otherName type for NPWP (default: organizationIdentifier)
//! # nik_oid = "…"         # the CA's request attribute for NIK (legacy; default unstructuredName)
//!
//! [pin]
//! min_length = 6          # shortest new PIN `segel pin change|unblock` and the daemon accept
//!
//! [procurement]
//! # the portal's file rules: names of at most 40 characters without / \ , : ' " + - ( ),
//! # unique in one submission (default true)
//! file_rules = true
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Segel's per-user folders.
#[derive(Clone, Debug)]
pub struct Paths {
    pub config_dir: PathBuf,
    pub state_dir: PathBuf,
    pub data_dir: PathBuf,
}

impl Paths {
    /// The folders for the current user (XDG rules).
    pub fn for_user() -> Result<Self, ConfigError> {
        let dirs =
            directories::ProjectDirs::from("id", "segel", "segel").ok_or(ConfigError::NoHome)?;
        Ok(Paths {
            config_dir: dirs.config_dir().to_path_buf(),
            state_dir: dirs
                .state_dir()
                .unwrap_or(dirs.data_local_dir())
                .to_path_buf(),
            data_dir: dirs.data_dir().to_path_buf(),
        })
    }

    pub fn config_file(&self) -> PathBuf {
        self.config_dir.join("config.toml")
    }

    /// Folder of trust anchors read on every run.
    pub fn trust_dir(&self) -> PathBuf {
        self.config_dir.join("trust")
    }
}

/// The configuration file's contents.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub modules: Vec<PathBuf>,
    #[serde(default = "default_true")]
    pub search_modules: bool,
    /// Load the module the ATR table names for a card that is present (at start) or inserted
    /// (while the daemon runs). Independent of `search_modules`.
    #[serde(default = "default_true")]
    pub modules_by_atr: bool,
    #[serde(default)]
    pub log: Option<String>,
    #[serde(default)]
    pub trust_anchors: Vec<PathBuf>,
    #[serde(default)]
    pub procurement: Procurement,
    #[serde(default)]
    pub enrollment: crate::enroll::EnrollConfig,
    #[serde(default)]
    pub pin: PinPolicy,
    /// `[daemon]`: port, extension origins, allowed sites (see `server::policy`).
    #[serde(default)]
    pub daemon: crate::server::policy::DaemonConfig,
}

/// `[pin]`: the PIN policy for `segel pin change|unblock` and the daemon's
/// `/v1/pin/change|unblock`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinPolicy {
    /// Shortest new PIN accepted (default 6).
    #[serde(default = "default_min_pin")]
    pub min_length: usize,
}

fn default_min_pin() -> usize {
    6
}

impl PinPolicy {
    /// Whether `new` may become the PIN: at least `min_length` characters, none of them a
    /// control character. The error is the message to show (code `PIN_INVALID`).
    pub fn check_new_pin(&self, new: &str) -> Result<(), String> {
        if new.chars().any(char::is_control) {
            return Err("the new PIN must not contain control characters".to_owned());
        }
        let (len, min) = (new.chars().count(), self.min_length);
        if len < min {
            return Err(format!(
                "the new PIN has {len} characters; at least {min} are required"
            ));
        }
        Ok(())
    }
}

impl Default for PinPolicy {
    fn default() -> Self {
        PinPolicy {
            min_length: default_min_pin(),
        }
    }
}

/// The procurement site's rules (a switchable site policy).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Procurement {
    /// File names: at most 40 characters, no forbidden symbols, unique per submission.
    #[serde(default = "default_true")]
    pub file_rules: bool,
}

impl Default for Procurement {
    fn default() -> Self {
        Procurement { file_rules: true }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            modules: Vec::new(),
            search_modules: true,
            modules_by_atr: true,
            log: None,
            trust_anchors: Vec::new(),
            procurement: Procurement::default(),
            enrollment: crate::enroll::EnrollConfig::default(),
            pin: PinPolicy::default(),
            daemon: Default::default(),
        }
    }
}

fn default_true() -> bool {
    true
}

/// Problems with the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot find the home folder (set HOME or XDG_CONFIG_HOME)")]
    NoHome,
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is invalid: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Config {
    /// Load `explicit` (must exist) or the user's config file (may be absent).
    pub fn load(explicit: Option<&Path>) -> Result<Self, ConfigError> {
        let (path, must_exist) = match explicit {
            Some(p) => (p.to_path_buf(), true),
            None => (Paths::for_user()?.config_file(), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => {
                return Ok(Config::default());
            }
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        Self::parse(&text).map_err(|message| ConfigError::Invalid { path, message })
    }

    fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_lists_modules_and_defaults_to_searching() {
        let c = Config::parse("modules = [\"/a.so\"]\n").unwrap();
        assert_eq!(c.modules, vec![PathBuf::from("/a.so")]);
        assert!(c.search_modules);
    }

    #[test]
    fn file_rules_default_on_and_can_be_switched_off() {
        assert!(Config::parse("").unwrap().procurement.file_rules);
        let c = Config::parse("[procurement]\nfile_rules = false\n").unwrap();
        assert!(!c.procurement.file_rules);
    }

    #[test]
    fn the_pin_policy_counts_characters_and_refuses_control_characters() {
        let policy = Config::parse("[pin]\nmin_length = 8\n").unwrap().pin;
        let e = policy.check_new_pin("1234567").unwrap_err();
        assert!(e.contains("at least 8"), "{e}");
        assert!(policy.check_new_pin("12345678").is_ok());
        assert!(policy.check_new_pin("ääääääää").is_ok());
        assert!(policy.check_new_pin("1234\t5678").is_err());
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        let e = Config::parse("modulez = []\n").unwrap_err();
        assert!(e.contains("modulez"), "{e}");
    }

    #[test]
    fn explicit_missing_config_is_an_error() {
        let e = Config::load(Some(Path::new("/nonexistent/segel.toml"))).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/segel.toml"));
    }
}
