//! `segel doctor`: clean when all is well (installed into a private HOME, a real daemon
//! running, pcscd's socket answering), and each fault injected on purpose detected with a fix:
//! daemon stopped, CA not trusted, manifest missing, module path broken, pcscd absent, config
//! invalid; messages in Bahasa Indonesia by locale.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use segel_tests::daemon::DaemonProcess;
use segel_tests::segel::segel_cmd;
use segel_tests::softhsm::SoftHsm;
use serde_json::Value;

struct Setup {
    hsm: SoftHsm,
    envs: Vec<(String, OsString)>,
    _pcscd: Pcscd,
    daemon: DaemonProcess,
}

impl Setup {
    fn home(&self) -> &Path {
        self.daemon.home()
    }

    /// `segel doctor --json` with these envs (plus `extra`): (exit code, report).
    fn doctor_with(&self, extra: &[(&str, &str)]) -> Result<(i32, Value)> {
        let mut cmd = segel_cmd(&self.envs, self.home())?;
        cmd.args(["doctor", "--json"]);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let out = cmd.output()?;
        let v: Value = serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "doctor printed no JSON: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
        Ok((out.status.code().unwrap_or(-1), v))
    }

    fn doctor(&self) -> Result<(i32, Value)> {
        self.doctor_with(&[])
    }

    fn assert_clean(&self) -> Result<()> {
        let (code, v) = self.doctor()?;
        let bad: Vec<&Value> = v["checks"]
            .as_array()
            .context("checks")?
            .iter()
            .filter(|c| c["status"] != "ok")
            .collect();
        ensure!(
            code == 0 && v["ok"] == true && bad.is_empty(),
            "not clean (exit {code}, ok {}): {bad:#?}",
            v["ok"]
        );
        Ok(())
    }

    fn segel(&self, args: &[&str]) -> Result<()> {
        let out = segel_cmd(&self.envs, self.home())?.args(args).output()?;
        ensure!(
            out.status.success(),
            "segel {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }
}

/// The failing checks of a report: (id, subject, message, fix).
fn failures(v: &Value) -> Vec<(String, String, String, String)> {
    v["checks"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|c| c["status"] == "fail")
                .map(|c| {
                    let s = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
                    (s("id"), s("subject"), s("message"), s("fix"))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn expect_only(v: &Value, code: i32, id: &str) -> Result<(String, String, String)> {
    let f = failures(v);
    ensure!(
        code == 1 && v["ok"] == false,
        "doctor must fail with exit 1 (exit {code}): {v:#}"
    );
    ensure!(
        f.len() == 1 && f[0].0 == id,
        "expected one `{id}` failure, got {f:#?}"
    );
    ensure!(!f[0].3.is_empty(), "no fix for {f:?}");
    Ok((f[0].1.clone(), f[0].2.clone(), f[0].3.clone()))
}

/// pcscd ignores `PCSCLITE_CSOCK_NAME` and refuses a second instance, so it runs in its own
/// mount namespace with a private folder on `/run/pcscd` (needs root, as the PC/SC tests do).
#[derive(Debug)]
struct Pcscd {
    child: std::process::Child,
    socket: std::path::PathBuf,
}

impl Pcscd {
    fn start(dir: &Path) -> Result<Self> {
        let run = dir.join("pcscd-run");
        std::fs::create_dir_all(&run)?;
        std::fs::create_dir_all("/run/pcscd").context("/run/pcscd (root needed)")?;
        let conf = dir.join("reader.conf");
        std::fs::write(&conf, "")?;
        let child = Command::new("unshare")
            .args(["-m", "sh", "-c"])
            .arg(format!(
                "mount --bind '{}' /run/pcscd && exec pcscd -f -c '{}'",
                run.display(),
                conf.display()
            ))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("unshare/pcscd (pcscd package, root)")?;
        let socket = run.join("pcscd.comm");
        let mut p = Pcscd { child, socket };
        let t0 = std::time::Instant::now();
        while !p.socket.exists() {
            ensure!(p.child.try_wait()?.is_none(), "pcscd exited");
            ensure!(
                t0.elapsed() < Duration::from_secs(10),
                "pcscd did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(p)
    }
}

impl Drop for Pcscd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn setup() -> Result<Setup> {
    let hsm = SoftHsm::new()?;
    hsm.init_token("doctor", "87654321", "1234")?;
    hsm.import_fixture("doctor", "1234", "vendor-p256", "01", "Agus")?;
    let home = tempfile::Builder::new().prefix("segel-doctor-").tempdir()?;
    // (pcscd is started below, once the HOME exists.)
    let policy = home.path().join("policy.toml");
    std::fs::write(&policy, "")?;
    // The token's module from the config file, besides the machine's (p11-kit, usual paths).
    std::fs::create_dir_all(home.path().join(".config/segel"))?;
    std::fs::write(
        home.path().join(".config/segel/config.toml"),
        format!("modules = [\"{}\"]\n", SoftHsm::MODULE),
    )?;
    // A real, private pcscd (no readers); its client socket is PCSCLITE_CSOCK_NAME.
    let pcscd = Pcscd::start(home.path())?;
    let sock = pcscd.socket.clone();
    let mut envs = hsm.envs();
    envs.push(("SEGEL_POLICY_FILE".into(), policy.into_os_string()));
    envs.push(("PCSCLITE_CSOCK_NAME".into(), sock.into_os_string()));
    envs.push((
        "SEGEL_SYSTEMCTL".into(),
        OsString::from("/nonexistent/systemctl"),
    ));
    envs.push(("LANG".into(), OsString::from("C.UTF-8")));
    envs.push(("LC_ALL".into(), OsString::new()));
    envs.push(("LC_MESSAGES".into(), OsString::new()));
    let shim = segel_tests::shim::module_path()?;
    let out = segel_cmd(&envs, home.path())?
        .args([
            "install",
            "--json",
            "--service",
            "autostart",
            "--no-start",
            "--shim",
        ])
        .arg(&shim)
        .output()?;
    ensure!(
        out.status.success(),
        "install: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let daemon = DaemonProcess::start_in(home, &hsm.envs(), &hsm.module_path(), &[])?;
    Ok(Setup {
        hsm,
        envs,
        _pcscd: pcscd,
        daemon,
    })
}

#[test]
fn doctor_is_clean_then_detects_each_injected_fault() -> Result<()> {
    let mut s = setup()?;
    s.assert_clean()?;
    let (_, v) = s.doctor()?;
    let ids: Vec<&str> = v["checks"]
        .as_array()
        .context("checks")?
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    for id in [
        "config",
        "policy",
        "daemon",
        "ca",
        "ca-trust",
        "native-messaging",
        "module",
        "pcscd",
        "tokens",
    ] {
        ensure!(ids.contains(&id), "no `{id}` check: {ids:?}");
    }
    let tokens = v["checks"]
        .as_array()
        .context("checks")?
        .iter()
        .find(|c| c["id"] == "tokens")
        .context("tokens")?;
    ensure!(
        tokens["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("1 token(s), 1 certificate")),
        "{tokens}"
    );

    // Text output when all is well: one line.
    let out = segel_cmd(&s.envs, s.home())?.arg("doctor").output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success() && text.lines().count() == 1 && text.contains("all well"),
        "{text}"
    );

    // CA not trusted in the user's NSS database.
    let nssdb = format!("sql:{}", s.home().join(".pki/nssdb").display());
    let rm = Command::new("certutil")
        .args(["-D", "-d", &nssdb, "-n", "Segel local CA"])
        .output()?;
    ensure!(rm.status.success());
    let (code, v) = s.doctor()?;
    let (_, msg, fix) = expect_only(&v, code, "ca-trust")?;
    ensure!(
        msg.contains("not trusted") && fix.contains("segel install"),
        "{msg} / {fix}"
    );
    s.segel(&[
        "install",
        "--service",
        "autostart",
        "--no-start",
        "--shim",
        &segel_tests::shim::module_path()?.display().to_string(),
    ])?;
    s.assert_clean()?;

    // Native-messaging manifest missing for Chromium (installed on this machine).
    let manifest = s
        .home()
        .join(".config/chromium/NativeMessagingHosts/id.segel.agent.json");
    let saved = std::fs::read(&manifest)?;
    std::fs::remove_file(&manifest)?;
    let (code, v) = s.doctor()?;
    let (subject, msg, _) = expect_only(&v, code, "native-messaging")?;
    ensure!(
        subject == "Chromium" && msg.contains("no native-messaging manifest"),
        "{subject}: {msg}"
    );
    // The launcher's target gone is a fault too.
    std::fs::write(&manifest, &saved)?;
    let host = s.home().join(".local/share/segel/native-host");
    let script = std::fs::read_to_string(&host)?;
    std::fs::write(
        &host,
        script.replace("/segel' native-host", "/segel-moved' native-host"),
    )?;
    let (code, v) = s.doctor()?;
    let f = failures(&v);
    ensure!(
        code == 1
            && !f.is_empty()
            && f.iter()
                .all(|f| f.0 == "native-messaging" && f.2.contains("missing")),
        "{f:#?}"
    );
    std::fs::write(&host, script)?;
    s.assert_clean()?;

    // Module path broken: the p11-kit registration points at a module that is gone.
    let reg = s.home().join(".config/pkcs11/modules/segel.module");
    let saved = std::fs::read(&reg)?;
    std::fs::write(&reg, "module: /nonexistent/libsegel_pkcs11.so\n")?;
    let (code, v) = s.doctor()?;
    let (subject, msg, _) = expect_only(&v, code, "module")?;
    ensure!(
        subject == "/nonexistent/libsegel_pkcs11.so" && msg.contains("no such file"),
        "{subject}: {msg}"
    );
    std::fs::write(&reg, saved)?;
    s.assert_clean()?;

    // pcscd absent.
    let (code, v) = s.doctor_with(&[("PCSCLITE_CSOCK_NAME", "/nonexistent/pcscd.comm")])?;
    let (_, msg, fix) = expect_only(&v, code, "pcscd")?;
    ensure!(
        msg.contains("/nonexistent/pcscd.comm") && fix.contains("pcscd"),
        "{msg}"
    );

    // Invalid config file: reported, not a crash.
    let cfg = s.home().join(".config/segel/config.toml");
    let saved = std::fs::read(&cfg)?;
    std::fs::write(&cfg, "modulez = 1\n")?;
    let (code, v) = s.doctor()?;
    let f = failures(&v);
    ensure!(
        code == 1 && f.iter().any(|f| f.0 == "config" && f.2.contains("modulez")),
        "{f:#?}"
    );
    std::fs::write(&cfg, saved)?;

    // Indonesian by locale.
    let (code, v) = s.doctor_with(&[
        ("LANG", "id_ID.UTF-8"),
        ("PCSCLITE_CSOCK_NAME", "/nonexistent/pcscd.comm"),
    ])?;
    let (_, msg, _) = expect_only(&v, code, "pcscd")?;
    ensure!(
        v["language"] == "id" && msg.contains("tidak dapat dihubungi"),
        "{msg}"
    );

    // Daemon stopped (last: it cannot be restarted in this HOME by the harness).
    s.daemon.terminate(Duration::from_secs(10))?;
    let (code, v) = s.doctor()?;
    let (_, msg, fix) = expect_only(&v, code, "daemon")?;
    ensure!(
        msg.contains("not running") && fix.contains("segel serve"),
        "{msg} / {fix}"
    );
    drop(s.hsm);
    Ok(())
}
