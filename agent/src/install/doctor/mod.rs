//! `segel doctor`: what is wrong with this user's Segel, and how to fix it.
//!
//! Each check gives a status (ok, warn, fail, skip), a message and, when not ok, a fix, in
//! English or Bahasa Indonesia (by locale). Checks: config file, admin policy, the daemon
//! (endpoint file, TLS with the install CA, `/v1/status` with the credential), the local CA
//! (validity, trusted in the user's NSS database and each Firefox profile), native messaging
//! for each installed browser, PKCS#11 modules (found, loadable), pcscd with its readers, cards
//! and unknown ATRs ([`pcsc`]), and the certificates on the tokens (expired, expiring within 30
//! days).
//!
//! Doctor never hangs: the check groups run side by side, each on its own thread, and the whole
//! run has one time limit ([`Doctor::limit`]). A check that has not answered by then (a pcscd
//! that accepts connections but never replies, a module whose `C_Initialize` blocks) is reported
//! as timed out, with a fix; its thread is left behind, and the process ends right after.

mod pcsc;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use super::linux::Linux;
use super::{
    CA_NICKNAME, CHROMIUM_EXTENSION_ID, FIREFOX_EXTENSION_ID, ManifestKind, Platform, nss,
};
use crate::certinfo::CertInfo;
use crate::config::Config;
use crate::server::credential::Credential;
use crate::server::endpoint;
use crate::token::{ModuleSpec, ServiceOptions, TokenService, module};

/// Certificates expiring within this many days are reported.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// The pcscd socket when `PCSCLITE_CSOCK_NAME` is not set.
pub const PCSCD_SOCKET: &str = "/run/pcscd/pcscd.comm";

/// How long a whole doctor run may take unless told otherwise (`segel doctor --timeout`).
pub const DEFAULT_LIMIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Skip,
    Warn,
    Fail,
}

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Stable id: "config", "policy", "daemon", "ca", "ca-trust", "native-messaging",
    /// "module", "tokens", "pcscd", "atr-table", "reader".
    pub id: &'static str,
    /// What was checked (a browser, a database, a module path), if more than one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub status: Status,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// The doctor's inputs.
#[derive(Debug, Clone)]
pub struct Doctor {
    pub platform: Linux,
    /// The loaded config, or why it failed to load.
    pub config: Result<Config, String>,
    /// Modules named with `--module`.
    pub explicit_modules: Vec<PathBuf>,
    /// Messages in Bahasa Indonesia.
    pub indonesian: bool,
    /// The longest the whole run may take.
    pub limit: Duration,
}

/// A check group: runs on its own thread.
type Group = Box<dyn FnOnce(&Arc<Doctor>) -> Vec<Check> + Send>;

/// Run `f` on a thread of its own; the receiver gets its result. `None` when no thread could
/// be made (reported like a check that did not answer).
fn spawn<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<Receiver<T>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("segel-doctor".to_owned())
        .spawn(move || {
            // The receiver may have given up waiting: nothing to do then.
            let _ = tx.send(f());
        })
        .ok()?;
    Some(rx)
}

/// The result of a [`spawn`]ed check if it comes by `deadline`.
fn wait<T>(rx: Option<Receiver<T>>, deadline: Instant) -> Option<T> {
    rx?.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .ok()
}

impl Doctor {
    fn t(&self, en: String, id: String) -> String {
        if self.indonesian { id } else { en }
    }

    fn check(
        &self,
        id: &'static str,
        subject: Option<String>,
        status: Status,
        message: (String, String),
        fix: Option<(String, String)>,
    ) -> Check {
        Check {
            id,
            subject,
            status,
            message: self.t(message.0, message.1),
            fix: fix.map(|(en, idn)| self.t(en, idn)),
        }
    }

    /// Run every check within [`Doctor::limit`].
    pub fn run(self) -> Vec<Check> {
        let deadline = Instant::now() + self.limit;
        // Checks inside a group stop a little earlier, so they report their own finding.
        let inner = deadline - (self.limit / 5).min(Duration::from_secs(1));
        let doctor = Arc::new(self);
        let groups: Vec<(&'static str, Group)> = vec![
            (
                "config",
                Box::new(|d: &Arc<Doctor>| {
                    let mut v = vec![d.config_check(), d.policy_check()];
                    v.extend(d.extension_allowed_check());
                    v
                }),
            ),
            ("daemon", Box::new(|d: &Arc<Doctor>| vec![d.daemon_check()])),
            ("ca", Box::new(|d: &Arc<Doctor>| d.ca_checks())),
            (
                "native-messaging",
                Box::new(|d: &Arc<Doctor>| d.native_messaging_checks()),
            ),
            (
                "module",
                Box::new(move |d: &Arc<Doctor>| d.module_and_token_checks(inner)),
            ),
            (
                "pcscd",
                Box::new(move |d: &Arc<Doctor>| d.pcsc_checks(inner)),
            ),
        ];
        let pending: Vec<_> = groups
            .into_iter()
            .map(|(id, group)| {
                let d = Arc::clone(&doctor);
                (id, spawn(move || group(&d)))
            })
            .collect();
        let mut out = Vec::new();
        for (id, rx) in pending {
            match wait(rx, deadline) {
                Some(checks) => out.extend(checks),
                None => out.push(doctor.timed_out(id, None)),
            }
        }
        out
    }

    /// A check that did not answer within the limit.
    fn timed_out(&self, id: &'static str, subject: Option<String>) -> Check {
        let secs = self.limit.as_secs_f64().round();
        let what = subject.clone().unwrap_or_else(|| id.to_owned());
        let fix = match id {
            "pcscd" => (
                "pcscd accepts connections but does not answer: restart it (sudo systemctl restart pcscd.socket pcscd.service), then unplug and replug the reader".to_owned(),
                "pcscd menerima koneksi tetapi tidak menjawab: mulai ulang (sudo systemctl restart pcscd.socket pcscd.service), lalu cabut dan pasang kembali pembaca kartu".to_owned(),
            ),
            "module" => (
                format!("the module {what} hangs while starting (C_Initialize), often waiting for pcscd or a token: restart pcscd, unplug and replug the token, or remove the module from where it is listed"),
                format!("modul {what} macet saat dimulai (C_Initialize), biasanya menunggu pcscd atau token: mulai ulang pcscd, cabut dan pasang kembali token, atau hapus modul dari daftar"),
            ),
            "tokens" => (
                "a token does not answer: unplug and replug it, restart pcscd, then run `segel doctor` again".to_owned(),
                "token tidak menjawab: cabut dan pasang kembali, mulai ulang pcscd, lalu jalankan `segel doctor` lagi".to_owned(),
            ),
            "daemon" => (
                "restart the daemon (systemctl --user restart segel.service, or stop it and run `segel serve`)".to_owned(),
                "mulai ulang daemon (systemctl --user restart segel.service, atau hentikan lalu jalankan `segel serve`)".to_owned(),
            ),
            _ => (
                "run `segel doctor --timeout 60` to give it more time; if it still hangs, report it with `segel -v doctor`".to_owned(),
                "jalankan `segel doctor --timeout 60` agar lebih lama; jika tetap macet, laporkan dengan `segel -v doctor`".to_owned(),
            ),
        };
        self.check(
            id,
            subject,
            Status::Fail,
            (
                format!("{what}: no answer within {secs} s (doctor's time limit)"),
                format!("{what}: tidak ada jawaban dalam {secs} detik (batas waktu doctor)"),
            ),
            Some(fix),
        )
    }

    /// Modules load side by side until half the time left; the tokens get the rest.
    fn module_and_token_checks(self: &Arc<Self>, deadline: Instant) -> Vec<Check> {
        let mut out = Vec::new();
        let now = Instant::now();
        let loaded_by = now + deadline.saturating_duration_since(now) / 2;
        let loadable = self.module_checks(&mut out, loaded_by);
        if !loadable.is_empty() {
            let d = Arc::clone(self);
            match wait(spawn(move || d.token_checks(&loadable)), deadline) {
                Some(checks) => out.extend(checks),
                None => out.push(self.timed_out("tokens", None)),
            }
        }
        out
    }

    fn config_check(&self) -> Check {
        let file = self.platform.paths().config_file();
        match &self.config {
            Ok(_) => self.check(
                "config",
                None,
                Status::Ok,
                (
                    format!("config file {} is valid (or absent)", file.display()),
                    format!(
                        "berkas konfigurasi {} valid (atau tidak ada)",
                        file.display()
                    ),
                ),
                None,
            ),
            Err(e) => self.check(
                "config",
                None,
                Status::Fail,
                (e.clone(), format!("konfigurasi tidak valid: {e}")),
                Some((
                    format!("correct or remove {}", file.display()),
                    format!("perbaiki atau hapus {}", file.display()),
                )),
            ),
        }
    }

    fn policy_check(&self) -> Check {
        match crate::server::policy::load_admin_policy(None) {
            Ok((_, Some(path))) => self.check(
                "policy",
                None,
                Status::Ok,
                (
                    format!("administrator policy {} is valid", path.display()),
                    format!("kebijakan administrator {} valid", path.display()),
                ),
                None,
            ),
            Ok((_, None)) => self.check(
                "policy",
                None,
                Status::Ok,
                (
                    "no administrator policy file".to_owned(),
                    "tidak ada berkas kebijakan administrator".to_owned(),
                ),
                None,
            ),
            Err(e) => self.check(
                "policy",
                None,
                Status::Fail,
                (e.to_string(), format!("kebijakan administrator tidak valid: {e}")),
                Some((
                    "ask your administrator to correct the policy file (see docs/architecture.md, \"Policy\")".to_owned(),
                    "minta administrator memperbaiki berkas kebijakan".to_owned(),
                )),
            ),
        }
    }

    /// The daemon and the native host accept only the extension origins the policy names;
    /// `segel install` adds Segel's. Nothing to say when the config or the policy is broken
    /// (reported above).
    fn extension_allowed_check(&self) -> Option<Check> {
        use crate::server::policy::{Policy, load_admin_policy};
        let config = self.config.as_ref().ok()?;
        let (admin, admin_file) = load_admin_policy(None).ok()?;
        // Where the list comes from: the admin policy when it sets one, else the user's config.
        let from = match (&admin_file, &admin.extension_origins) {
            (Some(f), Some(_)) => f.clone(),
            _ => self.platform.paths().config_file(),
        };
        let policy = Policy::effective(&config.daemon, &admin, admin_file).ok()?;
        let origin = format!("chrome-extension://{CHROMIUM_EXTENSION_ID}");
        Some(if policy.extension_origins.contains(&origin) {
            self.check(
                "extension",
                None,
                Status::Ok,
                (
                    format!("the daemon accepts Segel's extension ({origin})"),
                    format!("daemon menerima ekstensi Segel ({origin})"),
                ),
                None,
            )
        } else {
            self.check(
                "extension",
                None,
                Status::Fail,
                (
                    format!("{origin} is not in extension_origins ({}): the daemon and the native host refuse Segel's extension", from.display()),
                    format!("{origin} tidak ada di extension_origins ({}): daemon dan host native menolak ekstensi Segel", from.display()),
                ),
                Some((
                    "run `segel install` (adds it to [daemon] extension_origins in config.toml); with an administrator policy, ask the administrator to add it".to_owned(),
                    "jalankan `segel install` (menambahkannya ke [daemon] extension_origins di config.toml); dengan kebijakan administrator, minta administrator menambahkannya".to_owned(),
                )),
            )
        })
    }

    fn start_fix(&self) -> (String, String) {
        let p = &self.platform;
        if p.systemd_unit_path().is_file() {
            (
                "start it: systemctl --user start segel.service (logs: journalctl --user -u segel)"
                    .to_owned(),
                "jalankan: systemctl --user start segel.service (log: journalctl --user -u segel)"
                    .to_owned(),
            )
        } else if p.autostart_path().is_file() {
            (
                "start it: run `segel serve &` (it also starts at your next login)".to_owned(),
                "jalankan `segel serve &` (juga otomatis berjalan saat login berikutnya)"
                    .to_owned(),
            )
        } else {
            (
                "run `segel install` (starts the daemon now and at every login)".to_owned(),
                "jalankan `segel install` (daemon berjalan sekarang dan setiap login)".to_owned(),
            )
        }
    }

    fn daemon_check(&self) -> Check {
        let files = self.platform.daemon_files();
        let Some(ep) = endpoint::read(&files) else {
            return self.check(
                "daemon",
                None,
                Status::Fail,
                (
                    "the Segel daemon is not running: the extension will say \"agent not detected\"".to_owned(),
                    "daemon Segel tidak berjalan: ekstensi akan menampilkan \"agen tidak terdeteksi\"".to_owned(),
                ),
                Some(self.start_fix()),
            );
        };
        let result = (|| -> Result<u16, String> {
            let ca = std::fs::read(files.ca_cert())
                .map_err(|e| format!("{}: {e}", files.ca_cert().display()))?;
            let credential = Credential::load(&files.credential()).map_err(|e| e.to_string())?;
            status_request(&ep.url, &ca, credential.expose())
        })();
        match result {
            Ok(200) => self.check(
                "daemon",
                None,
                Status::Ok,
                (
                    format!("daemon running at {} (pid {}), TLS and credential accepted", ep.url, ep.pid),
                    format!("daemon berjalan di {} (pid {}), TLS dan kredensial diterima", ep.url, ep.pid),
                ),
                None,
            ),
            Ok(code) => self.check(
                "daemon",
                None,
                Status::Fail,
                (
                    format!("daemon at {} answered /v1/status with HTTP {code}", ep.url),
                    format!("daemon di {} menjawab /v1/status dengan HTTP {code}", ep.url),
                ),
                Some((
                    "restart the daemon (systemctl --user restart segel.service, or stop and run `segel serve`)".to_owned(),
                    "mulai ulang daemon (systemctl --user restart segel.service, atau hentikan lalu jalankan `segel serve`)".to_owned(),
                )),
            ),
            Err(e) => self.check(
                "daemon",
                None,
                Status::Fail,
                (
                    format!("daemon (pid {}) at {} is not reachable: {e}", ep.pid, ep.url),
                    format!("daemon (pid {}) di {} tidak dapat dihubungi: {e}", ep.pid, ep.url),
                ),
                Some((
                    "restart the daemon (systemctl --user restart segel.service, or stop it and run `segel serve`)".to_owned(),
                    "mulai ulang daemon (systemctl --user restart segel.service, atau hentikan lalu jalankan `segel serve`)".to_owned(),
                )),
            ),
        }
    }

    fn ca_checks(&self) -> Vec<Check> {
        let files = self.platform.daemon_files();
        let ca_path = files.ca_cert();
        let reinstall = || {
            Some((
                "run `segel install` (trusts the current local CA in every browser database)".to_owned(),
                "jalankan `segel install` (mempercayakan CA lokal saat ini di setiap basis data peramban)".to_owned(),
            ))
        };
        let info = std::fs::read_to_string(&ca_path)
            .ok()
            .and_then(|pem| CertInfo::from_pem(&pem).ok());
        let der = nss::pem_file_der(&ca_path);
        let (Some(info), Some(der)) = (info, der) else {
            return vec![self.check(
                "ca",
                None,
                Status::Fail,
                (
                    format!(
                        "the local CA {} is missing or unreadable",
                        ca_path.display()
                    ),
                    format!(
                        "CA lokal {} tidak ada atau tidak terbaca",
                        ca_path.display()
                    ),
                ),
                reinstall(),
            )];
        };
        let mut out = Vec::new();
        let days = info.days_left(SystemTime::now());
        out.push(if days < 0 {
            self.check(
                "ca",
                None,
                Status::Fail,
                (
                    format!("the local CA expired {} days ago", -days),
                    format!("CA lokal kedaluwarsa {} hari yang lalu", -days),
                ),
                Some((
                    "restart the daemon (it makes a new CA), then run `segel install`".to_owned(),
                    "mulai ulang daemon (membuat CA baru), lalu jalankan `segel install`"
                        .to_owned(),
                )),
            )
        } else {
            self.check(
                "ca",
                None,
                Status::Ok,
                (
                    format!("local CA valid for {days} more days"),
                    format!("CA lokal berlaku {days} hari lagi"),
                ),
                None,
            )
        });
        for store in self.platform.trust_stores() {
            if !store.create && !nss::exists(&store.nss_dir) {
                continue; // a Firefox profile that never ran: nothing to trust yet
            }
            let subject = Some(store.label.clone());
            if !nss::exists(&store.nss_dir) {
                out.push(self.check(
                    "ca-trust",
                    subject,
                    Status::Fail,
                    (
                        format!("no NSS database at {}: browsers will not trust the daemon", store.nss_dir.display()),
                        format!("tidak ada basis data NSS di {}: peramban tidak akan mempercayai daemon", store.nss_dir.display()),
                    ),
                    reinstall(),
                ));
                continue;
            }
            let found = nss::certificates(&store.nss_dir, CA_NICKNAME)
                .and_then(|certs| Ok((certs, nss::trust_flags(&store.nss_dir, CA_NICKNAME)?)));
            match found {
                Err(e) => out.push(self.check(
                    "ca-trust",
                    subject,
                    Status::Fail,
                    (e.to_string(), e.to_string()),
                    Some((
                        "sudo apt install libnss3-tools".to_owned(),
                        "sudo apt install libnss3-tools".to_owned(),
                    )),
                )),
                Ok((certs, flags)) => {
                    let current = certs.iter().any(|c| c == &der);
                    let trusted = flags
                        .as_deref()
                        .is_some_and(|f| f.split(',').next().is_some_and(|ssl| ssl.contains('C')));
                    out.push(if current && trusted {
                        self.check(
                            "ca-trust",
                            subject,
                            Status::Ok,
                            (
                                format!("local CA trusted in {}", store.nss_dir.display()),
                                format!("CA lokal dipercaya di {}", store.nss_dir.display()),
                            ),
                            None,
                        )
                    } else {
                        let why = if certs.is_empty() {
                            ("is not in", "tidak ada di")
                        } else if !current {
                            ("is an older one in", "versi lama di")
                        } else {
                            ("is not trusted for TLS servers in", "tidak dipercaya untuk server TLS di")
                        };
                        self.check(
                            "ca-trust",
                            subject,
                            Status::Fail,
                            (
                                format!("the local CA {} {}: the browser will say the localhost certificate is not trusted", why.0, store.nss_dir.display()),
                                format!("CA lokal {} {}: peramban akan menyatakan sertifikat localhost tidak dipercaya", why.1, store.nss_dir.display()),
                            ),
                            reinstall(),
                        )
                    });
                }
            }
        }
        out
    }

    fn native_messaging_checks(&self) -> Vec<Check> {
        let mut out = Vec::new();
        let fix = || {
            Some((
                "run `segel install` (registers the native-messaging host for every browser)".to_owned(),
                "jalankan `segel install` (mendaftarkan host native messaging untuk setiap peramban)".to_owned(),
            ))
        };
        for b in self.platform.browsers() {
            if !b.installed() {
                continue;
            }
            let path = b.manifest_path();
            let subject = Some(b.name.to_owned());
            let problem = check_manifest(&path, b.kind).err();
            out.push(match problem {
                None => self.check(
                    "native-messaging",
                    subject,
                    Status::Ok,
                    (
                        format!("{}: native host registered ({})", b.name, path.display()),
                        format!("{}: host native terdaftar ({})", b.name, path.display()),
                    ),
                    None,
                ),
                Some((en, idn)) => self.check(
                    "native-messaging",
                    subject,
                    Status::Fail,
                    (
                        format!("{}: {en}: the extension cannot reach Segel", b.name),
                        format!("{}: {idn}: ekstensi tidak dapat menghubungi Segel", b.name),
                    ),
                    fix(),
                ),
            });
        }
        out
    }

    fn specs(&self) -> Vec<ModuleSpec> {
        let (configured, search) = match &self.config {
            Ok(c) => (c.modules.clone(), c.search_modules),
            Err(_) => (Vec::new(), true),
        };
        module::discover(&self.explicit_modules, &configured, search)
    }

    /// Module checks, each load bounded by `deadline`; returns the modules that loaded.
    fn module_checks(&self, out: &mut Vec<Check>, deadline: Instant) -> Vec<ModuleSpec> {
        let mut specs = self.specs();
        // A p11-kit registration of Segel's own whose module is gone: discovery drops
        // relative paths it cannot resolve, so look at the file itself.
        if let Some(reg) = self.platform.module_registration()
            && let Ok(text) = std::fs::read_to_string(&reg)
            && let Some(m) = text.lines().find_map(|l| {
                l.trim()
                    .strip_prefix("module:")
                    .map(|v| PathBuf::from(v.trim()))
            })
            && !specs.iter().any(|s| s.path == m)
            && self.explicit_modules.is_empty()
            && self.config.as_ref().is_ok_and(|c| c.search_modules)
        {
            specs.push(ModuleSpec {
                path: m,
                source: module::ModuleSource::P11Kit,
            });
        }
        if specs.is_empty() {
            out.push(self.check(
                "module",
                None,
                Status::Warn,
                (
                    "no PKCS#11 module found: no token can be used".to_owned(),
                    "tidak ada modul PKCS#11: token tidak dapat digunakan".to_owned(),
                ),
                Some((
                    "install your token's driver (e.g. sudo apt install opensc-pkcs11) or add `modules = [\"/path/to/module.so\"]` to config.toml".to_owned(),
                    "pasang driver token Anda (mis. sudo apt install opensc-pkcs11) atau tambahkan `modules = [\"/path/ke/modul.so\"]` di config.toml".to_owned(),
                )),
            ));
            return Vec::new();
        }
        // Each module loads on a thread of its own: one that hangs in C_Initialize holds up
        // nothing else.
        let pending: Vec<_> = specs
            .into_iter()
            .map(|spec| {
                let s = spec.clone();
                let rx = spawn(move || {
                    module::load(&s)
                        .map(|loaded| {
                            // Never unloaded: dlclose of a module whose helper threads (pcsc-lite,
                            // GLib) still run crashes the process at exit. The process ends soon.
                            std::mem::forget(loaded);
                        })
                        .map_err(|e| e.to_string())
                });
                (spec, rx)
            })
            .collect();
        let mut loadable = Vec::new();
        for (spec, rx) in pending {
            let subject = Some(spec.path.display().to_string());
            let origin = match spec.source {
                module::ModuleSource::CommandLine => "--module".to_owned(),
                module::ModuleSource::Config => {
                    self.platform.paths().config_file().display().to_string()
                }
                module::ModuleSource::P11Kit => {
                    "p11-kit (~/.config/pkcs11/modules, /usr/share/p11-kit/modules)".to_owned()
                }
                module::ModuleSource::UsualPath => "usual path".to_owned(),
            };
            match wait(rx, deadline) {
                Some(Ok(())) => {
                    out.push(self.check(
                        "module",
                        subject,
                        Status::Ok,
                        (
                            format!("PKCS#11 module {} loads", spec.path.display()),
                            format!("modul PKCS#11 {} dapat dimuat", spec.path.display()),
                        ),
                        None,
                    ));
                    loadable.push(spec);
                }
                Some(Err(e)) => out.push(self.check(
                    "module",
                    subject,
                    Status::Fail,
                    (
                        format!("{e} (listed by {origin})"),
                        format!("{e} (dari {origin})"),
                    ),
                    Some((
                        format!("reinstall the module or correct its path where it is listed ({origin}); for Segel's own module run `segel install`"),
                        format!("pasang ulang modul atau perbaiki jalurnya di tempat ia terdaftar ({origin}); untuk modul Segel jalankan `segel install`"),
                    )),
                )),
                None => out.push(self.timed_out("module", subject)),
            }
        }
        loadable
    }

    fn token_checks(&self, loadable: &[ModuleSpec]) -> Vec<Check> {
        if loadable.is_empty() {
            return Vec::new();
        }
        let service = match TokenService::start(loadable, ServiceOptions::default()) {
            Ok(s) => s,
            Err(e) => {
                return vec![self.check(
                    "tokens",
                    None,
                    Status::Fail,
                    (e.to_string(), e.to_string()),
                    None,
                )];
            }
        };
        let tokens = service.tokens().wait().map(|t| t.len()).unwrap_or(0);
        let certs = match service.certificates().wait() {
            Ok(c) => c,
            Err(e) => {
                return vec![self.check(
                    "tokens",
                    None,
                    Status::Fail,
                    (e.to_string(), e.to_string()),
                    None,
                )];
            }
        };
        let now = SystemTime::now();
        // Kept loaded until the process exits (see module_checks).
        std::mem::forget(service.clone());
        let mut out = Vec::new();
        let mut fine = 0;
        for c in certs.iter().filter(|c| c.key_evidence.is_some()) {
            let days = c.info.days_left(now);
            let subject = Some(format!("{} on {}", c.info.subject, c.token_label));
            if days < 0 {
                out.push(self.check(
                    "tokens",
                    subject,
                    Status::Fail,
                    (
                        format!("certificate {} on token {} expired {} days ago", c.info.subject, c.token_label, -days),
                        format!("sertifikat {} pada token {} kedaluwarsa {} hari yang lalu", c.info.subject, c.token_label, -days),
                    ),
                    Some((
                        "ask your CA (e.g. BSrE) for a new certificate: `segel enroll`, then `segel import-cert`".to_owned(),
                        "ajukan sertifikat baru ke CA Anda (mis. BSrE): `segel enroll`, lalu `segel import-cert`".to_owned(),
                    )),
                ));
            } else if days <= EXPIRY_WARNING_DAYS {
                out.push(self.check(
                    "tokens",
                    subject,
                    Status::Warn,
                    (
                        format!("certificate {} on token {} expires in {days} days", c.info.subject, c.token_label),
                        format!("sertifikat {} pada token {} kedaluwarsa dalam {days} hari", c.info.subject, c.token_label),
                    ),
                    Some((
                        "renew it before it expires: `segel enroll`, then `segel import-cert`".to_owned(),
                        "perbarui sebelum kedaluwarsa: `segel enroll`, lalu `segel import-cert`".to_owned(),
                    )),
                ));
            } else {
                fine += 1;
            }
        }
        out.insert(
            0,
            self.check(
                "tokens",
                None,
                Status::Ok,
                (
                    format!("{tokens} token(s), {fine} certificate(s) with keys valid for more than {EXPIRY_WARNING_DAYS} days"),
                    format!("{tokens} token, {fine} sertifikat berkunci berlaku lebih dari {EXPIRY_WARNING_DAYS} hari"),
                ),
                None,
            ),
        );
        out
    }
}

/// A problem with a native-messaging manifest, in English and Indonesian.
fn check_manifest(path: &Path, kind: ManifestKind) -> Result<(), (String, String)> {
    let text = std::fs::read_to_string(path).map_err(|_| {
        (
            format!("no native-messaging manifest at {}", path.display()),
            format!("tidak ada manifes native messaging di {}", path.display()),
        )
    })?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        (
            format!("{} is not valid JSON ({e})", path.display()),
            format!("{} bukan JSON yang valid ({e})", path.display()),
        )
    })?;
    let allowed = match kind {
        ManifestKind::Chromium => v["allowed_origins"].as_array().is_some_and(|a| {
            a.iter()
                .any(|o| o == &format!("chrome-extension://{CHROMIUM_EXTENSION_ID}/"))
        }),
        ManifestKind::Firefox => v["allowed_extensions"]
            .as_array()
            .is_some_and(|a| a.iter().any(|o| o == FIREFOX_EXTENSION_ID)),
    };
    if v["name"] != super::NATIVE_HOST_NAME || !allowed {
        return Err((
            format!(
                "{} does not register id.segel.agent for Segel's extension",
                path.display()
            ),
            format!(
                "{} tidak mendaftarkan id.segel.agent untuk ekstensi Segel",
                path.display()
            ),
        ));
    }
    let host = PathBuf::from(v["path"].as_str().unwrap_or_default());
    if !is_executable(&host) {
        return Err((
            format!(
                "the native host {} is missing or not executable",
                host.display()
            ),
            format!(
                "host native {} tidak ada atau tidak dapat dijalankan",
                host.display()
            ),
        ));
    }
    // Segel's launcher: the segel binary it runs must exist too.
    if let Ok(script) = std::fs::read_to_string(&host)
        && let Some(target) = script.lines().find_map(|l| {
            l.strip_prefix("exec '")
                .and_then(|r| r.split_once("' native-host"))
                .map(|(p, _)| PathBuf::from(p.replace(r"'\''", "'")))
        })
        && !is_executable(&target)
    {
        return Err((
            format!(
                "the native host runs {}, which is missing",
                target.display()
            ),
            format!(
                "host native menjalankan {}, yang tidak ada",
                target.display()
            ),
        ));
    }
    Ok(())
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `GET /v1/status` over TLS trusting only `ca_pem`, with the credential; returns the HTTP
/// status code.
fn status_request(url: &str, ca_pem: &[u8], credential: &str) -> Result<u16, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = url
        .strip_prefix("https://")
        .ok_or_else(|| format!("{url} is not an https URL"))?
        .trim_end_matches('/')
        .to_owned();
    let addr: std::net::SocketAddr = authority.parse().map_err(|e| format!("{authority}: {e}"))?;
    let config = crate::server::tls::client_config(ca_pem).map_err(|e| e.to_string())?;
    let name = rustls_pki_types::ServerName::IpAddress(addr.ip().into());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let request = format!(
        "GET /v1/status HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {credential}\r\nConnection: close\r\n\r\n"
    );
    rt.block_on(async move {
        tokio::time::timeout(Duration::from_secs(5), async move {
            let tcp = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let mut tls = tokio_rustls::TlsConnector::from(Arc::clone(&config))
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS handshake with the install CA failed: {e}"))?;
            tls.write_all(request.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(2).any(|w| w == b"\r\n") {
                let n = tls.read(&mut buf).await.map_err(|e| e.to_string())?;
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buf[..n]);
            }
            let line = String::from_utf8_lossy(&head);
            line.split(' ')
                .nth(1)
                .and_then(|c| c.parse::<u16>().ok())
                .ok_or_else(|| format!("not an HTTP answer: {:?}", line.lines().next()))
        })
        .await
        .map_err(|_| "no answer within 5 s".to_owned())?
    })
}
