//! What every handler shares: the token service, the gate, the event hub, limits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::body::BodyLimits;
use super::certcache::CertCache;
use super::events::EventHub;
use super::gate::Gate;
use super::jobs::Jobs;
use super::store::Store;
use crate::bids::trust::TrustStore;
use crate::token::TokenService;

/// Shared state of the daemon.
#[derive(Debug)]
pub struct App {
    pub service: TokenService,
    pub gate: Gate,
    pub events: Arc<EventHub>,
    pub limits: BodyLimits,
    pub started: Instant,
    pub url: String,
    pub work_dir: std::path::PathBuf,
    pub certs: CertCache,
    pub store: Store,
    pub jobs: Jobs,
    pub trust: TrustStore,
    /// `[enrollment]` and `[pin]` of the config file, for the enrolment and PIN routes.
    pub admin: AdminSettings,
    activity: Activity,
}

/// The config file's settings for token administration, shared with `segel enroll` and
/// `segel pin change|unblock`.
#[derive(Clone, Debug, Default)]
pub struct AdminSettings {
    pub enrollment: crate::enroll::EnrollConfig,
    pub pin: crate::config::PinPolicy,
}

impl AdminSettings {
    /// The settings of a configuration file.
    pub fn from_config(config: &crate::config::Config) -> Self {
        AdminSettings {
            enrollment: config.enrollment.clone(),
            pin: config.pin.clone(),
        }
    }
}

/// When tokens were last used, for the idle logout.
#[derive(Debug, Default)]
struct Activity {
    last_op_ms: AtomicU64,
    maybe_logged_in: AtomicBool,
}

impl App {
    pub fn new(
        service: TokenService,
        gate: Gate,
        events: Arc<EventHub>,
        limits: BodyLimits,
        url: String,
        work_dir: std::path::PathBuf,
        trust: TrustStore,
    ) -> Self {
        App {
            store: Store::new(work_dir.clone()),
            jobs: Jobs::new(Arc::clone(&events)),
            trust,
            service,
            gate,
            events,
            limits,
            started: Instant::now(),
            url,
            work_dir,
            certs: CertCache::new(Duration::from_secs(10)),
            activity: Activity::default(),
            admin: AdminSettings::default(),
        }
    }

    /// With the config file's enrolment and PIN settings.
    pub fn with_admin(mut self, admin: AdminSettings) -> Self {
        self.admin = admin;
        self
    }

    /// Note that a token operation (which may have logged in) just finished. With an idle
    /// time of zero, log out at once.
    pub async fn token_used(self: &Arc<Self>) {
        let idle = self.gate.policy().login_idle_seconds;
        if idle == 0 {
            self.logout().await;
            return;
        }
        self.activity
            .last_op_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
        self.activity.maybe_logged_in.store(true, Ordering::Relaxed);
    }

    async fn logout(&self) {
        let service = self.service.clone();
        let _ = tokio::task::spawn_blocking(move || service.logout_all()).await;
    }

    /// Delete held files (uploads, sealed and opened bids) unused for
    /// [`HELD_FILE_IDLE`](super::store::HELD_FILE_IDLE), every few minutes.
    pub async fn held_file_sweep_loop(self: Arc<Self>) {
        let idle = super::store::HELD_FILE_IDLE;
        loop {
            tokio::time::sleep(idle / 12).await;
            let gone = self.store.sweep(idle);
            if gone > 0 {
                tracing::info!(
                    files = gone,
                    "deleted held files unused for {} min",
                    idle.as_secs() / 60
                );
            }
        }
    }

    /// Log out of every token after the idle time without operations (runs for the life of
    /// the daemon).
    pub async fn idle_logout_loop(self: Arc<Self>) {
        let idle = Duration::from_secs(self.gate.policy().login_idle_seconds);
        if idle.is_zero() {
            return;
        }
        let tick = (idle / 4).clamp(Duration::from_millis(250), Duration::from_secs(5));
        loop {
            tokio::time::sleep(tick).await;
            let last = Duration::from_millis(self.activity.last_op_ms.load(Ordering::Relaxed));
            if self.activity.maybe_logged_in.load(Ordering::Relaxed)
                && self.started.elapsed().saturating_sub(last) >= idle
            {
                self.activity
                    .maybe_logged_in
                    .store(false, Ordering::Relaxed);
                tracing::info!(
                    "logging out of tokens after {} s without use",
                    idle.as_secs()
                );
                self.logout().await;
            }
        }
    }
}
