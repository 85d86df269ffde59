//! Finding and loading PKCS#11 modules.
//!
//! Sources, in order: modules named on the command line (then nothing else is searched),
//! modules listed in the config file, modules registered with p11-kit (`*.module` files),
//! the platform's usual vendor module paths, and the modules the ATR table names for the cards
//! present (the caller reads them from PC/SC: see `pcsc::card_modules`). Modules are
//! de-duplicated by canonical path.

use std::path::{Path, PathBuf};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use tracing::{debug, warn};

use super::error::TokenError;

/// Where a module path came from (shown by `tokens` and `doctor`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModuleSource {
    CommandLine,
    Config,
    P11Kit,
    UsualPath,
    /// Named by the ATR table for a card that is present.
    Atr,
}

/// A module to load.
#[derive(Clone, Debug)]
pub struct ModuleSpec {
    pub path: PathBuf,
    pub source: ModuleSource,
}

/// p11-kit's registration folders, system and per user (p11-kit(8), pkcs11.conf(5)).
fn p11kit_config_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![
        PathBuf::from("/usr/share/p11-kit/modules"),
        PathBuf::from("/etc/pkcs11/modules"),
    ];
    if let Some(base) = directories::BaseDirs::new() {
        dirs.push(base.config_dir().join("pkcs11/modules"));
    }
    dirs
}

/// The folder relative `module:` paths in p11-kit registrations are resolved against.
const P11KIT_MODULE_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/pkcs11",
    "/usr/lib/aarch64-linux-gnu/pkcs11",
    "/usr/lib/pkcs11",
    "/usr/lib64/pkcs11",
];

/// Further folders a bare module file name from the ATR table is looked up in.
const MODULE_DIRS: &[&str] = &["/usr/lib", "/usr/lib64", "/usr/local/lib", "/usr/lib/segel"];

/// A module named in the ATR table: an absolute path as is, a bare file name in the usual
/// module folders; `None` when no such file exists.
pub fn resolve_module_name(name: &str) -> Option<PathBuf> {
    let path = Path::new(name);
    if path.is_absolute() {
        return path.exists().then(|| path.to_path_buf());
    }
    let multiarch = ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu"];
    multiarch
        .iter()
        .chain(P11KIT_MODULE_DIRS)
        .chain(MODULE_DIRS)
        .map(|dir| Path::new(dir).join(path))
        .find(|p| p.exists())
}

/// Modules that carry no keys (trust stores, proxies of modules we load directly anyway).
const SKIPPED_MODULES: &[&str] = &["p11-kit-trust.so", "p11-kit-proxy.so", "p11-kit-client.so"];

/// Vendor modules common among procurement users (Indonesia and elsewhere), Linux paths.
const USUAL_MODULE_PATHS: &[&str] = &[
    "/usr/lib/segel/libsegel_pkcs11.so",
    "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so",
    "/usr/lib/opensc-pkcs11.so",
    "/usr/lib64/opensc-pkcs11.so",
    "/usr/lib/libeTPkcs11.so",                  // SafeNet eToken (SAC)
    "/usr/lib/libeToken.so",                    // SafeNet eToken (older)
    "/usr/lib/libIDPrimePKCS11.so",             // Thales / Gemalto IDPrime
    "/usr/lib/libgclib.so",                     // Gemalto classic client
    "/usr/lib/libcastle.so.1.0.0",              // Feitian ePass2003 (vendor)
    "/usr/lib/libshuttle_p11v220.so",           // Feitian ePass (vendor)
    "/usr/lib/x86_64-linux-gnu/libykcs11.so.2", // YubiKey PIV
    "/usr/local/lib/libykcs11.so",
];

/// Parse one p11-kit `.module` file: its `module:` path, unless the registration keeps it
/// away from Segel (`disable-in: segel`, or an `enable-in:` list without segel).
fn parse_p11kit_module(text: &str) -> Option<String> {
    let mut module = None;
    let mut allowed = true;
    for line in text.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let names = || value.split([',', ' ']).map(str::trim);
        match key.trim() {
            "module" => module = Some(value.trim().to_owned()),
            "disable-in" if names().any(|n| n == "segel") => allowed = false,
            "enable-in" if !names().any(|n| n == "segel") => allowed = false,
            _ => {}
        }
    }
    module.filter(|_| allowed)
}

fn resolve_p11kit_path(module: &str) -> Option<PathBuf> {
    let path = Path::new(module);
    if path.is_absolute() {
        return Some(path.to_path_buf());
    }
    P11KIT_MODULE_DIRS
        .iter()
        .map(|dir| Path::new(dir).join(path))
        .find(|p| p.exists())
}

/// Modules registered with p11-kit, from its configuration folders.
pub fn p11kit_modules() -> Vec<PathBuf> {
    let mut found = Vec::new();
    for dir in p11kit_config_dirs() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        files.sort();
        for file in files {
            if file.extension().and_then(|e| e.to_str()) != Some("module") {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            if let Some(path) = parse_p11kit_module(&text).and_then(|m| resolve_p11kit_path(&m)) {
                found.push(path);
            }
        }
    }
    found
}

/// The module list to load: explicit paths win; otherwise config, p11-kit, usual paths.
pub fn discover(explicit: &[PathBuf], configured: &[PathBuf], search: bool) -> Vec<ModuleSpec> {
    discover_with(explicit, configured, search, &[])
}

/// [`discover`], then the modules the ATR table names for the cards present (`by_atr`,
/// already resolved to files), unless modules were named explicitly.
pub fn discover_with(
    explicit: &[PathBuf],
    configured: &[PathBuf],
    search: bool,
    by_atr: &[PathBuf],
) -> Vec<ModuleSpec> {
    let mut specs: Vec<ModuleSpec> = Vec::new();
    let mut push = |path: PathBuf, source: ModuleSource| {
        let key = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        let name = key
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if source != ModuleSource::CommandLine && SKIPPED_MODULES.contains(&name.as_str()) {
            return;
        }
        let duplicate = specs
            .iter()
            .any(|s| std::fs::canonicalize(&s.path).unwrap_or_else(|_| s.path.clone()) == key);
        if !duplicate {
            specs.push(ModuleSpec { path, source });
        }
    };
    if !explicit.is_empty() {
        for path in explicit {
            push(path.clone(), ModuleSource::CommandLine);
        }
        return specs;
    }
    for path in configured {
        push(path.clone(), ModuleSource::Config);
    }
    if search {
        for path in p11kit_modules() {
            push(path, ModuleSource::P11Kit);
        }
        for path in USUAL_MODULE_PATHS
            .iter()
            .map(PathBuf::from)
            .filter(|p| p.exists())
        {
            push(path, ModuleSource::UsualPath);
        }
    }
    for path in by_atr {
        push(path.clone(), ModuleSource::Atr);
    }
    specs
}

/// A loaded and initialised module.
#[derive(Debug, Clone)]
pub struct LoadedModule {
    pub spec: ModuleSpec,
    pub ctx: Pkcs11,
}

/// The arguments every module is initialised with: we call from several threads and
/// let the module use the OS's locking (PKCS#11 v2.40 §5.4, C_Initialize).
pub(crate) fn init_args() -> CInitializeArgs {
    CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)
}

/// Load and initialise one module.
pub fn load(spec: &ModuleSpec) -> Result<LoadedModule, TokenError> {
    let fail = |reason: String| TokenError::ModuleLoad {
        path: spec.path.clone(),
        reason,
    };
    if !spec.path.exists() {
        return Err(fail("no such file".to_owned()));
    }
    let ctx = Pkcs11::new(&spec.path).map_err(|e| fail(e.to_string()))?;
    match ctx.initialize(init_args()) {
        Ok(()) => {}
        // Another part of this process already initialised it (e.g. the same module
        // reached through two paths): it is usable as is.
        Err(cryptoki::error::Error::Pkcs11(
            cryptoki::error::RvError::CryptokiAlreadyInitialized,
            _,
        )) => debug!(path = %spec.path.display(), "module already initialised"),
        Err(e) => return Err(fail(format!("C_Initialize: {e}"))),
    }
    Ok(LoadedModule {
        spec: spec.clone(),
        ctx,
    })
}

/// Load every module; modules found by searching are skipped with a warning when they
/// fail, modules the user named are an error.
pub fn load_all(specs: &[ModuleSpec]) -> Result<Vec<LoadedModule>, TokenError> {
    if specs.is_empty() {
        return Err(TokenError::NoModule);
    }
    let mut loaded = Vec::new();
    for spec in specs {
        match load(spec) {
            Ok(m) => loaded.push(m),
            Err(e)
                if spec.source == ModuleSource::CommandLine
                    || spec.source == ModuleSource::Config =>
            {
                return Err(e);
            }
            Err(e) => warn!("skipping module: {e}"),
        }
    }
    if loaded.is_empty() {
        return Err(TokenError::NoModule);
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p11kit_registration_yields_its_module_path() {
        let text = "# comment\nmodule: opensc-pkcs11.so\ncritical: no\n";
        assert_eq!(
            parse_p11kit_module(text).as_deref(),
            Some("opensc-pkcs11.so")
        );
    }

    #[test]
    fn p11kit_registration_for_other_programs_is_skipped() {
        assert_eq!(
            parse_p11kit_module("module: a.so\nenable-in: firefox\n"),
            None
        );
        assert_eq!(
            parse_p11kit_module("module: a.so\ndisable-in: segel, ssh\n"),
            None
        );
        assert!(parse_p11kit_module("module: a.so\nenable-in: segel\n").is_some());
    }

    #[test]
    fn explicit_modules_suppress_search() {
        let specs = discover(
            &[PathBuf::from("/nonexistent/a.so")],
            &[PathBuf::from("/x.so")],
            true,
        );
        assert_eq!(specs.len(), 1);
        assert_eq!(specs[0].source, ModuleSource::CommandLine);
    }

    #[test]
    fn atr_modules_follow_the_others_and_never_join_explicit_ones() {
        let atr = [PathBuf::from("/nonexistent/vendor.so")];
        let specs = discover_with(&[], &[PathBuf::from("/x.so")], false, &atr);
        let sources: Vec<_> = specs.iter().map(|s| s.source).collect();
        assert_eq!(sources, [ModuleSource::Config, ModuleSource::Atr]);
        let explicit = discover_with(&[PathBuf::from("/a.so")], &[], false, &atr);
        assert_eq!(explicit.len(), 1);
        assert_eq!(explicit[0].source, ModuleSource::CommandLine);
    }

    #[test]
    fn module_names_resolve_to_existing_files_only() {
        assert_eq!(resolve_module_name("/nonexistent/libnothing.so"), None);
        assert_eq!(resolve_module_name("libsegel-no-such-module.so"), None);
        let here = std::env::current_exe().unwrap();
        assert_eq!(resolve_module_name(here.to_str().unwrap()), Some(here));
    }

    #[test]
    fn missing_module_is_a_clear_load_error() {
        let err = load(&ModuleSpec {
            path: PathBuf::from("/nonexistent/libnothing.so"),
            source: ModuleSource::CommandLine,
        })
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/libnothing.so"));
        assert!(err.to_string().contains("no such file"));
    }
}
