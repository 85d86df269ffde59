//! Smart cards over PC/SC, end to end: a private pcscd with vpcd readers, the virtual PIV card
//! (segel_tests::vpiv), OpenSC's PKCS#11 module, and Segel — the `segel` CLI, or the token layer
//! in a child process (libpcsclite reads `PCSCLITE_CSOCK_NAME` once per process). OpenSSL is the
//! independent verifier and the sealing peer. Needs root (see segel_tests::pcscd); skips otherwise.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use segel_tests::fixtures::fixture;
use segel_tests::isolate::{child_env, is_child, run_in_child};
use segel_tests::openssl::{self, openssl};
use segel_tests::pcscd::{OPENSC_MODULE, Pcscd, wait_card_in_process, watchdog};
use segel_tests::segel::{error_code, ok_json, segel_cmd};
use segel_tests::skip_without_pcscd;
use segel_tests::vpiv::{CardBuilder, VirtualCard};
use serde_json::Value;

const PIN: &str = "123456";

/// A private pcscd, a private HOME and OpenSC config, and the cards the test made.
struct Rig {
    pcscd: Pcscd,
    home: tempfile::TempDir,
}

impl Rig {
    fn new(readers: usize) -> Result<Self> {
        let rig = Rig {
            pcscd: Pcscd::start(readers)?,
            home: tempfile::tempdir()?,
        };
        // OpenSC's defaults, not whatever this machine's /etc/opensc/opensc.conf says.
        std::fs::write(rig.opensc_conf(), "app default {\n}\n")?;
        Ok(rig)
    }

    fn opensc_conf(&self) -> PathBuf {
        self.home.path().join("opensc.conf")
    }

    fn envs(&self) -> Vec<(String, OsString)> {
        let mut envs = self.pcscd.envs();
        envs.push(("OPENSC_CONF".into(), self.opensc_conf().into()));
        envs
    }

    fn path(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }

    /// A card built by `build`, inserted into reader `reader`, and seen by PC/SC.
    fn insert(&self, reader: usize, card: CardBuilder) -> Result<VirtualCard> {
        let card = card.build()?;
        card.insert(self.pcscd.reader_port(reader))?;
        self.wait_for_token_count_at_least(1)?;
        Ok(card)
    }

    /// A card inserted into reader `reader`, without waiting for anything.
    fn insert_only(&self, reader: usize, card: CardBuilder) -> Result<VirtualCard> {
        let card = card.build()?;
        card.insert(self.pcscd.reader_port(reader))?;
        wait_card_in_reader(self, reader)?;
        Ok(card)
    }

    fn wait_for_token_count_at_least(&self, n: usize) -> Result<Vec<Value>> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = self.segel(None, &["tokens"])?;
            let tokens = ok_json(&out)?;
            let list = tokens.as_array().cloned().unwrap_or_default();
            if list.len() >= n {
                return Ok(list);
            }
            ensure!(
                Instant::now() < deadline,
                "{n} token(s) not visible within 10 s: {tokens}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `segel --module opensc-pkcs11.so --json ARGS`, the PIN (if any) in SEGEL_PIN.
    fn segel(&self, pin: Option<&str>, args: &[&str]) -> Result<Output> {
        let mut cmd = segel_cmd(&self.envs(), self.home.path())?;
        cmd.env_remove("SEGEL_PIN")
            .stdin(std::process::Stdio::null());
        if let Some(pin) = pin {
            cmd.env("SEGEL_PIN", pin);
        }
        cmd.args(["--module", OPENSC_MODULE, "--json"]).args(args);
        cmd.output()
            .with_context(|| format!("running segel {args:?}"))
    }

    /// `segel sign --format raw` with `fixture`'s certificate; the signature file.
    fn sign(&self, pin: Option<&str>, fixture_name: &str, extra: &[&str]) -> Result<Output> {
        let data = self.path("bid.pdf");
        if !data.exists() {
            std::fs::write(&data, b"%PDF-1.7 penawaran harga paket 42")?;
        }
        let mut args = vec![
            "sign".to_owned(),
            "--cert".into(),
            fp(fixture_name)?,
            "--format".into(),
            "raw".into(),
            "--in".into(),
            s(&data),
            "--out".into(),
            s(&self.path(&format!("{fixture_name}.sig"))),
        ];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.segel(pin, &args)
    }

    fn verify_signature(&self, fixture_name: &str) -> Result<()> {
        openssl::verify_raw(
            fixture(fixture_name)?.cert_pem_path,
            self.path("bid.pdf"),
            self.path(&format!("{fixture_name}.sig")),
            "sha256",
            false,
        )
    }
}

/// Waits until `segel readers` shows a card in reader `index` (PC/SC has its ATR).
fn wait_card_in_reader(rig: &Rig, index: usize) -> Result<()> {
    let names = rig.pcscd.reader_names()?;
    let name = names.get(index).context("no such reader")?.clone();
    readers_until(rig, "the card", |readers| {
        readers
            .iter()
            .any(|r| r["name"] == name.as_str() && r["card_present"] == true)
    })?;
    Ok(())
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn fp(name: &str) -> Result<String> {
    Ok(fixture(name)?.entry.fingerprint_sha256)
}

/// Vendor card: PIV authentication key 9A (RSA-2048), card authentication key 9E (P-256).
fn vendor_card() -> Result<CardBuilder> {
    CardBuilder::new(PIN)
        .slot(0x9a, "vendor-rsa2048")?
        .slot(0x9e, "vendor-p256")
}

#[test]
fn pcsc_card_shows_as_token_with_its_certificates() -> Result<()> {
    skip_without_pcscd!();
    let rig = Rig::new(2)?;
    let _card = rig.insert(0, vendor_card()?.slot(0x9d, "pokja-rsa2048")?)?;
    let tokens = rig.wait_for_token_count_at_least(1)?;
    ensure!(tokens.len() == 1, "one card, one token: {tokens:?}");
    let t = &tokens[0];
    ensure!(
        t["slot_description"]
            .as_str()
            .is_some_and(|d| d.starts_with("Segel vpcd")),
        "{t}"
    );
    ensure!(t["manufacturer"] == "piv_II", "OpenSC's PIV driver: {t}");
    ensure!(
        t["flags"]["removable"] == true && t["flags"]["login_required"] == true,
        "{t}"
    );
    let certs = ok_json(&rig.segel(None, &["certs"])?)?;
    let fps: Vec<&str> = certs
        .as_array()
        .context("certs array")?
        .iter()
        .filter_map(|c| c["fingerprint_sha256"].as_str())
        .collect();
    for name in ["vendor-rsa2048", "vendor-p256", "pokja-rsa2048"] {
        ensure!(fps.contains(&fp(name)?.as_str()), "{name} missing: {certs}");
    }
    ensure!(
        fps.len() == 3,
        "exactly the card's three certificates: {certs}"
    );
    Ok(())
}

#[test]
fn pcsc_sign_raw_rsa_and_ecdsa_verify_with_openssl() -> Result<()> {
    skip_without_pcscd!();
    let rig = Rig::new(2)?;
    let card = rig.insert(0, vendor_card()?)?;
    for name in ["vendor-rsa2048", "vendor-p256"] {
        ok_json(&rig.sign(Some(PIN), name, &[])?)
            .with_context(|| format!("signing with {name}"))?;
        rig.verify_signature(name)?;
    }
    ensure!(
        card.state().private_operations == 2,
        "the card did both private-key operations"
    );
    // A signature that does not match must not verify (the check can fail).
    std::fs::write(rig.path("bid.pdf"), b"tampered")?;
    ensure!(rig.verify_signature("vendor-rsa2048").is_err());
    Ok(())
}

#[test]
fn pcsc_wrong_pin_uses_one_try_reports_it_and_a_blocked_pin_is_locked() -> Result<()> {
    skip_without_pcscd!();
    let rig = Rig::new(2)?;
    let card = rig.insert(0, vendor_card()?)?;
    let tries = |card: &VirtualCard| card.state().pin_tries_left;

    let out = rig.sign(Some("999999"), "vendor-rsa2048", &[])?;
    ensure!(error_code(&out)? == "PIN_INCORRECT", "{out:?}");
    ensure!(
        tries(&card) == 2,
        "exactly one try used, no retry: {}",
        tries(&card)
    );

    let out = rig.sign(Some("999999"), "vendor-rsa2048", &[])?;
    ensure!(error_code(&out)? == "PIN_INCORRECT", "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        text.contains("one try is left"),
        "retries left reported: {text}"
    );
    ensure!(tries(&card) == 1);

    // The last try is not used without --final-try.
    let out = rig.sign(Some("999999"), "vendor-rsa2048", &[])?;
    ensure!(error_code(&out)? == "PIN_FINAL_TRY", "{out:?}");
    ensure!(tries(&card) == 1, "final try must not be burnt");

    let out = rig.sign(Some("999999"), "vendor-rsa2048", &["--final-try"])?;
    let code = error_code(&out)?;
    ensure!(code == "PIN_LOCKED" || code == "PIN_INCORRECT", "{out:?}");
    ensure!(tries(&card) == 0);

    // Blocked: even the right PIN is refused as locked, and the card is not asked to verify it.
    let out = rig.sign(Some(PIN), "vendor-rsa2048", &[])?;
    ensure!(error_code(&out)? == "PIN_LOCKED", "{out:?}");
    let tokens = ok_json(&rig.segel(None, &["tokens"])?)?;
    ensure!(tokens[0]["flags"]["pin_locked"] == true, "{tokens}");
    ensure!(card.state().private_operations == 0);
    Ok(())
}

#[test]
fn pcsc_two_cards_at_once_sign_each_with_its_own_key() -> Result<()> {
    skip_without_pcscd!();
    let rig = Rig::new(2)?;
    let a = rig.insert(0, CardBuilder::new(PIN).slot(0x9a, "vendor-rsa2048")?)?;
    let b = rig.insert(1, CardBuilder::new("654321").slot(0x9a, "vendor-p256")?)?;
    let tokens = rig.wait_for_token_count_at_least(2)?;
    ensure!(tokens.len() == 2, "{tokens:?}");
    ensure!(
        tokens[0]["serial"] != tokens[1]["serial"],
        "two cards, two serials: {tokens:?}"
    );
    // Each card's PIN: a per-card PIN file would be the real-world way; one run per card here.
    ok_json(&rig.sign(Some(PIN), "vendor-rsa2048", &[])?)?;
    ok_json(&rig.sign(Some("654321"), "vendor-p256", &[])?)?;
    rig.verify_signature("vendor-rsa2048")?;
    rig.verify_signature("vendor-p256")?;
    ensure!(a.state().private_operations == 1 && b.state().private_operations == 1);
    // Pulling one card leaves the other usable.
    b.remove();
    ok_json(&rig.sign(Some(PIN), "vendor-rsa2048", &[])?)?;
    let out = rig.sign(Some("654321"), "vendor-p256", &[])?;
    ensure!(error_code(&out)? == "CERTIFICATE_NOT_FOUND", "{out:?}");
    Ok(())
}

/// Signs, then encrypts to `pokja` with OpenSSL (`cms -sign`, `cms -encrypt`): a sealed bid.
fn openssl_seal(plain: &Path, pokja: &str, out: &Path) -> Result<()> {
    let inner = out.with_extension("inner");
    let cert = |n: &str| -> Result<String> { Ok(s(&fixture(n)?.cert_pem_path)) };
    openssl(&[
        "cms",
        "-sign",
        "-binary",
        "-nodetach",
        "-md",
        "sha256",
        "-in",
        &s(plain),
        "-signer",
        &cert("vendor-rsa2048")?,
        "-inkey",
        &s(&fixture("vendor-rsa2048")?.key_path),
        "-certfile",
        &cert("issuing-ca")?,
        "-outform",
        "DER",
        "-out",
        &s(&inner),
    ])?;
    let (inner, out, recip) = (s(&inner), s(out), cert(pokja)?);
    let mut args = vec![
        "cms",
        "-encrypt",
        "-binary",
        "-aes-256-gcm",
        "-in",
        &inner,
        "-outform",
        "DER",
        "-out",
        &out,
        "-recip",
        &recip,
    ];
    if pokja.contains("rsa") {
        // -keyopt applies to the -recip before it: RSA-OAEP with SHA-256.
        args.extend([
            "-keyopt",
            "rsa_padding_mode:oaep",
            "-keyopt",
            "rsa_oaep_md:sha256",
        ]);
    }
    openssl(&args)?;
    Ok(())
}

/// Seals a bid to `pokja` with OpenSSL, puts `pokja` in the card's key-management slot 9D and
/// opens the bid with `segel open` (RSA: raw RSA on the card; P-256: ECDH on the card).
fn sealed_bid_opens_with_card(pokja: &str) -> Result<()> {
    let rig = Rig::new(2)?;
    let card = rig.insert(0, CardBuilder::new(PIN).slot(0x9d, pokja)?)?;
    let plain = rig.path("penawaran.pdf");
    std::fs::write(
        &plain,
        b"%PDF-1.7 harga penawaran: Rp 1.234.567.890".repeat(300),
    )?;
    let sealed = rig.path("penawaran.pdf.p7m");
    openssl_seal(&plain, pokja, &sealed)?;
    let opened = rig.path("opened");
    std::fs::create_dir_all(&opened)?;
    let v = ok_json(&rig.segel(
        Some(PIN),
        &[
            "open",
            "--cert",
            &fp(pokja)?,
            "--out-dir",
            &s(&opened),
            "--ca",
            &s(&fixture("root-ca")?.cert_pem_path),
            &s(&sealed),
        ],
    )?)?;
    ensure!(v["summary"]["opened"] == 1, "{v}");
    ensure!(v["bids"][0]["signature_valid"] == true, "{v}");
    ensure!(v["bids"][0]["chain"]["status"] == "trusted", "{v}");
    ensure!(std::fs::read(opened.join("penawaran.pdf"))? == std::fs::read(&plain)?);
    let ops = card.state().private_operations;
    ensure!(
        ops >= 1,
        "the content key was unwrapped by the card ({ops} operations)"
    );
    Ok(())
}

#[test]
fn pcsc_sealed_bid_opens_with_the_cards_rsa_key_management_key() -> Result<()> {
    skip_without_pcscd!();
    sealed_bid_opens_with_card("pokja-rsa2048")
}

#[test]
fn pcsc_sealed_bid_opens_with_the_cards_p256_key_by_ecdh() -> Result<()> {
    skip_without_pcscd!();
    sealed_bid_opens_with_card("pokja-p256")
}

#[test]
fn pcsc_card_pulled_mid_signature_gives_a_clear_error_and_reinsertion_works_without_restart()
-> Result<()> {
    const NAME: &str =
        "pcsc_card_pulled_mid_signature_gives_a_clear_error_and_reinsertion_works_without_restart";
    if is_child() {
        use segel_agent::protocol::ErrorCode;
        use segel_agent::token::{
            CertSelector, HashAlg, ModuleSource, ModuleSpec, ServiceOptions, SignRequest,
            TokenService,
        };
        watchdog(Duration::from_secs(60));
        let port: u16 = child_env("CARD_PORT")?.parse()?;
        let card = vendor_card()?.build()?;
        card.insert(port)?;
        wait_card_in_process(0, true, Duration::from_secs(10))?;
        let service = TokenService::start(
            &[ModuleSpec {
                path: PathBuf::from(OPENSC_MODULE),
                source: ModuleSource::CommandLine,
            }],
            ServiceOptions::default(),
        )?;
        let selector: CertSelector = fp("vendor-rsa2048")?.parse()?;
        let find = || -> Result<_> {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match service.find_certificate(&selector).wait() {
                    Ok(c) => return Ok(c),
                    Err(e) if Instant::now() > deadline => bail!("card not found: {e}"),
                    Err(e) => {
                        eprintln!("card not found yet: {e}");
                        std::thread::sleep(Duration::from_millis(100))
                    }
                }
            }
        };
        let pin: Arc<dyn segel_agent::pin::PinSource> = Arc::new(FixedPin);
        let sign = |cert| {
            let request = SignRequest {
                scheme: None,
                hash: HashAlg::Sha256,
            };
            service
                .sign_digest(cert, &request, HashAlg::Sha256.digest(b"bid"), pin.clone())
                .wait()
        };
        let cert = find()?;
        sign(&cert).context("signature before the card is pulled")?;
        // Slow card, pulled when the signature command arrives.
        card.set_delay(Duration::from_millis(50));
        card.pull_on(Some(0x87));
        eprintln!("pulling the card at the next GENERAL AUTHENTICATE");
        let started = Instant::now();
        match sign(&cert) {
            Ok(_) => bail!("signature succeeded although the card was pulled"),
            Err(e) => {
                ensure!(card.was_pulled(), "the card was not pulled: {e}");
                ensure!(
                    matches!(e.code(), ErrorCode::TokenAbsent | ErrorCode::DeviceError),
                    "unexpected error kind: {e} ({:?})",
                    e.code()
                );
                ensure!(
                    e.to_string().contains("insert"),
                    "message says what to do: {e}"
                );
                eprintln!("pulled card reported after {:?} as: {e}", started.elapsed());
            }
        }
        card.set_delay(Duration::ZERO);
        wait_card_in_process(0, false, Duration::from_secs(10))?;
        card.insert(port)?;
        // As a user would: re-insert, then use it once the reader shows the card. (Calling
        // into OpenSC 0.23 while pcscd is still powering the card can fail with
        // SCARD_E_NOT_TRANSACTED and leave OpenSC's card lock held: a hang, seen here.)
        wait_card_in_process(0, true, Duration::from_secs(10))?;
        eprintln!("card re-inserted");
        // Same service, same process: the card is found again and signs.
        let cert = find()?;
        sign(&cert).context("signature after re-insertion")?;
        ensure!(card.state().private_operations == 2);
        return Ok(());
    }
    skip_without_pcscd!();
    let rig = Rig::new(2)?;
    let mut envs = rig.envs();
    envs.push((
        "CARD_PORT".into(),
        rig.pcscd.reader_port(0).to_string().into(),
    ));
    run_in_child(NAME, &envs)
}

#[derive(Debug)]
struct FixedPin;

impl segel_agent::pin::PinSource for FixedPin {
    fn pin_for(
        &self,
        _: &segel_agent::token::TokenDescription,
    ) -> Result<Option<secrecy::SecretString>, segel_agent::token::TokenError> {
        Ok(Some(secrecy::SecretString::from(PIN.to_owned())))
    }
}

/// `segel readers --json` once the readers show `want` (retried: PC/SC notices a card within
/// a fraction of a second).
fn readers_until(rig: &Rig, what: &str, want: impl Fn(&[Value]) -> bool) -> Result<Vec<Value>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = ok_json(&rig.segel(None, &["readers"])?)?;
        let list = v.as_array().cloned().unwrap_or_default();
        if want(&list) {
            return Ok(list);
        }
        ensure!(
            Instant::now() < deadline,
            "readers never showed {what}: {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

const YUBIKEY4_ATR: &str = "3bf81300008131fe15597562696b657934d4";

#[test]
fn pcsc_readers_show_atr_and_module_and_explain_an_unknown_atr() -> Result<()> {
    skip_without_pcscd!();
    let rig = Rig::new(2)?;
    let virtual_atr = hex::encode(segel_tests::vpiv::with_tck(
        segel_tests::vpiv::DEFAULT_ATR.to_vec(),
    ));
    let a = rig.insert(0, vendor_card()?)?;
    let b = CardBuilder::new(PIN)
        .atr(&hex::decode(YUBIKEY4_ATR)?)
        .build()?;
    b.insert(rig.pcscd.reader_port(1))?;
    let both = |l: &[Value]| l.len() == 2 && l.iter().all(|r| r["card_present"] == true);
    let list = readers_until(&rig, "two cards", both)?;
    let (r0, r1) = (&list[0], &list[1]);
    ensure!(
        r0["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("Segel vpcd")),
        "{r0}"
    );
    ensure!(r0["atr"] == virtual_atr.as_str(), "{r0}");
    ensure!(r0["module"] == "unknown" && r0["card"].is_null(), "{r0}");
    let hint = r0["hint"].as_str().unwrap_or_default();
    let colon_atr = segel_agent::pcsc::atr::format_hex(&hex::decode(&virtual_atr)?);
    ensure!(
        hint.contains(&colon_atr) && hint.contains(".config/segel/atr-modules.toml"),
        "the hint names the ATR and the file to extend: {hint}"
    );
    ensure!(
        r1["atr"] == YUBIKEY4_ATR && r1["card"] == "YubiKey 4/5 (PIV)",
        "{r1}"
    );
    ensure!(
        r1["module"] == "opensc-pkcs11.so" && r1["hint"].is_null(),
        "{r1}"
    );

    // The user's table names the unknown card.
    let conf = rig.path(".config/segel");
    std::fs::create_dir_all(&conf)?;
    std::fs::write(
        conf.join("atr-modules.toml"),
        format!(
            "[[card]]\nname = \"Segel virtual PIV\"\natr = \"{virtual_atr}\"\n\
             [card.modules]\nlinux = [\"{OPENSC_MODULE}\"]\n"
        ),
    )?;
    let list = readers_until(&rig, "the user's entry", |l| {
        l.first().is_some_and(|r| r["card"] == "Segel virtual PIV")
    })?;
    ensure!(list[0]["module"] == OPENSC_MODULE, "{}", list[0]);

    // Pulled: the reader stays, the card goes.
    a.remove();
    let list = readers_until(&rig, "reader 0 empty", |l| {
        l.len() == 2 && l[0]["card_present"] == false
    })?;
    ensure!(
        list[0]["atr"] == "" && list[1]["card_present"] == true,
        "{list:?}"
    );
    Ok(())
}

#[test]
fn readers_without_pcscd_report_pcsc_unavailable() -> Result<()> {
    // No root needed: a socket path nobody listens on is "pcscd not running".
    let home = tempfile::tempdir()?;
    let envs = vec![(
        "PCSCLITE_CSOCK_NAME".to_owned(),
        OsString::from(home.path().join("no-pcscd.comm")),
    )];
    let out = segel_cmd(&envs, home.path())?
        .args(["--json", "readers", "--timeout", "5"])
        .output()?;
    ensure!(error_code(&out)? == "PCSC_UNAVAILABLE", "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        text.contains("pcscd") && text.contains("not running"),
        "{text}"
    );
    Ok(())
}

#[test]
fn pcsc_watcher_follows_cards_and_recovers_when_pcscd_is_killed_and_restarted() -> Result<()> {
    const NAME: &str = "pcsc_watcher_follows_cards_and_recovers_when_pcscd_is_killed_and_restarted";
    if is_child() {
        use segel_agent::pcsc::{PcscEvent, ServiceState, Watcher, WatcherOptions};
        watchdog(Duration::from_secs(60));
        let port: u16 = child_env("CARD_PORT")?.parse()?;
        let watcher = Watcher::start(WatcherOptions {
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(400),
            poll: Duration::from_millis(200),
        })?;
        let mut events = watcher.subscribe();
        let wait = |what: &str, f: &dyn Fn(&segel_agent::pcsc::Snapshot) -> bool| -> Result<()> {
            let (snap, ok) = watcher.wait_until(Duration::from_secs(10), f);
            ensure!(ok, "watcher never showed {what}: {snap:?}");
            Ok(())
        };
        wait("two empty readers", &|s| {
            s.service == ServiceState::Up && s.readers.len() == 2
        })?;
        let card = vendor_card()?.build()?;
        card.insert(port)?;
        let atr = segel_tests::vpiv::with_tck(segel_tests::vpiv::DEFAULT_ATR.to_vec());
        wait("the card", &|s| {
            s.readers.iter().any(|r| r.card_present && r.atr == atr)
        })?;

        let pid = child_env("PCSCD_PID")?;
        let status = std::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status()?;
        ensure!(status.success(), "kill pcscd {pid}");
        card.remove();
        wait("pcscd down", &|s| {
            matches!(s.service, ServiceState::Down { .. }) && s.readers.is_empty()
        })?;

        let dir = PathBuf::from(child_env("PCSCD_DIR")?);
        let mut pcscd = segel_tests::pcscd::spawn_in(&dir, 2)?;
        let result = (|| -> Result<Vec<PcscEvent>> {
            wait("pcscd back with two readers", &|s| {
                s.service == ServiceState::Up && s.readers.len() == 2
            })?;
            card.insert(port)?;
            wait("the card after the restart", &|s| {
                s.readers.iter().any(|r| r.card_present && r.atr == atr)
            })?;
            // Collected before our pcscd is stopped (that is another outage).
            let mut seen = Vec::new();
            while let Ok(ev) = events.try_recv() {
                seen.push(ev);
            }
            Ok(seen)
        })();
        let _ = pcscd.kill();
        let _ = pcscd.wait();
        let seen = result?;

        // The same story as events, in order (reader events interleave).
        let kinds: Vec<&str> = seen
            .iter()
            .filter_map(|e| match e {
                PcscEvent::CardInserted { atr: a, .. } if *a == atr => Some("inserted"),
                PcscEvent::ServiceDown { .. } => Some("down"),
                PcscEvent::ServiceUp => Some("up"),
                _ => None,
            })
            .collect();
        // The first ServiceUp may precede our subscription.
        let kinds = kinds.strip_prefix(&["up"][..]).unwrap_or(&kinds);
        ensure!(
            kinds == ["inserted", "down", "up", "inserted"],
            "events: {seen:?}"
        );
        return Ok(());
    }
    skip_without_pcscd!();
    let rig = Rig::new(2)?;
    let mut envs = rig.envs();
    envs.push((
        "CARD_PORT".into(),
        rig.pcscd.reader_port(0).to_string().into(),
    ));
    envs.push(("PCSCD_DIR".into(), rig.pcscd.dir().into()));
    envs.push((
        "PCSCD_PID".into(),
        rig.pcscd.pid().context("pcscd pid")?.to_string().into(),
    ));
    run_in_child(NAME, &envs)
}

/// `piv-tool -A M:9B:03 ARGS` (mutual authentication with the 3DES management key in
/// `key_hex`); returns stderr. piv-tool 0.23's exit codes are not meaningful (it returns
/// non-zero after successful writes, and cannot print a generated key with OpenSSL 3), so the
/// tests judge by the card's state.
fn piv_tool(rig: &Rig, key_hex: &str, args: &[&str]) -> Result<String> {
    let key_file = rig.path("management.key");
    std::fs::write(&key_file, key_hex)?;
    let out = std::process::Command::new("piv-tool")
        .args(["-A", "M:9B:03"])
        .args(args)
        .envs(rig.envs())
        .env("PIV_EXT_AUTH_KEY", &key_file)
        .output()
        .context("running piv-tool (package opensc)")?;
    Ok(String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn pcsc_enrolment_with_opensc_piv_tool_needs_the_management_key() -> Result<()> {
    skip_without_pcscd!();
    use segel_tests::vpiv::applet::{DEFAULT_MANAGEMENT_KEY, cert_object, cert_object_tag};
    let rig = Rig::new(2)?;
    let card = rig.insert(0, CardBuilder::new(PIN).slot(0x9a, "vendor-rsa2048")?)?;
    let good = hex::encode(DEFAULT_MANAGEMENT_KEY);
    let mut bad = DEFAULT_MANAGEMENT_KEY;
    bad[23] ^= 0xff;
    let cert = fixture("pokja-rsa2048")?;
    let cert_pem = s(&cert.cert_pem_path);
    let tag_9d = cert_object_tag(0x9d).context("9D tag")?;

    let err = piv_tool(&rig, &hex::encode(bad), &["-C", "9D", "-i", &cert_pem])?;
    ensure!(
        err.contains("admin_mode failed"),
        "wrong key refused: {err}"
    );
    ensure!(card.state().object(&tag_9d).is_none(), "nothing written");

    // PUT DATA: the certificate lands in the 9D object and Segel lists it.
    piv_tool(&rig, &good, &["-C", "9D", "-i", &cert_pem])?;
    let der = std::fs::read(&cert.cert_der_path)?;
    ensure!(card.state().object(&tag_9d) == Some(cert_object(&der).as_slice()));
    let certs = ok_json(&rig.segel(None, &["certs"])?)?;
    ensure!(
        certs.to_string().contains(&fp("pokja-rsa2048")?),
        "segel lists the enrolled certificate: {certs}"
    );

    // GENERATE ASYMMETRIC KEY PAIR in 9C (RSA-2048) through OpenSC's chained response.
    ensure!(card.state().key(0x9c).is_none());
    piv_tool(&rig, &good, &["-G", "9C:07"])?;
    let algorithm = card.state().key(0x9c).map(|k| k.algorithm());
    ensure!(
        algorithm == Some(0x07),
        "9C holds a new RSA-2048 key: {algorithm:?}"
    );
    Ok(())
}

#[test]
fn pcsc_card_events_become_token_inserted_and_removed_events() -> Result<()> {
    const NAME: &str = "pcsc_card_events_become_token_inserted_and_removed_events";
    if is_child() {
        use segel_agent::pcsc::{TokenEvent, TokenEvents, TokenFollower, Watcher, WatcherOptions};
        use segel_agent::token::{ModuleSource, ModuleSpec, ServiceOptions, TokenService};
        watchdog(Duration::from_secs(60));
        let ports: Vec<u16> = child_env("CARD_PORTS")?
            .split(',')
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        let watcher = Watcher::start(WatcherOptions::default())?;
        let service = TokenService::start(
            &[ModuleSpec {
                path: PathBuf::from(OPENSC_MODULE),
                source: ModuleSource::CommandLine,
            }],
            ServiceOptions::default(),
        )?;
        let follower = TokenFollower::start(&watcher, service, Duration::from_millis(100))?;
        let mut events = follower.subscribe();
        let next = |events: &mut TokenEvents| -> Result<TokenEvent> {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match events.try_recv() {
                    Ok(e) => return Ok(e),
                    Err(_) if Instant::now() > deadline => bail!("no token event in 10 s"),
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        };
        let a = CardBuilder::new(PIN)
            .slot(0x9a, "vendor-rsa2048")?
            .build()?;
        a.insert(ports[0])?;
        match next(&mut events)? {
            TokenEvent::TokenInserted { token } => {
                ensure!(token.label == "Budi Santoso", "{token:?}")
            }
            other => bail!("expected the card's token inserted: {other:?}"),
        }
        let b = CardBuilder::new(PIN).slot(0x9a, "vendor-p256")?.build()?;
        b.insert(ports[1])?;
        match next(&mut events)? {
            TokenEvent::TokenInserted { token } => {
                ensure!(token.label == "Agus Wijaya", "{token:?}")
            }
            other => bail!("expected the second token inserted: {other:?}"),
        }
        a.remove();
        match next(&mut events)? {
            TokenEvent::TokenRemoved { token } => {
                ensure!(token.label == "Budi Santoso", "{token:?}")
            }
            other => bail!("expected the first token removed: {other:?}"),
        }
        ensure!(
            events.try_recv().is_err(),
            "no other event: the second card stayed"
        );
        return Ok(());
    }
    skip_without_pcscd!();
    let rig = Rig::new(2)?;
    let mut envs = rig.envs();
    let ports = format!("{},{}", rig.pcscd.reader_port(0), rig.pcscd.reader_port(1));
    envs.push(("CARD_PORTS".into(), ports.into()));
    run_in_child(NAME, &envs)
}

#[test]
fn pcsc_pin_change_through_segel_pin_uses_change_reference_data() -> Result<()> {
    skip_without_pcscd!();
    let rig = Rig::new(2)?;
    let card = rig.insert(0, vendor_card()?)?;
    let write = |name: &str, value: &str| -> Result<String> {
        let p = rig.path(name);
        std::fs::write(&p, format!("{value}\n"))?;
        Ok(s(&p))
    };
    let (old, new) = (write("old-pin", PIN)?, write("new-pin", "246810")?);
    let token = "Budi Santoso";
    ok_json(&rig.segel(
        None,
        &[
            "--pin-file",
            &old,
            "pin",
            "change",
            "--token",
            token,
            "--new-pin-file",
            &new,
        ],
    )?)?;
    ensure!(card.state().pin_tries_left == 3);
    let out = rig.sign(Some(PIN), "vendor-rsa2048", &[])?;
    ensure!(
        error_code(&out)? == "PIN_INCORRECT",
        "the old PIN is gone: {out:?}"
    );
    ok_json(&rig.sign(Some("246810"), "vendor-rsa2048", &[])?)?;
    rig.verify_signature("vendor-rsa2048")?;
    Ok(())
}

/// OpenSC configured the way it supports unblocking a PIV PIN with the PUK (framework-pkcs15.c:
/// C_SetPIN(PUK, new PIN) in a session that is not logged in → RESET RETRY COUNTER).
const OPENSC_UNBLOCK_CONF: &str = "app default {\n  pkcs11 {\n    user_pin_unblock_style = set_pin_in_unlogged_session;\n  }\n}\n";

#[test]
fn pcsc_pin_unblock_with_the_puk_resets_the_pin_and_a_wrong_puk_costs_a_puk_try() -> Result<()> {
    skip_without_pcscd!();
    let rig = Rig::new(2)?;
    let card = rig.insert(0, vendor_card()?)?;
    let write = |name: &str, value: &str| -> Result<String> {
        let p = rig.path(name);
        std::fs::write(&p, format!("{value}\n"))?;
        Ok(s(&p))
    };
    let (puk, wrong_puk, new) = (
        write("puk", "12345678")?,
        write("wrong-puk", "87654321")?,
        write("new-pin", "135790")?,
    );
    let unblock = |puk_file: &str| {
        rig.segel(
            None,
            &[
                "pin",
                "unblock",
                "--token",
                "Budi Santoso",
                "--so-pin-file",
                puk_file,
                "--new-pin-file",
                &new,
            ],
        )
    };
    for _ in 0..3 {
        let out = rig.sign(Some("999999"), "vendor-rsa2048", &["--final-try"])?;
        ensure!(!out.status.success(), "a wrong PIN signs nothing: {out:?}");
    }
    ensure!(card.state().pin_tries_left == 0, "the PIN is blocked");

    // OpenSC's default configuration refuses PUK unblocking without touching the card: Segel
    // says how to allow it, and no PUK try is spent.
    let out = unblock(&puk)?;
    ensure!(!out.status.success(), "{out:?}");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    ensure!(
        text.contains("user_pin_unblock_style"),
        "the fix is named: {text}"
    );
    ensure!(card.state().puk_tries_left == 3, "no PUK try spent");

    std::fs::write(rig.opensc_conf(), OPENSC_UNBLOCK_CONF)?;
    // A wrong PUK: refused, one PUK try gone (RESET RETRY COUNTER's real counter), PIN still blocked.
    let out = unblock(&wrong_puk)?;
    ensure!(error_code(&out)? == "PIN_INCORRECT", "{out:?}");
    let (puk_left, pin_left) = {
        let state = card.state();
        (state.puk_tries_left, state.pin_tries_left)
    };
    ensure!(
        puk_left == 2 && pin_left == 0,
        "PUK {puk_left} / PIN {pin_left} tries left"
    );

    // The right PUK sets the new PIN and resets both counters; the card signs with it.
    ok_json(&unblock(&puk)?)?;
    let (puk_left, pin_left) = {
        let state = card.state();
        (state.puk_tries_left, state.pin_tries_left)
    };
    ensure!(
        puk_left == 3 && pin_left == 3,
        "PUK {puk_left} / PIN {pin_left}"
    );
    ok_json(&rig.sign(Some("135790"), "vendor-rsa2048", &[])?)?;
    rig.verify_signature("vendor-rsa2048")?;

    // With that configuration a PIN change still goes through CHANGE REFERENCE DATA (Segel
    // logs in first), never as an unblock that would spend a PUK try on the old PIN.
    let next = write("next-pin", "112233")?;
    let old = write("old-pin", "135790")?;
    ok_json(&rig.segel(
        None,
        &[
            "--pin-file",
            &old,
            "pin",
            "change",
            "--token",
            "Budi Santoso",
            "--new-pin-file",
            &next,
        ],
    )?)?;
    ensure!(
        card.state().puk_tries_left == 3,
        "no PUK try spent by a PIN change"
    );
    ok_json(&rig.sign(Some("112233"), "vendor-rsa2048", &[])?)?;
    Ok(())
}

/// How long a card change may take to reach `GET /v1/events` (the watcher sees a card within
/// 0–0.3 s, the daemon waits 250 ms for it to settle, OpenSC reads it in well under a second;
/// the rest is slack for a loaded 2-core machine).
const EVENT_BOUND: Duration = Duration::from_secs(10);

fn labelled(label: &'static str) -> impl Fn(&Value) -> bool {
    move |v: &Value| v["label"] == label
}

/// `POST /v1/sign` of a SHA-256 digest with `fixture_name`'s certificate; checked by OpenSSL.
fn daemon_sign(client: &segel_tests::daemon::Client, fixture_name: &str, pin: &str) -> Result<()> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let document = format!("penawaran {fixture_name} {:?}", Instant::now());
    let digest = {
        use sha2::Digest;
        sha2::Sha256::digest(document.as_bytes()).to_vec()
    };
    let body = serde_json::json!({
        "certificate": fp(fixture_name)?, "digest": b64.encode(&digest), "pin": pin,
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let resp = rt.block_on(async { client.send(client.post_json("/v1/sign", &body)?).await })?;
    ensure!(resp.status == 200, "sign: {} {:?}", resp.status, resp.body);
    let sig = b64.decode(resp.json()?["signature"].as_str().context("signature")?)?;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("digest"), &digest)?;
    std::fs::write(dir.path().join("sig"), &sig)?;
    openssl::verify_digest(
        fixture(fixture_name)?.cert_pem_path,
        dir.path().join("digest"),
        dir.path().join("sig"),
        "sha256",
        false,
    )
}

#[test]
fn pcsc_daemon_pushes_card_insert_and_remove_events_and_the_reinserted_card_signs() -> Result<()> {
    skip_without_pcscd!();
    use segel_tests::daemon::{DaemonProcess, EventStream};
    let rig = Rig::new(2)?;
    // Polling once a minute: events within the bound can only come from the PC/SC watcher.
    let d = DaemonProcess::start_with_modules(
        tempfile::tempdir()?,
        &rig.envs(),
        &[Path::new(OPENSC_MODULE)],
        &["--poll-ms", "60000"],
    )?;
    let client = d.client()?;
    let mut events = EventStream::open(&client)?;
    let card = CardBuilder::new(PIN)
        .slot(0x9a, "vendor-rsa2048")?
        .build()?;

    let t0 = Instant::now();
    card.insert(rig.pcscd.reader_port(0))?;
    let inserted = events
        .expect("token_inserted", labelled("Budi Santoso"), EVENT_BOUND)
        .with_context(|| d.log())?;
    eprintln!("card inserted -> token_inserted event: {:?}", t0.elapsed());
    ensure!(
        inserted.data["serial"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
            && inserted.data["slot_id"].is_u64(),
        "label, serial and slot as documented: {:?}",
        inserted.data
    );
    daemon_sign(&client, "vendor-rsa2048", PIN)?;

    let t0 = Instant::now();
    card.remove();
    let removed = events
        .expect("token_removed", labelled("Budi Santoso"), EVENT_BOUND)
        .with_context(|| d.log())?;
    eprintln!("card removed -> token_removed event: {:?}", t0.elapsed());
    ensure!(removed.data["serial"] == inserted.data["serial"]);

    // Re-inserted: announced again, and it signs with no restart of the daemon.
    card.insert(rig.pcscd.reader_port(1))?;
    events
        .expect("token_inserted", labelled("Budi Santoso"), EVENT_BOUND)
        .with_context(|| d.log())?;
    daemon_sign(&client, "vendor-rsa2048", PIN)?;
    ensure!(
        card.state().private_operations == 2,
        "both signatures made by the card"
    );
    Ok(())
}

#[test]
fn pcsc_daemon_started_without_pcscd_sees_readers_added_later_and_their_cards() -> Result<()> {
    skip_without_pcscd!();
    use segel_tests::daemon::{DaemonProcess, EventStream};
    let mut rig = Rig::new(2)?;
    rig.pcscd.kill()?;
    let d = DaemonProcess::start_with_modules(
        tempfile::tempdir()?,
        &rig.envs(),
        &[Path::new(OPENSC_MODULE)],
        &["--poll-ms", "60000"],
    )?;
    let client = d.client()?;
    let mut events = EventStream::open(&client)?;
    // pcscd comes up: its readers are new to the daemon (and to OpenSC, initialised without them).
    rig.pcscd.restart()?;
    let card = CardBuilder::new(PIN)
        .slot(0x9a, "vendor-rsa2048")?
        .build()?;
    card.insert(rig.pcscd.reader_port(0))?;
    events
        .expect("token_inserted", labelled("Budi Santoso"), EVENT_BOUND)
        .with_context(|| d.log())?;
    daemon_sign(&client, "vendor-rsa2048", PIN)?;
    eprintln!(
        "OpenSC re-initialised for the new readers: {}",
        d.log().contains("re-initialising it")
    );
    Ok(())
}

/// The user's ATR table entry for the virtual card (whose ATR no built-in entry knows).
fn atr_table_for_virtual_card(config_dir: &Path) -> Result<()> {
    std::fs::create_dir_all(config_dir)?;
    let atr = segel_tests::vpiv::with_tck(segel_tests::vpiv::DEFAULT_ATR.to_vec());
    std::fs::write(
        config_dir.join("atr-modules.toml"),
        format!(
            "[[card]]\nname = \"Segel virtual PIV\"\natr = \"{}\"\n[card.modules]\nlinux = [\"{OPENSC_MODULE}\"]\n",
            hex::encode(atr)
        ),
    )?;
    Ok(())
}

#[test]
fn pcsc_module_for_a_cards_atr_is_loaded_at_start_and_when_the_card_is_inserted() -> Result<()> {
    skip_without_pcscd!();
    use segel_tests::daemon::{DaemonProcess, EventStream};
    use segel_tests::softhsm::SoftHsm;
    let rig = Rig::new(2)?;
    let config = rig.home.path().join(".config/segel");
    atr_table_for_virtual_card(&config)?;
    // No module named anywhere and no search: only the ATR table can bring OpenSC in.
    std::fs::write(config.join("config.toml"), "search_modules = false\n")?;
    let card = rig.insert_only(0, vendor_card()?)?;
    let tokens = |rig: &Rig| -> Result<Output> {
        let mut cmd = segel_cmd(&rig.envs(), rig.home.path())?;
        cmd.env_remove("SEGEL_PIN").args(["--json", "tokens"]);
        Ok(cmd.output()?)
    };
    let listed = ok_json(&tokens(&rig)?)?;
    ensure!(
        listed.to_string().contains("Budi Santoso"),
        "the card's token, through the module its ATR names: {listed}"
    );
    std::fs::write(
        config.join("config.toml"),
        "search_modules = false\nmodules_by_atr = false\n",
    )?;
    let out = tokens(&rig)?;
    ensure!(
        !out.status.success(),
        "without the ATR table no module at all: {out:?}"
    );
    card.remove();
    // Gone for PC/SC too, so the daemon's discovery cannot find it at start.
    readers_until(&rig, "no card", |readers| {
        readers.iter().all(|r| r["card_present"] == false)
    })?;

    // The daemon: a SoftHSM token only at start; the card's module is loaded when it comes.
    let hsm = SoftHsm::new()?;
    hsm.init_token("softhsm", "87654321", PIN)?;
    hsm.import_fixture("softhsm", PIN, "pokja-p256", "01", "pokja-p256")?;
    let home = tempfile::tempdir()?;
    let config = home.path().join(".config/segel");
    atr_table_for_virtual_card(&config)?;
    std::fs::write(
        config.join("config.toml"),
        format!(
            "search_modules = false\nmodules = [\"{}\"]\n",
            hsm.module_path().display()
        ),
    )?;
    let mut envs = rig.envs();
    envs.extend(hsm.envs());
    let d = DaemonProcess::start_with_modules(home, &envs, &[], &["--poll-ms", "60000"])?;
    let client = d.client()?;
    let mut events = EventStream::open(&client)?;
    card.insert(rig.pcscd.reader_port(1))?;
    events
        .expect("token_inserted", labelled("Budi Santoso"), EVENT_BOUND)
        .with_context(|| d.log())?;
    daemon_sign(&client, "vendor-rsa2048", PIN)?;
    ensure!(
        d.log().contains("loaded the module for the card's ATR"),
        "{}",
        d.log()
    );
    Ok(())
}

#[test]
fn pcsc_module_reinitialisation_does_not_disturb_a_softhsm_token_signing_meanwhile() -> Result<()> {
    const NAME: &str =
        "pcsc_module_reinitialisation_does_not_disturb_a_softhsm_token_signing_meanwhile";
    if is_child() {
        use segel_agent::pin::FixedPin;
        use segel_agent::token::{
            CertSelector, HashAlg, ModuleSource, ModuleSpec, ServiceOptions, SignRequest,
            TokenService,
        };
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        watchdog(Duration::from_secs(240));
        let spec = |path: &str| ModuleSpec {
            path: PathBuf::from(path),
            source: ModuleSource::CommandLine,
        };
        let card_port: u16 = child_env("CARD_PORT")?.parse()?;
        let card = CardBuilder::new(PIN)
            .slot(0x9a, "vendor-rsa2048")?
            .build()?;
        card.insert(card_port)?;
        wait_card_in_process(0, true, Duration::from_secs(10))?;
        let service = TokenService::start(
            &[spec(&child_env("SOFTHSM_MODULE")?), spec(OPENSC_MODULE)],
            ServiceOptions::default(),
        )?;
        let pin: Arc<dyn segel_agent::pin::PinSource> = Arc::new(FixedPin(PIN.to_owned().into()));
        let find = |name: &str| -> Result<_> {
            Ok(service
                .find_certificate(&CertSelector::Fingerprint(fp(name)?))
                .wait()?)
        };
        let soft = find("vendor-p256")?;
        let on_card = find("vendor-rsa2048")?;
        let request = SignRequest {
            scheme: None,
            hash: HashAlg::Sha256,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let (done, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let signer = {
            let (service, soft, request, pin) = (
                service.clone(),
                soft.clone(),
                request.clone(),
                Arc::clone(&pin),
            );
            let (stop, done, failed) = (Arc::clone(&stop), Arc::clone(&done), Arc::clone(&failed));
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match service
                        .sign_digest(&soft, &request, vec![7; 32], Arc::clone(&pin))
                        .wait()
                    {
                        Ok(_) => done.fetch_add(1, Ordering::SeqCst),
                        Err(e) => {
                            eprintln!("SoftHSM signature failed: {e}");
                            failed.fetch_add(1, Ordering::SeqCst)
                        }
                    };
                }
            })
        };
        for round in 0..4 {
            let before = done.load(Ordering::SeqCst);
            ensure!(
                service.reinitialise_module(Path::new(OPENSC_MODULE), Duration::from_secs(20))?,
                "OpenSC is loaded"
            );
            // The card works again after each re-initialisation (a new session, a new login).
            service
                .sign_digest(&on_card, &request, vec![round; 32], Arc::clone(&pin))
                .wait()
                .with_context(|| format!("card signature after re-initialisation {round}"))?;
            ensure!(
                done.load(Ordering::SeqCst) > before,
                "SoftHSM kept signing during round {round}"
            );
        }
        stop.store(true, Ordering::SeqCst);
        signer
            .join()
            .map_err(|_| anyhow::anyhow!("signer panicked"))?;
        ensure!(
            failed.load(Ordering::SeqCst) == 0,
            "{} SoftHSM signatures failed",
            failed.load(Ordering::SeqCst)
        );
        ensure!(card.state().private_operations == 4);
        eprintln!(
            "SoftHSM signatures meanwhile: {}",
            done.load(Ordering::SeqCst)
        );
        service.shutdown();
        return Ok(());
    }
    skip_without_pcscd!();
    use segel_tests::softhsm::SoftHsm;
    let rig = Rig::new(2)?;
    let hsm = SoftHsm::new()?;
    hsm.init_token("softhsm", "87654321", PIN)?;
    hsm.import_fixture("softhsm", PIN, "vendor-p256", "01", "vendor-p256")?;
    let mut envs = rig.envs();
    envs.extend(hsm.envs());
    envs.push((
        "CARD_PORT".into(),
        rig.pcscd.reader_port(0).to_string().into(),
    ));
    envs.push(("SOFTHSM_MODULE".into(), hsm.module_path().into()));
    run_in_child(NAME, &envs)
}

/// OpenSC lines about `what` from its debug log (the evidence a test prints on failure).
fn opensc_log_lines(log: &Path, what: &[&str]) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| what.iter().any(|w| l.contains(w)))
        .collect();
    lines[lines.len().saturating_sub(12)..].join("\n")
}

/// Enrolment on a PIV card through OpenSC's PKCS#11 module is not possible: OpenSC creates
/// keys and objects (C_GenerateKeyPair, C_CreateObject) only through its pkcs15init layer with
/// a card profile, and it has no pkcs15init driver for PIV (PIV keys and certificates are
/// written with `piv-tool`, see `pcsc_enrolment_with_opensc_piv_tool_needs_the_management_key`).
/// This pins down what Segel does there: a clear refusal, nothing written to the card, and
/// OpenSC's own answers as the evidence.
#[test]
fn pcsc_enroll_and_import_on_a_piv_card_are_refused_clearly_because_opensc_cannot_write_piv_objects()
-> Result<()> {
    skip_without_pcscd!();
    use segel_tests::vpiv::applet::DEFAULT_MANAGEMENT_KEY;
    let rig = Rig::new(2)?;
    let card = rig.insert(0, vendor_card()?)?;
    let key_9a_before = card.state().key(0x9a).map(|k| k.public_template());
    // OpenSC's PIV driver takes the 9B management key from the file PIV_EXT_AUTH_KEY names.
    let key_file = rig.path("management.key");
    std::fs::write(&key_file, hex::encode(DEFAULT_MANAGEMENT_KEY))?;
    let dbg = rig.path("opensc-debug.log");
    std::fs::write(
        rig.opensc_conf(),
        format!(
            "app default {{\n debug = 3;\n debug_file = {};\n}}\n",
            dbg.display()
        ),
    )?;
    let run = |args: &[&str]| -> Result<Output> {
        let mut cmd = segel_cmd(&rig.envs(), rig.home.path())?;
        cmd.env("SEGEL_PIN", PIN)
            .env("PIV_EXT_AUTH_KEY", &key_file)
            .args(["--module", OPENSC_MODULE, "--json"])
            .args(args);
        Ok(cmd.output()?)
    };

    // The card's mechanism list, as OpenSC reports it: signing and decryption, no key-pair
    // generation — so Segel refuses before asking the card for anything.
    let mechanisms =
        segel_tests::softhsm::pkcs11_tool(Path::new(OPENSC_MODULE), &rig.envs(), &["-M"])?;
    ensure!(
        mechanisms.contains("RSA-X-509") && !mechanisms.contains("KEY-PAIR-GEN"),
        "OpenSC's PIV mechanisms: {mechanisms}"
    );
    let csr = s(&rig.path("card.csr"));
    let out = run(&[
        "enroll",
        "--token",
        "Budi Santoso",
        "--key",
        "rsa2048",
        "--name",
        "Budi Santoso",
        "--email",
        "budi@majujaya.co.id",
        "--org",
        "PT Maju Jaya Konstruksi",
        "--unit",
        "Direktur",
        "--city",
        "Balikpapan",
        "--province",
        "Kalimantan Timur",
        "--out",
        &csr,
    ])?;
    ensure!(error_code(&out)? == "MECHANISM_UNSUPPORTED", "{out:?}");
    ensure!(
        String::from_utf8_lossy(&out.stdout).contains("cannot generate rsa2048 keys"),
        "{out:?}"
    );
    ensure!(!rig.path("card.csr").exists(), "no request written");

    // Importing a CA certificate next to the card's key: OpenSC refuses the C_CreateObject.
    let chain = rig.path("chain.pem");
    std::fs::write(
        &chain,
        [
            fixture("vendor-rsa2048")?.cert_pem,
            fixture("issuing-ca")?.cert_pem,
        ]
        .concat(),
    )?;
    let out = run(&["import-cert", "--token", "Budi Santoso", &s(&chain)])?;
    ensure!(
        error_code(&out)? == "MECHANISM_UNSUPPORTED"
            && String::from_utf8_lossy(&out.stdout).contains("cannot create objects"),
        "OpenSC stores no object on a PIV card: {out:?}"
    );
    eprintln!(
        "segel import-cert on the PIV card: {}\nOpenSC: {}",
        String::from_utf8_lossy(&out.stdout).trim(),
        opensc_log_lines(&dbg, &["C_CreateObject", "pkcs15init", "profile"])
    );
    let state = card.state();
    ensure!(
        state.key(0x9a).map(|k| k.public_template()) == key_9a_before
            && state.key(0x9c).is_none()
            && state.object(&[0x5f, 0xc1, 0x0a]).is_none(),
        "the card is unchanged"
    );
    Ok(())
}
