//! Worker threads that own PKCS#11 state.
//!
//! A cryptoki `Session` is `Send` but not `Sync`: it must stay on one thread. Each worker
//! thread owns its state (`S`, e.g. one session) and runs jobs sent through a channel;
//! callers get a [`Reply`] they can block on (CLI) or await (daemon) — no PKCS#11 call
//! ever runs on an async runtime's threads. A pool of N threads for one token shares one
//! queue, so the token sees at most N operations at a time (N = 1 for hardware tokens).

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use super::error::TokenError;

type Job<S> = Box<dyn FnOnce(&mut S) + Send>;

/// A pool of threads, each owning an `S`, running jobs from one queue.
pub(crate) struct WorkerPool<S> {
    tx: Mutex<mpsc::Sender<Job<S>>>,
}

impl<S> std::fmt::Debug for WorkerPool<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool").finish_non_exhaustive()
    }
}

impl<S: 'static> WorkerPool<S> {
    /// Start `threads` workers; each builds its own state with `make_state` on its thread.
    pub(crate) fn spawn(
        name: &str,
        threads: usize,
        make_state: impl Fn() -> S + Send + Sync + 'static,
    ) -> Result<Self, TokenError> {
        let (tx, rx) = mpsc::channel::<Job<S>>();
        let rx = Arc::new(Mutex::new(rx));
        let make_state = Arc::new(make_state);
        for i in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            let make_state = Arc::clone(&make_state);
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    let mut state = make_state();
                    loop {
                        // The lock is held only while waiting for the next job, so idle
                        // threads take turns; a poisoned lock means a sibling panicked
                        // while waiting, which cannot corrupt the receiver.
                        let job = {
                            let guard = rx.lock().unwrap_or_else(|p| p.into_inner());
                            guard.recv()
                        };
                        match job {
                            Ok(job) => job(&mut state),
                            Err(_) => break, // pool dropped
                        }
                    }
                })
                .map_err(|e| TokenError::Pkcs11 {
                    function: "spawn worker".to_owned(),
                    rv: e.to_string(),
                })?;
        }
        Ok(WorkerPool { tx: Mutex::new(tx) })
    }

    /// Queue a job; its result comes back through the returned [`Reply`].
    pub(crate) fn submit<R: Send + 'static>(
        &self,
        job: impl FnOnce(&mut S) -> Result<R, TokenError> + Send + 'static,
    ) -> Reply<R> {
        let (tx, rx) = oneshot::channel();
        let boxed: Job<S> = Box::new(move |state: &mut S| {
            // A panic in token code must not kill the worker and hang the caller: the
            // caller sees WorkerGone, the thread keeps serving.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(state)))
                .unwrap_or(Err(TokenError::WorkerGone));
            let _ = tx.send(result); // the caller may have given up waiting
        });
        let sent = self
            .tx
            .lock()
            .map(|tx| tx.send(boxed).is_ok())
            .unwrap_or(false);
        if !sent {
            let (tx, rx) = oneshot::channel();
            let _ = tx.send(Err(TokenError::WorkerGone));
            return Reply(rx);
        }
        Reply(rx)
    }
}

/// The pending result of a job: `.wait()` blocks (outside async code), `.await` does not.
#[derive(Debug)]
pub struct Reply<R>(oneshot::Receiver<Result<R, TokenError>>);

impl<R> Reply<R> {
    /// Block the current thread until the job is done. Must not be called from async code.
    pub fn wait(self) -> Result<R, TokenError> {
        self.0
            .blocking_recv()
            .unwrap_or(Err(TokenError::WorkerGone))
    }

    /// A reply that is already resolved.
    pub(crate) fn ready(result: Result<R, TokenError>) -> Self {
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(result);
        Reply(rx)
    }
}

/// Future returned by awaiting a [`Reply`].
#[derive(Debug)]
pub struct ReplyFuture<R>(oneshot::Receiver<Result<R, TokenError>>);

impl<R> Future for ReplyFuture<R> {
    type Output = Result<R, TokenError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(TokenError::WorkerGone)))
    }
}

impl<R> IntoFuture for Reply<R> {
    type Output = Result<R, TokenError>;
    type IntoFuture = ReplyFuture<R>;
    fn into_future(self) -> Self::IntoFuture {
        ReplyFuture(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn each_worker_keeps_its_own_state() {
        let pool = WorkerPool::spawn("t", 1, || 0u32).unwrap();
        for _ in 0..3 {
            pool.submit(|n: &mut u32| {
                *n += 1;
                Ok(())
            })
            .wait()
            .unwrap();
        }
        assert_eq!(pool.submit(|n: &mut u32| Ok(*n)).wait().unwrap(), 3);
    }

    #[test]
    fn a_panicking_job_reports_worker_gone_and_the_worker_survives() {
        let pool = WorkerPool::spawn("t", 1, || ()).unwrap();
        let r: Result<(), _> = pool.submit(|_: &mut ()| panic!("boom")).wait();
        assert!(matches!(r, Err(TokenError::WorkerGone)));
        assert_eq!(pool.submit(|_: &mut ()| Ok(7)).wait().unwrap(), 7);
    }

    #[test]
    fn two_threads_run_jobs_concurrently() {
        // Job A waits for a signal that only job B sends: with one thread at a time, A
        // would time out.
        let pool = WorkerPool::spawn("t", 2, || ()).unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let a = pool.submit(move |_: &mut ()| {
            rx.recv_timeout(Duration::from_secs(10))
                .map_err(|_| TokenError::WorkerGone)
        });
        let b = pool.submit(move |_: &mut ()| tx.send(()).map_err(|_| TokenError::WorkerGone));
        b.wait().unwrap();
        a.wait().unwrap();
    }

    #[test]
    fn reply_can_be_awaited() {
        let pool = WorkerPool::spawn("t", 1, || ()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let v = rt.block_on(async { pool.submit(|_: &mut ()| Ok(5)).await });
        assert_eq!(v.unwrap(), 5);
    }
}
