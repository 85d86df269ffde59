//! Server-Sent Events: token inserted/removed and job progress, pushed to every subscriber of
//! `GET /v1/events`.
//!
//! Token events have two sources. Tokens of PC/SC-based modules (OpenSC, vendor card modules:
//! those the ATR table names) come from the PC/SC follower ([`EventHub::follow_cards`]): it
//! rescans only when a card or reader changed, after a settle delay, and never touches a card
//! pcscd is still powering. Other modules (SoftHSM, Segel's key-file module, p11-kit's client)
//! have no PC/SC events, so they are polled while anyone listens — all modules are while
//! pcscd is not running.
//!
//! `certificate_expiring` is sent when a certificate on a present token comes within 30 and
//! again within 7 days of its notAfter (once per threshold per certificate per daemon run).

use std::collections::{BTreeMap, HashSet};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::pcsc::{AtrTable, ServiceState, TokenEvent, TokenEvents, Watcher};
use crate::token::{TokenDescription, TokenService};

/// One event as sent to subscribers.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    TokenInserted {
        label: String,
        serial: String,
        slot_id: u64,
    },
    TokenRemoved {
        label: String,
        serial: String,
        slot_id: u64,
    },
    JobProgress {
        job: String,
        done: u64,
        total: u64,
        state: String,
    },
    CertificateExpiring {
        /// SHA-256 fingerprint (the API's certificate selector).
        certificate: String,
        subject: String,
        token_label: String,
        token_serial: String,
        /// RFC 3339.
        not_after: String,
        days_left: i64,
        /// The threshold crossed: 30 or 7 (days).
        threshold_days: i64,
    },
}

impl Event {
    fn name(&self) -> &'static str {
        match self {
            Event::TokenInserted { .. } => "token_inserted",
            Event::TokenRemoved { .. } => "token_removed",
            Event::JobProgress { .. } => "job_progress",
            Event::CertificateExpiring { .. } => "certificate_expiring",
        }
    }

    /// The SSE frame: `event:` line, `data:` line with JSON, blank line.
    fn frame(&self) -> Bytes {
        let data = serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned());
        Bytes::from(format!("event: {}\ndata: {data}\n\n", self.name()))
    }
}

/// Subscribers and the token poller.
#[derive(Debug)]
pub struct EventHub {
    subscribers: Mutex<Vec<mpsc::Sender<Bytes>>>,
    poller_running: Mutex<bool>,
    poll_interval: Duration,
    /// Set once PC/SC cards are followed: which modules the poller leaves to the follower.
    cards: Mutex<Option<Arc<CardScope>>>,
    /// The certificate expiry watch: running flag and the (fingerprint, threshold) pairs
    /// already announced in this daemon run.
    expiry_running: Mutex<bool>,
    expiry_sent: Mutex<HashSet<(String, i64)>>,
}

/// The PC/SC side of token events: the watcher (is pcscd up?) and the ATR table (which
/// modules are PC/SC-based).
pub struct CardScope {
    watcher: Arc<Watcher>,
    table: AtrTable,
    service: TokenService,
}

impl std::fmt::Debug for CardScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardScope").finish_non_exhaustive()
    }
}

impl CardScope {
    pub fn new(watcher: Arc<Watcher>, table: AtrTable, service: TokenService) -> Self {
        CardScope {
            watcher,
            table,
            service,
        }
    }

    fn pcsc_up(&self) -> bool {
        self.watcher.snapshot().service == ServiceState::Up
    }

    fn is_card_module(&self, path: &std::path::Path) -> bool {
        crate::pcsc::tokens::is_pcsc_module(&self.table, &self.service.modules(), path)
    }
}

fn token_event(event: &TokenEvent) -> Event {
    let fields = |t: &TokenDescription| (t.label.clone(), t.serial.clone(), t.slot_id);
    match event {
        TokenEvent::TokenInserted { token } => {
            let (label, serial, slot_id) = fields(token);
            Event::TokenInserted {
                label,
                serial,
                slot_id,
            }
        }
        TokenEvent::TokenRemoved { token } => {
            let (label, serial, slot_id) = fields(token);
            Event::TokenRemoved {
                label,
                serial,
                slot_id,
            }
        }
    }
}

/// Per-subscriber queue length; a subscriber that does not read is dropped.
const QUEUE: usize = 64;

impl EventHub {
    pub fn new(poll_interval: Duration) -> Arc<Self> {
        Arc::new(EventHub {
            subscribers: Mutex::new(Vec::new()),
            poller_running: Mutex::new(false),
            poll_interval,
            cards: Mutex::new(None),
            expiry_running: Mutex::new(false),
            expiry_sent: Mutex::new(HashSet::new()),
        })
    }

    /// Take card tokens' events from the PC/SC follower (`events`, a
    /// [`crate::pcsc::TokenFollower`] started with `only_pcsc_modules`); from now on the
    /// poller leaves PC/SC-based modules alone while pcscd is up. Call inside the runtime.
    pub fn follow_cards(self: &Arc<Self>, scope: CardScope, mut events: TokenEvents) {
        *self.cards.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(scope));
        let hub = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(event) => hub.publish(&token_event(&event)),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!("{n} card events were dropped before they could be sent")
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }

    fn card_scope(&self) -> Option<Arc<CardScope>> {
        self.cards.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn subscribers(&self) -> std::sync::MutexGuard<'_, Vec<mpsc::Sender<Bytes>>> {
        self.subscribers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Send an event to every subscriber; drops those gone or not reading.
    pub fn publish(&self, event: &Event) {
        let frame = event.frame();
        self.subscribers()
            .retain(|tx| tx.try_send(frame.clone()).is_ok());
    }

    /// A new subscriber's body; starts the token poller if it is not running.
    pub fn subscribe(self: &Arc<Self>, service: &TokenService) -> SseBody {
        let (tx, rx) = mpsc::channel(QUEUE);
        // A comment line at once so the client sees the stream is open.
        let _ = tx.try_send(Bytes::from_static(b": segel events\n\n"));
        self.subscribers().push(tx);
        let mut running = self
            .poller_running
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !*running {
            *running = true;
            tokio::spawn(poll_tokens(Arc::clone(self), service.clone()));
        }
        drop(running);
        let mut expiry = self
            .expiry_running
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !*expiry {
            *expiry = true;
            tokio::spawn(watch_expiry(Arc::clone(self), service.clone()));
        }
        SseBody {
            rx,
            keepalive: tokio::time::interval(Duration::from_secs(15)),
        }
    }

    /// Stop every stream (shutdown).
    pub fn close_all(&self) {
        self.subscribers().clear();
    }

    fn has_subscribers(&self) -> bool {
        let mut subs = self.subscribers();
        subs.retain(|tx| !tx.is_closed());
        !subs.is_empty()
    }
}

type TokenKey = (String, String, u64);

/// Events for the tokens in `now` and not in `before` (inserted) and the reverse (removed).
fn token_changes(before: &BTreeMap<TokenKey, ()>, now: &BTreeMap<TokenKey, ()>) -> Vec<Event> {
    let key = |(label, serial, slot_id): &TokenKey| (label.clone(), serial.clone(), *slot_id);
    let mut events = Vec::new();
    for k in now.keys().filter(|k| !before.contains_key(*k)) {
        let (label, serial, slot_id) = key(k);
        events.push(Event::TokenInserted {
            label,
            serial,
            slot_id,
        });
    }
    for k in before.keys().filter(|k| !now.contains_key(*k)) {
        let (label, serial, slot_id) = key(k);
        events.push(Event::TokenRemoved {
            label,
            serial,
            slot_id,
        });
    }
    events
}

/// Poll the token list while anyone listens; stops (and clears the running flag) when the
/// last subscriber left, so an idle daemon does not touch the tokens. With cards followed and
/// pcscd up, only modules that are not PC/SC-based are scanned.
async fn poll_tokens(hub: Arc<EventHub>, service: TokenService) {
    let mut known: Option<BTreeMap<TokenKey, ()>> = None;
    // Whether the last poll left card modules to the follower: when that changes, the next
    // poll only takes stock (the follower reported what happened to card tokens meanwhile).
    let mut last_scope: Option<bool> = None;
    loop {
        {
            let mut running = hub.poller_running.lock().unwrap_or_else(|p| p.into_inner());
            if !hub.has_subscribers() {
                *running = false;
                return;
            }
        }
        let cards = hub.card_scope().filter(|c| c.pcsc_up());
        let scope = cards.is_some();
        let reply = match cards {
            Some(cards) => service.tokens_where(move |m| !cards.is_card_module(&m.path)),
            None => service.tokens(),
        };
        match reply.await {
            Ok(tokens) => {
                let now: BTreeMap<TokenKey, ()> = tokens
                    .into_iter()
                    .map(|t| ((t.label, t.serial, t.slot_id), ()))
                    .collect();
                if let Some(before) = &known
                    && last_scope == Some(scope)
                {
                    for event in token_changes(before, &now) {
                        hub.publish(&event);
                    }
                }
                known = Some(now);
                last_scope = Some(scope);
            }
            Err(e) => tracing::warn!(error = %e, "token poll failed"),
        }
        tokio::time::sleep(hub.poll_interval).await;
    }
}

/// Days before notAfter at which `certificate_expiring` is sent, widest first.
pub const EXPIRY_THRESHOLDS: [i64; 2] = [30, 7];

/// One certificate as the expiry watch sees it.
#[derive(Debug, Clone)]
struct ExpiryCandidate {
    certificate: String,
    subject: String,
    token_label: String,
    token_serial: String,
    not_after: std::time::SystemTime,
}

/// `certificate_expiring` events for certificates within a threshold and not yet announced
/// for it; a certificate first seen inside the 7-day threshold gets one event (7) and the
/// 30-day one is marked as passed. Expired certificates get none (the certificate list says
/// EXPIRED).
fn expiry_events(
    certs: &[ExpiryCandidate],
    now: std::time::SystemTime,
    sent: &mut HashSet<(String, i64)>,
) -> Vec<Event> {
    let mut events = Vec::new();
    for c in certs {
        let Ok(left) = c.not_after.duration_since(now) else {
            continue;
        };
        let days_left = (left.as_secs() / 86_400) as i64;
        // The tightest threshold the certificate is within (days_left < threshold).
        let Some(threshold) = EXPIRY_THRESHOLDS
            .iter()
            .copied()
            .filter(|t| days_left < *t)
            .min()
        else {
            continue;
        };
        if sent.contains(&(c.certificate.clone(), threshold)) {
            continue;
        }
        for t in EXPIRY_THRESHOLDS.iter().filter(|t| **t >= threshold) {
            sent.insert((c.certificate.clone(), *t));
        }
        events.push(Event::CertificateExpiring {
            certificate: c.certificate.clone(),
            subject: c.subject.clone(),
            token_label: c.token_label.clone(),
            token_serial: c.token_serial.clone(),
            not_after: crate::certinfo::rfc3339(c.not_after),
            days_left,
            threshold_days: threshold,
        });
    }
    events
}

/// Check the certificates of the present tokens while anyone listens (a token inserted is
/// seen at the next check); like the token poller it stops with the last subscriber. What was
/// announced is kept for the daemon's run.
async fn watch_expiry(hub: Arc<EventHub>, service: TokenService) {
    loop {
        {
            let mut running = hub.expiry_running.lock().unwrap_or_else(|p| p.into_inner());
            if !hub.has_subscribers() {
                *running = false;
                return;
            }
        }
        match service.certificates().await {
            Ok(entries) => {
                let certs: Vec<ExpiryCandidate> = entries
                    .iter()
                    .map(|e| ExpiryCandidate {
                        certificate: e.info.fingerprint_sha256.clone(),
                        subject: e.info.subject.clone(),
                        token_label: e.token_label.clone(),
                        token_serial: e.token_serial.clone(),
                        not_after: e.info.not_after,
                    })
                    .collect();
                let events = {
                    let mut sent = hub.expiry_sent.lock().unwrap_or_else(|p| p.into_inner());
                    expiry_events(&certs, std::time::SystemTime::now(), &mut sent)
                };
                for event in &events {
                    hub.publish(event);
                }
            }
            Err(e) => tracing::warn!(error = %e, "certificate expiry check failed"),
        }
        tokio::time::sleep(hub.poll_interval).await;
    }
}

/// The body of `GET /v1/events`: frames from the hub plus a keep-alive comment every 15 s.
#[derive(Debug)]
pub struct SseBody {
    rx: mpsc::Receiver<Bytes>,
    keepalive: tokio::time::Interval,
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(b)) => return Poll::Ready(Some(Ok(Frame::data(b)))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        if self.keepalive.poll_tick(cx).is_ready() {
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(
                b": keep-alive\n\n",
            )))));
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(keys: &[(&str, u64)]) -> BTreeMap<TokenKey, ()> {
        keys.iter()
            .map(|(l, s)| ((l.to_string(), format!("SN{s}"), *s), ()))
            .collect()
    }

    #[test]
    fn token_changes_report_insertions_and_removals_as_sse_frames() {
        let events = token_changes(&set(&[("a", 1), ("b", 2)]), &set(&[("b", 2), ("c", 3)]));
        let frames: Vec<String> = events
            .iter()
            .map(|e| String::from_utf8(e.frame().to_vec()).unwrap())
            .collect();
        assert_eq!(frames.len(), 2);
        assert!(
            frames[0].starts_with("event: token_inserted\ndata: {"),
            "{}",
            frames[0]
        );
        assert!(frames[0].contains("\"label\":\"c\""));
        assert!(frames[1].starts_with("event: token_removed\n"));
        assert!(frames[1].contains("\"label\":\"a\"") && frames[1].ends_with("\n\n"));
        assert!(token_changes(&set(&[("a", 1)]), &set(&[("a", 1)])).is_empty());
    }

    #[test]
    fn expiry_events_fire_once_per_threshold_per_certificate() {
        let now = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let day = Duration::from_secs(86_400);
        let cand = |name: &str, after: std::time::SystemTime| ExpiryCandidate {
            certificate: name.to_owned(),
            subject: format!("CN={name}"),
            token_label: "t".to_owned(),
            token_serial: "1".to_owned(),
            not_after: after,
        };
        let certs = vec![
            cand("in5", now + day * 5 + Duration::from_secs(60)),
            cand("in20", now + day * 20 + Duration::from_secs(60)),
            cand("in90", now + day * 90),
            cand("expired", now - day),
        ];
        let mut sent = HashSet::new();
        let first = expiry_events(&certs, now, &mut sent);
        let got: Vec<(String, i64, i64)> = first
            .iter()
            .map(|e| match e {
                Event::CertificateExpiring {
                    certificate,
                    days_left,
                    threshold_days,
                    ..
                } => (certificate.clone(), *days_left, *threshold_days),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(got, vec![("in5".into(), 5, 7), ("in20".into(), 20, 30)]);
        assert!(
            String::from_utf8_lossy(&first[0].frame()).starts_with("event: certificate_expiring\n")
        );
        // Nothing again in the same run.
        assert!(expiry_events(&certs, now, &mut sent).is_empty());
        // The 20-day certificate crosses 7 days later: one more event.
        let later = now + day * 14;
        let again = expiry_events(&certs, later, &mut sent);
        assert_eq!(again.len(), 1);
        assert!(
            matches!(&again[0], Event::CertificateExpiring { certificate, threshold_days: 7, .. } if certificate == "in20")
        );
    }

    #[tokio::test]
    async fn publish_reaches_subscribers_and_drops_those_gone() {
        let hub = EventHub::new(Duration::from_secs(60));
        let (tx, mut rx) = mpsc::channel(4);
        let (gone, gone_rx) = mpsc::channel(4);
        drop(gone_rx);
        hub.subscribers().extend([tx, gone]);
        hub.publish(&Event::JobProgress {
            job: "j".into(),
            done: 1,
            total: 2,
            state: "running".into(),
        });
        let frame = rx.recv().await.unwrap();
        assert!(String::from_utf8_lossy(&frame).contains("\"done\":1"));
        assert_eq!(hub.subscribers().len(), 1);
    }
}
