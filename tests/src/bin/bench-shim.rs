//! Benchmark: signing through Segel's PKCS#12-file module (`libsegel_pkcs11.so`) vs SoftHSM2,
//! in the same run, with the same keys (P-256 ECDSA and RSA-2048 PKCS#1; 1 and 2 threads).
//! The shim is measured twice: as built by default (RustCrypto arithmetic) and with its
//! `openssl` feature (signing through the system libcrypto). Prints throughput and the ratios
//! shim/SoftHSM; the target is ≥ 1.0 (not slower).
//!
//! Run: `cargo run --release -p segel-tests --bin bench-shim [-- --seconds 2]`.
//! The program builds the shim in the same profile it was built with, makes a SoftHSM token and a
//! key file holding the fixtures `vendor-p256` and `vendor-rsa2048`, and re-runs itself with
//! both modules' private configuration (both read it at `C_Initialize`).
//!
//! Both sides run the same raw cryptoki loop: one session per thread, one login, `C_Sign` of a
//! SHA-256 digest (`CKM_ECDSA`) or DigestInfo (`CKM_RSA_PKCS`) until the time is up.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use secrecy::SecretString;
use segel_tests::backend::TEST_ITERATIONS;
use segel_tests::shim::{self, Keystore};
use segel_tests::softhsm::SoftHsm;
use sha2::Digest;

const PIN: &str = "12345678";
const CHILD_SOFTHSM: &str = "SEGEL_BENCH_SOFTHSM";
const CHILD_SHIM: &str = "SEGEL_BENCH_SHIM";
const CHILD_SHIM_OPENSSL: &str = "SEGEL_BENCH_SHIM_OPENSSL";
const LABEL: &str = "bench";

fn main() -> Result<()> {
    let seconds: f64 = std::env::args()
        .skip_while(|a| a != "--seconds")
        .nth(1)
        .map(|s| s.parse())
        .transpose()
        .context("--seconds takes a number")?
        .unwrap_or(2.0);
    if let (Ok(softhsm), Ok(shim), Ok(fast)) = (
        std::env::var(CHILD_SOFTHSM),
        std::env::var(CHILD_SHIM),
        std::env::var(CHILD_SHIM_OPENSSL),
    ) {
        return child(
            Path::new(&softhsm),
            Path::new(&shim),
            Path::new(&fast),
            Duration::from_secs_f64(seconds),
        );
    }
    let release = !cfg!(debug_assertions);
    if !release {
        eprintln!("warning: debug build; run with --release for meaningful numbers");
    }
    let builds = tempfile::tempdir()?;
    let shim_so = shim::build_copy(release, &[], &builds.path().join("rustcrypto.so"))?;
    let fast_so = shim::build_copy(release, &["openssl"], &builds.path().join("openssl.so"))?;
    let fixtures = ["vendor-p256", "vendor-rsa2048"];
    let hsm = SoftHsm::new()?;
    hsm.init_token(LABEL, "87654321", PIN)?;
    for (i, name) in fixtures.iter().enumerate() {
        hsm.import_fixture(LABEL, PIN, name, &format!("{:02x}", i + 1), name)?;
    }
    let ks = Keystore::new()?;
    // The iteration count only affects login, which is outside the measured loop.
    ks.add_fixtures(LABEL, &fixtures, PIN, TEST_ITERATIONS)?;
    let status = std::process::Command::new(std::env::current_exe()?)
        .args(std::env::args().skip(1))
        .envs(hsm.envs())
        .envs(ks.envs())
        .env(CHILD_SOFTHSM, hsm.module_path())
        .env(CHILD_SHIM, &shim_so)
        .env(CHILD_SHIM_OPENSSL, &fast_so)
        .status()?;
    if !status.success() {
        bail!("benchmark child failed: {status}");
    }
    Ok(())
}

struct Case {
    name: &'static str,
    fixture: &'static str,
    ecdsa: bool,
}

fn child(softhsm: &Path, shim: &Path, fast: &Path, duration: Duration) -> Result<()> {
    let cases = [
        Case {
            name: "P-256 ECDSA",
            fixture: "vendor-p256",
            ecdsa: true,
        },
        Case {
            name: "RSA-2048 PKCS#1",
            fixture: "vendor-rsa2048",
            ecdsa: false,
        },
    ];
    let modules = [
        ("SoftHSM2", open(softhsm)?),
        ("shim (RustCrypto)", open(shim)?),
        ("shim (openssl feature)", open(fast)?),
    ];
    println!(
        "shim vs SoftHSM2, raw cryptoki C_Sign, {:.1} s per measurement, best of 2 rounds",
        duration.as_secs_f64()
    );
    println!(
        "{:<16} {:>7} {:>10} {:>12} {:>7} {:>12} {:>7}",
        "key", "threads", "SoftHSM/s", "shim/s", "ratio", "shim+ossl/s", "ratio"
    );
    let mut worst = [f64::INFINITY; 2];
    for case in &cases {
        for threads in [1usize, 2] {
            let mut best = [0.0f64; 3];
            for _ in 0..2 {
                for (i, (_, ctx)) in modules.iter().enumerate() {
                    best[i] = best[i].max(measure(ctx, case, threads, duration)?);
                }
            }
            let ratios = [best[1] / best[0], best[2] / best[0]];
            worst[0] = worst[0].min(ratios[0]);
            worst[1] = worst[1].min(ratios[1]);
            println!(
                "{:<16} {:>7} {:>10.0} {:>12.0} {:>7.3} {:>12.0} {:>7.3}",
                case.name, threads, best[0], best[1], ratios[0], best[2], ratios[1]
            );
        }
    }
    for (name, w) in [("RustCrypto", worst[0]), ("openssl feature", worst[1])] {
        println!(
            "worst ratio shim ({name})/SoftHSM {w:.3} (target >= 1.0, not slower): {}",
            if w >= 1.0 { "MET" } else { "NOT MET" }
        );
    }
    for (name, ctx) in modules {
        ctx.finalize()
            .with_context(|| format!("finalizing {name}"))?;
    }
    Ok(())
}

fn open(module: &Path) -> Result<Pkcs11> {
    let ctx = Pkcs11::new(module).with_context(|| format!("loading {}", module.display()))?;
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))?;
    Ok(ctx)
}

/// One session per thread, one login, sign in a loop; returns signatures per second.
fn measure(ctx: &Pkcs11, case: &Case, threads: usize, duration: Duration) -> Result<f64> {
    let slot = ctx
        .get_slots_with_token()?
        .into_iter()
        .find(|s| {
            ctx.get_token_info(*s)
                .map(|t| t.label().trim() == LABEL)
                .unwrap_or(false)
        })
        .context("bench token")?;
    let mut sessions = Vec::new();
    for _ in 0..threads {
        sessions.push(ctx.open_ro_session(slot)?);
    }
    match sessions[0].login(UserType::User, Some(&SecretString::from(PIN.to_owned()))) {
        Ok(())
        | Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::UserAlreadyLoggedIn, _)) => {
        }
        Err(e) => return Err(e.into()),
    }
    let digest = sha2::Sha256::digest(b"bench").to_vec();
    let input = if case.ecdsa {
        digest
    } else {
        // DigestInfo for SHA-256 (RFC 8017 §9.2 note 1).
        let mut di = vec![
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ];
        di.extend_from_slice(&digest);
        di
    };
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    std::thread::scope(|scope| -> Result<()> {
        let mut handles = Vec::new();
        for session in sessions {
            let (count, stop, input) = (Arc::clone(&count), Arc::clone(&stop), input.clone());
            handles.push(scope.spawn(move || -> Result<()> {
                let key = *session
                    .find_objects(&[
                        Attribute::Class(ObjectClass::PRIVATE_KEY),
                        Attribute::Label(case.fixture.as_bytes().to_vec()),
                    ])?
                    .first()
                    .context("key")?;
                let mech = if case.ecdsa {
                    Mechanism::Ecdsa
                } else {
                    Mechanism::RsaPkcs
                };
                while !stop.load(Ordering::Relaxed) {
                    session.sign(&mech, key, &input)?;
                    count.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }));
        }
        std::thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("signing thread panicked"))??;
        }
        Ok(())
    })?;
    Ok(count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
}
