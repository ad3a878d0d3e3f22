//! Group commit: episodes that finish together share one durable index transaction.
//!
//! A committing thread queues its episode; if no thread is committing, it becomes the leader,
//! takes everything queued and commits it in one transaction. Others wait for the leader and
//! find their result, or lead the next batch. So a recorder waits for at most the batch in
//! flight plus the batch holding its own episode, and one sync covers many episodes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use crate::error::{Error, Result};
use crate::index::{Index, PendingEpisode};

#[derive(Default)]
struct Queue {
    waiting: Vec<(u64, PendingEpisode)>,
    leader_active: bool,
    next_ticket: u64,
    done: HashMap<u64, Result<u64, Arc<Error>>>,
}

/// The commit queue of one process.
#[derive(Default)]
pub struct GroupCommit {
    queue: Mutex<Queue>,
    wake: Condvar,
    transactions: AtomicU64,
    episodes: AtomicU64,
}

/// Counters of a process's commits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Durable index transactions that committed episodes.
    pub transactions: u64,
    /// Episodes they committed.
    pub episodes: u64,
}

impl GroupCommit {
    /// Indexes one episode durably, possibly together with others; returns its id.
    pub fn commit(&self, index: &Index, episode: PendingEpisode) -> Result<u64> {
        let mut q = self.queue.lock().expect("commit queue");
        let ticket = q.next_ticket;
        q.next_ticket += 1;
        q.waiting.push((ticket, episode));
        loop {
            if let Some(result) = q.done.remove(&ticket) {
                return result.map_err(Error::Shared);
            }
            if q.leader_active {
                q = self.wake.wait(q).expect("commit queue");
                continue;
            }
            q.leader_active = true;
            let batch = std::mem::take(&mut q.waiting);
            drop(q);
            let (tickets, pending): (Vec<u64>, Vec<PendingEpisode>) = batch.into_iter().unzip();
            let result = crate::index::guarded(index.path(), || index.commit(&pending));
            q = self.queue.lock().expect("commit queue");
            match result {
                Ok(ids) => {
                    self.transactions.fetch_add(1, Ordering::Relaxed);
                    self.episodes.fetch_add(ids.len() as u64, Ordering::Relaxed);
                    q.done
                        .extend(tickets.into_iter().zip(ids.into_iter().map(Ok)));
                }
                Err(e) => {
                    let e = Arc::new(e);
                    q.done
                        .extend(tickets.into_iter().map(|t| (t, Err(e.clone()))));
                }
            }
            q.leader_active = false;
            self.wake.notify_all();
        }
    }

    pub fn stats(&self) -> CommitStats {
        CommitStats {
            transactions: self.transactions.load(Ordering::Relaxed),
            episodes: self.episodes.load(Ordering::Relaxed),
        }
    }
}
