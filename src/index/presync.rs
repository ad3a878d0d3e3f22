//! Segment syncs that run beside the index commit, and the ordering that keeps them safe.
//!
//! A commit needs the episode's segment bytes durable before the index transaction that names
//! them can be durable or seen (schema/format.md, invariant 1). redb commits in two phases in
//! the multi-process mode: (1) write the new pages and the inactive commit slot, sync; (2)
//! flip the "god byte" that makes the slot the live one, sync. Nothing names the new pages
//! until the flip is written, and the flip is written only after the first sync returns.
//!
//! So the segment sync need not finish before the transaction *starts*, only before redb's
//! first index sync *returns*. The recorder starts its segment's `fdatasync` on a helper
//! thread ([`SyncSignal`]), queues the episode, and the committing thread installs the
//! batch's signals as a barrier ([`with_barrier`]) around `commit()`; the index's storage
//! backend ([`PreSyncBackend`]) runs its own sync, then waits for every signal of the barrier,
//! and fails the sync (so the commit, before anything is flipped) when a segment sync failed.
//! The two syncs, on two files, run at once: an episode commit costs two sync latencies
//! instead of three (schema/concurrency.md, "Durability and cost per episode").

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::ops::Bound;
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use redb::{BackendError, StorageBackend};

/// The outcome of one segment sync, set once by the thread that ran it, or found by the first
/// thread that waits for it ([`SyncSignal::run_by_waiter`]).
#[derive(Default)]
pub struct SyncSignal {
    state: Mutex<State>,
    done: Condvar,
}

/// The result of a sync, with the error's kind and text (naming the file).
type Outcome = Result<(), (io::ErrorKind, String)>;

/// A wait run by the thread that waits for the signal: a leader's wait for other processes'
/// segment syncs (board.rs), which needs no thread of its own.
type Deferred = Box<dyn FnOnce() -> io::Result<()> + Send>;

#[derive(Default)]
enum State {
    /// Another thread runs the sync and sets the outcome.
    #[default]
    Running,
    /// The first waiter runs it; `&'static str` names what it waits for in an error.
    Deferred(&'static str, Deferred),
    Done(Outcome),
}

impl fmt::Debug for SyncSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncSignal").finish_non_exhaustive()
    }
}

impl SyncSignal {
    /// A signal whose first waiter runs `wait` itself (`what` names it in an error). The index
    /// commit waits for its barrier after its own first sync (module docs): by then other
    /// processes' syncs have mostly returned, so a helper thread per commit would only add a
    /// thread's creation to every round.
    pub fn run_by_waiter(
        what: &'static str,
        wait: impl FnOnce() -> io::Result<()> + Send + 'static,
    ) -> SyncSignal {
        SyncSignal {
            state: Mutex::new(State::Deferred(what, Box::new(wait))),
            done: Condvar::new(),
        }
    }

    /// Records the sync's result (`what` names the file for the error) and wakes the waiters.
    pub fn set(&self, what: &str, result: &io::Result<()>) {
        let value = match result {
            Ok(()) => Ok(()),
            Err(e) => Err((e.kind(), format!("syncing {what}: {e}"))),
        };
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = State::Done(value);
        self.done.notify_all();
    }

    /// Waits until the sync finished; its error, naming the file, when it failed.
    pub fn wait(&self) -> io::Result<()> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            match &*state {
                State::Done(Ok(())) => return Ok(()),
                State::Done(Err((kind, message))) => {
                    return Err(io::Error::new(*kind, message.clone()));
                }
                State::Deferred(..) => {
                    let State::Deferred(what, wait) = std::mem::take(&mut *state) else {
                        unreachable!("matched just above")
                    };
                    drop(state);
                    self.set(what, &wait());
                    state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                }
                State::Running => {
                    state = self
                        .done
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner)
                }
            }
        }
    }
}

thread_local! {
    /// The segment syncs the index commit running on this thread must wait for.
    static BARRIER: RefCell<Vec<Arc<SyncSignal>>> = const { RefCell::new(Vec::new()) };
}

/// Runs `commit` (one index transaction's commit) with `signals` as the barrier of every
/// index sync it makes on this thread. Returns `commit`'s result and whether the barrier was
/// waited for by an index sync.
pub fn with_barrier<R>(signals: Vec<Arc<SyncSignal>>, commit: impl FnOnce() -> R) -> (R, bool) {
    struct Clear;
    impl Drop for Clear {
        fn drop(&mut self) {
            BARRIER.with(|b| b.borrow_mut().clear());
        }
    }
    let had = !signals.is_empty();
    BARRIER.with(|b| *b.borrow_mut() = signals);
    let _clear = Clear;
    let result = commit();
    let left = BARRIER.with(|b| !b.borrow().is_empty());
    (result, had && !left)
}

/// Waits for every signal of this thread's barrier (and empties it); the first failure.
fn wait_barrier() -> io::Result<()> {
    let signals = BARRIER.with(|b| std::mem::take(&mut *b.borrow_mut()));
    let mut first = Ok(());
    for signal in signals {
        let result = signal.wait();
        if first.is_ok() {
            first = result;
        }
    }
    first
}

/// An index storage backend whose syncs also wait for the barrier of the committing thread
/// (module docs). Every other call goes to `inner` unchanged, locks included.
#[derive(Debug)]
pub struct PreSyncBackend<B>(pub B);

impl<B: StorageBackend> StorageBackend for PreSyncBackend<B> {
    fn len(&self) -> Result<u64, io::Error> {
        self.0.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.0.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.0.set_len(len)
    }

    /// The index file's sync, then the segment syncs it must not return before: the commit
    /// slot this sync made durable is flipped live only after it returns.
    fn sync_data(&self) -> Result<(), io::Error> {
        let own = self.0.sync_data();
        let segments = wait_barrier();
        own.and(segments)
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.0.write(offset, data)
    }

    fn close(&self) -> Result<(), io::Error> {
        self.0.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.0.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.0.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.0.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.0.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.0.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.0.query_lock_range(start, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_run_by_its_waiter_runs_once_on_the_waiting_thread_and_names_its_failure() {
        let caller = std::thread::current().id();
        let ok = SyncSignal::run_by_waiter("nothing", move || {
            assert_eq!(std::thread::current().id(), caller);
            Ok(())
        });
        ok.wait().unwrap();
        ok.wait().unwrap();
        let failed = SyncSignal::run_by_waiter("other processes' segments", || {
            Err(io::Error::other("disk gone"))
        });
        let first = failed.wait().unwrap_err().to_string();
        assert_eq!(first, "syncing other processes' segments: disk gone");
        assert_eq!(failed.wait().unwrap_err().to_string(), first, "kept");
    }
}
