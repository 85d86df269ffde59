//! A SoftHSM token served out of process by `p11-kit server`, for fault injection
//! (TESTSTACK.md, "Out-of-process token").
//!
//! The client loads [`P11KitServer::CLIENT_MODULE`] with [`P11KitServer::envs`]. Each client
//! connection is served by its own `p11-kit-remote` child of the server; killing those children
//! ([`P11KitServer::kill_remote_children`]) is a token yanked mid-operation: the client's next call
//! fails with `CKR_DEVICE_ERROR`. A new connection (a fresh `C_Initialize` after `C_Finalize`, or
//! another process) gets a new child and works again.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::run::{Envs, run};
use crate::softhsm::SoftHsm;

/// A running `p11-kit server` exporting one SoftHSM token on a unix socket; killed on drop.
#[derive(Debug)]
pub struct P11KitServer {
    child: Child,
    socket: PathBuf,
    softhsm_envs: Envs,
}

impl P11KitServer {
    /// The p11-kit client module (Debian package `p11-kit-modules`).
    pub const CLIENT_MODULE: &str = "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so";

    /// Starts `p11-kit server -f --provider <SoftHSM> -n <socket> "pkcs11:token=LABEL"` with the
    /// SoftHSM env and waits (up to 10 s) for its socket. The socket lives in the SoftHSM temp dir.
    pub fn start(hsm: &SoftHsm, token_label: &str) -> Result<Self> {
        ensure!(
            Path::new(Self::CLIENT_MODULE).exists(),
            "{} missing: run scripts/install-test-deps",
            Self::CLIENT_MODULE
        );
        let socket = unique_socket_path(hsm.dir());
        let mut cmd = Command::new("p11-kit");
        cmd.args(["server", "-f", "--provider", SoftHsm::MODULE, "-n"])
            .arg(&socket)
            .arg(format!("pkcs11:token={}", uri_escape(token_label)))
            .envs(hsm.envs())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().context("cannot start p11-kit server")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            if let Some(status) = child.try_wait()? {
                let mut stderr = String::new();
                if let Some(mut err) = child.stderr.take() {
                    use std::io::Read as _;
                    let _ = err.read_to_string(&mut stderr);
                }
                bail!("p11-kit server exited early ({status}):\n{stderr}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "p11-kit server did not create {} within 10 s",
                    socket.display()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(Self {
            child,
            socket,
            softhsm_envs: hsm.envs(),
        })
    }

    /// Path of the client module, [`Self::CLIENT_MODULE`].
    pub fn client_module_path(&self) -> PathBuf {
        PathBuf::from(Self::CLIENT_MODULE)
    }

    /// The server's unix socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Process id of the server.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What a client process needs: `P11_KIT_SERVER_ADDRESS=unix:path=SOCKET`, `P11_KIT_SERVER_PID`
    /// and the SoftHSM env
    /// (harmless for the client, and lets the same process also open SoftHSM directly).
    pub fn envs(&self) -> Envs {
        let mut address = OsString::from("unix:path=");
        address.push(&self.socket);
        let mut envs = vec![
            ("P11_KIT_SERVER_ADDRESS".to_owned(), address),
            // As `p11-kit server -s` prints it; lets a child test call kill_remote_children_of.
            (
                "P11_KIT_SERVER_PID".to_owned(),
                self.child.id().to_string().into(),
            ),
        ];
        envs.extend(self.softhsm_envs.iter().cloned());
        envs
    }

    /// PIDs of the server's per-connection `p11-kit-remote` processes (all its descendants).
    pub fn remote_children(&self) -> Result<Vec<u32>> {
        descendants(self.child.id())
    }

    /// Waits until no client is connected (no live `p11-kit-remote`): a `p11-kit-remote` exits
    /// shortly AFTER its client closes the connection, so check this before asserting on counts.
    pub fn wait_idle(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let children = self.remote_children()?;
            if children.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("p11-kit server still has connections {children:?} after {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGKILLs every descendant of THIS server (the per-connection `p11-kit-remote` processes),
    /// leaving the server itself running; returns how many were killed. Clients connected now
    /// see their next call fail; new connections work.
    pub fn kill_remote_children(&self) -> Result<usize> {
        kill_remote_children_of(self.child.id())
    }
}

/// [`P11KitServer::kill_remote_children`] for a server known only by its pid — for a child test
/// process (see [`crate::isolate`]) that must yank the token between two of its own calls.
pub fn kill_remote_children_of(server_pid: u32) -> Result<usize> {
    let pids = descendants(server_pid)?;
    for pid in &pids {
        // Already gone is fine: the client may have disconnected meanwhile.
        let _ = run(Command::new("kill").args(["-KILL", &pid.to_string()]), &[]);
    }
    // Wait until they are gone, so the caller observes a settled state.
    let deadline = Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|p| is_alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(pids.len())
}

/// A process counts as gone once it is a zombie (killed but not yet reaped by the server).
fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !matches!(
            stat.rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().next()),
            Some("Z" | "X")
        ),
        Err(_) => false,
    }
}

impl Drop for P11KitServer {
    fn drop(&mut self) {
        let _ = self.kill_remote_children();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}

fn unique_socket_path(dir: &Path) -> PathBuf {
    // unix socket paths are limited to 108 bytes: the temp dir path is short enough.
    for n in 0.. {
        let p = dir.join(format!("p11-kit-{n}.sock"));
        if !p.exists() {
            return p;
        }
    }
    unreachable!("ran out of socket names")
}

/// Percent-encodes what RFC 7512 does not allow raw in a PKCS#11 URI path attribute value.
fn uri_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,=:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// All live (non-zombie) descendants of `root` found by walking /proc (parent pid is field 4 of /proc/PID/stat).
pub fn descendants(root: u32) -> Result<Vec<u32>> {
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc").context("reading /proc")? {
        let entry = entry?;
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        // A process may vanish between read_dir and read: skip it.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // comm (field 2) is in parentheses and may contain spaces: parse after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let (state, ppid) = (fields.next(), fields.next());
        if let Some(ppid) = ppid.and_then(|p| p.parse::<u32>().ok()) {
            // Zombies (exited, not yet reaped) are not counted: they hold no connection.
            parents.push((pid, ppid, !matches!(state, Some("Z" | "X"))));
        }
    }
    let mut found = Vec::new();
    let mut seen = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid, alive) in &parents {
            if ppid == parent && !seen.contains(&pid) {
                seen.push(pid);
                frontier.push(pid);
                if alive {
                    found.push(pid);
                }
            }
        }
    }
    Ok(found)
}
