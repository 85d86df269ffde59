//! Server-Sent Events: token inserted/removed (the token service is polled while anyone
//! listens) and job progress, pushed to every subscriber of `GET /v1/events`.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::token::TokenService;

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
}

impl Event {
    fn name(&self) -> &'static str {
        match self {
            Event::TokenInserted { .. } => "token_inserted",
            Event::TokenRemoved { .. } => "token_removed",
            Event::JobProgress { .. } => "job_progress",
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
}

/// Per-subscriber queue length; a subscriber that does not read is dropped.
const QUEUE: usize = 64;

impl EventHub {
    pub fn new(poll_interval: Duration) -> Arc<Self> {
        Arc::new(EventHub {
            subscribers: Mutex::new(Vec::new()),
            poller_running: Mutex::new(false),
            poll_interval,
        })
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

/// Poll the token list while anyone listens; stops (and clears the running flag) when the
/// last subscriber left, so an idle daemon does not touch the tokens.
async fn poll_tokens(hub: Arc<EventHub>, service: TokenService) {
    let mut known: Option<BTreeMap<TokenKey, ()>> = None;
    loop {
        {
            let mut running = hub.poller_running.lock().unwrap_or_else(|p| p.into_inner());
            if !hub.has_subscribers() {
                *running = false;
                return;
            }
        }
        match service.tokens().await {
            Ok(tokens) => {
                let now: BTreeMap<TokenKey, ()> = tokens
                    .into_iter()
                    .map(|t| ((t.label, t.serial, t.slot_id), ()))
                    .collect();
                if let Some(before) = &known {
                    for (label, serial, slot_id) in now.keys().filter(|k| !before.contains_key(*k))
                    {
                        hub.publish(&Event::TokenInserted {
                            label: label.clone(),
                            serial: serial.clone(),
                            slot_id: *slot_id,
                        });
                    }
                    for (label, serial, slot_id) in before.keys().filter(|k| !now.contains_key(*k))
                    {
                        hub.publish(&Event::TokenRemoved {
                            label: label.clone(),
                            serial: serial.clone(),
                            slot_id: *slot_id,
                        });
                    }
                }
                known = Some(now);
            }
            Err(e) => tracing::warn!(error = %e, "token poll failed"),
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
