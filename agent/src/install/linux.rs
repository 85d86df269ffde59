//! The Linux platform: XDG folders, NSS databases, p11-kit, systemd user services or XDG
//! autostart.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{
    BrowserLocation, CA_NICKNAME, CHROMIUM_EXTENSION_ID, CHROMIUM_MANIFEST_TEMPLATE,
    FIREFOX_EXTENSION_ID, FIREFOX_MANIFEST_TEMPLATE, InstallError, InstallOptions, ManifestKind,
    NATIVE_HOST_TEMPLATE, Platform, SERVICE_TEMPLATE, ServiceMode, Step, TrustStore,
    UninstallReport, fill, nss, shell_quote,
};
use crate::config::Paths;
use crate::server::files::{DaemonFiles, write_private};

/// Linux, for the current user (HOME and the XDG variables).
#[derive(Debug, Clone)]
pub struct Linux {
    home: PathBuf,
    /// `$XDG_CONFIG_HOME` (`~/.config`).
    config_home: PathBuf,
    paths: Paths,
}

impl Linux {
    pub fn for_user() -> Result<Self, InstallError> {
        let base = directories::BaseDirs::new().ok_or(InstallError::NoHome)?;
        let paths = Paths::for_user().map_err(|_| InstallError::NoHome)?;
        Ok(Linux {
            home: base.home_dir().to_path_buf(),
            config_home: base.config_dir().to_path_buf(),
            paths,
        })
    }

    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    pub fn daemon_files(&self) -> DaemonFiles {
        DaemonFiles::in_dir(self.paths.state_dir.join("daemon"))
    }

    /// The launcher browsers start for `id.segel.agent`.
    pub fn native_host_path(&self) -> PathBuf {
        self.paths.data_dir.join("native-host")
    }

    pub fn systemd_unit_path(&self) -> PathBuf {
        self.config_home.join("systemd/user/segel.service")
    }

    pub fn autostart_path(&self) -> PathBuf {
        self.config_home.join("autostart/segel.desktop")
    }

    pub fn user_nssdb(&self) -> PathBuf {
        self.home.join(".pki/nssdb")
    }

    /// Folders that stop the clean-up of empty parents.
    fn roots(&self) -> Vec<PathBuf> {
        vec![
            self.home.clone(),
            self.config_home.clone(),
            self.home.join(".local/share"),
            self.home.join(".local/state"),
            self.home.join(".local"),
        ]
    }
}

/// Does a user systemd instance answer `systemctl --user`?
pub fn systemd_user_available(systemctl: &str) -> bool {
    let Ok(out) = Command::new(systemctl)
        .args(["--user", "is-system-running"])
        .stdin(Stdio::null())
        .output()
    else {
        return false;
    };
    let state = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    matches!(
        state.as_str(),
        "running" | "degraded" | "starting" | "initializing" | "maintenance"
    )
}

fn run_checked(cmd: &mut Command) -> Result<(), InstallError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| InstallError::Command(format!("cannot run {cmd:?}: {e}")))?;
    if !out.status.success() {
        return Err(InstallError::Command(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

fn autostart_entry(segel: &Path) -> String {
    // Desktop Entry Exec: a double-quoted argument with \ " ` $ escaped.
    let mut quoted = String::new();
    for c in segel.display().to_string().chars() {
        if matches!(c, '\\' | '"' | '`' | '$') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    format!(
        "# Written by `segel install` (no systemd user session): starts Segel's daemon at login.\n\
         [Desktop Entry]\nType=Application\nName=Segel\n\
         Comment=Segel signing agent (localhost daemon for the browser extension)\n\
         Exec=\"{quoted}\" serve\nTerminal=false\nNoDisplay=true\nX-GNOME-Autostart-enabled=true\n"
    )
}

impl Platform for Linux {
    fn name(&self) -> &'static str {
        "linux"
    }

    fn home(&self) -> &Path {
        &self.home
    }

    fn state_file(&self) -> PathBuf {
        self.paths.state_dir.join("install.json")
    }

    fn browsers(&self) -> Vec<BrowserLocation> {
        let c = &self.config_home;
        let chromium = |name, dir: &str, commands| BrowserLocation {
            name,
            kind: ManifestKind::Chromium,
            manifest_dir: c.join(dir).join("NativeMessagingHosts"),
            profile_dir: c.join(dir),
            commands,
        };
        vec![
            chromium("Chromium", "chromium", &["chromium", "chromium-browser"]),
            chromium(
                "Google Chrome",
                "google-chrome",
                &["google-chrome", "google-chrome-stable"],
            ),
            chromium(
                "Brave",
                "BraveSoftware/Brave-Browser",
                &["brave-browser", "brave"],
            ),
            chromium(
                "Microsoft Edge",
                "microsoft-edge",
                &["microsoft-edge", "microsoft-edge-stable"],
            ),
            BrowserLocation {
                name: "Firefox",
                kind: ManifestKind::Firefox,
                manifest_dir: self.home.join(".mozilla/native-messaging-hosts"),
                profile_dir: self.home.join(".mozilla/firefox"),
                commands: &["firefox", "firefox-esr"],
            },
        ]
    }

    fn trust_stores(&self) -> Vec<TrustStore> {
        let mut stores = vec![TrustStore {
            label: "user NSS database (Chromium, Chrome, Brave, Edge)".to_owned(),
            nss_dir: self.user_nssdb(),
            create: true,
        }];
        for (name, dir) in nss::firefox_profiles(&self.home) {
            stores.push(TrustStore {
                label: format!("Firefox profile {name}"),
                nss_dir: dir,
                create: false,
            });
        }
        stores
    }

    fn module_registration(&self) -> Option<PathBuf> {
        Some(self.config_home.join("pkcs11/modules/segel.module"))
    }

    fn plan(&self, opts: &InstallOptions) -> Result<Vec<Step>, InstallError> {
        let mut steps = Vec::new();
        let files = self.daemon_files();
        steps.push(Step::MakeCa {
            dir: files.tls_dir(),
        });
        // Before the daemon starts: it reads the extension origins once. Firefox's origin is
        // known only where the add-on is installed already (random per profile).
        let profiles: Vec<PathBuf> = nss::firefox_profiles(&self.home)
            .into_iter()
            .map(|(_, dir)| dir)
            .collect();
        let firefox = super::daemon_config::firefox_origins(&profiles, FIREFOX_EXTENSION_ID);
        let firefox_pending = !profiles.is_empty() && firefox.is_empty();
        let mut origins = vec![format!("chrome-extension://{CHROMIUM_EXTENSION_ID}")];
        origins.extend(firefox);
        steps.push(Step::AllowExtension {
            config: self.paths.config_file(),
            origins,
            added: Vec::new(),
            created_file: false,
        });

        // Native messaging: one launcher, a manifest per browser.
        let host = self.native_host_path();
        steps.push(Step::WriteFile {
            path: host.clone(),
            mode: 0o755,
            what: format!("native-messaging host {}", super::NATIVE_HOST_NAME),
            contents: fill(
                NATIVE_HOST_TEMPLATE,
                &[("SEGEL", &shell_quote(&opts.segel))],
            )
            .into_bytes(),
        });
        let host_text = host.display().to_string();
        for b in self.browsers() {
            let contents = match b.kind {
                ManifestKind::Chromium => fill(
                    CHROMIUM_MANIFEST_TEMPLATE,
                    &[("HOST", &host_text), ("CHROMIUM_ID", CHROMIUM_EXTENSION_ID)],
                ),
                ManifestKind::Firefox => fill(
                    FIREFOX_MANIFEST_TEMPLATE,
                    &[("HOST", &host_text), ("FIREFOX_ID", FIREFOX_EXTENSION_ID)],
                ),
            };
            steps.push(Step::WriteFile {
                path: b.manifest_path(),
                mode: 0o644,
                what: format!("native-messaging manifest for {}", b.name),
                contents: contents.into_bytes(),
            });
        }

        // The local CA in every NSS database.
        for store in self.trust_stores() {
            if store.create || nss::exists(&store.nss_dir) {
                steps.push(Step::TrustCa {
                    store,
                    ca: files.ca_cert(),
                    created_db: false,
                });
            } else {
                steps.push(Step::Instruction {
                    text: format!(
                        "{} has no certificate database yet: start Firefox once, then run `segel install` again",
                        store.label
                    ),
                });
            }
        }

        // The shim for p11-kit (Firefox through p11-kit-proxy, GnuTLS, OpenSSL's provider, …).
        if let Some(reg) = self.module_registration() {
            match &opts.shim {
                Some(shim) => steps.push(Step::WriteFile {
                    path: reg,
                    mode: 0o644,
                    what: "p11-kit registration of the flash-drive key file module".to_owned(),
                    contents: format!(
                        "# Written by `segel install`: PKCS#12 key files on flash drives as PKCS#11 tokens.\nmodule: {}\n",
                        shim.display()
                    )
                    .into_bytes(),
                }),
                None => steps.push(Step::Instruction {
                    text: "libsegel_pkcs11.so was not found next to segel nor in /usr/lib/segel: \
                           flash-drive key files are not registered with p11-kit (use --shim PATH)"
                        .to_owned(),
                }),
            }
        }

        // The daemon at login.
        let mode = match opts.service {
            ServiceMode::Auto if systemd_user_available(&opts.systemctl) => ServiceMode::Systemd,
            ServiceMode::Auto => ServiceMode::Autostart,
            m => m,
        };
        match mode {
            ServiceMode::Systemd => {
                steps.push(Step::WriteFile {
                    path: self.systemd_unit_path(),
                    mode: 0o644,
                    what: "systemd user service".to_owned(),
                    contents: fill(
                        SERVICE_TEMPLATE,
                        &[("SEGEL", &opts.segel.display().to_string())],
                    )
                    .into_bytes(),
                });
                steps.push(Step::EnableSystemd {
                    systemctl: opts.systemctl.clone(),
                });
            }
            ServiceMode::Autostart => {
                steps.push(Step::Instruction {
                    text: "no systemd user session here: the daemon starts at login through an XDG autostart entry instead of a systemd service".to_owned(),
                });
                steps.push(Step::WriteFile {
                    path: self.autostart_path(),
                    mode: 0o644,
                    what: "XDG autostart entry for the daemon".to_owned(),
                    contents: autostart_entry(&opts.segel).into_bytes(),
                });
                if !opts.no_start {
                    steps.push(Step::StartDaemon {
                        segel: opts.segel.clone(),
                        log: self.paths.state_dir.join("serve.log"),
                    });
                }
            }
            ServiceMode::None | ServiceMode::Auto => steps.push(Step::Instruction {
                text: "the daemon is not started at login: run `segel serve` yourself".to_owned(),
            }),
        }

        // The extension itself.
        let text = match &opts.extension_dir {
            Some(dir) => format!(
                "install the extension: in Chromium/Chrome/Brave/Edge open chrome://extensions, switch on \
                 Developer mode, \"Load unpacked\" and choose {}; in Firefox use about:debugging → \
                 \"Load Temporary Add-on\" with {} (extension ID {CHROMIUM_EXTENSION_ID}, add-on ID {FIREFOX_EXTENSION_ID})",
                dir.join("chromium").display(),
                dir.join("firefox/manifest.json").display()
            ),
            None => format!(
                "install Segel's browser extension (ID {CHROMIUM_EXTENSION_ID}; Firefox {FIREFOX_EXTENSION_ID}): \
                 no packaged build was found next to segel or in /usr/share/segel/extension"
            ),
        };
        steps.push(Step::Instruction { text });
        if firefox_pending {
            steps.push(Step::Instruction {
                text:
                    "Firefox gives the add-on its own address in each profile: once it is loaded, \
                       run `segel install` again so the daemon accepts it"
                        .to_owned(),
            });
        }
        Ok(steps)
    }

    fn apply(&self, step: &Step) -> Result<Step, InstallError> {
        match step {
            Step::WriteFile {
                path,
                mode,
                contents,
                ..
            } => {
                let dir = path.parent().unwrap_or(Path::new("/"));
                std::fs::create_dir_all(dir).map_err(InstallError::io("cannot create", dir))?;
                write_private(path, contents, *mode)
                    .and_then(|()| {
                        std::fs::set_permissions(path, std::fs::Permissions::from_mode(*mode))
                    })
                    .map_err(InstallError::io("cannot write", path))?;
            }
            Step::MakeCa { .. } => {
                let files = self.daemon_files();
                files
                    .ensure_dirs()
                    .map_err(InstallError::io("cannot create", &files.dir))?;
                crate::server::tls::ensure(&files, crate::server::tls::DEFAULT_RENEW_DAYS)
                    .map_err(|e| InstallError::Other(e.to_string()))?;
            }
            Step::AllowExtension {
                config, origins, ..
            } => {
                let added = super::daemon_config::allow_extension(config, origins)?;
                return Ok(Step::AllowExtension {
                    config: config.clone(),
                    origins: origins.clone(),
                    added: added.origins,
                    created_file: added.created_file,
                });
            }
            Step::TrustCa { store, ca, .. } => {
                let mut created_db = false;
                if !nss::exists(&store.nss_dir) {
                    if !store.create {
                        return Err(InstallError::Other(format!(
                            "{} has no NSS database",
                            store.nss_dir.display()
                        )));
                    }
                    nss::create(&store.nss_dir)?;
                    created_db = true;
                }
                nss::add_ca(&store.nss_dir, CA_NICKNAME, ca)?;
                return Ok(Step::TrustCa {
                    store: store.clone(),
                    ca: ca.clone(),
                    created_db,
                });
            }
            Step::EnableSystemd { systemctl } => {
                run_checked(Command::new(systemctl).args(["--user", "daemon-reload"]))?;
                run_checked(Command::new(systemctl).args([
                    "--user",
                    "enable",
                    "--now",
                    "segel.service",
                ]))?;
            }
            Step::StartDaemon { segel, log } => {
                let files = self.daemon_files();
                if crate::server::endpoint::read(&files).is_none() {
                    let dir = log.parent().unwrap_or(Path::new("/"));
                    std::fs::create_dir_all(dir).map_err(InstallError::io("cannot create", dir))?;
                    let out = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(log)
                        .map_err(InstallError::io("cannot open", log))?;
                    let err = out
                        .try_clone()
                        .map_err(InstallError::io("cannot open", log))?;
                    Command::new(segel)
                        .arg("serve")
                        .stdin(Stdio::null())
                        .stdout(out)
                        .stderr(err)
                        // Its own process group: not stopped with the installing terminal.
                        .process_group(0)
                        .spawn()
                        .map_err(InstallError::io("cannot start", segel))?;
                    // Wait for it to listen, so the summary can say it runs.
                    let t0 = Instant::now();
                    while crate::server::endpoint::read(&files).is_none() {
                        if t0.elapsed() > Duration::from_secs(15) {
                            return Err(InstallError::Other(format!(
                                "`segel serve` did not start in 15 s; see {}",
                                log.display()
                            )));
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
            Step::Instruction { .. } => {}
        }
        Ok(step.clone())
    }

    fn undo(&self, step: &Step, report: &mut UninstallReport) {
        match step {
            Step::WriteFile { path, .. } => match std::fs::remove_file(path) {
                Ok(()) => {
                    report.removed.push(path.display().to_string());
                    let roots = self.roots();
                    let mut dir = path.parent();
                    while let Some(d) = dir {
                        if roots.iter().any(|r| r == d) || std::fs::remove_dir(d).is_err() {
                            break;
                        }
                        report.removed.push(d.display().to_string());
                        dir = d.parent();
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => report
                    .problems
                    .push(format!("cannot remove {}: {e}", path.display())),
            },
            Step::AllowExtension {
                config,
                added,
                created_file,
                ..
            } => match super::daemon_config::disallow_extension(config, added, *created_file) {
                Ok(done) => report.removed.extend(done),
                Err(e) => report.problems.push(e.to_string()),
            },
            Step::TrustCa {
                store, created_db, ..
            } => {
                if !nss::exists(&store.nss_dir) {
                    return;
                }
                match nss::delete_all(&store.nss_dir, CA_NICKNAME) {
                    Ok(n) if n > 0 => report.removed.push(format!(
                        "\"{CA_NICKNAME}\" from {}",
                        store.nss_dir.display()
                    )),
                    Ok(_) => {}
                    Err(e) => report.problems.push(e.to_string()),
                }
                if *created_db {
                    match nss::remove_if_empty(&store.nss_dir) {
                        Ok(paths) => {
                            report
                                .removed
                                .extend(paths.iter().map(|p| p.display().to_string()));
                            // `~/.pki` too, when Segel's database was all it held.
                            if let Some(parent) = store.nss_dir.parent()
                                && !paths.is_empty()
                                && parent != self.home
                                && std::fs::remove_dir(parent).is_ok()
                            {
                                report.removed.push(parent.display().to_string());
                            }
                        }
                        Err(e) => report.problems.push(e.to_string()),
                    }
                }
            }
            Step::EnableSystemd { systemctl } => {
                for args in [
                    &["--user", "disable", "--now", "segel.service"][..],
                    &["--user", "daemon-reload"][..],
                ] {
                    if let Err(e) = run_checked(Command::new(systemctl).args(args)) {
                        report.problems.push(e.to_string());
                    }
                }
                report
                    .removed
                    .push("systemd user service segel.service (disabled, stopped)".to_owned());
            }
            Step::StartDaemon { .. } => {
                let files = self.daemon_files();
                if let Some(ep) = crate::server::endpoint::read(&files) {
                    if let Err(e) =
                        run_checked(Command::new("kill").args(["-TERM", &ep.pid.to_string()]))
                    {
                        report.problems.push(e.to_string());
                        return;
                    }
                    let t0 = Instant::now();
                    while crate::server::endpoint::read(&files).is_some()
                        && t0.elapsed() < Duration::from_secs(10)
                    {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    report
                        .removed
                        .push(format!("the running daemon (pid {})", ep.pid));
                }
            }
            Step::MakeCa { .. } | Step::Instruction { .. } => {}
        }
    }

    fn purge_dirs(&self) -> Vec<PathBuf> {
        vec![
            self.paths.config_dir.clone(),
            self.paths.state_dir.clone(),
            self.paths.data_dir.clone(),
        ]
    }
}

/// The shim next to the segel binary (a build tree) or where the .deb puts it.
pub fn find_shim(segel: &Path) -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(dir) = segel.parent() {
        candidates.push(dir.join("libsegel_pkcs11.so"));
    }
    candidates.push(PathBuf::from("/usr/lib/segel/libsegel_pkcs11.so"));
    candidates.into_iter().find(|p| p.is_file())
}

/// The unpacked extension builds: the .deb's folder, or a build tree's `web-extension/dist`.
pub fn find_extension(segel: &Path) -> Option<PathBuf> {
    let mut candidates = vec![PathBuf::from("/usr/share/segel/extension")];
    // <workspace>/target/<profile>/segel → <workspace>/web-extension/dist
    if let Some(ws) = segel.ancestors().nth(3) {
        candidates.push(ws.join("web-extension/dist"));
    }
    candidates
        .into_iter()
        .find(|d| d.join("chromium/manifest.json").is_file())
}
