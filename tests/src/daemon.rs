//! The daemon under test: `segel serve --port 0` as a child process with a private HOME/XDG,
//! and an HTTPS client (hyper over rustls) that trusts only that daemon's local CA.
//!
//! ```no_run
//! # async fn f() -> anyhow::Result<()> {
//! use segel_tests::{daemon::DaemonProcess, softhsm::SoftHsm};
//! let hsm = SoftHsm::new()?;
//! hsm.init_token("t", "87654321", "1234")?;
//! let d = DaemonProcess::start(&hsm.envs(), &hsm.module_path(), &[])?;
//! let client = d.client()?;
//! let resp = client.send(client.get("/v1/status").body(Default::default())?).await?;
//! assert_eq!(resp.status, 200);
//! # Ok(()) }
//! ```

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::HeaderMap;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use segel_agent::server::tls;
use serde_json::Value;
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::segel::segel_cmd;

/// A running `segel serve`.
#[derive(Debug)]
pub struct DaemonProcess {
    child: Child,
    home: TempDir,
    pub url: String,
    pub addr: SocketAddr,
    pub ca_pem: Vec<u8>,
    pub credential: String,
    log: PathBuf,
    /// Time from spawning the process to the first accepted HTTPS request.
    pub started_in: Duration,
}

impl DaemonProcess {
    /// Start `segel serve --port 0 --module MODULE EXTRA…` with `envs`, a fresh HOME, and wait
    /// until it answers `GET /v1/status`.
    pub fn start(envs: &[(String, OsString)], module: &Path, extra: &[&str]) -> Result<Self> {
        let home = tempfile::Builder::new().prefix("segel-daemon-").tempdir()?;
        Self::start_in(home, envs, module, extra)
    }

    /// Like [`Self::start`] with a given HOME (e.g. prepared config or consent files).
    pub fn start_in(
        home: TempDir,
        envs: &[(String, OsString)],
        module: &Path,
        extra: &[&str],
    ) -> Result<Self> {
        let cmd = segel_cmd(envs, home.path())?;
        Self::spawn(cmd, home, &[module], extra)
    }

    /// Like [`Self::start_in`] with any number of `--module`s; none leaves module discovery to
    /// the config in `home` (and the ATR table, for cards present or inserted later).
    pub fn start_with_modules(
        home: TempDir,
        envs: &[(String, OsString)],
        modules: &[&Path],
        extra: &[&str],
    ) -> Result<Self> {
        let cmd = segel_cmd(envs, home.path())?;
        Self::spawn(cmd, home, modules, extra)
    }

    /// Like [`Self::start_in`] with another `segel` binary (e.g. a release build for benchmarks).
    pub fn start_bin(
        bin: &Path,
        home: TempDir,
        envs: &[(String, OsString)],
        module: &Path,
        extra: &[&str],
    ) -> Result<Self> {
        let mut cmd = segel_cmd(envs, home.path())?;
        let mut other = std::process::Command::new(bin);
        for (k, v) in cmd.get_envs() {
            if let Some(v) = v {
                other.env(k, v);
            }
        }
        cmd = other;
        Self::spawn(cmd, home, &[module], extra)
    }

    fn spawn(
        mut cmd: std::process::Command,
        home: TempDir,
        modules: &[&Path],
        extra: &[&str],
    ) -> Result<Self> {
        let log = home.path().join("serve.log");
        // No admin policy from the machine: an empty policy file of our own.
        let policy = home.path().join("policy.toml");
        if !policy.exists() {
            std::fs::write(&policy, "")?;
        }
        cmd.env("SEGEL_POLICY_FILE", &policy)
            .env("SEGEL_LOG", "info")
            .args(["serve", "--port", "0"]);
        for module in modules {
            cmd.arg("--module").arg(module);
        }
        cmd.args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?);
        let t0 = Instant::now();
        let mut child = cmd.spawn().context("starting segel serve")?;
        let endpoint = home.path().join(".local/state/segel/daemon/endpoint.json");
        // Wait for the endpoint file naming this process (a stale one from an earlier run in
        // the same HOME names another).
        let url = loop {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "segel serve exited ({status}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if let Ok(text) = std::fs::read_to_string(&endpoint)
                && let Ok(v) = serde_json::from_str::<Value>(&text)
                && v["pid"].as_u64() == Some(u64::from(child.id()))
            {
                break v["url"].as_str().unwrap_or_default().to_owned();
            }
            if t0.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                bail!("segel serve did not write {} in 20 s", endpoint.display());
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let addr: SocketAddr = url
            .strip_prefix("https://")
            .context("endpoint url is not https")?
            .parse()?;
        let dir = home.path().join(".local/state/segel/daemon");
        let ca_pem = std::fs::read(dir.join("tls/ca.pem"))?;
        let credential = std::fs::read_to_string(dir.join("credential"))?
            .trim()
            .to_owned();
        let mut d = DaemonProcess {
            child,
            home,
            url,
            addr,
            ca_pem,
            credential,
            log,
            started_in: Duration::ZERO,
        };
        let client = d.client()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            loop {
                if let Ok(r) = client
                    .send(client.get("/v1/status").body(Full::default())?)
                    .await
                    && r.status == StatusCode::OK
                {
                    return Ok::<_, anyhow::Error>(());
                }
                if t0.elapsed() > Duration::from_secs(20) {
                    bail!("segel serve did not answer in 20 s");
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })?;
        d.started_in = t0.elapsed();
        Ok(d)
    }

    /// Stop the daemon (SIGTERM, then kill) and hand back its HOME, to start another daemon
    /// on the same state (credential, CA, consent).
    pub fn into_home(mut self) -> Result<TempDir> {
        if self.terminate(Duration::from_secs(8)).is_err() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let placeholder = tempfile::Builder::new().prefix("segel-gone-").tempdir()?;
        Ok(std::mem::replace(&mut self.home, placeholder))
    }

    /// The private HOME.
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// The daemon folder (`$XDG_STATE_HOME/segel/daemon`).
    pub fn state_dir(&self) -> PathBuf {
        self.home.path().join(".local/state/segel/daemon")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A client trusting this daemon's CA, sending its credential.
    pub fn client(&self) -> Result<Client> {
        Client::new(self.addr, &self.ca_pem, &self.credential)
    }

    /// Send SIGTERM and wait (at most `within`) for the exit.
    pub fn terminate(&mut self, within: Duration) -> Result<ExitStatus> {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill -TERM failed");
        let t0 = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait()? {
                return Ok(s);
            }
            if t0.elapsed() > within {
                bail!("segel serve still running {within:?} after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Resident memory of the daemon (VmRSS), in KiB.
    pub fn rss_kib(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("VmRSS missing")
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response, fully read.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Response {
    pub fn json(&self) -> Result<Value> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "response is not JSON ({}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The error code of a `{code, message}` body ("" if none).
    pub fn code(&self) -> String {
        self.json()
            .ok()
            .and_then(|v| v["code"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// `resp` is the refusal `status` / `code` of `case`, and, like every answer of the daemon,
/// carries no CORS header.
pub fn expect(resp: &Response, status: u16, code: &str, case: &str) -> Result<()> {
    anyhow::ensure!(
        resp.status.as_u16() == status && resp.code() == code,
        "{case}: expected {status} {code}, got {} {}",
        resp.status,
        String::from_utf8_lossy(&resp.body)
    );
    for h in resp.headers.keys() {
        anyhow::ensure!(
            !h.as_str().starts_with("access-control-"),
            "{case}: CORS header {h} sent"
        );
    }
    Ok(())
}

/// `resp` is a 200 answer to `case`; its JSON.
pub fn ok(resp: &Response, case: &str) -> Result<Value> {
    anyhow::ensure!(
        resp.status == StatusCode::OK,
        "{case}: {} {}",
        resp.status,
        String::from_utf8_lossy(&resp.body)
    );
    resp.json()
}

/// Base64 of `data`, as the API takes binary fields.
pub fn b64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// The multi-threaded runtime the daemon tests drive their HTTPS clients on.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("cannot start a tokio runtime: {e}"))
}

/// HTTPS client for the daemon.
#[derive(Clone)]
pub struct Client {
    pub addr: SocketAddr,
    pub credential: String,
    connector: TlsConnector,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn new(addr: SocketAddr, ca_pem: &[u8], credential: &str) -> Result<Self> {
        Ok(Client {
            addr,
            credential: credential.to_owned(),
            connector: TlsConnector::from(tls::client_config(ca_pem)?),
        })
    }

    /// A TLS connection to the daemon (server name 127.0.0.1).
    pub async fn tls(&self) -> Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::IpAddress(self.addr.ip().into());
        Ok(self.connector.connect(name, tcp).await?)
    }

    /// A kept-alive HTTP/1.1 connection.
    pub async fn connect(&self) -> Result<Conn> {
        let io = TokioIo::new(self.tls().await?);
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .writev(false)
            .handshake(io)
            .await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn { sender })
    }

    /// A request builder with the right Host and the credential.
    pub fn req(&self, method: Method, path: &str) -> hyper::http::request::Builder {
        Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string())
            .header("authorization", format!("Bearer {}", self.credential))
    }

    pub fn get(&self, path: &str) -> hyper::http::request::Builder {
        self.req(Method::GET, path)
    }

    /// `POST path` with a JSON body.
    pub fn post_json(&self, path: &str, body: &Value) -> Result<Request<Full<Bytes>>> {
        Ok(self
            .req(Method::POST, path)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))?)
    }

    /// Send one request on a new connection.
    pub async fn send(&self, req: Request<Full<Bytes>>) -> Result<Response> {
        self.connect().await?.send(req).await
    }
}

/// One Server-Sent Event: its `event:` name and `data:` JSON.
#[derive(Clone, Debug)]
pub struct SseEvent {
    pub name: String,
    pub data: Value,
}

/// `GET /v1/events` read on a thread of its own; events arrive in order through [`Self::next`].
#[derive(Debug)]
pub struct EventStream {
    rx: std::sync::mpsc::Receiver<Result<SseEvent, String>>,
    /// Everything received so far (for failure messages).
    pub seen: Vec<SseEvent>,
}

impl EventStream {
    /// Opens the stream and waits for its opening comment, so events from now on are seen.
    pub fn open(client: &Client) -> Result<Self> {
        let client = client.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let (opened_tx, opened_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = opened_tx.send(Err(e.to_string()));
                    return;
                }
            };
            let result = rt.block_on(async {
                let io = TokioIo::new(client.tls().await.map_err(|e| e.to_string())?);
                let (mut sender, driver) =
                    hyper::client::conn::http1::handshake::<_, Full<Bytes>>(io)
                        .await
                        .map_err(|e| e.to_string())?;
                tokio::spawn(driver);
                let req = client
                    .get("/v1/events")
                    .body(Full::default())
                    .map_err(|e| e.to_string())?;
                let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
                if resp.status() != StatusCode::OK {
                    return Err(format!("GET /v1/events: {}", resp.status()));
                }
                let mut body = resp.into_body();
                let mut buf = String::new();
                let mut opened = Some(opened_tx);
                while let Some(frame) = body.frame().await {
                    let frame = frame.map_err(|e| e.to_string())?;
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    buf.push_str(&String::from_utf8_lossy(&data));
                    while let Some(end) = buf.find("\n\n") {
                        let block: String = buf.drain(..end + 2).collect();
                        if block.starts_with(':') {
                            if let Some(o) = opened.take() {
                                let _ = o.send(Ok(()));
                            }
                            continue;
                        }
                        let mut name = String::new();
                        let mut payload = String::new();
                        for line in block.lines() {
                            if let Some(v) = line.strip_prefix("event: ") {
                                name = v.to_owned();
                            } else if let Some(v) = line.strip_prefix("data: ") {
                                payload.push_str(v);
                            }
                        }
                        let data = serde_json::from_str(&payload)
                            .map_err(|e| format!("event data {payload:?}: {e}"))?;
                        if tx.send(Ok(SseEvent { name, data })).is_err() {
                            return Ok(());
                        }
                    }
                }
                Err("the event stream ended".to_owned())
            });
            if let Err(e) = result {
                let _ = tx.send(Err(e));
            }
        });
        opened_rx
            .recv_timeout(Duration::from_secs(10))
            .context("the event stream did not open in 10 s")?
            .map_err(|e| anyhow::anyhow!(e))?;
        Ok(EventStream {
            rx,
            seen: Vec::new(),
        })
    }

    /// The next event within `limit`, or `None`.
    pub fn next(&mut self, limit: Duration) -> Result<Option<SseEvent>> {
        match self.rx.recv_timeout(limit) {
            Ok(Ok(e)) => {
                self.seen.push(e.clone());
                Ok(Some(e))
            }
            Ok(Err(e)) => bail!("event stream: {e}"),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Ok(None),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => bail!("event stream gone"),
        }
    }

    /// Waits up to `limit` for an event named `name` whose data satisfies `want`; other events
    /// are kept in [`Self::seen`].
    pub fn expect(
        &mut self,
        name: &str,
        want: impl Fn(&Value) -> bool,
        limit: Duration,
    ) -> Result<SseEvent> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left)? {
                Some(e) if e.name == name && want(&e.data) => return Ok(e),
                Some(_) => {}
                None => bail!(
                    "no {name} event within {limit:?}; events seen: {:?}",
                    self.seen
                ),
            }
        }
    }
}

/// One kept-alive connection.
#[derive(Debug)]
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
}

impl Conn {
    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<Response> {
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        let (parts, body) = resp.into_parts();
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await?.to_bytes(),
        })
    }
}

/// Shared handle for tests that build rustls configs themselves.
pub fn client_config(ca_pem: &[u8]) -> Result<Arc<rustls::ClientConfig>> {
    Ok(tls::client_config(ca_pem)?)
}
