//! The token layer against real tokens — one suite, two backends: every backend-independent
//! test runs against SoftHSM2 (`softhsm::…`) and against Segel's own PKCS#12-file module
//! (`shim::…`), see segel_tests::backend. OpenSC's pkcs11-spy watches the calls, OpenSSL is the
//! independent verifier; a p11-kit server yanks a SoftHSM token mid-use (SoftHSM only).
//!
//! CLI tests run the `segel` binary with a private token config and a private HOME;
//! in-process tests re-run themselves in a child process with their own environment
//! (segel_tests::isolate).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, bail, ensure};
use segel_tests::backend::{Backend, TestTokens};
use segel_tests::fixtures::fixture;
use segel_tests::isolate::{child_env, is_child, run_in_child};
use segel_tests::openssl;
use segel_tests::p11kit::P11KitServer;
use segel_tests::segel::segel_cmd;
use segel_tests::softhsm::SoftHsm;
use segel_tests::spy::Spy;
use serde_json::Value;

const PIN: &str = "123456";
use segel_tests::backend::SO_PIN;

/// A SoftHSM installation with one token holding the given fixtures (ids 01, 02, …).
fn token_with(label: &str, fixtures: &[&str]) -> Result<SoftHsm> {
    let hsm = SoftHsm::new()?;
    hsm.init_token(label, SO_PIN, PIN)?;
    for (i, name) in fixtures.iter().enumerate() {
        hsm.import_fixture(label, PIN, name, &format!("{:02x}", i + 1), name)?;
    }
    Ok(hsm)
}

/// Runs segel with a private HOME; returns the output (any exit status).
fn segel(envs: &[(String, OsString)], home: &Path, args: &[&str]) -> Result<Output> {
    let mut cmd = segel_cmd(envs, home)?;
    cmd.env_remove("SEGEL_PIN");
    cmd.args(args);
    cmd.output()
        .with_context(|| format!("running segel {args:?}"))
}

fn ok_json(out: &Output) -> Result<Value> {
    ensure!(
        out.status.success(),
        "segel failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn error_code(out: &Output) -> Result<String> {
    ensure!(!out.status.success(), "segel unexpectedly succeeded");
    let v: Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "error JSON expected, got {:?}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    Ok(v["error"]["code"].as_str().unwrap_or_default().to_owned())
}

struct Env {
    hsm: TestTokens,
    home: tempfile::TempDir,
    pin_file: PathBuf,
}

impl Env {
    fn new(backend: Backend, fixtures: &[&str]) -> Result<Self> {
        let hsm = backend.token("vendor", fixtures, PIN)?;
        let home = tempfile::tempdir()?;
        let pin_file = home.path().join("pin");
        std::fs::write(&pin_file, format!("{PIN}\n"))?;
        Ok(Env {
            hsm,
            home,
            pin_file,
        })
    }

    fn module(&self) -> String {
        self.hsm.module_path().display().to_string()
    }

    fn run(&self, args: &[&str]) -> Result<Output> {
        let module = self.module();
        let pin_file = self.pin_file.display().to_string();
        let mut full = vec![
            "--module",
            module.as_str(),
            "--pin-file",
            pin_file.as_str(),
            "--json",
        ];
        full.extend_from_slice(args);
        segel(&self.hsm.envs(), self.home.path(), &full)
    }
}

fn tokens_json_lists_the_token_with_the_contract_fields(backend: Backend) -> Result<()> {
    let env = Env::new(backend, &["vendor-rsa2048"])?;
    let v = ok_json(&env.run(&["tokens"])?)?;
    let tokens = v.as_array().context("array")?;
    ensure!(
        tokens.len() == 1,
        "one initialised token expected (the free slot is hidden): {v}"
    );
    let t = &tokens[0];
    ensure!(t["label"] == "vendor", "{t}");
    for field in ["serial", "manufacturer", "model", "module", "flags"] {
        ensure!(!t[field].is_null(), "missing {field}: {t}");
    }
    ensure!(
        t["flags"]["login_required"] == true && t["flags"]["pin_locked"] == false,
        "{t}"
    );
    ensure!(t["module"] == env.module().as_str());
    Ok(())
}

fn certs_json_ties_each_certificate_to_its_key_and_usage(backend: Backend) -> Result<()> {
    let env = Env::new(
        backend,
        &[
            "vendor-rsa2048",
            "pokja-rsa2048",
            "vendor-p384",
            "pokja-p256",
        ],
    )?;
    let v = ok_json(&env.run(&["certs"])?)?;
    let certs = v.as_array().context("array")?;
    ensure!(certs.len() == 4, "{v}");
    let expect = [
        ("vendor-rsa2048", "rsa", 2048, "sign"),
        ("pokja-rsa2048", "rsa", 2048, "decrypt"),
        ("vendor-p384", "ec", 384, "sign"),
        ("pokja-p256", "ec", 256, "decrypt"),
    ];
    for (name, key_type, bits, usage) in expect {
        let f = fixture(name)?;
        let c = certs
            .iter()
            .find(|c| c["fingerprint_sha256"] == f.entry.fingerprint_sha256.as_str())
            .with_context(|| format!("{name} not listed: {v}"))?;
        ensure!(
            c["key_type"] == key_type && c["key_bits"] == bits,
            "{name}: {c}"
        );
        ensure!(c["usage"] == serde_json::json!([usage]), "{name}: {c}");
        let common_name = f.entry.subject.split(',').next().unwrap_or_default();
        ensure!(c["token"] == "vendor", "{name}: {c}");
        ensure!(
            c["subject"]
                .as_str()
                .is_some_and(|s| s.starts_with(common_name)),
            "{name}: {c}"
        );
        for field in ["issuer", "serial", "not_before", "not_after"] {
            ensure!(c[field].is_string(), "{name} lacks {field}: {c}");
        }
    }
    Ok(())
}

fn every_sign_mechanism_verifies_with_openssl(backend: Backend) -> Result<()> {
    let env = Env::new(
        backend,
        &[
            "vendor-rsa2048",
            "vendor-rsa3072",
            "vendor-p256",
            "vendor-p384",
        ],
    )?;
    let data = env.home.path().join("bid.pdf");
    std::fs::write(
        &data,
        b"%PDF-1.7 penawaran harga, PT Maju Jaya".repeat(1000),
    )?;
    let cases: &[(&str, &str, bool)] = &[
        ("vendor-rsa2048", "sha256", false),
        ("vendor-rsa2048", "sha384", false),
        ("vendor-rsa2048", "sha512", false),
        ("vendor-rsa2048", "sha256", true),
        ("vendor-rsa3072", "sha512", true),
        ("vendor-p256", "sha256", false),
        ("vendor-p384", "sha384", false),
    ];
    for (name, hash, pss) in cases {
        let f = fixture(name)?;
        let sig = env.home.path().join(format!("{name}-{hash}-{pss}.sig"));
        let (data_s, sig_s) = (data.display().to_string(), sig.display().to_string());
        let mut args = vec![
            "sign",
            "--cert",
            &f.entry.fingerprint_sha256,
            "--format",
            "raw",
            "--in",
            &data_s,
            "--out",
            &sig_s,
            "--hash",
            hash,
        ];
        if *pss {
            args.push("--pss");
        }
        ok_json(&env.run(&args)?).with_context(|| format!("{name} {hash} pss={pss}"))?;
        openssl::verify_raw(&f.cert_pem_path, &data, &sig, hash, *pss)
            .with_context(|| format!("{name} {hash} pss={pss}"))?;
    }
    Ok(())
}

fn certificate_selected_by_label_with_colon_fingerprint_also_works(backend: Backend) -> Result<()> {
    let env = Env::new(backend, &["vendor-p256"])?;
    let data = env.home.path().join("doc");
    std::fs::write(&data, b"dokumen")?;
    let f = fixture("vendor-p256")?;
    let colon_fp: String = f
        .entry
        .fingerprint_sha256
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(":");
    for selector in ["label:vendor-p256", colon_fp.as_str()] {
        let sig = env.home.path().join("s.sig");
        let (d, s) = (data.display().to_string(), sig.display().to_string());
        ok_json(&env.run(&["sign", "--cert", selector, "--in", &d, "--out", &s])?)?;
        openssl::verify_raw(&f.cert_pem_path, &data, &sig, "sha256", false)?;
    }
    Ok(())
}

fn oaep_sha256_decrypts_through_raw_rsa_with_software_unpadding(backend: Backend) -> Result<()> {
    let env = Env::new(backend, &["pokja-rsa2048"])?;
    let spy = Spy::new(env.hsm.module_path())?;
    let f = fixture("pokja-rsa2048")?;
    let secret = b"kunci sesi AES-256: 0123456789abcdef0123456789abcdef";
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "oaep-sha256",
            openssl::encrypt_oaep_sha256(&f.cert_pem_path, secret)?,
        ),
        ("pkcs1", openssl::encrypt_pkcs1(&f.cert_pem_path, secret)?),
    ];
    for (padding, ct) in cases {
        let ct_path = env.home.path().join(format!("{padding}.bin"));
        let out_path = env.home.path().join(format!("{padding}.out"));
        std::fs::write(&ct_path, &ct)?;
        let mut envs = env.hsm.envs();
        envs.extend(spy.envs());
        let (c, o, pf) = (
            ct_path.display().to_string(),
            out_path.display().to_string(),
            env.pin_file.display().to_string(),
        );
        let out = segel(
            &envs,
            env.home.path(),
            &[
                "--module",
                Spy::MODULE,
                "--pin-file",
                &pf,
                "--json",
                "decrypt",
                "--cert",
                &f.entry.fingerprint_sha256,
                "--padding",
                padding,
                "--in",
                &c,
                "--out",
                &o,
            ],
        )?;
        ensure!(
            out.status.success(),
            "{padding}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        ensure!(
            std::fs::read(&out_path)? == secret,
            "{padding}: wrong plaintext"
        );
    }
    // The token was asked for raw RSA only: its own padding check never ran.
    let log = spy.log()?;
    let mechanisms: Vec<&str> = log
        .split(": C_DecryptInit")
        .skip(1)
        .filter_map(|call| {
            call.lines()
                .find_map(|l| l.split("pMechanism->type = ").nth(1))
        })
        .map(str::trim)
        .collect();
    ensure!(
        mechanisms == ["CKM_RSA_X_509", "CKM_RSA_X_509"],
        "decryption mechanisms: {mechanisms:?}"
    );
    Ok(())
}

fn corrupted_ciphertext_fails_with_the_one_decryption_error_and_writes_nothing(
    backend: Backend,
) -> Result<()> {
    let env = Env::new(backend, &["pokja-rsa2048"])?;
    let f = fixture("pokja-rsa2048")?;
    let mut ct = openssl::encrypt_oaep_sha256(&f.cert_pem_path, b"rahasia")?;
    ct[17] ^= 0x40;
    let ct_path = env.home.path().join("ct");
    let out_path = env.home.path().join("pt");
    std::fs::write(&ct_path, &ct)?;
    let (c, o) = (
        ct_path.display().to_string(),
        out_path.display().to_string(),
    );
    let out = env.run(&[
        "decrypt",
        "--cert",
        &f.entry.fingerprint_sha256,
        "--in",
        &c,
        "--out",
        &o,
    ])?;
    ensure!(
        error_code(&out)? == "DECRYPTION_FAILED",
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    ensure!(!out_path.exists(), "a failed decryption left output behind");
    Ok(())
}

fn wrong_pin_is_reported_and_never_tried_twice(backend: Backend) -> Result<()> {
    let env = Env::new(backend, &["vendor-rsa2048"])?;
    let spy = Spy::new(env.hsm.module_path())?;
    let bad = env.home.path().join("bad-pin");
    std::fs::write(&bad, "000000\n")?;
    let data = env.home.path().join("doc");
    std::fs::write(&data, b"x")?;
    let mut envs = env.hsm.envs();
    envs.extend(spy.envs());
    let f = fixture("vendor-rsa2048")?;
    let (b, d, s) = (
        bad.display().to_string(),
        data.display().to_string(),
        env.home.path().join("sig").display().to_string(),
    );
    let out = segel(
        &envs,
        env.home.path(),
        &[
            "--module",
            Spy::MODULE,
            "--pin-file",
            &b,
            "--json",
            "sign",
            "--cert",
            &f.entry.fingerprint_sha256,
            "--in",
            &d,
            "--out",
            &s,
        ],
    )?;
    ensure!(
        error_code(&out)? == "PIN_INCORRECT",
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let message = String::from_utf8_lossy(&out.stdout).to_string();
    ensure!(message.contains("wrong PIN"), "{message}");
    let logins = spy.count_calls("C_Login")?;
    ensure!(logins == 1, "expected exactly one C_Login, saw {logins}");
    ensure!(!Path::new(&s).exists());
    Ok(())
}

fn no_pin_source_off_a_terminal_is_pin_required(backend: Backend) -> Result<()> {
    let env = Env::new(backend, &["vendor-rsa2048"])?;
    let data = env.home.path().join("doc");
    std::fs::write(&data, b"x")?;
    let f = fixture("vendor-rsa2048")?;
    let module = env.module();
    let (d, s) = (
        data.display().to_string(),
        env.home.path().join("sig").display().to_string(),
    );
    let mut cmd = segel_cmd(&env.hsm.envs(), env.home.path())?;
    cmd.env_remove("SEGEL_PIN")
        .stdin(std::process::Stdio::null());
    cmd.args([
        "--module",
        &module,
        "--json",
        "sign",
        "--cert",
        &f.entry.fingerprint_sha256,
        "--in",
        &d,
        "--out",
        &s,
    ]);
    let out = cmd.output()?;
    ensure!(
        error_code(&out)? == "PIN_REQUIRED",
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // SEGEL_PIN is the automation path.
    let mut cmd = segel_cmd(&env.hsm.envs(), env.home.path())?;
    cmd.env("SEGEL_PIN", PIN).stdin(std::process::Stdio::null());
    cmd.args([
        "--module",
        &module,
        "--json",
        "sign",
        "--cert",
        &f.entry.fingerprint_sha256,
        "--in",
        &d,
        "--out",
        &s,
    ]);
    ok_json(&cmd.output()?)?;
    Ok(())
}

fn missing_module_unknown_certificate_and_bad_selector_give_clear_errors(
    backend: Backend,
) -> Result<()> {
    let env = Env::new(backend, &["vendor-rsa2048"])?;
    let home = env.home.path();
    let out = segel(
        &env.hsm.envs(),
        home,
        &["--module", "/nonexistent/libtoken.so", "--json", "tokens"],
    )?;
    ensure!(error_code(&out)? == "MODULE_LOAD_FAILED");
    ensure!(String::from_utf8_lossy(&out.stdout).contains("/nonexistent/libtoken.so"));

    let data = home.join("doc");
    std::fs::write(&data, b"x")?;
    let d = data.display().to_string();
    let s = home.join("sig").display().to_string();
    let unknown = "ab".repeat(32);
    let out = env.run(&["sign", "--cert", &unknown, "--in", &d, "--out", &s])?;
    ensure!(error_code(&out)? == "CERTIFICATE_NOT_FOUND");
    let out = env.run(&["sign", "--cert", "nonsense", "--in", &d, "--out", &s])?;
    ensure!(error_code(&out)? == "BAD_REQUEST");
    ensure!(String::from_utf8_lossy(&out.stdout).contains("label:NAME"));
    Ok(())
}

#[test]
fn token_without_the_certificate_is_certificate_not_found_and_empty_module_lists_nothing()
-> Result<()> {
    // A module with only an empty token: nothing to list, selectors find nothing.
    let hsm = SoftHsm::new()?;
    hsm.init_token("empty", SO_PIN, PIN)?;
    let home = tempfile::tempdir()?;
    let module = hsm.module_path().display().to_string();
    let v = ok_json(&segel(
        &hsm.envs(),
        home.path(),
        &["--module", &module, "--json", "certs"],
    )?)?;
    ensure!(v == serde_json::json!([]), "{v}");
    let out = segel(
        &hsm.envs(),
        home.path(),
        &[
            "--module",
            &module,
            "--json",
            "sign",
            "--cert",
            "label:x",
            "--in",
            "/etc/hostname",
            "--out",
            "/tmp/never",
        ],
    )?;
    ensure!(error_code(&out)? == "CERTIFICATE_NOT_FOUND");
    Ok(())
}

fn expired_and_not_yet_valid_certificates_are_refused_for_signing(backend: Backend) -> Result<()> {
    let env = Env::new(backend, &["vendor-expired", "vendor-notyet"])?;
    let data = env.home.path().join("doc");
    std::fs::write(&data, b"x")?;
    let (d, s) = (
        data.display().to_string(),
        env.home.path().join("sig").display().to_string(),
    );
    for (name, word) in [
        ("vendor-expired", "expired"),
        ("vendor-notyet", "not valid before"),
    ] {
        let f = fixture(name)?;
        let out = env.run(&[
            "sign",
            "--cert",
            &f.entry.fingerprint_sha256,
            "--in",
            &d,
            "--out",
            &s,
        ])?;
        ensure!(error_code(&out)? == "CERTIFICATE_INVALID", "{name}");
        ensure!(
            String::from_utf8_lossy(&out.stdout).contains(word),
            "{name}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Ok(())
}

/// Counts how often the token layer asks for the PIN.
struct CountingPin(AtomicUsize, &'static str);

impl segel_agent::pin::PinSource for CountingPin {
    fn pin_for(
        &self,
        _: &segel_agent::token::TokenDescription,
    ) -> Result<Option<secrecy::SecretString>, segel_agent::token::TokenError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(Some(secrecy::SecretString::from(self.1.to_owned())))
    }
}

fn service_for(module: &str) -> Result<segel_agent::token::TokenService> {
    service_with(module, segel_agent::token::ServiceOptions::default())
}

fn service_with(
    module: &str,
    options: segel_agent::token::ServiceOptions,
) -> Result<segel_agent::token::TokenService> {
    use segel_agent::token::{ModuleSource, ModuleSpec, TokenService};
    Ok(TokenService::start(
        &[ModuleSpec {
            path: PathBuf::from(module),
            source: ModuleSource::CommandLine,
        }],
        options,
    )?)
}

fn sign_once(
    service: &segel_agent::token::TokenService,
    fingerprint: &str,
    pin: Arc<dyn segel_agent::pin::PinSource>,
) -> std::result::Result<Vec<u8>, segel_agent::token::TokenError> {
    use segel_agent::token::{HashAlg, SignRequest};
    let cert = service.find_certificate(&fingerprint.parse()?).wait()?;
    let digest = HashAlg::Sha256.digest(b"dokumen penawaran");
    service
        .sign_digest(
            &cert,
            &SignRequest {
                scheme: None,
                hash: HashAlg::Sha256,
            },
            digest,
            pin,
        )
        .wait()
}

#[test]
fn token_yanked_mid_use_gives_a_clear_error_and_the_next_call_works_without_restart() -> Result<()>
{
    if is_child() {
        use segel_agent::token::{HashAlg, ServiceOptions, SignRequest};
        // One session, so the operation after the kill runs on the session that was yanked.
        let options = ServiceOptions {
            sessions_per_soft_token: Some(1),
        };
        let service = service_with(&child_env("MODULE")?, options)?;
        let pin: Arc<dyn segel_agent::pin::PinSource> =
            Arc::new(CountingPin(AtomicUsize::new(0), PIN));
        let cert = service
            .find_certificate(&child_env("FP")?.parse()?)
            .wait()?;
        let sign = || {
            let request = SignRequest {
                scheme: None,
                hash: HashAlg::Sha256,
            };
            service
                .sign_digest(&cert, &request, HashAlg::Sha256.digest(b"bid"), pin.clone())
                .wait()
        };
        sign().context("first signature")?;
        // Kill the server's per-connection child while our session is open and logged in.
        let server_pid: u32 = child_env("SERVER_PID")?.parse()?;
        let children = segel_tests::p11kit::descendants(server_pid)?;
        ensure!(!children.is_empty(), "no p11-kit-remote child to kill");
        for pid in &children {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        match sign() {
            Err(e) => {
                use segel_agent::protocol::ErrorCode;
                ensure!(
                    matches!(e.code(), ErrorCode::DeviceError | ErrorCode::TokenAbsent),
                    "unexpected error kind: {e} ({:?})",
                    e.code()
                );
                ensure!(
                    e.to_string().contains("re-insert") || e.to_string().contains("insert it"),
                    "{e}"
                );
                eprintln!("yanked token reported as: {e}");
            }
            Ok(_) => bail!("signing on a yanked token succeeded"),
        }
        // Same service, same process: the next call reconnects and works.
        sign().context("signature after the token came back")?;
        return Ok(());
    }
    let hsm = token_with("vendor", &["vendor-rsa2048"])?;
    let server = P11KitServer::start(&hsm, "vendor")?;
    let mut envs = server.envs();
    envs.push(("MODULE".into(), server.client_module_path().into()));
    envs.push((
        "FP".into(),
        fixture("vendor-rsa2048")?.entry.fingerprint_sha256.into(),
    ));
    envs.push(("SERVER_PID".into(), server.pid().to_string().into()));
    run_in_child(
        "token_yanked_mid_use_gives_a_clear_error_and_the_next_call_works_without_restart",
        &envs,
    )
}

fn one_login_serves_many_operations_and_a_refused_pin_is_not_retried(
    backend: Backend,
) -> Result<()> {
    if is_child() {
        let fp = child_env("FP")?;
        let service = service_for(Spy::MODULE)?;
        let good = Arc::new(CountingPin(AtomicUsize::new(0), PIN));
        for _ in 0..5 {
            sign_once(&service, &fp, good.clone())?;
        }
        ensure!(
            good.0.load(Ordering::SeqCst) == 1,
            "PIN asked {} times",
            good.0.load(Ordering::SeqCst)
        );
        service.logout_all();
        // A wrong PIN: one C_Login; asking again with the same source does not touch the token.
        let bad = Arc::new(CountingPin(AtomicUsize::new(0), "999999"));
        let bad_dyn: Arc<dyn segel_agent::pin::PinSource> = bad.clone();
        for _ in 0..3 {
            let e = sign_once(&service, &fp, bad_dyn.clone())
                .err()
                .context("wrong PIN accepted")?;
            ensure!(
                e.code() == segel_agent::protocol::ErrorCode::PinIncorrect,
                "{e}"
            );
        }
        ensure!(
            bad.0.load(Ordering::SeqCst) == 1,
            "wrong PIN source asked {} times",
            bad.0.load(Ordering::SeqCst)
        );
        return Ok(());
    }
    let hsm = backend.token("vendor", &["vendor-p256"], PIN)?;
    let spy = Spy::new(hsm.module_path())?;
    let mut envs = hsm.envs();
    envs.extend(spy.envs());
    envs.push((
        "FP".into(),
        fixture("vendor-p256")?.entry.fingerprint_sha256.into(),
    ));
    run_in_child(
        &child_path(
            backend,
            "one_login_serves_many_operations_and_a_refused_pin_is_not_retried",
        ),
        &envs,
    )?;
    let logins = spy
        .calls()?
        .into_iter()
        .filter(|c| c.function == "C_Login")
        .collect::<Vec<_>>();
    // One good login, one refused login; logout in between.
    ensure!(logins.len() == 2, "C_Login calls: {logins:?}");
    ensure!(
        logins[1].rv.as_deref() == Some("CKR_PIN_INCORRECT"),
        "{logins:?}"
    );
    Ok(())
}

fn two_tokens_sign_concurrently_each_on_its_own_worker(backend: Backend) -> Result<()> {
    if is_child() {
        let service = service_for(&child_env("MODULE")?)?;
        let pin: Arc<dyn segel_agent::pin::PinSource> =
            Arc::new(CountingPin(AtomicUsize::new(0), PIN));
        let fps = [child_env("FP1")?, child_env("FP2")?];
        let certs: Vec<_> = fps
            .iter()
            .map(|fp| service.find_certificate(&fp.parse()?).wait())
            .collect::<std::result::Result<_, _>>()?;
        use segel_agent::token::{HashAlg, SignRequest};
        let digest = HashAlg::Sha256.digest(b"x");
        // Queue work on both tokens before waiting on any.
        let replies: Vec<_> = (0..20)
            .map(|i| {
                service.sign_digest(
                    &certs[i % 2],
                    &SignRequest {
                        scheme: None,
                        hash: HashAlg::Sha256,
                    },
                    digest.clone(),
                    pin.clone(),
                )
            })
            .collect();
        for r in replies {
            r.wait()?;
        }
        return Ok(());
    }
    let hsm = backend.tokens(
        &[
            ("vendor-a", &["vendor-rsa2048"]),
            ("vendor-b", &["vendor-p256"]),
        ],
        PIN,
    )?;
    let mut envs = hsm.child_envs();
    envs.push((
        "FP1".into(),
        fixture("vendor-rsa2048")?.entry.fingerprint_sha256.into(),
    ));
    envs.push((
        "FP2".into(),
        fixture("vendor-p256")?.entry.fingerprint_sha256.into(),
    ));
    run_in_child(
        &child_path(
            backend,
            "two_tokens_sign_concurrently_each_on_its_own_worker",
        ),
        &envs,
    )
}

/// The libtest path of a generated per-backend test (see [`both_backends`]).
fn child_path(backend: Backend, name: &str) -> String {
    match backend {
        Backend::SoftHsm => format!("softhsm::{name}"),
        Backend::Shim => format!("shim::{name}"),
    }
}

/// Runs each backend-independent test once per backend: `softhsm::NAME` and `shim::NAME`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod softhsm {
            $(#[test]
            fn $name() -> anyhow::Result<()> {
                super::$name(segel_tests::backend::Backend::SoftHsm)
            })*
        }
        mod shim {
            $(#[test]
            fn $name() -> anyhow::Result<()> {
                super::$name(segel_tests::backend::Backend::Shim)
            })*
        }
    };
}

both_backends!(
    tokens_json_lists_the_token_with_the_contract_fields,
    certs_json_ties_each_certificate_to_its_key_and_usage,
    every_sign_mechanism_verifies_with_openssl,
    certificate_selected_by_label_with_colon_fingerprint_also_works,
    oaep_sha256_decrypts_through_raw_rsa_with_software_unpadding,
    corrupted_ciphertext_fails_with_the_one_decryption_error_and_writes_nothing,
    wrong_pin_is_reported_and_never_tried_twice,
    no_pin_source_off_a_terminal_is_pin_required,
    missing_module_unknown_certificate_and_bad_selector_give_clear_errors,
    expired_and_not_yet_valid_certificates_are_refused_for_signing,
    one_login_serves_many_operations_and_a_refused_pin_is_not_retried,
    two_tokens_sign_concurrently_each_on_its_own_worker,
);
