//! `segel doctor`: clean when all is well (installed into a private HOME, a real daemon
//! running, a private pcscd with virtual readers), and each fault injected on purpose detected
//! with a fix: daemon stopped, CA not trusted, manifest missing, module path broken, pcscd
//! absent, config invalid, the extension not allowed, certificates expired and expiring; a
//! virtual PIV card whose ATR is not in the table (and the fix that names it); a pcscd that
//! takes connections and never answers (doctor still ends, and says so). Messages in Bahasa
//! Indonesia by locale. Needs root (a private pcscd), as the PC/SC tests do.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use segel_tests::daemon::DaemonProcess;
use segel_tests::pcscd::Pcscd;
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
    // A real, private pcscd with two empty vpcd readers; its socket is PCSCLITE_CSOCK_NAME.
    let pcscd = Pcscd::start(2)?;
    let sock = pcscd.socket();
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
        "extension",
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
    // Segel's extension not in extension_origins (a config from before `segel install`).
    std::fs::write(&cfg, format!("modules = [\"{}\"]\n", SoftHsm::MODULE))?;
    let (code, v) = s.doctor()?;
    let (_, msg, fix) = expect_only(&v, code, "extension")?;
    ensure!(
        msg.contains("chrome-extension://kgghmpcjmhabfkcmelnnknnjjfggdaal")
            && fix.contains("segel install"),
        "{msg} / {fix}"
    );
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
    // (The daemon is stopped now: the token checks do not need it.)
    // Certificates: one expired, one expiring in 10 days (issued now by the test CA for the
    // vendor-p256 key), next to the valid one.
    s.hsm
        .import_fixture("doctor", "1234", "vendor-expired", "02", "Lama")?;
    let soon = soon_expiring_cert(s.home())?;
    let key = segel_tests::fixtures::fixture("vendor-p256")?.key_path;
    let key = key.display().to_string();
    let soon = soon.display().to_string();
    for args in [
        &[
            "--login",
            "--pin",
            "1234",
            "--write-object",
            &key,
            "--type",
            "privkey",
        ][..],
        &["--write-object", &soon, "--type", "cert"][..],
    ] {
        let mut a = args.to_vec();
        a.extend(["--token-label", "doctor", "--id", "03", "--label", "Segera"]);
        s.hsm.pkcs11_tool(&a)?;
    }
    let (code, v) = s.doctor()?;
    let f: Vec<_> = failures(&v)
        .into_iter()
        .filter(|f| f.0 != "daemon")
        .collect();
    ensure!(code == 1 && f.len() == 1 && f[0].0 == "tokens", "{f:#?}");
    let (subject, msg, fix) = (&f[0].1, &f[0].2, &f[0].3);
    ensure!(
        subject.contains("on doctor") && msg.contains("expired") && fix.contains("segel enroll"),
        "{subject}: {msg} / {fix}"
    );
    let warned: Vec<&Value> = v["checks"]
        .as_array()
        .context("checks")?
        .iter()
        .filter(|c| c["status"] == "warn")
        .collect();
    ensure!(
        warned.len() == 1
            && warned[0]["id"] == "tokens"
            && warned[0]["message"].as_str().is_some_and(
                |m| m.contains("expires in 9 days") || m.contains("expires in 10 days")
            ),
        "{warned:#?}"
    );

    drop(s.hsm);
    Ok(())
}

/// A certificate for the vendor-p256 key from the test issuing CA, valid for 10 more days.
fn soon_expiring_cert(dir: &Path) -> Result<std::path::PathBuf> {
    let fx = |n: &str| segel_tests::fixtures::fixture(n);
    let key = fx("vendor-p256")?.key_path;
    let ca_dir = segel_tests::fixtures::fixtures_dir();
    let (ca_cert, ca_key) = (
        ca_dir.join("issuing-ca.crt.pem"),
        ca_dir.join("issuing-ca.key.pem"),
    );
    let csr = dir.join("soon.csr");
    let cert = dir.join("soon.crt.der");
    let run = |args: &[&std::ffi::OsStr]| -> Result<()> {
        let out = Command::new("openssl").args(args).output()?;
        ensure!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    };
    run(&[
        "req".as_ref(),
        "-new".as_ref(),
        "-key".as_ref(),
        key.as_os_str(),
        "-subj".as_ref(),
        "/CN=Segera Habis/O=PT Contoh".as_ref(),
        "-out".as_ref(),
        csr.as_os_str(),
    ])?;
    run(&[
        "x509".as_ref(),
        "-req".as_ref(),
        "-in".as_ref(),
        csr.as_os_str(),
        "-CA".as_ref(),
        ca_cert.as_os_str(),
        "-CAkey".as_ref(),
        ca_key.as_os_str(),
        "-days".as_ref(),
        "10".as_ref(),
        "-outform".as_ref(),
        "DER".as_ref(),
        "-out".as_ref(),
        cert.as_os_str(),
    ])?;
    Ok(cert)
}

/// The check with this id (and subject, if given).
fn find<'a>(v: &'a Value, id: &str) -> Vec<&'a Value> {
    v["checks"]
        .as_array()
        .map(|a| a.iter().filter(|c| c["id"] == id).collect())
        .unwrap_or_default()
}

#[test]
fn doctor_names_an_unknown_atr_and_its_fix_works() -> Result<()> {
    segel_tests::skip_without_pcscd!();
    let s = setup()?;
    // An empty virtual PIV card with Segel's generic ATR (in no table) in the first reader.
    let card = segel_tests::vpiv::CardBuilder::new("123456").build()?;
    card.insert(s._pcscd.reader_port(0))?;
    let atr = segel_agent::pcsc::atr::format_hex(&segel_tests::vpiv::with_tck(
        segel_tests::vpiv::DEFAULT_ATR.to_vec(),
    ));
    // pcscd sees the card within a moment; doctor reports what it sees when it runs.
    let mut report = None;
    for _ in 0..50 {
        let (code, v) = s.doctor()?;
        if !find(&v, "reader").is_empty() {
            report = Some((code, v));
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (code, v) = report.context("doctor never saw the card")?;
    let readers = find(&v, "reader");
    ensure!(readers.len() == 1, "{readers:#?}");
    let r = readers[0];
    let fix = r["fix"].as_str().unwrap_or_default();
    ensure!(
        r["status"] == "warn"
            && r["subject"]
                .as_str()
                .is_some_and(|n| n.starts_with("Segel vpcd"))
            && r["message"].as_str().is_some_and(|m| m.contains(&atr)),
        "{r:#}"
    );
    let lines = format!(
        "[[card]]\nname = \"My token\"\natr = \"{atr}\"\n[card.modules]\nlinux = [\"vendor-pkcs11.so\"]"
    );
    ensure!(
        fix.contains(&lines) && fix.contains(".config/segel/atr-modules.toml"),
        "the fix must name the ATR, the file and the lines to add: {fix}"
    );
    let pcscd = find(&v, "pcscd");
    ensure!(
        pcscd.len() == 1
            && pcscd[0]["status"] == "ok"
            && pcscd[0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("2 reader(s), 1 card(s)")),
        "{pcscd:#?}"
    );
    // A warning, not a failure: Segel still tries OpenSC for the card.
    ensure!(code == 0 && failures(&v).is_empty(), "{:#?}", failures(&v));

    // The lines from the fix, with OpenSC as the module: the card is known now.
    let table = s.home().join(".config/segel/atr-modules.toml");
    std::fs::write(
        &table,
        lines.replace("vendor-pkcs11.so", segel_tests::pcscd::OPENSC_MODULE) + "\n",
    )?;
    let (code, v) = s.doctor()?;
    let readers = find(&v, "reader");
    ensure!(
        code == 0
            && readers.len() == 1
            && readers[0]["status"] == "ok"
            && readers[0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("My token") && m.contains("opensc-pkcs11.so")),
        "{readers:#?}"
    );
    // A broken table is reported, with the file to correct.
    std::fs::write(&table, "[[card]]\nname = 3\n")?;
    let (code, v) = s.doctor()?;
    let (_, _, fix) = expect_only(&v, code, "atr-table")?;
    ensure!(fix.contains("atr-modules.toml"), "{fix}");
    card.remove();
    Ok(())
}

#[test]
fn doctor_ends_and_reports_a_pcscd_that_never_answers() -> Result<()> {
    segel_tests::skip_without_pcscd!();
    let s = setup()?;
    // A pcscd stand-in: takes every connection and never says a word.
    let dir = tempfile::tempdir()?;
    let socket = dir.path().join("pcscd.comm");
    let listener = std::os::unix::net::UnixListener::bind(&socket)?;
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming() {
            held.push(c);
        }
    });
    let mut cmd = segel_cmd(&s.envs, s.home())?;
    let mut child = cmd
        .args(["doctor", "--json", "--timeout", "4"])
        .env("PCSCLITE_CSOCK_NAME", &socket)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    // A hang detector, not a timing assertion: doctor must end by itself.
    let t0 = std::time::Instant::now();
    while child.try_wait()?.is_none() {
        if t0.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            anyhow::bail!("segel doctor hung on a pcscd that never answers");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output()?;
    let v: Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "doctor printed no JSON: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let f = failures(&v);
    ensure!(
        out.status.code() == Some(1),
        "exit {:?}: {f:#?}",
        out.status
    );
    let pcscd = f
        .iter()
        .find(|c| c.0 == "pcscd")
        .context("no pcscd failure")?;
    ensure!(
        pcscd.2.contains(&socket.display().to_string())
            && pcscd.2.contains("did not answer")
            && pcscd.2.contains("4 s")
            && pcscd.3.contains("restart"),
        "{pcscd:?}"
    );
    // OpenSC's C_Initialize waits on this pcscd forever: a module that hangs, bounded too.
    ensure!(
        f.iter().any(|c| c.0 == "module"
            && c.1.ends_with("opensc-pkcs11.so")
            && c.3.contains("C_Initialize")),
        "OpenSC's hung C_Initialize not reported: {f:#?}"
    );
    // Everything else that failed is a check that waited on this pcscd (OpenSC's C_Initialize,
    // or the tokens behind it), each reported as timed out with a fix.
    for c in f.iter().filter(|c| c.0 != "pcscd") {
        ensure!(
            matches!(c.0.as_str(), "module" | "tokens")
                && c.2.contains("no answer within 4 s")
                && !c.3.is_empty(),
            "{c:?}"
        );
    }
    // The rest of the report is there: doctor did not give up on the whole run.
    ensure!(
        find(&v, "daemon")
            .first()
            .is_some_and(|c| c["status"] == "ok"),
        "{v:#}"
    );
    Ok(())
}
