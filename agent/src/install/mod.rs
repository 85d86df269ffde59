//! Installing Segel for one user, removing it, and diagnosing it (`segel install`,
//! `segel uninstall`, `segel doctor`).
//!
//! Everything platform-specific sits behind [`Platform`]: where browsers look for
//! native-messaging hosts, which certificate stores must trust the local CA, how the daemon is
//! started at login, where PKCS#11 modules are registered. Only [`linux::Linux`] is built and
//! tested; the Windows and macOS locations are documented in `docs/architecture.md`
//! ("Installer and doctor") for the implementations that will follow the same interface:
//!
//! | part              | Linux (built)                          | Windows (not built)                                             | macOS (not built)                                        |
//! |-------------------|----------------------------------------|-----------------------------------------------------------------|----------------------------------------------------------|
//! | native messaging  | `~/.config/<browser>/NativeMessagingHosts/`, `~/.mozilla/native-messaging-hosts/` | `HKCU\Software\Google\Chrome\NativeMessagingHosts\id.segel.agent` (and Chromium, Edge, Brave, `HKCU\Software\Mozilla\NativeMessagingHosts\…`) → manifest path | `~/Library/Application Support/<browser>/NativeMessagingHosts/` |
//! | local CA trust    | NSS: `~/.pki/nssdb`, Firefox profiles  | CurrentUser\Root certificate store                              | login keychain, `security add-trusted-cert -r trustRoot` |
//! | daemon at login   | systemd user unit, else XDG autostart  | HKCU\…\Run value or a Task Scheduler logon task                  | `~/Library/LaunchAgents/id.segel.agent.plist`            |
//! | PKCS#11 registry  | p11-kit `~/.config/pkcs11/modules/`    | none (Firefox: `modutil`/policies)                              | none (Firefox: `modutil`/policies)                       |
//!
//! An install is a list of [`Step`]s. `--dry-run` prints them; a real install applies them and
//! records what it did in a state file (`$XDG_STATE_HOME/segel/install.json`), so that
//! uninstall undoes exactly that, including the CA in every NSS database it was added to.

pub mod daemon_config;
pub mod doctor;
pub mod linux;
pub mod nss;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The native-messaging host name the extension connects to.
pub const NATIVE_HOST_NAME: &str = "id.segel.agent";
/// Segel's Chromium extension ID (fixed by the `key` in `web-extension/manifest/manifest.json`).
pub const CHROMIUM_EXTENSION_ID: &str = "kgghmpcjmhabfkcmelnnknnjjfggdaal";
/// Segel's Firefox add-on ID.
pub const FIREFOX_EXTENSION_ID: &str = "segel@segel.id";
/// Nickname of the local CA in NSS databases.
pub const CA_NICKNAME: &str = "Segel local CA";

/// The systemd user unit, with `@SEGEL@` for the binary.
pub const SERVICE_TEMPLATE: &str = include_str!("../../../installer/systemd/segel.service.in");
/// The Chromium-family native-messaging manifest, with `@HOST@` and `@CHROMIUM_ID@`.
pub const CHROMIUM_MANIFEST_TEMPLATE: &str =
    include_str!("../../../installer/native-messaging/chromium.json.in");
/// The Firefox native-messaging manifest, with `@HOST@` and `@FIREFOX_ID@`.
pub const FIREFOX_MANIFEST_TEMPLATE: &str =
    include_str!("../../../installer/native-messaging/firefox.json.in");
/// The native host launcher script, with `@SEGEL@`.
pub const NATIVE_HOST_TEMPLATE: &str =
    include_str!("../../../installer/native-messaging/native-host.in");

/// Problems installing or removing.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("cannot find the home folder (set HOME)")]
    NoHome,
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Command(String),
    #[error("the install record {path} is unreadable: {message}")]
    State { path: PathBuf, message: String },
    #[error("{0}")]
    Other(String),
}

impl InstallError {
    pub fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Self + use<> {
        let path = path.to_path_buf();
        move |source| InstallError::Io { what, path, source }
    }
}

/// Which browser family a native-messaging manifest is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ManifestKind {
    Chromium,
    Firefox,
}

/// A browser and where it looks for per-user native-messaging hosts.
#[derive(Debug, Clone)]
pub struct BrowserLocation {
    /// "Chromium", "Google Chrome", …
    pub name: &'static str,
    pub kind: ManifestKind,
    /// The folder holding `id.segel.agent.json`.
    pub manifest_dir: PathBuf,
    /// Signs the browser is installed for this user: its profile folder or a command on PATH.
    pub profile_dir: PathBuf,
    pub commands: &'static [&'static str],
}

impl BrowserLocation {
    pub fn manifest_path(&self) -> PathBuf {
        self.manifest_dir.join(format!("{NATIVE_HOST_NAME}.json"))
    }

    /// The browser is in use for this user (profile folder) or installed (command on PATH).
    pub fn installed(&self) -> bool {
        self.profile_dir.is_dir() || self.commands.iter().any(|c| find_in_path(c).is_some())
    }
}

/// Find a command on `PATH`.
pub fn find_in_path(command: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(command))
        .find(|p| p.is_file())
}

/// A certificate store that must trust the local CA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustStore {
    /// "user NSS database", "Firefox profile default-release", …
    pub label: String,
    /// The NSS database folder (`cert9.db` inside).
    pub nss_dir: PathBuf,
    /// Create the database when it does not exist (`~/.pki/nssdb` only; Firefox profiles
    /// have theirs once Firefox ran).
    pub create: bool,
}

/// How the daemon is started at login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceMode {
    /// systemd user service when a user systemd runs, else XDG autostart.
    Auto,
    /// systemd user service (`systemctl --user enable --now segel.service`).
    Systemd,
    /// XDG autostart entry (`~/.config/autostart/segel.desktop`), started now in the background.
    Autostart,
    /// Neither: the user starts `segel serve` themselves.
    None,
}

/// One thing an install does; once done, also the record of it (kept in the state file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Step {
    /// Write a file (atomically).
    WriteFile {
        path: PathBuf,
        mode: u32,
        what: String,
        #[serde(skip)]
        contents: Vec<u8>,
    },
    /// Make the local CA (the daemon's TLS material) if it does not exist yet.
    MakeCa { dir: PathBuf },
    /// Let Segel's extension call the daemon and the native host: its origin in
    /// `[daemon] extension_origins` of the user's config.toml.
    AllowExtension {
        config: PathBuf,
        origins: Vec<String>,
        /// Filled in when done: the origins that were not listed before.
        #[serde(default)]
        added: Vec<String>,
        /// Filled in when done: the config file did not exist and was made by Segel.
        #[serde(default)]
        created_file: bool,
    },
    /// Trust the local CA in an NSS database (`certutil -A -t "C,,"`).
    TrustCa {
        store: TrustStore,
        ca: PathBuf,
        /// Filled in when done: the database did not exist and was made by Segel.
        #[serde(default)]
        created_db: bool,
    },
    /// `systemctl --user daemon-reload` then `enable --now segel.service`.
    EnableSystemd { systemctl: String },
    /// Start `segel serve` in the background now (autostart mode).
    StartDaemon { segel: PathBuf, log: PathBuf },
    /// Something the user must do (nothing written).
    Instruction { text: String },
}

impl Step {
    /// One line for people (`--dry-run` and the install summary).
    pub fn describe(&self) -> String {
        match self {
            Step::WriteFile { path, what, .. } => format!("write {} ({what})", path.display()),
            Step::MakeCa { dir } => format!(
                "make the local CA and server certificate in {} (if missing)",
                dir.display()
            ),
            Step::AllowExtension {
                config, origins, ..
            } => format!(
                "allow Segel's extension ({}) in [daemon] extension_origins of {}",
                origins.join(", "),
                config.display()
            ),
            Step::TrustCa { store, .. } => format!(
                "trust the local CA as \"{CA_NICKNAME}\" in {} ({}){}",
                store.nss_dir.display(),
                store.label,
                if store.create && !store.nss_dir.join("cert9.db").exists() {
                    ", creating the database"
                } else {
                    ""
                }
            ),
            Step::EnableSystemd { systemctl } => {
                format!(
                    "{systemctl} --user daemon-reload; {systemctl} --user enable --now segel.service"
                )
            }
            Step::StartDaemon { segel, log } => format!(
                "start `{} serve` in the background now (log: {})",
                segel.display(),
                log.display()
            ),
            Step::Instruction { text } => format!("to do by hand: {text}"),
        }
    }
}

/// What `segel install` was asked for.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// The segel binary the service and native host run.
    pub segel: PathBuf,
    /// The PKCS#11 shim to register with p11-kit (`None`: not found, not registered).
    pub shim: Option<PathBuf>,
    /// The unpacked extension builds, if present (`dist/chromium`, `dist/firefox`).
    pub extension_dir: Option<PathBuf>,
    pub service: ServiceMode,
    /// `systemctl` (or a stand-in, for tests and odd systems).
    pub systemctl: String,
    /// Do not start the daemon now.
    pub no_start: bool,
}

/// The record of an install (`install.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct InstallState {
    pub version: String,
    pub platform: String,
    pub steps: Vec<Step>,
}

impl InstallState {
    pub fn load(path: &Path) -> Result<Option<Self>, InstallError> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| InstallError::State {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(InstallError::io("cannot read", path)(e)),
        }
    }

    pub fn save(&self, path: &Path) -> Result<(), InstallError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(InstallError::io("cannot create", dir))?;
        }
        let text =
            serde_json::to_vec_pretty(self).map_err(|e| InstallError::Other(e.to_string()))?;
        crate::server::files::write_private(path, &text, 0o600)
            .map_err(InstallError::io("cannot write", path))
    }
}

/// What an uninstall did.
#[derive(Debug, Default, Serialize)]
pub struct UninstallReport {
    pub removed: Vec<String>,
    pub problems: Vec<String>,
}

/// The platform-specific half of install, uninstall and doctor.
pub trait Platform {
    /// "linux", "windows", "macos".
    fn name(&self) -> &'static str;
    /// The user's home folder.
    fn home(&self) -> &Path;
    /// Where the install record lives.
    fn state_file(&self) -> PathBuf;
    /// Browsers and their per-user native-messaging locations.
    fn browsers(&self) -> Vec<BrowserLocation>;
    /// Certificate stores that must trust the local CA.
    fn trust_stores(&self) -> Vec<TrustStore>;
    /// Where the PKCS#11 shim is registered for this user (p11-kit on Linux).
    fn module_registration(&self) -> Option<PathBuf>;
    /// The steps of an install, in order.
    fn plan(&self, opts: &InstallOptions) -> Result<Vec<Step>, InstallError>;
    /// Carry out one step; returns its record (e.g. whether a database was created).
    fn apply(&self, step: &Step) -> Result<Step, InstallError>;
    /// Undo one recorded step (missing things are not an error).
    fn undo(&self, step: &Step, report: &mut UninstallReport);
    /// Folders `--purge` removes (config, state, data).
    fn purge_dirs(&self) -> Vec<PathBuf>;
}

/// The platform this binary runs on.
pub fn current() -> Result<impl Platform, InstallError> {
    linux::Linux::for_user()
}

/// Apply every step; the state file is written after each step, so an interrupted install
/// can still be undone. Earlier records of steps not repeated now are kept.
pub fn install(platform: &impl Platform, steps: &[Step]) -> Result<Vec<Step>, InstallError> {
    let state_path = platform.state_file();
    let mut state = InstallState::load(&state_path)?.unwrap_or_default();
    state.version = env!("CARGO_PKG_VERSION").to_owned();
    state.platform = platform.name().to_owned();
    let mut done = Vec::new();
    for step in steps {
        let record = platform.apply(step)?;
        if !matches!(record, Step::Instruction { .. } | Step::MakeCa { .. }) {
            // Replace an older record of the same thing, keeping "made by Segel" facts.
            let mut merged = record.clone();
            for old in state.steps.iter().filter(|s| same_target(s, &record)) {
                keep_earlier_facts(old, &mut merged);
            }
            state.steps.retain(|s| !same_target(s, &record));
            state.steps.push(merged);
            state.save(&state_path)?;
        }
        done.push(record);
    }
    Ok(done)
}

/// A repeated install finds things already done; what the first one made stays recorded, so
/// uninstall still undoes it.
fn keep_earlier_facts(old: &Step, new: &mut Step) {
    match (old, new) {
        (Step::TrustCa { created_db: a, .. }, Step::TrustCa { created_db: b, .. }) => *b |= *a,
        (
            Step::AllowExtension {
                added: a,
                created_file: fa,
                ..
            },
            Step::AllowExtension {
                added: b,
                created_file: fb,
                ..
            },
        ) => {
            *fb |= *fa;
            for o in a {
                if !b.contains(o) {
                    b.push(o.clone());
                }
            }
        }
        _ => {}
    }
}

fn same_target(a: &Step, b: &Step) -> bool {
    match (a, b) {
        (Step::WriteFile { path: x, .. }, Step::WriteFile { path: y, .. }) => x == y,
        (Step::TrustCa { store: x, .. }, Step::TrustCa { store: y, .. }) => x.nss_dir == y.nss_dir,
        (Step::AllowExtension { config: x, .. }, Step::AllowExtension { config: y, .. }) => x == y,
        (Step::EnableSystemd { .. }, Step::EnableSystemd { .. }) => true,
        (Step::StartDaemon { .. }, Step::StartDaemon { .. }) => true,
        _ => false,
    }
}

/// Undo what the state file records (or, without one, what an install would have made), in
/// reverse order; with `purge`, also remove Segel's config, state and data folders.
pub fn uninstall(
    platform: &impl Platform,
    fallback: &[Step],
    purge: bool,
) -> Result<UninstallReport, InstallError> {
    let state_path = platform.state_file();
    let steps = match InstallState::load(&state_path)? {
        Some(state) => state.steps,
        None => fallback.to_vec(),
    };
    let mut report = UninstallReport::default();
    for step in steps.iter().rev() {
        platform.undo(step, &mut report);
    }
    if report.problems.is_empty() {
        match std::fs::remove_file(&state_path) {
            Ok(()) => report.removed.push(state_path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => report
                .problems
                .push(format!("cannot remove {}: {e}", state_path.display())),
        }
    }
    if purge {
        for dir in platform.purge_dirs() {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => report.removed.push(dir.display().to_string()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => report
                    .problems
                    .push(format!("cannot remove {}: {e}", dir.display())),
            }
        }
    }
    Ok(report)
}

/// Fill a template: every `@KEY@` replaced.
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = template.to_owned();
    for (k, v) in values {
        out = out.replace(&format!("@{k}@"), v);
    }
    out
}

/// A path as a POSIX shell single-quoted word.
pub fn shell_quote(path: &Path) -> String {
    path.display().to_string().replace('\'', r"'\''")
}

/// Is the user's locale Indonesian (`LC_ALL`, `LC_MESSAGES`, then `LANG` starting with `id`)?
pub fn indonesian_locale() -> bool {
    for var in ["LC_ALL", "LC_MESSAGES", "LANG"] {
        if let Ok(v) = std::env::var(var)
            && !v.is_empty()
        {
            return v.starts_with("id");
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_every_placeholder() {
        let m = fill(
            CHROMIUM_MANIFEST_TEMPLATE,
            &[
                ("HOST", "/x/native-host"),
                ("CHROMIUM_ID", CHROMIUM_EXTENSION_ID),
            ],
        );
        let v: serde_json::Value = serde_json::from_str(&m).unwrap();
        assert_eq!(v["name"], NATIVE_HOST_NAME);
        assert_eq!(
            v["allowed_origins"][0],
            format!("chrome-extension://{CHROMIUM_EXTENSION_ID}/")
        );
        let f = fill(
            FIREFOX_MANIFEST_TEMPLATE,
            &[
                ("HOST", "/x/native-host"),
                ("FIREFOX_ID", FIREFOX_EXTENSION_ID),
            ],
        );
        let v: serde_json::Value = serde_json::from_str(&f).unwrap();
        assert_eq!(v["allowed_extensions"][0], FIREFOX_EXTENSION_ID);
        let unit = fill(SERVICE_TEMPLATE, &[("SEGEL", "/usr/bin/segel")]);
        assert!(unit.contains("ExecStart=/usr/bin/segel serve"));
        assert!(!unit.contains('@'));
    }

    #[test]
    fn shell_quote_escapes_single_quotes() {
        assert_eq!(shell_quote(Path::new("/a b/it's")), r"/a b/it'\''s");
    }
}
