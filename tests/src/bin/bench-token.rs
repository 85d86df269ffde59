//! Benchmark: signing through Segel's token layer vs raw cryptoki on the same SoftHSM2
//! token, in the same run (P-256 and RSA-2048; 1 and 2 threads). Prints throughput and the
//! ratio layer/raw; the target is ≥ 0.95.
//!
//! Run: `cargo run --release -p segel-tests --bin bench-token [-- --seconds 2]`.
//! The program makes its own SoftHSM token in a temporary folder and re-runs itself with
//! that token's private config (SoftHSM reads SOFTHSM2_CONF at C_Initialize).
//!
//! Both sides keep the token equally busy: raw cryptoki runs one signing loop per thread on
//! its own session; the token layer gets `threads` sessions and a client that keeps several
//! requests in flight (as the daemon does with concurrent requests).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
use segel_tests::softhsm::SoftHsm;

const PIN: &str = "123456";
const CHILD: &str = "SEGEL_BENCH_CHILD";

fn main() -> Result<()> {
    let seconds: f64 = std::env::args()
        .skip_while(|a| a != "--seconds")
        .nth(1)
        .map(|s| s.parse())
        .transpose()
        .context("--seconds takes a number")?
        .unwrap_or(2.0);
    if std::env::var_os(CHILD).is_some() {
        let only = std::env::args().skip_while(|a| a != "--only").nth(1);
        return child(Duration::from_secs_f64(seconds), only);
    }
    let hsm = SoftHsm::new()?;
    hsm.init_token("bench", "87654321", PIN)?;
    hsm.import_fixture("bench", PIN, "vendor-p256", "01", "p256")?;
    hsm.import_fixture("bench", PIN, "vendor-rsa2048", "02", "rsa2048")?;
    let status = std::process::Command::new(std::env::current_exe()?)
        .args(std::env::args().skip(1))
        .envs(hsm.envs())
        .env(CHILD, hsm.module_path())
        .status()?;
    if !status.success() {
        bail!("benchmark child failed: {status}");
    }
    Ok(())
}

struct Case {
    name: &'static str,
    fixture: &'static str,
    label: &'static str,
}

/// One measurement: throughput, and how many CPUs the process kept busy meanwhile.
#[derive(Clone, Copy, Debug, Default)]
struct Measured {
    ops_per_second: f64,
    cores: f64,
}

impl Measured {
    fn best(self, other: Measured) -> Measured {
        if other.ops_per_second > self.ops_per_second {
            other
        } else {
            self
        }
    }
}

/// Times a measurement window: started before the first operation, finished after the last.
struct Window {
    start: Instant,
    cpu: Duration,
}

impl Window {
    fn start() -> Window {
        Window {
            cpu: process_cpu(),
            start: Instant::now(),
        }
    }

    fn finish(&self, ops: u64) -> Measured {
        let wall = self.start.elapsed().as_secs_f64();
        let cpu = process_cpu().saturating_sub(self.cpu).as_secs_f64();
        Measured {
            ops_per_second: ops as f64 / wall,
            cores: cpu / wall,
        }
    }
}

fn child(duration: Duration, only: Option<String>) -> Result<()> {
    let module = PathBuf::from(std::env::var(CHILD)?);
    let cases = [
        Case {
            name: "P-256 ECDSA",
            fixture: "vendor-p256",
            label: "p256",
        },
        Case {
            name: "RSA-2048 PKCS#1",
            fixture: "vendor-rsa2048",
            label: "rsa2048",
        },
    ];
    println!(
        "token-layer vs raw cryptoki on SoftHSM2, {:.1} s per measurement, best of 2 rounds",
        duration.as_secs_f64()
    );
    println!(
        "{:<16} {:>7} {:>12} {:>12} {:>7} {:>9} {:>9}",
        "key", "threads", "raw ops/s", "segel ops/s", "ratio", "raw CPUs", "segel CPUs"
    );
    let mut worst: f64 = f64::INFINITY;
    for case in &cases {
        if only.as_deref().is_some_and(|o| !case.label.contains(o)) {
            continue;
        }
        for threads in [1usize, 2] {
            let mut raw_best = Measured::default();
            let mut layer_best = Measured::default();
            for _ in 0..2 {
                raw_best = raw_best.best(raw(&module, case, threads, duration)?);
                layer_best = layer_best.best(layer(&module, case, threads, duration)?);
            }
            let ratio = layer_best.ops_per_second / raw_best.ops_per_second;
            worst = worst.min(ratio);
            println!(
                "{:<16} {:>7} {:>12.0} {:>12.0} {:>7.3} {:>9.2} {:>9.2}",
                case.name,
                threads,
                raw_best.ops_per_second,
                layer_best.ops_per_second,
                ratio,
                raw_best.cores,
                layer_best.cores
            );
        }
    }
    println!(
        "worst ratio {worst:.3} (target >= 0.95): {}",
        if worst >= 0.95 { "MET" } else { "NOT MET" }
    );
    Ok(())
}

/// CPU time used by this whole process so far (all threads), from /proc/self/stat.
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may contain spaces):
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after ") ".
    let after = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
    let ticks: u64 = after
        .split(' ')
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

fn digest() -> Vec<u8> {
    HashAlg::Sha256.digest(b"bench")
}

/// Raw cryptoki: one session per thread, one login, sign in a loop.
fn raw(module: &Path, case: &Case, threads: usize, duration: Duration) -> Result<Measured> {
    let ctx = Pkcs11::new(module)?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(())
        | Err(cryptoki::error::Error::Pkcs11(
            cryptoki::error::RvError::CryptokiAlreadyInitialized,
            _,
        )) => {}
        Err(e) => return Err(e.into()),
    }
    let slot = ctx
        .get_slots_with_token()?
        .into_iter()
        .find(|s| {
            ctx.get_token_info(*s)
                .map(|t| t.label().trim() == "bench")
                .unwrap_or(false)
        })
        .context("bench token")?;
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
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
    let label = case.label.as_bytes().to_vec();
    let ecdsa = case.fixture.contains("p256");
    let window = Window::start();
    std::thread::scope(|scope| -> Result<()> {
        let mut handles = Vec::new();
        for session in sessions {
            let (count, stop, label) = (Arc::clone(&count), Arc::clone(&stop), label.clone());
            handles.push(scope.spawn(move || -> Result<()> {
                let key = *session
                    .find_objects(&[
                        Attribute::Class(ObjectClass::PRIVATE_KEY),
                        Attribute::Label(label),
                    ])?
                    .first()
                    .context("key")?;
                let mut input = digest();
                if !ecdsa {
                    // DigestInfo for SHA-256 (RFC 8017 §9.2 note 1), as the token layer sends.
                    let mut di = vec![
                        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03,
                        0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20,
                    ];
                    di.extend_from_slice(&input);
                    input = di;
                }
                let mech = if ecdsa {
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
                .map_err(|_| anyhow::anyhow!("raw thread panicked"))??;
        }
        Ok(())
    })?;
    Ok(window.finish(count.load(Ordering::Relaxed)))
}

/// Segel's token layer: `threads` sessions, several requests in flight.
fn layer(module: &Path, case: &Case, threads: usize, duration: Duration) -> Result<Measured> {
    let service = TokenService::start(
        &[ModuleSpec {
            path: module.to_path_buf(),
            source: ModuleSource::CommandLine,
        }],
        ServiceOptions {
            sessions_per_soft_token: Some(threads),
        },
    )?;
    let fp = fixture(case.fixture)?.entry.fingerprint_sha256;
    let cert = service.find_certificate(&fp.parse()?).wait()?;
    let pin: Arc<dyn segel_agent::pin::PinSource> =
        Arc::new(FixedPin(SecretString::from(PIN.to_owned())));
    let request = SignRequest {
        scheme: None,
        hash: HashAlg::Sha256,
    };
    let d = digest();
    // Warm up: log in and look the key up on every session.
    for _ in 0..threads * 2 {
        service
            .sign_digest(&cert, &request, d.clone(), pin.clone())
            .wait()?;
    }
    let in_flight = threads * 4;
    let mut queue = std::collections::VecDeque::new();
    let window = Window::start();
    let mut done: u64 = 0;
    while window.start.elapsed() < duration {
        while queue.len() < in_flight {
            queue.push_back(service.sign_digest(&cert, &request, d.clone(), pin.clone()));
        }
        if let Some(reply) = queue.pop_front() {
            reply.wait()?;
            done += 1;
        }
    }
    let measured = window.finish(done);
    for reply in queue {
        reply.wait()?;
    }
    Ok(measured)
}
