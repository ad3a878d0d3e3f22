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

impl Cursor {
    /// The start (position 0) of `epoch` for one worker of one rank.
    pub fn new(
        set: &EpisodeSet,
        seed: u64,
        epoch: u64,
        world_size: u32,
        rank: u32,
        num_workers: u32,
        worker: u32,
    ) -> Result<Self> {
        let cursor = Self {
            seed,
            epoch,
            world_size,
            rank,
            worker,
            num_workers,
            position: 0,
            fingerprint: set.fingerprint(),
        };
        cursor.validate(set)?;
        Ok(cursor)
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

    /// This worker's whole list for the cursor's epoch.
    fn full_share(&self, set: &EpisodeSet) -> Result<Vec<EpisodeLen>> {
        self.validate(set)?;
        let assignment = Assignment::new(set, self.world_size, self.seed, self.epoch)?;
        worker_share(assignment.rank(self.rank)?, self.num_workers, self.worker)
    }
}

/// Exactly the episodes of the cursor's worker list for its epoch that have not
/// been served yet: items `position..` of that list.
pub fn remaining(set: &EpisodeSet, cursor: &Cursor) -> Result<Vec<EpisodeLen>> {
    let mut items = cursor.full_share(set)?;
    let len = items.len() as u64;
    if cursor.position > len {
        return Err(PartitionError::PositionOutOfRange {
            position: cursor.position,
            len,
        });
    }
    Ok(items.split_off(cursor.position as usize))
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
            None => cursor
                .full_share(self.set)
                .expect("cursor was validated against this set by `epochs`"),
        };
        Some(EpochShare { cursor, items })
    }
}
