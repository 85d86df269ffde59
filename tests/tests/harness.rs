//! Self-test of the harness in `segel_tests`: every helper against the real component.

// In a test, `expect_err` on an outcome that must fail is the clearest assertion.
#![allow(clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use der::{DecodePem, Encode};
use segel_tests::fixtures::{self, Role, Usage};
use segel_tests::isolate::{child_env, is_child, run_in_child};
use segel_tests::openssl;
use segel_tests::p11kit::{self, P11KitServer};
use segel_tests::segel;
use segel_tests::softhsm::{SoftHsm, pkcs11_tool};
use segel_tests::spy::Spy;
use sha2::{Digest, Sha256};
use x509_cert::Certificate;

const SO_PIN: &str = "87654321";
const PIN: &str = "1234";

#[test]
fn fixtures_manifest_matches_files_and_chain_verifies_with_openssl() -> Result<()> {
    let manifest = fixtures::manifest()?;
    let names: Vec<&str> = manifest.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, fixtures::ALL);
    let root = fixtures::fixture("root-ca")?;
    let issuing = fixtures::fixture("issuing-ca")?;
    for name in fixtures::ALL {
        let f = fixtures::fixture(name)?;
        assert_eq!(
            hex::encode(Sha256::digest(&f.cert_der)),
            f.entry.fingerprint_sha256,
            "{name}"
        );
        assert_eq!(
            Certificate::from_pem(&f.cert_pem)?.to_der()?,
            f.cert_der,
            "{name}"
        );
        assert!(
            f.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"),
            "{name}: not PKCS#8"
        );
        let expect_usage = match f.entry.role {
            Role::Ca => vec![],
            Role::Vendor => vec![Usage::Sign],
            Role::Pokja => vec![Usage::Decrypt],
        };
        assert_eq!(f.entry.usage, expect_usage, "{name}");
        let verdict = openssl::openssl(&[
            "verify",
            "-CAfile",
            root.cert_pem_path.to_str().context("path")?,
            "-untrusted",
            issuing.cert_pem_path.to_str().context("path")?,
            f.cert_pem_path.to_str().context("path")?,
        ]);
        match *name {
            "vendor-expired" | "vendor-notyet" => ensure!(verdict.is_err(), "{name} verified"),
            _ => {
                verdict.with_context(|| format!("{name} does not verify"))?;
            }
        }
    }
    Ok(())
}

#[test]
fn softhsm_import_fixture_puts_key_pubkey_and_cert_under_one_id_and_label() -> Result<()> {
    let hsm = SoftHsm::new()?;
    let started = Instant::now();
    hsm.init_token("vendor", SO_PIN, PIN)?;
    let init = started.elapsed();
    hsm.import_fixture("vendor", PIN, "vendor-rsa2048", "01", "Budi Santoso")?;
    hsm.import_fixture("vendor", PIN, "pokja-p256", "a1b2", "Yusuf")?;
    println!(
        "init_token {init:?}, + two fixtures {:?}",
        started.elapsed()
    );

    let listing = hsm.list_objects("vendor", PIN)?;
    let objects = objects(&listing);
    for (id, label, kinds) in [
        (
            "01",
            "Budi Santoso",
            [
                "Private Key Object; RSA",
                "Public Key Object; RSA",
                "Certificate Object",
            ],
        ),
        (
            "a1b2",
            "Yusuf",
            [
                "Private Key Object; EC",
                "Public Key Object; EC",
                "Certificate Object",
            ],
        ),
    ] {
        for kind in kinds {
            let found = objects.iter().any(|(header, body)| {
                header.starts_with(kind)
                    && body.contains(&format!("ID:         {id}\n"))
                    && body.contains(&format!("label:      {label}\n"))
            });
            ensure!(
                found,
                "no {kind} with ID {id} and label {label} in:\n{listing}"
            );
        }
    }
    assert_eq!(objects.len(), 6, "{listing}");
    // ECDH needs CKA_DERIVE on the pokja EC key (softhsm2-util --import would not set it).
    let (_, ec_key) = objects
        .iter()
        .find(|(header, _)| header.starts_with("Private Key Object; EC"))
        .context("EC private key")?;
    ensure!(
        ec_key.contains("derive"),
        "pokja-p256 key lacks derive: {ec_key}"
    );
    assert_eq!(hsm.token_labels()?, vec!["vendor".to_owned()]);
    Ok(())
}

/// `pkcs11-tool -O` output as (header line, indented attribute lines) per object.
fn objects(listing: &str) -> Vec<(String, String)> {
    let mut objects: Vec<(String, String)> = Vec::new();
    for line in listing.lines() {
        if line.starts_with(char::is_whitespace) {
            if let Some((_, body)) = objects.last_mut() {
                body.push_str(line.trim_start());
                body.push('\n');
            }
        } else if !line.is_empty() {
            objects.push((line.to_owned(), String::new()));
        }
    }
    objects
}

#[test]
fn softhsm_instances_do_not_see_each_others_tokens() -> Result<()> {
    let a = SoftHsm::new()?;
    let b = SoftHsm::new()?;
    a.init_token("only-in-a", SO_PIN, PIN)?;
    assert_eq!(a.token_labels()?, vec!["only-in-a".to_owned()]);
    assert!(b.token_labels()?.is_empty());
    let err = b
        .pkcs11_tool(&["--token-label", "only-in-a", "-O"])
        .expect_err("b must not find a's token");
    ensure!(
        format!("{err:#}").contains("only-in-a"),
        "error should name the token: {err:#}"
    );
    Ok(())
}

#[test]
fn spy_counts_one_login_when_the_pin_is_wrong() -> Result<()> {
    let hsm = SoftHsm::new()?;
    hsm.init_token("spied", SO_PIN, PIN)?;
    let spy = Spy::new(SoftHsm::MODULE)?;
    let mut envs = hsm.envs();
    envs.extend(spy.envs());
    let args = ["--token-label", "spied", "--login", "--pin", "9999", "-O"];
    ensure!(
        pkcs11_tool(&spy.module_path(), &envs, &args).is_err(),
        "wrong PIN accepted"
    );
    let logins: Vec<_> = spy
        .calls()?
        .into_iter()
        .filter(|c| c.function == "C_Login")
        .collect();
    assert_eq!(logins.len(), 1, "{logins:?}");
    assert_eq!(logins[0].rv.as_deref(), Some("CKR_PIN_INCORRECT"));

    spy.clear()?;
    pkcs11_tool(
        &spy.module_path(),
        &envs,
        &["--token-label", "spied", "--login", "--pin", PIN, "-O"],
    )?;
    assert_eq!(spy.count_calls("C_Login")?, 1);
    assert!(spy.count_calls("C_Initialize")? >= 1);
    assert_eq!(spy.count_calls("C_Sign")?, 0);
    Ok(())
}

fn session_on(pkcs11: &Pkcs11, label: &str) -> Result<Session> {
    for slot in pkcs11.get_slots_with_token()? {
        if pkcs11.get_token_info(slot)?.label() == label {
            return Ok(pkcs11.open_rw_session(slot)?);
        }
    }
    bail!("no token {label}")
}

fn sign_once(session: &Session) -> Result<Vec<u8>, CkError> {
    let key = session.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])?;
    let digest = Sha256::digest(b"bid");
    session.sign(&Mechanism::Ecdsa, key[0], &digest)
}

fn open_client() -> Result<(Pkcs11, Session)> {
    let pkcs11 = Pkcs11::new(P11KitServer::CLIENT_MODULE)?;
    pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))?;
    let session = session_on(&pkcs11, &child_env("TOKEN")?)?;
    session.login(UserType::User, Some(&AuthPin::new(PIN.into())))?;
    Ok((pkcs11, session))
}

#[test]
fn p11kit_killing_remote_child_fails_next_call_with_device_error_and_reconnect_works() -> Result<()>
{
    if is_child() {
        let server_pid: u32 = child_env("P11_KIT_SERVER_PID")?.parse()?;
        let (pkcs11, session) = open_client()?;
        let sig = sign_once(&session)?;
        assert_eq!(sig.len(), 64, "raw r||s");
        let killed = p11kit::kill_remote_children_of(server_pid)?;
        assert_eq!(killed, 1, "one connection, one p11-kit-remote");
        match sign_once(&session) {
            Err(CkError::Pkcs11(RvError::DeviceError, _)) => {}
            other => bail!("expected CKR_DEVICE_ERROR after the kill, got {other:?}"),
        }
        drop(session);
        // The old context is dead; finalize may itself fail, so ignore its result.
        let _ = pkcs11.finalize();
        let (_pkcs11, session) = open_client()?;
        sign_once(&session)?;
        return Ok(());
    }
    let hsm = SoftHsm::new()?;
    hsm.init_token("remote", SO_PIN, PIN)?;
    hsm.import_fixture("remote", PIN, "vendor-p256", "01", "Agus")?;
    let started = Instant::now();
    let server = P11KitServer::start(&hsm, "remote")?;
    println!("p11-kit server up in {:?}", started.elapsed());
    // Through the server, from another process: pkcs11-tool sees the token.
    let slots = pkcs11_tool(&server.client_module_path(), &server.envs(), &["-L"])?;
    ensure!(slots.contains("remote"), "{slots}");
    // pkcs11-tool has exited; its p11-kit-remote follows shortly.
    server.wait_idle(std::time::Duration::from_secs(5))?;
    let mut envs = server.envs();
    envs.push(("TOKEN".into(), "remote".into()));
    run_in_child(
        "p11kit_killing_remote_child_fails_next_call_with_device_error_and_reconnect_works",
        &envs,
    )?;
    server.wait_idle(std::time::Duration::from_secs(5))?;
    assert_eq!(server.kill_remote_children()?, 0);
    Ok(())
}

#[test]
fn p11kit_descendants_finds_only_that_process_tree() -> Result<()> {
    let mut tree = std::process::Command::new("sh")
        .args(["-c", "sleep 30 & sleep 30 & wait"])
        .spawn()?;
    let mut other = std::process::Command::new("sleep").arg("30").spawn()?;
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    let mut found = p11kit::descendants(tree.id())?;
    while found.len() < 2 && Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
        found = p11kit::descendants(tree.id())?;
    }
    let killed = p11kit::kill_remote_children_of(tree.id());
    let other_alive = other.try_wait()?.is_none();
    let _ = other.kill();
    let _ = other.wait();
    let _ = tree.kill();
    let _ = tree.wait();
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(!found.contains(&other.id()));
    assert_eq!(killed?, 2);
    assert!(other_alive, "a process outside the tree was killed");
    Ok(())
}

#[test]
fn isolate_child_sees_the_envs_it_was_given() -> Result<()> {
    if is_child() {
        assert_eq!(child_env("SEGEL_HARNESS_PROBE")?, "ok");
        return Ok(());
    }
    run_in_child(
        "isolate_child_sees_the_envs_it_was_given",
        &[("SEGEL_HARNESS_PROBE".into(), "ok".into())],
    )
}

/// Fails only as a child: the body that `isolate_failing_child_fails_the_parent` runs.
#[test]
fn isolate_child_that_fails() -> Result<()> {
    if is_child() {
        bail!("failing on purpose");
    }
    Ok(())
}

#[test]
fn isolate_failing_child_fails_the_parent() -> Result<()> {
    let err = run_in_child("isolate_child_that_fails", &[]).expect_err("child failed");
    ensure!(format!("{err:#}").contains("failed"), "{err:#}");
    let err = run_in_child("no_such_test", &[]).expect_err("no test ran");
    ensure!(
        format!("{err:#}").contains("did not run exactly one test"),
        "{err:#}"
    );
    Ok(())
}

#[test]
fn openssl_verifies_rsa_and_ecdsa_signatures_and_rejects_tampered_data() -> Result<()> {
    use rsa::pkcs8::DecodePrivateKey;
    use signature::{RandomizedSigner, SignatureEncoding, Signer};
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let other = dir.path().join("other");
    let sig = dir.path().join("sig");
    std::fs::write(&data, b"penawaran harga")?;
    std::fs::write(&other, b"penawaran harga!")?;

    let rsa_fx = fixtures::fixture("vendor-rsa2048")?;
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(&rsa_fx.key_pem)?;
    let pkcs1 = rsa::pkcs1v15::SigningKey::<Sha256>::new(key.clone());
    std::fs::write(&sig, pkcs1.sign(b"penawaran harga").to_vec())?;
    openssl::verify_raw(&rsa_fx.cert_pem_path, &data, &sig, "sha256", false)?;
    ensure!(openssl::verify_raw(&rsa_fx.cert_pem_path, &other, &sig, "sha256", false).is_err());
    ensure!(openssl::verify_raw(&rsa_fx.cert_pem_path, &data, &sig, "sha256", true).is_err());
    let digest = dir.path().join("digest");
    std::fs::write(&digest, Sha256::digest(b"penawaran harga"))?;
    openssl::verify_digest(&rsa_fx.cert_pem_path, &digest, &sig, "sha256", false)?;

    let pss = rsa::pss::SigningKey::<Sha256>::new(key);
    let pss_sig = pss.sign_with_rng(&mut rand::thread_rng(), b"penawaran harga");
    std::fs::write(&sig, pss_sig.to_vec())?;
    openssl::verify_raw(&rsa_fx.cert_pem_path, &data, &sig, "sha256", true)?;
    openssl::verify_digest(&rsa_fx.cert_pem_path, &digest, &sig, "sha256", true)?;

    let ec_fx = fixtures::fixture("vendor-p256")?;
    let ec_key = p256::ecdsa::SigningKey::from_pkcs8_pem(&ec_fx.key_pem)?;
    let ec_sig: p256::ecdsa::Signature = ec_key.sign(b"penawaran harga");
    std::fs::write(&sig, openssl::ecdsa_raw_to_der(&ec_sig.to_bytes())?)?;
    openssl::verify_raw(&ec_fx.cert_pem_path, &data, &sig, "sha256", false)?;
    ensure!(openssl::verify_raw(&ec_fx.cert_pem_path, &other, &sig, "sha256", false).is_err());
    Ok(())
}

#[test]
fn openssl_encrypts_to_pokja_certificate_oaep_sha256_and_pkcs1() -> Result<()> {
    use rsa::pkcs8::DecodePrivateKey;
    let fx = fixtures::fixture("pokja-rsa2048")?;
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(&fx.key_pem)?;
    let cek = [7u8; 32];
    let ct = openssl::encrypt_oaep_sha256(&fx.cert_pem_path, &cek)?;
    assert_eq!(ct.len(), 256);
    assert_eq!(key.decrypt(rsa::Oaep::new::<Sha256>(), &ct)?, cek);
    ensure!(
        key.decrypt(rsa::Oaep::new::<sha1::Sha1>(), &ct).is_err(),
        "must be SHA-256 OAEP"
    );
    let ct = openssl::encrypt_pkcs1(&fx.cert_pem_path, &cek)?;
    assert_eq!(key.decrypt(rsa::Pkcs1v15Encrypt, &ct)?, cek);
    Ok(())
}

#[test]
fn segel_cmd_runs_the_built_binary_with_a_private_home() -> Result<()> {
    let home = tempfile::tempdir()?;
    let bin = segel::segel_bin()?;
    ensure!(bin.ends_with("debug/segel"), "{}", bin.display());
    let out = segel::segel_cmd(&[], home.path())?.arg("--help").output()?;
    ensure!(
        out.status.success(),
        "segel --help: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let entries: BTreeSet<String> = std::fs::read_dir(home.path())?
        .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_>>()?;
    assert!(
        entries.contains(".config") && entries.contains("run"),
        "{entries:?}"
    );
    Ok(())
}
