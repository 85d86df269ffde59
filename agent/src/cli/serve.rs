//! `segel serve`: run the localhost daemon until SIGTERM or SIGINT.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{CliError, Context};
use crate::pcsc::{AtrTable, FollowOptions, TokenFollower, Watcher, WatcherOptions};
use crate::protocol::ErrorCode;
use crate::server::events::CardScope;
use crate::server::files::DaemonFiles;
use crate::server::policy::{Policy, load_admin_policy};
use crate::server::{ServeOptions, bind};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Port on 127.0.0.1 (0 picks a free one; default from config, else 24842).
    #[arg(long)]
    pub port: Option<u16>,
    /// Administrator policy file (default /etc/segel/policy.toml or $SEGEL_POLICY_FILE).
    #[arg(long, value_name = "PATH")]
    pub policy: Option<PathBuf>,
    /// Most connections at once; more are closed at once.
    #[arg(long, default_value_t = 64)]
    pub max_connections: usize,
    /// Milliseconds to complete the TLS handshake.
    #[arg(long, default_value_t = 5000)]
    pub handshake_timeout_ms: u64,
    /// Milliseconds to send a request head (and to keep an idle connection).
    #[arg(long, default_value_t = 10000)]
    pub header_timeout_ms: u64,
    /// Milliseconds to send a request body.
    #[arg(long, default_value_t = 30000)]
    pub body_timeout_ms: u64,
    /// Largest JSON request body in bytes.
    #[arg(long, default_value_t = 4 << 20)]
    pub max_body: usize,
    /// Renew the local CA and certificate when they expire within this many days.
    #[arg(long, default_value_t = crate::server::tls::DEFAULT_RENEW_DAYS)]
    pub renew_days: u64,
    /// Largest uploaded bid file in bytes (POST /v1/files).
    #[arg(long, default_value_t = 2 << 30)]
    pub max_upload: u64,
    /// Milliseconds between token scans while someone listens to /v1/events (modules without
    /// PC/SC readers: SoftHSM, key files; all modules while pcscd is not running).
    #[arg(long, default_value_t = 1000)]
    pub poll_ms: u64,
    /// Milliseconds to let a card settle after a PC/SC change before its module is asked for
    /// tokens (a burst of changes gives one rescan).
    #[arg(long, default_value_t = 250)]
    pub card_settle_ms: u64,
}

fn internal(e: impl std::fmt::Display) -> CliError {
    CliError::new(ErrorCode::Internal, e.to_string())
}

pub fn run(ctx: &Context, args: &Args) -> Result<(), CliError> {
    let (admin, admin_file) = load_admin_policy(args.policy.as_deref())
        .map_err(|e| CliError::bad_request(e.to_string()))?;
    let policy = Policy::effective(&ctx.config.daemon, &admin, admin_file)
        .map_err(|e| CliError::bad_request(e.to_string()))?;
    let files = DaemonFiles::for_user()?;
    let mut opts = ServeOptions::new(files, policy);
    if let Some(port) = args.port {
        opts.port = port;
    }
    opts.max_connections = args.max_connections.max(1);
    opts.handshake_timeout = Duration::from_millis(args.handshake_timeout_ms);
    opts.header_timeout = Duration::from_millis(args.header_timeout_ms);
    opts.body_timeout = Duration::from_millis(args.body_timeout_ms);
    opts.max_json_body = args.max_body;
    opts.renew_days = args.renew_days;
    opts.poll_interval = Duration::from_millis(args.poll_ms.max(50));
    opts.max_upload = args.max_upload;
    opts.admin = crate::server::AdminSettings::from_config(&ctx.config);
    let trust_dir = crate::config::Paths::for_user().ok().map(|p| p.trust_dir());
    opts.trust =
        crate::bids::trust::TrustStore::load(&ctx.config.trust_anchors, trust_dir.as_deref())
            .map_err(|e| CliError::new(ErrorCode::IoError, e.to_string()))?;
    let service = ctx.token_service()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("segel-http")
        .enable_all()
        .build()
        .map_err(internal)?;
    // Cards and readers: token events and module refreshes follow PC/SC, not a timer.
    // A broken user ATR table must not keep the daemon down: the built-in table still works.
    let table = match crate::config::Paths::for_user()
        .map_err(|e| e.to_string())
        .and_then(|p| AtrTable::load(&p.config_dir).map_err(|e| e.to_string()))
    {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!("ATR table: {e}; using the built-in table only");
            AtrTable::built_in().map_err(internal)?
        }
    };
    let watcher = Arc::new(Watcher::start(WatcherOptions::default()).map_err(internal)?);
    let follower = TokenFollower::start_with(
        &watcher,
        service.clone(),
        FollowOptions {
            settle: Duration::from_millis(args.card_settle_ms),
            table: Some(table.clone()),
            load_by_atr: ctx.config.modules_by_atr && ctx.global.modules.is_empty(),
            only_pcsc_modules: true,
            ..FollowOptions::default()
        },
    )
    .map_err(internal)?;
    let scope = CardScope::new(Arc::clone(&watcher), table, service.clone());
    let result = runtime.block_on(async move {
        let daemon = bind(service, opts)
            .await
            .map_err(|e| CliError::new(ErrorCode::Internal, e.to_string()))?;
        daemon.events().follow_cards(scope, follower.subscribe());
        eprintln!("segel: listening on https://{}", daemon.local_addr());
        daemon.run(shutdown_signal()).await;
        Ok(())
    });
    // The runtime's tasks (and their hold on the watcher) end with it; then the watcher stops,
    // which ends the follower.
    drop(runtime);
    drop(watcher);
    result
}

/// SIGTERM (service managers) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the daemon");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
