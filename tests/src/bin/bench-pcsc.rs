//! Benchmark: signing on a smart card through pcscd + OpenSC's PIV driver + the virtual PIV card
//! (segel_tests::vpiv): Segel's token layer vs a raw cryptoki loop in the same run, on the same
//! card. Prints signatures per second and the ratio segel/raw (target ≥ 0.95).
//!
//! Run (root: a private pcscd needs `unshare -m`):
//! `cargo run --release -p segel-tests --bin bench-pcsc [-- --seconds 1.5 --rounds 5]`.
//! Raw and Segel rounds alternate and the best of each is kept, so that load from other programs
//! on a shared machine hits both sides alike.
//! The program starts its own pcscd with one vpcd reader and re-runs itself with
//! `PCSCLITE_CSOCK_NAME` pointing there (libpcsclite reads it once per process); the child
//! inserts the virtual card and measures. A card serves one command at a time, so both sides
//! use one session; Segel's client keeps a few requests in flight as the daemon would.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use secrecy::SecretString;
use segel_agent::pin::FixedPin;
use segel_agent::token::{
    HashAlg, ModuleSource, ModuleSpec, ServiceOptions, SignRequest, TokenService,
};
use segel_tests::fixtures::fixture;
use segel_tests::pcscd::{OPENSC_MODULE, Pcscd, skip_reason, wait_card_in_process};
use segel_tests::vpiv::CardBuilder;

const PIN: &str = "123456";
const CHILD: &str = "SEGEL_BENCH_PCSC_PORT";

struct Case {
    name: &'static str,
    fixture: &'static str,
    /// CKA_ID OpenSC gives the key: 01 for slot 9A, 04 for 9E.
    id: u8,
    ecdsa: bool,
}

const CASES: [Case; 2] = [
    Case {
        name: "RSA-2048 (9A)",
        fixture: "vendor-rsa2048",
        id: 0x01,
        ecdsa: false,
    },
    Case {
        name: "P-256 (9E)",
        fixture: "vendor-p256",
        id: 0x04,
        ecdsa: true,
    },
];

fn arg(name: &str, default: f64) -> Result<f64> {
    Ok(std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .map(|s| s.parse())
        .transpose()
        .with_context(|| format!("{name} takes a number"))?
        .unwrap_or(default))
}

fn main() -> Result<()> {
    let seconds = arg("--seconds", 1.5)?;
    let rounds = arg("--rounds", 5.0)? as usize;
    if let Ok(port) = std::env::var(CHILD) {
        return child(
            port.parse()?,
            Duration::from_secs_f64(seconds),
            rounds.max(1),
        );
    }
    if let Some(reason) = skip_reason() {
        bail!("{reason}");
    }
    let pcscd = Pcscd::start(1)?;
    let status = std::process::Command::new(std::env::current_exe()?)
        .args(std::env::args().skip(1))
        .envs(pcscd.envs())
        .env("OPENSC_CONF", "/dev/null")
        .env(CHILD, pcscd.reader_port(0).to_string())
        .status()?;
    if !status.success() {
        bail!("benchmark child failed: {status}");
    }
    Ok(())
}

fn child(port: u16, duration: Duration, rounds: usize) -> Result<()> {
    let card = CardBuilder::new(PIN)
        .slot(0x9a, "vendor-rsa2048")?
        .slot(0x9e, "vendor-p256")?
        .build()?;
    card.insert(port)?;
    wait_card_in_process(0, true, Duration::from_secs(10))?;
    let module = Path::new(OPENSC_MODULE);
    println!(
        "smart card over PC/SC: pcscd + OpenSC PIV + virtual PIV card; token layer vs raw \
         cryptoki, {:.1} s per measurement, best of {rounds} alternating rounds",
        duration.as_secs_f64()
    );
    println!(
        "{:<16} {:>12} {:>12} {:>7} {:>12}",
        "key", "raw sig/s", "segel sig/s", "ratio", "APDUs/sig"
    );
    let mut worst = f64::INFINITY;
    for case in &CASES {
        let (mut raw_best, mut layer_best) = (0.0f64, 0.0f64);
        let mut apdus_per_sig = 0.0;
        for _ in 0..rounds {
            let before = card.apdu_count();
            let ops_before = card.state().private_operations;
            raw_best = raw_best.max(raw(module, case, duration)?);
            let ops = card.state().private_operations - ops_before;
            apdus_per_sig = (card.apdu_count() - before) as f64 / ops.max(1) as f64;
            layer_best = layer_best.max(layer(module, case, duration)?);
        }
        let ratio = layer_best / raw_best;
        worst = worst.min(ratio);
        println!(
            "{:<16} {:>12.1} {:>12.1} {:>7.3} {:>12.1}",
            case.name, raw_best, layer_best, ratio, apdus_per_sig
        );
    }
    println!(
        "worst ratio {worst:.3} (target >= 0.95): {}",
        if worst >= 0.95 { "MET" } else { "NOT MET" }
    );
    Ok(())
}

fn input(case: &Case) -> Vec<u8> {
    let digest = HashAlg::Sha256.digest(b"bench");
    if case.ecdsa {
        return digest;
    }
    // DigestInfo for SHA-256 (RFC 8017 §9.2 note 1), as the token layer sends.
    let mut di = vec![
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0x04, 0x20,
    ];
    di.extend_from_slice(&digest);
    di
}

/// Raw cryptoki: one session, one login, sign in a loop.
fn raw(module: &Path, case: &Case, duration: Duration) -> Result<f64> {
    let ctx = Pkcs11::new(module)?;
    // The token layer of the previous round may still hold the module initialised.
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(())
        | Err(cryptoki::error::Error::Pkcs11(
            cryptoki::error::RvError::CryptokiAlreadyInitialized,
            _,
        )) => {}
        Err(e) => return Err(e.into()),
    }
    let slot = *ctx
        .get_slots_with_token()?
        .first()
        .context("no card token")?;
    let session = ctx.open_ro_session(slot)?;
    match session.login(UserType::User, Some(&SecretString::from(PIN.to_owned()))) {
        Ok(())
        | Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::UserAlreadyLoggedIn, _)) => {
        }
        Err(e) => return Err(e.into()),
    }
    let key = *session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(vec![case.id]),
        ])?
        .first()
        .context("key")?;
    let mech = if case.ecdsa {
        Mechanism::Ecdsa
    } else {
        Mechanism::RsaPkcs
    };
    let data = input(case);
    session.sign(&mech, key, &data)?; // warm-up
    let start = Instant::now();
    let mut done = 0u64;
    while start.elapsed() < duration {
        session.sign(&mech, key, &data)?;
        done += 1;
    }
    Ok(done as f64 / start.elapsed().as_secs_f64())
}

/// Segel's token layer: the card's one worker, a few requests in flight.
fn layer(module: &Path, case: &Case, duration: Duration) -> Result<f64> {
    let service = TokenService::start(
        &[ModuleSpec {
            path: module.to_path_buf(),
            source: ModuleSource::CommandLine,
        }],
        ServiceOptions::default(),
    )?;
    let fp = fixture(case.fixture)?.entry.fingerprint_sha256;
    let cert = service.find_certificate(&fp.parse()?).wait()?;
    let pin: Arc<dyn segel_agent::pin::PinSource> =
        Arc::new(FixedPin(SecretString::from(PIN.to_owned())));
    let request = SignRequest {
        scheme: None,
        hash: HashAlg::Sha256,
    };
    let d = HashAlg::Sha256.digest(b"bench");
    service
        .sign_digest(&cert, &request, d.clone(), pin.clone())
        .wait()?; // warm-up: login, key lookup
    let mut queue = std::collections::VecDeque::new();
    let start = Instant::now();
    let mut done = 0u64;
    while start.elapsed() < duration {
        while queue.len() < 3 {
            queue.push_back(service.sign_digest(&cert, &request, d.clone(), pin.clone()));
        }
        if let Some(reply) = queue.pop_front() {
            reply.wait()?;
            done += 1;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    for reply in queue {
        reply.wait()?;
    }
    Ok(done as f64 / elapsed)
}
