//! A private pcscd with virtual (vpcd) readers, one per test (TESTSTACK.md, "PC/SC").
//!
//! pcscd refuses a second instance and ignores `PCSCLITE_CSOCK_NAME`, so each test's daemon runs
//! in its own mount namespace with a private directory bind-mounted on `/run/pcscd`:
//! `unshare -m sh -c "mount --bind DIR/run /run/pcscd && exec pcscd -f -c DIR/reader.conf"`.
//! Clients (the pcsc crate, OpenSC, `segel`) reach it through [`Pcscd::envs`]
//! (`PCSCLITE_CSOCK_NAME=DIR/run/pcscd.comm`). Each vpcd device line gives two readers listening
//! on PORT and PORT+1; a [`crate::vpiv::VirtualCard`] inserts itself by connecting there.
//!
//! Needs root (unshare, mount). [`skip_reason`] tells a test to skip, with the reason, when not
//! root; missing packages are errors (`scripts/install-test-deps` installs them).
//! Note: vpcd itself listens on all interfaces (its own choice, not configurable in listen mode).

use std::ffi::OsString;
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::run::Envs;

/// The vpcd reader driver (Debian package `vsmartcard-vpcd`).
pub const VPCD_DRIVER: &str = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so";
/// OpenSC's PKCS#11 module (package `opensc-pkcs11`).
pub const OPENSC_MODULE: &str = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so";

/// Why PC/SC tests cannot run here (not root), or `None` when they can.
pub fn skip_reason() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next().map(str::to_owned));
    match uid.as_deref() {
        Some("0") => None,
        other => Some(format!(
            "PC/SC tests need root for a private pcscd (unshare -m + bind mount); uid is {}",
            other.unwrap_or("unknown")
        )),
    }
}

/// Skips the calling test (returns `Ok(())`) with a message on stderr when [`skip_reason`] says so.
#[macro_export]
macro_rules! skip_without_pcscd {
    () => {
        if let Some(reason) = $crate::pcscd::skip_reason() {
            eprintln!("SKIPPED: {reason}");
            return Ok(());
        }
    };
}

/// A private pcscd with `readers` vpcd readers; killed on drop.
#[derive(Debug)]
pub struct Pcscd {
    dir: tempfile::TempDir,
    child: Option<Child>,
    base_ports: Vec<u16>,
    readers: usize,
}

impl Pcscd {
    /// Starts pcscd with `readers` virtual readers (rounded up to even: vpcd makes them in pairs)
    /// and waits until clients see all of them.
    pub fn start(readers: usize) -> Result<Self> {
        ensure!(readers > 0, "at least one reader");
        let readers = readers.div_ceil(2) * 2;
        for (path, package) in [
            (VPCD_DRIVER, "vsmartcard-vpcd"),
            ("/usr/sbin/pcscd", "pcscd"),
        ] {
            ensure!(
                Path::new(path).exists(),
                "{path} missing: install {package} (scripts/install-test-deps)"
            );
        }
        let dir = tempfile::Builder::new().prefix("segel-pcscd-").tempdir()?;
        std::fs::create_dir(dir.path().join("run"))?;
        let base_ports = free_port_pairs(readers.div_ceil(2))?;
        let mut conf = String::new();
        for (i, port) in base_ports.iter().enumerate() {
            conf.push_str(&format!(
                "FRIENDLYNAME \"Segel vpcd {i}\"\nDEVICENAME /dev/null:{port}\nLIBPATH {VPCD_DRIVER}\nCHANNELID {port}\n\n"
            ));
        }
        std::fs::write(dir.path().join("reader.conf"), conf)?;
        let mut pcscd = Pcscd {
            dir,
            child: None,
            base_ports,
            readers,
        };
        pcscd.spawn()?;
        Ok(pcscd)
    }

    fn spawn(&mut self) -> Result<()> {
        self.child = Some(spawn_in(self.dir.path(), self.readers)?);
        Ok(())
    }

    /// The private directory (reader.conf, run/, pcscd.log); for [`spawn_in`].
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The running pcscd's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Reader names as a PC/SC client (`opensc-tool -l`) sees them, sorted. An outside client
    /// because libpcsclite reads `PCSCLITE_CSOCK_NAME` once per process.
    pub fn reader_names(&self) -> Result<Vec<String>> {
        reader_names_at(&self.socket())
    }

    /// The TCP port a card connects to for reader `index` (0-based).
    pub fn reader_port(&self, index: usize) -> u16 {
        assert!(index < self.readers, "reader {index} of {}", self.readers);
        // Each port pair is (PORT, PORT+1) and index/2 picks the pair; the result fits (see
        // free_port_pairs, which only returns PORT < u16::MAX).
        self.base_ports[index / 2] + (index % 2) as u16
    }

    /// The client socket (`PCSCLITE_CSOCK_NAME`).
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("run").join("pcscd.comm")
    }

    /// Environment for clients of this pcscd.
    pub fn envs(&self) -> Envs {
        vec![(
            "PCSCLITE_CSOCK_NAME".to_owned(),
            OsString::from(self.socket()),
        )]
    }

    /// Kills pcscd (SIGKILL) and waits for it: cards are disconnected, clients get errors.
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().context("killing pcscd")?;
            child.wait()?;
        }
        Ok(())
    }

    /// Starts pcscd again after [`Self::kill`], same socket and reader ports.
    pub fn restart(&mut self) -> Result<()> {
        self.kill()?;
        self.spawn()
    }

    /// pcscd's output so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pcscd.log")).unwrap_or_default()
    }
}

impl Drop for Pcscd {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// Starts pcscd for the private directory `dir` made by [`Pcscd::start`] (reader.conf, run/) and
/// waits (up to 10 s) until clients see all `readers`. [`Pcscd`] uses it; a test that kills
/// pcscd from another process restarts it with it (and then owns the returned child).
pub fn spawn_in(dir: &Path, readers: usize) -> Result<Child> {
    std::fs::create_dir_all("/run/pcscd").context("creating the /run/pcscd mount point")?;
    let run = dir.join("run");
    // A killed pcscd leaves its socket and pid file behind.
    for stale in ["pcscd.comm", "pcscd.pid"] {
        let _ = std::fs::remove_file(run.join(stale));
    }
    let log_path = dir.join("pcscd.log");
    let log = File::create(&log_path)?;
    let script = format!(
        "mount --bind '{}' /run/pcscd && exec pcscd -f -c '{}'",
        run.display(),
        dir.join("reader.conf").display()
    );
    let mut child = Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting pcscd under unshare -m")?;
    let socket = run.join("pcscd.comm");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = String::from("socket not created");
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            bail!(
                "pcscd exited early ({status}):\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        if socket.exists() {
            match reader_names_at(&socket) {
                Ok(names) if names.len() == readers => return Ok(child),
                Ok(names) => last = format!("{} of {readers} readers", names.len()),
                Err(e) => last = format!("{e:#}"),
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    bail!(
        "pcscd not ready within 10 s ({last}):\n{}",
        std::fs::read_to_string(&log_path).unwrap_or_default()
    )
}

/// Reader names `opensc-tool -l` lists through the pcscd socket `socket`, sorted.
fn reader_names_at(socket: &Path) -> Result<Vec<String>> {
    let out = Command::new("opensc-tool")
        .arg("-l")
        .env("PCSCLITE_CSOCK_NAME", socket)
        .output()
        .context("running opensc-tool -l (package opensc)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "opensc-tool -l failed ({}): {text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = text
        .lines()
        .filter_map(|l| l.find("Segel vpcd").map(|i| l[i..].trim().to_owned()))
        .collect();
    names.sort();
    Ok(names)
}

/// `count` ports P (even, P+1 also free) that nothing listens on now. vpcd binds both.
fn free_port_pairs(count: usize) -> Result<Vec<u16>> {
    let mut out = Vec::new();
    for _ in 0..200 {
        if out.len() == count {
            return Ok(out);
        }
        // An ephemeral port from the kernel as a random starting point.
        let probe = TcpListener::bind(("0.0.0.0", 0))?;
        let port = probe.local_addr()?.port() & !1;
        drop(probe);
        if port < 1024 || port == u16::MAX - 1 || out.contains(&port) {
            continue;
        }
        let both_free = TcpListener::bind(("0.0.0.0", port)).is_ok()
            && TcpListener::bind(("0.0.0.0", port + 1)).is_ok();
        if both_free {
            out.push(port);
        }
    }
    bail!("no free port pairs for vpcd")
}

/// In a process whose `PCSCLITE_CSOCK_NAME` points at the private pcscd (a child started with
/// [`Pcscd::envs`]): waits until reader `index` (sorted by name) shows a card (`present`) or no
/// card, as PC/SC reports it, up to `timeout`. A card is only reported present once pcscd has
/// powered it and read its ATR.
pub fn wait_card_in_process(index: usize, present: bool, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let state = reader_card_state(index);
        match &state {
            Ok(p) if *p == present => return Ok(()),
            _ if Instant::now() > deadline => bail!(
                "reader {index}: card {} not seen within {timeout:?} ({state:?})",
                if present { "present" } else { "absent" }
            ),
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn reader_card_state(index: usize) -> Result<bool> {
    use pcsc::{Context, ReaderState, Scope, State};
    let ctx = Context::establish(Scope::User)?;
    let mut names: Vec<std::ffi::CString> = ctx.list_readers_owned()?;
    names.sort();
    let name = names
        .get(index)
        .with_context(|| format!("reader {index} not listed"))?;
    let mut states = [ReaderState::new(name.clone(), State::UNAWARE)];
    ctx.get_status_change(Duration::ZERO, &mut states)?;
    let s = states[0].event_state();
    Ok(s.contains(State::PRESENT) && !s.contains(State::MUTE) && !states[0].atr().is_empty())
}

/// Ends the current process with a message after `limit`: a hang inside a PKCS#11 module (e.g.
/// OpenSC waiting on a lock forever) must fail the test, not stall the run.
pub fn watchdog(limit: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!("watchdog: test still running after {limit:?}; aborting (hang in a module?)");
        std::process::exit(101);
    });
}
