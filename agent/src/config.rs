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
//! # log level: error, warn, info, debug, trace
//! log = "warn"
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
}

/// The configuration file's contents.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub modules: Vec<PathBuf>,
    #[serde(default = "default_true")]
    pub search_modules: bool,
    #[serde(default)]
    pub log: Option<String>,
    /// `[daemon]`: port, extension origins, allowed sites (see `server::policy`).
    #[serde(default)]
    pub daemon: crate::server::policy::DaemonConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            modules: Vec::new(),
            search_modules: true,
            log: None,
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
