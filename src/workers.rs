//! A bounded queue of jobs, run by threads of this process started on demand.
//!
//! Background commits (`write/background.rs`) run here, so a recorder goes on with its next
//! episode while the last one's syncs are in flight, and the episodes in flight meet in one
//! group commit (`index/commit.rs`). The queue belongs to one process's open store
//! (`open.rs`): a forked child reopens the store, and with it gets a queue of its own; the
//! parent's threads do not exist there and its queue is never used there.
//!
//! Invariants:
//! - at most `limit` jobs are queued or running at once: [`Workers::submit`] waits for room,
//!   so a recorder faster than its disk is slowed to the disk's pace instead of holding an
//!   unbounded number of buffered episodes in memory;
//! - every queued job has a thread to run it (threads are started until there are as many as
//!   jobs in flight, never more than `limit`), so no job waits behind another's sync;
//! - a job that panics frees its place like one that returns (the job itself reports the
//!   panic to whoever waits on it: `write/background.rs`).
//!
//! Threads are detached. They hold only the queue, never the store, and leave once the queue
//! is closed (when the store that owns it is dropped) and empty.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Work handed to a thread of the queue.
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

/// The queue. Dropping it closes it: its threads finish what is queued and leave.
pub(crate) struct Workers {
    shared: Arc<Shared>,
    limit: usize,
    /// The process whose threads these are.
    owner: u32,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when a job is queued, a job ends, or the queue closes.
    changed: Condvar,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    running: usize,
    threads: usize,
    closed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Jobs run outside the lock, so it cannot be poisoned by one; a poisoned state is
        // still consistent (every update is a single assignment).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed.wait(state).unwrap_or_else(|e| e.into_inner())
    }
}

impl Workers {
    /// A queue of at most `limit` jobs in flight (at least 1).
    pub fn new(limit: usize) -> Workers {
        Workers {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                changed: Condvar::new(),
            }),
            limit: limit.max(1),
            owner: crate::process::current(),
        }
    }

    /// Queues `job`, first waiting while `limit` jobs are queued or running. Starts a thread
    /// for it when every thread is taken. When no thread can be started and none exists, the
    /// job runs here, on the caller's thread, before this returns: it is never dropped unrun
    /// (the job reports its own outcome to whoever waits on it).
    pub fn submit(&self, job: Job) {
        let mut state = self.shared.lock();
        while state.queue.len() + state.running >= self.limit {
            state = self.shared.wait(state);
        }
        state.queue.push_back(job);
        if state.threads < state.queue.len() + state.running {
            let shared = self.shared.clone();
            let started = std::thread::Builder::new()
                .name("trajstore-commit".into())
                .spawn(move || work(&shared));
            match started {
                Ok(_) => state.threads += 1,
                Err(_) if state.threads == 0 => {
                    // No thread to run it: it runs now, and reports to its waiter as usual.
                    let job = state.queue.pop_back().expect("queued above");
                    drop(state);
                    run(job);
                    return;
                }
                // The threads there are will get to it.
                Err(_) => {}
            }
        }
        self.shared.changed.notify_all();
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        // In a forked child the queue's lock may have been held by a parent thread at the
        // fork, and its threads are not there to close: leave it alone.
        if crate::process::current() != self.owner {
            return;
        }
        self.shared.lock().closed = true;
        self.shared.changed.notify_all();
    }
}

/// A thread of the queue: runs jobs until the queue is closed and empty.
fn work(shared: &Shared) {
    let mut state = shared.lock();
    loop {
        if let Some(job) = state.queue.pop_front() {
            state.running += 1;
            drop(state);
            run(job);
            state = shared.lock();
            state.running -= 1;
            shared.changed.notify_all();
        } else if state.closed {
            state.threads -= 1;
            return;
        } else {
            state = shared.wait(state);
        }
    }
}

/// Runs `job`, containing a panic (the job reports it to its waiter itself).
fn run(job: Job) {
    let _ = catch_unwind(AssertUnwindSafe(job));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn jobs_in_flight_never_exceed_the_limit() {
        let workers = Workers::new(3);
        let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (done_tx, done_rx) = mpsc::channel();
        for _ in 0..20 {
            let (now, most, done) = (now.clone(), most.clone(), done_tx.clone());
            workers.submit(Box::new(move || {
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(n, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(2));
                now.fetch_sub(1, Ordering::SeqCst);
                done.send(()).unwrap();
            }));
        }
        for _ in 0..20 {
            done_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        }
        assert!(most.load(Ordering::SeqCst) <= 3, "{most:?} jobs at once");
        // Jobs that block each other's progress all got a thread: the three ran together.
        assert_eq!(most.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn jobs_in_flight_each_get_a_thread() {
        // Two jobs that each wait for the other: they finish only if both run at once.
        let workers = Workers::new(2);
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let (done_tx, done_rx) = mpsc::channel();
        for _ in 0..2 {
            let (barrier, done) = (barrier.clone(), done_tx.clone());
            workers.submit(Box::new(move || {
                barrier.wait();
                done.send(()).unwrap();
            }));
        }
        for _ in 0..2 {
            done_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        }
    }

    #[test]
    fn a_panicking_job_frees_its_place() {
        let workers = Workers::new(1);
        workers.submit(Box::new(|| {
            panic!("a job that panics (expected in this test)")
        }));
        let (tx, rx) = mpsc::channel();
        workers.submit(Box::new(move || tx.send(7).unwrap()));
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), 7);
    }

    #[test]
    fn queued_jobs_still_run_after_the_queue_is_dropped() {
        let workers = Workers::new(4);
        let (tx, rx) = mpsc::channel();
        let gate = Arc::new(Mutex::new(()));
        let held = gate.lock().unwrap();
        for i in 0..4 {
            let (tx, gate) = (tx.clone(), gate.clone());
            workers.submit(Box::new(move || {
                drop(gate.lock().unwrap());
                tx.send(i).unwrap();
            }));
        }
        drop(workers);
        drop(held);
        let mut got: Vec<i32> = (0..4)
            .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        got.sort();
        assert_eq!(got, [0, 1, 2, 3]);
    }
}
