//! One token-layer suite, two token backends: SoftHSM2 and Segel's own PKCS#12-file module.
//!
//! [`Backend::tokens`] makes tokens holding the given fixtures, all with one user PIN, and
//! returns what a process needs to load them (module path and environment). SoftHSM tokens get
//! the fixtures written by `pkcs11-tool` with ids 01, 02, …; shim tokens are key files
//! `LABEL.p12` in a private keystore folder whose keys carry localKeyId 01, 02, … — so tests can
//! select objects the same way on both.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::run::Envs;
use crate::shim::{self, Keystore};
use crate::softhsm::SoftHsm;

/// Which PKCS#11 module holds the tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SoftHSM2 with a private config.
    SoftHsm,
    /// `libsegel_pkcs11.so` over a private keystore folder.
    Shim,
}

/// SO PIN of SoftHSM tokens (the shim has no security officer).
pub const SO_PIN: &str = "87654321";

/// PBKDF2/MAC iterations of the shim's test key files: low, because every login pays them.
pub const TEST_ITERATIONS: u32 = 2048;

#[derive(Debug)]
enum Holder {
    SoftHsm(SoftHsm),
    Shim(Keystore),
}

/// Tokens made by [`Backend::tokens`] (temp files deleted on drop).
#[derive(Debug)]
pub struct TestTokens {
    backend: Backend,
    module: PathBuf,
    holder: Holder,
}

impl Backend {
    /// Both backends.
    pub const ALL: [Backend; 2] = [Backend::SoftHsm, Backend::Shim];

    /// Tokens `(label, fixtures)`, each with user PIN `pin`.
    pub fn tokens(self, tokens: &[(&str, &[&str])], pin: &str) -> Result<TestTokens> {
        match self {
            Backend::SoftHsm => {
                let hsm = SoftHsm::new()?;
                for (label, fixtures) in tokens {
                    hsm.init_token(label, SO_PIN, pin)?;
                    for (i, name) in fixtures.iter().enumerate() {
                        hsm.import_fixture(label, pin, name, &format!("{:02x}", i + 1), name)?;
                    }
                }
                Ok(TestTokens {
                    backend: self,
                    module: hsm.module_path(),
                    holder: Holder::SoftHsm(hsm),
                })
            }
            Backend::Shim => {
                let ks = Keystore::new()?;
                for (label, fixtures) in tokens {
                    ks.add_fixtures(label, fixtures, pin, TEST_ITERATIONS)?;
                }
                Ok(TestTokens {
                    backend: self,
                    module: shim::module_path()?,
                    holder: Holder::Shim(ks),
                })
            }
        }
    }

    /// One token `label` holding `fixtures`.
    pub fn token(self, label: &str, fixtures: &[&str], pin: &str) -> Result<TestTokens> {
        self.tokens(&[(label, fixtures)], pin)
    }
}

impl TestTokens {
    /// The backend that made these tokens.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The PKCS#11 module to load.
    pub fn module_path(&self) -> PathBuf {
        self.module.clone()
    }

    /// Environment for any process loading the module.
    pub fn envs(&self) -> Envs {
        match &self.holder {
            Holder::SoftHsm(h) => h.envs(),
            Holder::Shim(k) => k.envs(),
        }
    }

    /// A temp dir the test may use for its own files.
    pub fn dir(&self) -> &Path {
        match &self.holder {
            Holder::SoftHsm(h) => h.dir(),
            Holder::Shim(k) => k.dir(),
        }
    }

    /// The SoftHSM installation, for SoftHSM-only steps (p11-kit server).
    pub fn softhsm(&self) -> Option<&SoftHsm> {
        match &self.holder {
            Holder::SoftHsm(h) => Some(h),
            Holder::Shim(_) => None,
        }
    }

    /// The keystore folder, for shim-only steps.
    pub fn keystore(&self) -> Option<&Keystore> {
        match &self.holder {
            Holder::SoftHsm(_) => None,
            Holder::Shim(k) => Some(k),
        }
    }

    /// `(name, value)` pairs plus `MODULE` = the module path, for a child test.
    pub fn child_envs(&self) -> Envs {
        let mut e = self.envs();
        e.push(("MODULE".to_owned(), OsString::from(self.module.as_os_str())));
        e
    }
}
