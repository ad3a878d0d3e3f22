//! Where a worker stands: resume mid-epoch, and the stream of epochs from a cursor.

use serde::{Deserialize, Serialize};

use super::{Assignment, EpisodeLen, EpisodeSet, PartitionError, Result, worker_share};

/// Where one worker of one rank stands in the stream: enough to recompute its
/// list for `epoch` and skip the `position` episodes already served.
///
/// Serializable so it can be stored in a training checkpoint. Restoring it
/// against an episode set with a different [`EpisodeSet::fingerprint`] is
/// refused rather than silently serving different data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Cursor {
    pub seed: u64,
    pub epoch: u64,
    pub world_size: u32,
    pub rank: u32,
    pub worker: u32,
    pub num_workers: u32,
    /// Episodes of this worker's list for `epoch` already served.
    pub position: u64,
    /// [`EpisodeSet::fingerprint`] of the set the cursor belongs to.
    pub fingerprint: u64,
}

/// Which share of an episode set a worker serves: rank `rank` of `world_size`, and within
/// that rank, DataLoader worker `worker` of `num_workers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Share {
    pub world_size: u32,
    pub rank: u32,
    pub num_workers: u32,
    pub worker: u32,
}

impl Share {
    /// Rank `rank` of `world_size`, reading on its own (one worker).
    pub fn rank(rank: u32, world_size: u32) -> Share {
        Share {
            world_size,
            rank,
            num_workers: 1,
            worker: 0,
        }
    }

    /// The same rank's worker `worker` of `num_workers`.
    pub fn worker(self, worker: u32, num_workers: u32) -> Share {
        Share {
            num_workers,
            worker,
            ..self
        }
    }
}

impl Cursor {
    /// The start of epoch 0 (seed 0) for `share` of `set`; checked against the set. Choose the
    /// seed and epoch with [`Cursor::seed`] and [`Cursor::epoch`]:
    /// `Cursor::start(&set, Share::rank(1, 2))?.seed(7).epoch(3)`.
    pub fn start(set: &EpisodeSet, share: Share) -> Result<Self> {
        let cursor = Self::unchecked(set, share);
        cursor.validate(set)?;
        Ok(cursor)
    }

    /// [`Cursor::start`] without the check, for callers that check through [`remaining`].
    pub(crate) fn unchecked(set: &EpisodeSet, share: Share) -> Self {
        Self {
            seed: 0,
            epoch: 0,
            world_size: share.world_size,
            rank: share.rank,
            worker: share.worker,
            num_workers: share.num_workers,
            position: 0,
            fingerprint: set.fingerprint(),
        }
    }

    /// The same cursor with another seed (the serving order's seed, shared by every rank).
    pub fn seed(self, seed: u64) -> Self {
        Self { seed, ..self }
    }

    /// The start (position 0) of `epoch`.
    pub fn epoch(self, epoch: u64) -> Self {
        Self {
            epoch,
            position: 0,
            ..self
        }
    }

    /// Which share of the set the cursor walks.
    pub fn share(&self) -> Share {
        Share {
            world_size: self.world_size,
            rank: self.rank,
            num_workers: self.num_workers,
            worker: self.worker,
        }
    }

    /// The same cursor after serving `served` more episodes. Saturates rather
    /// than wrapping; a position past the end is refused when restoring.
    pub fn advanced(self, served: u64) -> Self {
        Self {
            position: self.position.saturating_add(served),
            ..self
        }
    }

    /// The start of the next epoch, or `None` after epoch `u64::MAX`.
    pub fn next_epoch(self) -> Option<Self> {
        Some(Self {
            epoch: self.epoch.checked_add(1)?,
            position: 0,
            ..self
        })
    }

    /// Checks everything except `position` (which needs the share's length).
    fn validate(&self, set: &EpisodeSet) -> Result<()> {
        if self.fingerprint != set.fingerprint() {
            return Err(PartitionError::FingerprintMismatch {
                cursor: self.fingerprint,
                current: set.fingerprint(),
            });
        }
        if self.world_size == 0 {
            return Err(PartitionError::ZeroWorldSize);
        }
        if self.rank >= self.world_size {
            return Err(PartitionError::RankOutOfRange {
                rank: self.rank,
                world_size: self.world_size,
            });
        }
        if self.num_workers == 0 {
            return Err(PartitionError::ZeroWorkers);
        }
        if self.worker >= self.num_workers {
            return Err(PartitionError::WorkerOutOfRange {
                worker: self.worker,
                num_workers: self.num_workers,
            });
        }
        Ok(())
    }

    /// The assignment of the whole set for the cursor's epoch, and this worker's whole list
    /// in it.
    fn full_share(&self, set: &EpisodeSet) -> Result<(Assignment, Vec<EpisodeLen>)> {
        self.validate(set)?;
        let assignment = Assignment::new(set, self.world_size, self.seed, self.epoch)?;
        let items = worker_share(assignment.rank(self.rank)?, self.num_workers, self.worker)?;
        Ok((assignment, items))
    }
}

/// Exactly the episodes of the cursor's worker list for its epoch that have not
/// been served yet: items `position..` of that list.
pub fn remaining(set: &EpisodeSet, cursor: &Cursor) -> Result<Vec<EpisodeLen>> {
    Ok(remaining_in(set, cursor)?.1)
}

/// [`remaining`], with the epoch's assignment of the whole set it was cut from (computed
/// once for both).
pub fn remaining_in(set: &EpisodeSet, cursor: &Cursor) -> Result<(Assignment, Vec<EpisodeLen>)> {
    let (assignment, mut items) = cursor.full_share(set)?;
    let len = items.len() as u64;
    if cursor.position > len {
        return Err(PartitionError::PositionOutOfRange {
            position: cursor.position,
            len,
        });
    }
    Ok((assignment, items.split_off(cursor.position as usize)))
}

/// One epoch's (remaining) list for one worker, as yielded by [`epochs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochShare {
    /// The cursor pointing at `items[0]`.
    pub cursor: Cursor,
    /// The episodes still to serve in this epoch, in order. May be empty.
    pub items: Vec<EpisodeLen>,
}

impl EpochShare {
    /// The cursor to checkpoint after serving the first `served` of `items`.
    pub fn cursor_after(&self, served: u64) -> Cursor {
        self.cursor.advanced(served)
    }
}

/// Walks epochs `start.epoch, start.epoch + 1, ...` for one worker, beginning
/// at `start.position` in the first epoch and at 0 in every later one. Epochs
/// whose list is empty are yielded (with no items), not skipped.
pub fn epochs(set: &EpisodeSet, start: Cursor) -> Result<Epochs<'_>> {
    let first_items = remaining(set, &start)?;
    Ok(Epochs {
        set,
        first_items: Some(first_items),
        next: Some(start),
    })
}

/// Iterator returned by [`epochs`]; computes each epoch's list on demand.
#[derive(Debug, Clone)]
pub struct Epochs<'a> {
    set: &'a EpisodeSet,
    /// The already computed remainder of the first epoch.
    first_items: Option<Vec<EpisodeLen>>,
    next: Option<Cursor>,
}

impl Iterator for Epochs<'_> {
    type Item = EpochShare;

    fn next(&mut self) -> Option<EpochShare> {
        let cursor = self.next?;
        self.next = cursor.next_epoch();
        let items = match self.first_items.take() {
            Some(items) => items,
            None => {
                cursor
                    .full_share(self.set)
                    .expect("cursor was validated against this set by `epochs`")
                    .1
            }
        };
        Some(EpochShare { cursor, items })
    }
}
