//! Commits that run while the recorder goes on: [`EpisodeWriter::commit_in_background`].
//!
//! A commit waits for two or three syncs (schema/concurrency.md, "Durability and cost per
//! episode"). A recorder that commits in the background starts its next episode at once; the
//! commit runs on a thread of the store's queue (`workers.rs`), exactly as
//! [`EpisodeWriter::commit`] would run it, and the episodes in flight at once share one index
//! transaction (the group commit). Nothing about durability changes: an episode is durable
//! and visible when its commit returns, which its [`PendingCommit`] reports; a process killed
//! before then may lose that episode, never an earlier one, as with a foreground commit.
//!
//! Invariant: every pending commit is reported exactly once. Its slot is filled by the job
//! when the commit returns, or, if the job never gets that far (a panic), by the job's drop,
//! with an error: a waiter never waits for a job that is gone.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::EpisodeWriter;
use crate::error::{OpenError, Result, StorageError};
use crate::ids::EpisodeId;

/// A commit running in the background; [`wait`](Self::wait) for its episode id.
///
/// Dropping it waits for the commit to finish (and discards its result), so that an episode
/// handed to the background is never cut off by its own handle going away; keep it and call
/// [`wait`](Self::wait) to learn whether the commit succeeded. `Send + Sync`: any thread of
/// the process that started it may wait.
#[must_use = "a background commit can fail: wait() for its result"]
pub struct PendingCommit {
    slot: Arc<Slot>,
    /// The process that started the commit: its threads run it, so only it can wait.
    owner: u32,
}

#[derive(Default)]
struct Slot {
    result: Mutex<Option<Result<EpisodeId>>>,
    filled: Condvar,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, Option<Result<EpisodeId>>> {
        self.result.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the result unless one is set already; `result` runs only then.
    fn fill_with(&self, result: impl FnOnce() -> Result<EpisodeId>) {
        let mut slot = self.lock();
        if slot.is_none() {
            *slot = Some(result());
        }
        self.filled.notify_all();
    }

    fn wait(&self) -> Result<EpisodeId> {
        let mut slot = self.lock();
        loop {
            if let Some(result) = slot.as_ref() {
                return result.clone();
            }
            slot = self.filled.wait(slot).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Fills its slot with an error if dropped before the commit reported: the job panicked.
struct Reporter(Arc<Slot>);

impl Drop for Reporter {
    fn drop(&mut self) {
        // Built only when the commit did not report: a commit that did pays no allocation.
        self.0.fill_with(|| {
            Err(StorageError::Panicked {
                during: "committing an episode in the background",
                message: "the commit stopped before it returned".into(),
            }
            .into())
        });
    }
}

impl PendingCommit {
    /// Waits until the commit returned: the episode's id once it is durable and visible, or
    /// the error [`EpisodeWriter::commit`] would have returned (the episode is then not
    /// committed). Every call gives the same result.
    pub fn wait(&self) -> Result<EpisodeId> {
        let here = crate::process::current();
        if here != self.owner {
            return Err(OpenError::ForkedHandle {
                what: "a background commit",
                opened_in: self.owner,
                used_in: here,
            }
            .into());
        }
        self.slot.wait()
    }

    /// Whether the commit has returned ([`wait`](Self::wait) then does not block).
    pub fn is_finished(&self) -> bool {
        self.slot.lock().is_some()
    }

    /// The commit's result once it has returned; `None` while it runs.
    pub fn result(&self) -> Option<Result<EpisodeId>> {
        self.slot.lock().clone()
    }
}

impl Drop for PendingCommit {
    fn drop(&mut self) {
        // In a forked child the parent's threads that would finish it do not exist: nothing
        // to wait for there.
        if crate::process::current() == self.owner {
            let _ = self.slot.wait();
        }
    }
}

impl std::fmt::Debug for PendingCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingCommit")
            .field("result", &self.result())
            .finish()
    }
}

/// Hands `writer`'s commit to the store's queue.
pub(super) fn start(writer: EpisodeWriter) -> Result<PendingCommit> {
    let slot = Arc::new(Slot::default());
    let reporter = Reporter(slot.clone());
    let store = writer.store.clone();
    let job = move || {
        let reporter = reporter;
        let result = writer.commit();
        reporter.0.fill_with(|| result);
    };
    store.recording()?.background().submit(Box::new(job));
    Ok(PendingCommit {
        slot,
        owner: crate::process::current(),
    })
}
