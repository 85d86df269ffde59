//! Worker threads that own PKCS#11 state.
//!
//! A cryptoki `Session` is `Send` but not `Sync`: it must stay on one thread. Each worker
//! thread owns its state (`S`, e.g. one session) and runs jobs sent through a channel;
//! callers get a [`Reply`] they can block on (CLI) or await (daemon) — no PKCS#11 call
//! ever runs on an async runtime's threads. A pool of N threads for one token shares one
//! queue, so the token sees at most N operations at a time (N = 1 for hardware tokens).

use std::collections::VecDeque;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use super::error::TokenError;

type Job<S> = Box<dyn FnOnce(&mut S) + Send>;

/// How long a worker that ran out of jobs keeps looking (yielding the CPU between looks)
/// before it parks.
const SPIN: std::time::Duration = std::time::Duration::from_micros(200);

/// The jobs waiting for a worker, shared by the pool's threads and its submitters.
///
/// A plain deque under a mutex, with a count of parked workers: a submitter only pays for a
/// wake-up (a futex syscall, and on a VM an inter-processor interrupt) when some worker is
/// actually asleep. Under load the workers never park — each takes the next job as soon
/// as it finishes one — and handing over a job costs one uncontended lock.
struct Queue<S> {
    state: Mutex<QueueState<S>>,
    wake: Condvar,
}

struct QueueState<S> {
    jobs: VecDeque<Job<S>>,
    /// Workers parked on `wake`.
    idle: usize,
    /// Threads in the pool.
    workers: usize,
    /// The pool was dropped: workers finish the queued jobs, then exit.
    closed: bool,
}

impl<S> Queue<S> {
    fn lock(&self) -> MutexGuard<'_, QueueState<S>> {
        // Jobs run outside the lock and every update under it is a single push/pop or
        // counter change, so a poisoned lock (a panic elsewhere) leaves consistent data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next job, parking while there is none; `None` once closed and drained.
    fn next(&self) -> Option<Job<S>> {
        // The clock is read only once the queue is found empty: a busy worker never needs it.
        let mut spin_until = None;
        let within = |until: &mut Option<std::time::Instant>| {
            let now = std::time::Instant::now();
            now < *until.get_or_insert(now + SPIN)
        };
        let mut state = self.lock();
        loop {
            if let Some(job) = state.jobs.pop_front() {
                return Some(job);
            }
            if state.closed {
                return None;
            }
            // Only the last worker awake looks on: under load a parked one is woken by the
            // next submit anyway, and two looking would take CPU from the rest of the process.
            if state.idle + 1 >= state.workers && within(&mut spin_until) {
                drop(state);
                std::thread::yield_now();
                state = self.lock();
                continue;
            }
            state.idle += 1;
            state = self.wake.wait(state).unwrap_or_else(|p| p.into_inner());
            state.idle -= 1;
        }
    }

    /// Queue a job; gives it back if the pool was shut down and no worker would run it.
    fn push(&self, job: Job<S>) -> Result<(), Job<S>> {
        let wake = {
            let mut state = self.lock();
            if state.closed {
                return Err(job);
            }
            state.jobs.push_back(job);
            state.idle > 0
        };
        if wake {
            self.wake.notify_one();
        }
        Ok(())
    }

    fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_all();
    }
}

/// A pool of threads, each owning an `S`, running jobs from one queue.
pub(crate) struct WorkerPool<S> {
    queue: Arc<Queue<S>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl<S> std::fmt::Debug for WorkerPool<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool").finish_non_exhaustive()
    }
}

impl<S> Drop for WorkerPool<S> {
    fn drop(&mut self) {
        // Jobs already queued still run (callers may be waiting on their replies); then
        // the threads end and drop their state (closing their sessions).
        self.queue.close();
    }
}

impl<S: 'static> WorkerPool<S> {
    /// Start `threads` workers; each builds its own state with `make_state` on its thread.
    pub(crate) fn spawn(
        name: &str,
        threads: usize,
        make_state: impl Fn() -> S + Send + Sync + 'static,
    ) -> Result<Self, TokenError> {
        let queue = Arc::new(Queue {
            state: Mutex::new(QueueState {
                jobs: VecDeque::new(),
                idle: 0,
                workers: threads.max(1),
                closed: false,
            }),
            wake: Condvar::new(),
        });
        let pool = WorkerPool {
            queue: Arc::clone(&queue),
            threads: Mutex::new(Vec::new()),
        };
        let make_state = Arc::new(make_state);
        for i in 0..threads.max(1) {
            let queue = Arc::clone(&queue);
            let make_state = Arc::clone(&make_state);
            let thread = std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    let mut state = make_state();
                    while let Some(job) = queue.next() {
                        job(&mut state);
                    }
                })
                .map_err(|e| TokenError::Pkcs11 {
                    function: "spawn worker".to_owned(),
                    rv: e.to_string(),
                })?;
            pool.threads
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(thread);
        }
        Ok(pool)
    }

    /// Stop taking jobs, let the workers finish the queued ones, and wait until every
    /// thread has ended and dropped its state (closing its session). Later submissions
    /// get [`TokenError::WorkerGone`].
    pub(crate) fn shutdown(&self) {
        self.queue.close();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        let me = std::thread::current().id();
        for thread in threads {
            // A job that shuts its own pool down cannot wait for itself.
            if thread.thread().id() != me {
                let _ = thread.join(); // a worker's panic was already reported to its caller
            }
        }
    }

    /// Queue a job; its result comes back through the returned [`Reply`].
    pub(crate) fn submit<R: Send + 'static>(
        &self,
        job: impl FnOnce(&mut S) -> Result<R, TokenError> + Send + 'static,
    ) -> Reply<R> {
        let (tx, rx) = oneshot::channel();
        let pushed = self.queue.push(Box::new(move |state: &mut S| {
            // A panic in token code must not kill the worker and hang the caller: the
            // caller sees WorkerGone, the thread keeps serving.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(state)))
                .unwrap_or(Err(TokenError::WorkerGone));
            let _ = tx.send(result); // the caller may have given up waiting
        }));
        if let Err(job) = pushed {
            // The job's sender goes with it, so the caller reads WorkerGone at once.
            drop(job);
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
    fn jobs_queued_before_the_pool_is_dropped_still_run() {
        let pool = WorkerPool::spawn("t", 1, || ()).unwrap();
        let replies: Vec<_> = (0..5)
            .map(|i| pool.submit(move |_: &mut ()| Ok(i)))
            .collect();
        drop(pool);
        let got: Vec<i32> = replies.into_iter().map(|r| r.wait().unwrap()).collect();
        assert_eq!(got, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn shutdown_waits_for_the_workers_to_drop_their_state_and_refuses_later_jobs() {
        struct Flag(Arc<std::sync::atomic::AtomicBool>);
        impl Drop for Flag {
            fn drop(&mut self) {
                // Slow teardown, like closing a session on a slow token.
                std::thread::sleep(Duration::from_millis(50));
                self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&dropped);
        let pool = WorkerPool::spawn("t", 2, move || Flag(Arc::clone(&flag))).unwrap();
        let queued = pool.submit(|_: &mut Flag| Ok(1));
        pool.shutdown();
        assert!(dropped.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(queued.wait().unwrap(), 1);
        let late = pool.submit(|_: &mut Flag| Ok(2)).wait();
        assert!(matches!(late, Err(TokenError::WorkerGone)));
    }

    #[test]
    fn many_jobs_from_many_threads_each_get_their_own_answer() {
        let pool = Arc::new(WorkerPool::spawn("t", 2, || ()).unwrap());
        let clients: Vec<_> = (0..4)
            .map(|c| {
                let pool = Arc::clone(&pool);
                std::thread::spawn(move || {
                    let replies: Vec<_> = (0..500)
                        .map(|i| pool.submit(move |_: &mut ()| Ok(c * 1000 + i)))
                        .collect();
                    for (i, r) in replies.into_iter().enumerate() {
                        assert_eq!(r.wait().unwrap(), c * 1000 + i);
                    }
                })
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
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
