//! `segel install` / `segel uninstall` in a private HOME with real NSS databases (certutil):
//! every file and registration checked, idempotence, `--dry-run` writes nothing, uninstall
//! leaves nothing, the systemd path with a recording `systemctl` stand-in, the XDG autostart
//! fallback starting and stopping a real daemon.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};
use segel_tests::segel::{ok_json, segel_cmd};
use serde_json::Value;

const CHROMIUM_ID: &str = "kgghmpcjmhabfkcmelnnknnjjfggdaal";
const NICK: &str = "Segel local CA";

/// Every path under `root` (files and folders), relative.
fn tree(root: &Path) -> BTreeSet<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            out.insert(p.strip_prefix(root).unwrap_or(&p).to_path_buf());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(root, &p, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

fn certutil(args: &[&str]) -> Result<std::process::Output> {
    Command::new("certutil")
        .args(args)
        .output()
        .context("certutil (libnss3-tools) missing: run scripts/install-test-deps")
}

/// A HOME with a Firefox profile that has run once (profiles.ini + an NSS database).
#[derive(Debug)]
pub struct Home {
    pub dir: tempfile::TempDir,
    pub envs: Vec<(String, OsString)>,
}

impl Home {
    pub fn new() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("segel-install-")
            .tempdir()?;
        let ff = dir.path().join(".mozilla/firefox");
        let profile = ff.join("abcd1234.default-release");
        std::fs::create_dir_all(&profile)?;
        std::fs::write(
            ff.join("profiles.ini"),
            "[Profile0]\nName=default-release\nIsRelative=1\nPath=abcd1234.default-release\nDefault=1\n\n[General]\nStartWithLastProfile=1\nVersion=2\n",
        )?;
        let out = certutil(&[
            "-N",
            "-d",
            &format!("sql:{}", profile.display()),
            "--empty-password",
        ])?;
        ensure!(
            out.status.success(),
            "certutil -N: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let policy = dir.path().join("policy.toml");
        std::fs::write(&policy, "")?;
        let envs = vec![
            ("SEGEL_POLICY_FILE".to_owned(), policy.into_os_string()),
            // A systemctl that never reaches the real user manager.
            (
                "SEGEL_SYSTEMCTL".to_owned(),
                OsString::from("/nonexistent/systemctl"),
            ),
        ];
        Ok(Home { dir, envs })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn profile(&self) -> PathBuf {
        self.path()
            .join(".mozilla/firefox/abcd1234.default-release")
    }

    pub fn segel(&self, args: &[&str]) -> Result<std::process::Output> {
        Ok(segel_cmd(&self.envs, self.path())?.args(args).output()?)
    }

    pub fn segel_ok(&self, args: &[&str]) -> Result<Value> {
        ok_json(&self.segel(args)?)
    }
}

/// The DER certificates called "Segel local CA" in an NSS database, and their trust flags.
fn nss_ca(db: &Path) -> Result<(Vec<String>, Option<String>)> {
    let d = format!("sql:{}", db.display());
    let out = certutil(&["-L", "-d", &d, "-n", NICK, "-a"])?;
    let pems: Vec<String> = if out.status.success() {
        String::from_utf8_lossy(&out.stdout)
            .split("-----END CERTIFICATE-----")
            .filter(|b| b.contains("BEGIN"))
            .map(|b| {
                b.split("-----\n")
                    .nth(1)
                    .unwrap_or_default()
                    .replace(['\n', '\r'], "")
            })
            .collect()
    } else {
        Vec::new()
    };
    let list = certutil(&["-L", "-d", &d])?;
    let flags = String::from_utf8_lossy(&list.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(NICK).map(|r| r.trim().to_owned()));
    Ok((pems, flags))
}

fn pem_body(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>())
}

fn check_installed(home: &Home, shim: &Path) -> Result<()> {
    let h = home.path();
    let host = h.join(".local/share/segel/native-host");
    let meta = std::fs::metadata(&host).context("native host launcher")?;
    ensure!(
        meta.permissions().mode() & 0o111 != 0,
        "launcher not executable"
    );
    let script = std::fs::read_to_string(&host)?;
    let segel = segel_tests::segel::segel_bin()?.canonicalize()?;
    ensure!(
        script.contains(&format!("exec '{}' native-host", segel.display())),
        "launcher: {script}"
    );
    for dir in [
        ".config/chromium/NativeMessagingHosts",
        ".config/google-chrome/NativeMessagingHosts",
        ".config/BraveSoftware/Brave-Browser/NativeMessagingHosts",
        ".config/microsoft-edge/NativeMessagingHosts",
    ] {
        let m: Value = serde_json::from_str(&std::fs::read_to_string(
            h.join(dir).join("id.segel.agent.json"),
        )?)?;
        ensure!(
            m["name"] == "id.segel.agent" && m["type"] == "stdio",
            "{dir}: {m}"
        );
        ensure!(m["path"] == host.display().to_string(), "{dir}: {m}");
        ensure!(
            m["allowed_origins"]
                == serde_json::json!([format!("chrome-extension://{CHROMIUM_ID}/")]),
            "{dir}: only Segel's extension may be allowed: {m}"
        );
    }
    let f: Value = serde_json::from_str(&std::fs::read_to_string(
        h.join(".mozilla/native-messaging-hosts/id.segel.agent.json"),
    )?)?;
    ensure!(
        f["allowed_extensions"] == serde_json::json!(["segel@segel.id"]),
        "{f}"
    );
    ensure!(f["path"] == host.display().to_string());

    let module = std::fs::read_to_string(h.join(".config/pkcs11/modules/segel.module"))?;
    ensure!(
        module
            .lines()
            .any(|l| l == format!("module: {}", shim.display())),
        "{module}"
    );

    // The CA in both NSS databases, trusted for TLS servers, exactly once.
    let ca = pem_body(&h.join(".local/state/segel/daemon/tls/ca.pem"))?;
    for db in [h.join(".pki/nssdb"), home.profile()] {
        let (certs, flags) = nss_ca(&db)?;
        ensure!(
            certs == vec![ca.clone()],
            "{}: {} CA(s), or another CA",
            db.display(),
            certs.len()
        );
        ensure!(
            flags.as_deref() == Some("C,,"),
            "{}: trust {flags:?}",
            db.display()
        );
    }
    let state: Value = serde_json::from_str(&std::fs::read_to_string(
        h.join(".local/state/segel/install.json"),
    )?)?;
    ensure!(state["platform"] == "linux");
    Ok(())
}

#[test]
fn install_dry_run_install_twice_uninstall_purge() -> Result<()> {
    let home = Home::new()?;
    let shim = segel_tests::shim::module_path()?;
    let shim_arg = shim.display().to_string();
    // Firefox ran with Segel's add-on: its per-profile origin is in prefs.js.
    std::fs::write(
        home.profile().join("prefs.js"),
        "user_pref(\"extensions.webextensions.uuids\", \"{\\\"segel@segel.id\\\":\\\"5e6e7c1a-2f1b-4c55-9d7e-5e9e1a7c0a11\\\"}\");\n",
    )?;
    // segel_cmd makes the XDG folders: take the "before" picture after one harmless run.
    home.segel(&["--version"])?;
    let before = tree(home.path());

    // --dry-run: every file and registration listed, nothing written.
    let plan = home.segel_ok(&[
        "install",
        "--dry-run",
        "--json",
        "--service",
        "autostart",
        "--no-start",
        "--shim",
        &shim_arg,
    ])?;
    ensure!(tree(home.path()) == before, "--dry-run wrote something");
    let steps = plan["steps"].as_array().context("steps")?;
    let written: Vec<&str> = steps
        .iter()
        .filter(|s| s["kind"] == "write-file")
        .filter_map(|s| s["path"].as_str())
        .collect();
    for expected in [
        ".local/share/segel/native-host",
        ".config/chromium/NativeMessagingHosts/id.segel.agent.json",
        ".config/google-chrome/NativeMessagingHosts/id.segel.agent.json",
        ".config/BraveSoftware/Brave-Browser/NativeMessagingHosts/id.segel.agent.json",
        ".config/microsoft-edge/NativeMessagingHosts/id.segel.agent.json",
        ".mozilla/native-messaging-hosts/id.segel.agent.json",
        ".config/pkcs11/modules/segel.module",
        ".config/autostart/segel.desktop",
    ] {
        let full = home.path().join(expected).display().to_string();
        ensure!(
            written.contains(&full.as_str()),
            "{expected} not planned: {written:?}"
        );
    }
    let trusts: Vec<&str> = steps
        .iter()
        .filter(|s| s["kind"] == "trust-ca")
        .filter_map(|s| s["store"]["nss_dir"].as_str())
        .collect();
    ensure!(trusts.len() == 2, "{trusts:?}");
    ensure!(
        steps.iter().any(|s| s["description"]
            .as_str()
            .is_some_and(|d| d.contains("no systemd user session"))),
        "the autostart fallback must be said"
    );

    // Install; then again (idempotent: same files, one CA per database).
    let args = [
        "install",
        "--json",
        "--service",
        "autostart",
        "--no-start",
        "--shim",
        &shim_arg,
    ];
    home.segel_ok(&args)?;
    check_installed(&home, &shim)?;
    // The daemon accepts Segel's extension in Chromium and in that Firefox profile.
    let config: toml::Table = toml::from_str(&std::fs::read_to_string(
        home.path().join(".config/segel/config.toml"),
    )?)?;
    ensure!(
        config["daemon"]["extension_origins"]
            == toml::Value::Array(vec![
                format!("chrome-extension://{CHROMIUM_ID}").into(),
                "moz-extension://5e6e7c1a-2f1b-4c55-9d7e-5e9e1a7c0a11".into(),
            ]),
        "{config}"
    );
    let desktop = std::fs::read_to_string(home.path().join(".config/autostart/segel.desktop"))?;
    ensure!(
        desktop.contains("\" serve") && desktop.contains("[Desktop Entry]"),
        "{desktop}"
    );
    let after_first = tree(home.path());
    home.segel_ok(&args)?;
    check_installed(&home, &shim)?;
    ensure!(
        tree(home.path()) == after_first,
        "second install changed the file set"
    );

    // Uninstall: everything gone but the daemon's state (CA, credential) and the Firefox db.
    let report = home.segel_ok(&["uninstall", "--json"])?;
    ensure!(report["problems"] == serde_json::json!([]), "{report}");
    let (certs, _) = nss_ca(&home.profile())?;
    ensure!(certs.is_empty(), "CA left in the Firefox profile");
    ensure!(
        home.profile().join("cert9.db").exists(),
        "the Firefox database itself must stay"
    );
    ensure!(
        !home.path().join(".pki/nssdb").exists(),
        "the nssdb Segel made must go"
    );
    let left: Vec<_> = tree(home.path())
        .difference(&before)
        .filter(|p| !p.starts_with(".local/state/segel"))
        .cloned()
        .collect();
    ensure!(left.is_empty(), "left after uninstall: {left:?}");
    ensure!(!home.path().join(".local/state/segel/install.json").exists());

    // --purge: the state goes too, and the HOME is as it was.
    home.segel_ok(&["uninstall", "--purge", "--json"])?;
    let left: Vec<_> = tree(home.path()).difference(&before).cloned().collect();
    ensure!(left.is_empty(), "left after --purge: {left:?}");
    Ok(())
}

#[test]
fn existing_nssdb_is_kept_and_only_segel_ca_removed() -> Result<()> {
    let home = Home::new()?;
    let nssdb = home.path().join(".pki/nssdb");
    std::fs::create_dir_all(&nssdb)?;
    let d = format!("sql:{}", nssdb.display());
    ensure!(
        certutil(&["-N", "-d", &d, "--empty-password"])?
            .status
            .success()
    );
    // Another CA the user trusts already.
    let other = home.path().join("other.pem");
    let cert = rcgen::generate_simple_self_signed(vec!["other.example".to_owned()])?;
    std::fs::write(&other, cert.cert.pem())?;
    let o = other.display().to_string();
    ensure!(
        certutil(&["-A", "-d", &d, "-n", "Other CA", "-t", "C,,", "-i", &o])?
            .status
            .success()
    );

    home.segel_ok(&[
        "install",
        "--json",
        "--service",
        "none",
        "--shim",
        "/usr/lib/softhsm/libsofthsm2.so",
    ])?;
    ensure!(nss_ca(&nssdb)?.0.len() == 1);
    home.segel_ok(&["uninstall", "--json"])?;
    ensure!(nss_ca(&nssdb)?.0.is_empty(), "Segel CA left");
    let list = String::from_utf8_lossy(&certutil(&["-L", "-d", &d])?.stdout).into_owned();
    ensure!(
        list.contains("Other CA"),
        "the user's own CA was removed: {list}"
    );
    ensure!(
        nssdb.join("cert9.db").exists(),
        "a database Segel did not make must stay"
    );
    Ok(())
}

/// A `systemctl` stand-in: answers `is-system-running` with "running" and records its
/// arguments, so the systemd path runs without touching the real user manager.
fn fake_systemctl(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let log = dir.join("systemctl.log");
    let bin = dir.join("systemctl");
    std::fs::write(
        &bin,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\n[ \"$2\" = is-system-running ] && echo running\nexit 0\n",
            log.display()
        ),
    )?;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755))?;
    Ok((bin, log))
}

#[test]
fn systemd_user_service_when_a_user_manager_runs() -> Result<()> {
    let mut home = Home::new()?;
    let (bin, log) = fake_systemctl(home.path())?;
    home.envs.retain(|(k, _)| k != "SEGEL_SYSTEMCTL");
    home.envs
        .push(("SEGEL_SYSTEMCTL".to_owned(), bin.into_os_string()));
    home.segel_ok(&[
        "install",
        "--json",
        "--shim",
        "/usr/lib/softhsm/libsofthsm2.so",
    ])?;
    let unit = std::fs::read_to_string(home.path().join(".config/systemd/user/segel.service"))?;
    let segel = segel_tests::segel::segel_bin()?.canonicalize()?;
    ensure!(
        unit.contains(&format!("ExecStart={} serve", segel.display())),
        "{unit}"
    );
    ensure!(unit.contains("WantedBy=default.target"));
    ensure!(!home.path().join(".config/autostart/segel.desktop").exists());
    let calls = std::fs::read_to_string(&log)?;
    ensure!(
        calls.lines().collect::<Vec<_>>()
            == [
                "--user is-system-running",
                "--user daemon-reload",
                "--user enable --now segel.service"
            ],
        "{calls}"
    );
    home.segel_ok(&["uninstall", "--json"])?;
    ensure!(!home.path().join(".config/systemd").exists(), "unit left");
    let calls = std::fs::read_to_string(&log)?;
    ensure!(
        calls.contains("--user disable --now segel.service"),
        "{calls}"
    );
    Ok(())
}

#[test]
fn autostart_fallback_starts_the_daemon_and_uninstall_stops_it() -> Result<()> {
    let mut home = Home::new()?;
    let hsm = segel_tests::softhsm::SoftHsm::new()?;
    hsm.init_token("autostart", "87654321", "1234")?;
    home.envs.extend(hsm.envs());
    // The token's module only, and a free port (the default one may be taken by another test).
    std::fs::create_dir_all(home.path().join(".config/segel"))?;
    let config = home.path().join(".config/segel/config.toml");
    let user_config = format!(
        "# mine\nsearch_modules = false\nmodules = [\"{}\"]\n[daemon]\nport = 0 # any\n",
        segel_tests::softhsm::SoftHsm::MODULE
    );
    std::fs::write(&config, &user_config)?;
    // Auto with no user manager (SEGEL_SYSTEMCTL does not exist): autostart, started now.
    let out = home.segel(&["install"])?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(text.contains("no systemd user session"), "{text}");
    ensure!(home.path().join(".config/autostart/segel.desktop").exists());
    let endpoint = home.path().join(".local/state/segel/daemon/endpoint.json");
    let ep: Value = serde_json::from_str(&std::fs::read_to_string(&endpoint)?)?;
    let pid = ep["pid"].as_u64().context("pid")?;
    ensure!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "daemon not running"
    );
    let ep2 = home.segel_ok(&["endpoint", "--json"])?;
    ensure!(ep2["url"] == ep["url"]);
    // The daemon accepts Segel's extension: install added its origin to the user's config.
    let edited: toml::Table = toml::from_str(&std::fs::read_to_string(&config)?)?;
    ensure!(
        edited["daemon"]["extension_origins"]
            == toml::Value::Array(vec![format!("chrome-extension://{CHROMIUM_ID}").into()]),
        "{edited}"
    );
    home.segel_ok(&["uninstall", "--json"])?;
    ensure!(!endpoint.exists(), "daemon still running after uninstall");
    ensure!(
        std::fs::read_to_string(&config)? == user_config,
        "uninstall must give the user's config back as it was"
    );
    Ok(())
}
