//! Long operations (opening bids) run as jobs: `POST /v1/open` answers at once with a job id;
//! progress goes to `GET /v1/jobs/{id}` and as `job_progress` events.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rand_core::{OsRng, RngCore};
use serde::Serialize;

use super::error::ApiError;
use super::events::{Event, EventHub};
use crate::bids::Progress;
use crate::protocol::ErrorCode;

/// What a job's client sees.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    pub id: String,
    /// running, done, failed
    pub state: &'static str,
    pub files_done: u64,
    pub files_total: u64,
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// The result (done): for open, the opening run with a download id per opened bid.
    pub result: Option<serde_json::Value>,
    /// Why the job failed as a whole (e.g. a wrong PIN before any bid).
    pub error: Option<serde_json::Value>,
}

/// One job's shared state; also the [`Progress`] observer the batch reports to.
#[derive(Debug)]
pub struct Job {
    id: String,
    owner: String,
    files_done: AtomicU64,
    files_total: AtomicU64,
    bytes_done: AtomicU64,
    bytes_total: AtomicU64,
    outcome: Mutex<Option<Result<serde_json::Value, serde_json::Value>>>,
    events: Arc<EventHub>,
}

impl Job {
    pub fn id(&self) -> &str {
        &self.id
    }

    fn view(&self) -> JobView {
        let outcome = self
            .outcome
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let (state, result, error) = match outcome {
            None => ("running", None, None),
            Some(Ok(v)) => ("done", Some(v), None),
            Some(Err(e)) => ("failed", None, Some(e)),
        };
        JobView {
            id: self.id.clone(),
            state,
            files_done: self.files_done.load(Ordering::Relaxed),
            files_total: self.files_total.load(Ordering::Relaxed),
            bytes_done: self.bytes_done.load(Ordering::Relaxed),
            bytes_total: self.bytes_total.load(Ordering::Relaxed),
            result,
            error,
        }
    }

    fn publish(&self) {
        let v = self.view();
        self.events.publish(&Event::JobProgress {
            job: v.id,
            done: v.files_done,
            total: v.files_total,
            state: v.state.to_owned(),
        });
    }

    /// The job ended.
    pub fn finish(&self, outcome: Result<serde_json::Value, serde_json::Value>) {
        *self.outcome.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
        self.publish();
    }
}

impl Progress for Job {
    fn begin(&self, files: usize, bytes: u64) {
        self.files_total.store(files as u64, Ordering::Relaxed);
        self.bytes_total.store(bytes, Ordering::Relaxed);
        self.publish();
    }
    fn advance(&self, bytes: u64) {
        self.bytes_done.fetch_add(bytes, Ordering::Relaxed);
    }
    fn file_done(&self, _file: &Path, _ok: bool) {
        self.files_done.fetch_add(1, Ordering::Relaxed);
        self.publish();
    }
}

/// Every job of this daemon run.
#[derive(Debug)]
pub struct Jobs {
    jobs: Mutex<HashMap<String, Arc<Job>>>,
    events: Arc<EventHub>,
}

impl Jobs {
    pub fn new(events: Arc<EventHub>) -> Self {
        Jobs {
            jobs: Mutex::new(HashMap::new()),
            events,
        }
    }

    pub fn create(&self, owner: &str) -> Arc<Job> {
        let mut raw = [0u8; 16];
        OsRng.fill_bytes(&mut raw);
        let job = Arc::new(Job {
            id: hex::encode(raw),
            owner: owner.to_owned(),
            files_done: AtomicU64::new(0),
            files_total: AtomicU64::new(0),
            bytes_done: AtomicU64::new(0),
            bytes_total: AtomicU64::new(0),
            outcome: Mutex::new(None),
            events: Arc::clone(&self.events),
        });
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(job.id.clone(), Arc::clone(&job));
        job
    }

    pub fn view(&self, id: &str, owner: &str) -> Result<JobView, ApiError> {
        match self.jobs.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
            Some(j) if j.owner == owner => Ok(j.view()),
            _ => Err(ApiError::new(ErrorCode::NotFound, format!("no job {id}"))),
        }
    }
}
