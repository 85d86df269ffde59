//! The localhost daemon (`segel serve`): HTTPS on 127.0.0.1 for Segel's browser extension and
//! local programs of the same user.
//!
//! - [`tls`]: per-install local CA (name-constrained to loopback, key never written) and the
//!   server certificate; [`credential`]: the per-user bearer credential; [`files`]: where they live.
//! - [`gate`]: the one place every request is checked (Host, Origin, credential, site policy
//!   and consent) before anything executes; [`policy`], [`consent`]: what it checks against.
//! - [`routes`]: the `/v1` JSON API, one file per endpoint; [`events`]: Server-Sent Events.
//! - Connections: a semaphore caps them (extra ones are closed at once), the TLS handshake,
//!   the request head and the body each have a timeout, so slow clients cannot pin the daemon.
//! - [`Daemon::run`] takes a shutdown future (SIGTERM/SIGINT in the CLI) and drains connections.

pub mod app;
pub mod body;
pub mod certcache;
pub mod client;
pub mod consent;
pub mod credential;
pub mod endpoint;
pub mod error;
pub mod events;
pub mod files;
pub mod gate;
pub mod jobs;
pub mod pin;
pub mod policy;
mod routes;
pub mod store;
pub mod tls;

pub use app::AdminSettings;
pub use routes::openapi_yaml;

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use app::App;
use body::BodyLimits;
use consent::ConsentStore;
use credential::Credential;
use events::EventHub;
use files::DaemonFiles;
use gate::Gate;
use policy::Policy;

use crate::token::TokenService;

/// How the daemon runs; [`ServeOptions::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// TCP port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    pub files: DaemonFiles,
    pub policy: Policy,
    /// Renew the certificate when it expires within this many days.
    pub renew_days: u64,
    /// Most connections served at once; more are closed at once.
    pub max_connections: usize,
    /// Time to complete the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time to send a request head (also the idle time of a kept-alive connection).
    pub header_timeout: Duration,
    /// Time to send a request body.
    pub body_timeout: Duration,
    /// Largest JSON body.
    pub max_json_body: usize,
    /// How often tokens are polled while someone listens to events.
    pub poll_interval: Duration,
    /// Largest uploaded bid file.
    pub max_upload: u64,
    /// Trust anchors for vendors' certificates when opening bids.
    pub trust: crate::bids::trust::TrustStore,
    /// `[enrollment]` and `[pin]` of the config file, as the CLI uses them.
    pub admin: AdminSettings,
}

impl ServeOptions {
    pub fn new(files: DaemonFiles, policy: Policy) -> Self {
        ServeOptions {
            port: policy.port,
            files,
            policy,
            renew_days: tls::DEFAULT_RENEW_DAYS,
            max_connections: 64,
            handshake_timeout: Duration::from_secs(5),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_json_body: 4 << 20,
            poll_interval: Duration::from_secs(1),
            max_upload: 2 << 30,
            trust: Default::default(),
            admin: AdminSettings::default(),
        }
    }
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot create the daemon folder {path}: {source}")]
    Folder {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Credential(#[from] credential::CredentialError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(
        "cannot listen on 127.0.0.1:{port}: {source} (is another `segel serve` running? see `segel endpoint`)"
    )]
    Bind { port: u16, source: std::io::Error },
    #[error("cannot write the endpoint file {path}: {source}")]
    Endpoint {
        path: String,
        source: std::io::Error,
    },
}

/// A bound daemon, ready to [`run`](Daemon::run).
pub struct Daemon {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: Arc<App>,
    opts: ServeOptions,
    addr: SocketAddr,
}

/// Prepare the daemon's files (credential, TLS material), bind 127.0.0.1 and write the
/// endpoint file. Must be called inside a tokio runtime.
pub async fn bind(service: TokenService, opts: ServeOptions) -> Result<Daemon, ServeError> {
    let files = &opts.files;
    let folder = |source| ServeError::Folder {
        path: files.dir.display().to_string(),
        source,
    };
    files.ensure_dirs().map_err(folder)?;
    let work_dir = files.dir.join("work");
    let _ = std::fs::remove_dir_all(&work_dir);
    files::ensure_private_dir(&work_dir).map_err(folder)?;
    let credential = Credential::load_or_create(&files.credential())?;
    let (chain, key, renewed) = tls::ensure(files, opts.renew_days)?;
    if renewed {
        tracing::warn!(ca = %files.ca_cert().display(), "a new local CA was made; browsers must trust it (segel install)");
    }
    let acceptor = TlsAcceptor::from(tls::server_config(chain, key)?);
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, opts.port))
        .await
        .map_err(|source| ServeError::Bind {
            port: opts.port,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        port: opts.port,
        source,
    })?;
    let url = format!("https://127.0.0.1:{}", addr.port());
    let gate = Gate::new(
        addr.port(),
        credential,
        opts.policy.clone(),
        ConsentStore::new(files.consent()),
    );
    let app = Arc::new(
        App::new(
            service,
            gate,
            EventHub::new(opts.poll_interval),
            BodyLimits {
                max_json: opts.max_json_body,
                timeout: opts.body_timeout,
                max_upload: opts.max_upload,
            },
            url.clone(),
            work_dir,
            opts.trust.clone(),
        )
        .with_admin(opts.admin.clone()),
    );
    endpoint::write(files, &url).map_err(|source| ServeError::Endpoint {
        path: files.endpoint().display().to_string(),
        source,
    })?;
    tracing::info!(%url, "listening");
    Ok(Daemon {
        listener,
        acceptor,
        app,
        opts,
        addr,
    })
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Daemon {
    /// The bound address (127.0.0.1:port).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The event hub (`GET /v1/events`), e.g. to feed it PC/SC card events.
    pub fn events(&self) -> Arc<EventHub> {
        Arc::clone(&self.app.events)
    }

    /// Serve until `shutdown` completes, then stop accepting, end event streams and give
    /// open connections a few seconds to finish. Removes the endpoint file.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let Daemon {
            listener,
            acceptor,
            app,
            opts,
            ..
        } = self;
        let idle = tokio::spawn(Arc::clone(&app).idle_logout_loop());
        let sweep = tokio::spawn(Arc::clone(&app).held_file_sweep_loop());
        let permits = Arc::new(Semaphore::new(opts.max_connections));
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            let (tcp, _peer) = tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // e.g. EMFILE: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                tracing::warn!(
                    max = opts.max_connections,
                    "connection cap reached; closing a new connection"
                );
                drop(tcp);
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let app = Arc::clone(&app);
            let watcher = graceful.watcher();
            let (handshake_timeout, header_timeout) = (opts.handshake_timeout, opts.header_timeout);
            tokio::spawn(async move {
                let _permit = permit;
                let tls = match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await
                {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!("TLS handshake timed out");
                        return;
                    }
                };
                let service = service_fn(move |req| {
                    let app = Arc::clone(&app);
                    async move { Ok::<_, Infallible>(routes::handle(app, req).await) }
                });
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(header_timeout)
                    .max_buf_size(64 * 1024)
                    // One buffer per response: one TLS record and one write instead of one per
                    // part (rustls does not coalesce vectored writes).
                    .writev(false)
                    .serve_connection(TokioIo::new(tls), service);
                if let Err(e) = watcher.watch(conn).await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            });
        }
        tracing::info!("shutting down");
        drop(listener);
        app.events.close_all();
        if tokio::time::timeout(Duration::from_secs(5), graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("connections still open after 5 s; closing them");
        }
        idle.abort();
        sweep.abort();
        let service = app.service.clone();
        let _ = tokio::task::spawn_blocking(move || service.logout_all()).await;
        endpoint::remove(&opts.files);
        tracing::info!("stopped");
    }
}
