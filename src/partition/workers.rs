//! DataLoader workers: a rank's share split the same greedy way, keeping its serving order.

use std::cmp::Reverse;

use super::greedy::greedy_fill;
use super::{EpisodeLen, PartitionError, RankShare, Result, size_class};

/// Splits a rank's share across `num_workers` DataLoader workers, balanced by
/// steps. Returns one list per worker, each in the rank's serving order.
///
/// Greedy list scheduling again, with no extra randomness: the serving order is
/// stable-sorted by descending [`size_class`] (so ties keep the already random
/// serving order) and equally loaded workers are taken lowest index first.
pub fn worker_split(share: &RankShare, num_workers: u32) -> Result<Vec<Vec<EpisodeLen>>> {
    if num_workers == 0 {
        return Err(PartitionError::ZeroWorkers);
    }
    if num_workers == 1 {
        // One worker takes the whole share in its serving order: nothing to sort or fill.
        return Ok(vec![share.episodes.clone()]);
    }
    Ok(split(share, num_workers))
}

/// §4 over `num_workers` bins.
pub(super) fn split(share: &RankShare, num_workers: u32) -> Vec<Vec<EpisodeLen>> {
    let episodes = &share.episodes;
    let mut order: Vec<usize> = (0..episodes.len()).collect();
    order.sort_by_key(|&i| Reverse(size_class(episodes[i].steps)));
    let tie_order: Vec<u32> = (0..num_workers).collect();
    let (worker_of, _) = greedy_fill(
        order.iter().map(|&i| (i, episodes[i].steps)),
        episodes.len(),
        &tie_order,
    );
    let mut workers = vec![Vec::new(); num_workers as usize];
    for (episode, &worker) in episodes.iter().zip(&worker_of) {
        workers[worker as usize].push(*episode);
    }
    workers
}

/// One worker's list from [`worker_split`], in serving order.
pub fn worker_share(share: &RankShare, num_workers: u32, worker: u32) -> Result<Vec<EpisodeLen>> {
    if num_workers > 0 && worker >= num_workers {
        return Err(PartitionError::WorkerOutOfRange {
            worker,
            num_workers,
        });
    }
    let mut workers = worker_split(share, num_workers)?;
    Ok(workers.swap_remove(worker as usize))
}
