//! Ranks: episodes stay whole and are spread by step count (module docs of `partition`).

use super::greedy::greedy_fill;
use super::rng::SplitMix64;
use super::{
    EpisodeLen, EpisodeSet, PURPOSE_EPISODE_ORDER, PURPOSE_RANK_PRIORITY, PURPOSE_SERVE_ORDER,
    PartitionError, Result, size_class,
};

/// What one rank serves in one epoch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RankShare {
    /// The rank's episodes in serving order.
    pub episodes: Vec<EpisodeLen>,
    /// Sum of `steps` over `episodes`.
    pub steps: u64,
}

impl RankShare {
    /// Episode ids in serving order.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.episodes.iter().map(|e| e.id)
    }

    pub fn len(&self) -> usize {
        self.episodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.episodes.is_empty()
    }
}

/// The split of an [`EpisodeSet`] across all ranks for one `(seed, epoch)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    seed: u64,
    epoch: u64,
    fingerprint: u64,
    ranks: Vec<RankShare>,
}

/// Convenience for [`Assignment::new`] on an unvalidated slice.
pub fn assign(
    episodes: &[EpisodeLen],
    world_size: u32,
    seed: u64,
    epoch: u64,
) -> Result<Assignment> {
    let set = EpisodeSet::new(episodes)?;
    Assignment::new(&set, world_size, seed, epoch)
}

impl Assignment {
    /// Assigns every episode of `set` to exactly one of `world_size` ranks and
    /// fixes each rank's serving order (see the module docs for the algorithm).
    pub fn new(set: &EpisodeSet, world_size: u32, seed: u64, epoch: u64) -> Result<Self> {
        if world_size == 0 {
            return Err(PartitionError::ZeroWorldSize);
        }
        let mut ranks = if world_size == 1 {
            one_rank(set)
        } else {
            place(set, world_size, seed, epoch)
        };
        for (rank, share) in ranks.iter_mut().enumerate() {
            SplitMix64::derived(seed, &[PURPOSE_SERVE_ORDER, epoch, rank as u64])
                .shuffle(&mut share.episodes);
        }
        Ok(Self {
            seed,
            epoch,
            fingerprint: set.fingerprint(),
            ranks,
        })
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Fingerprint of the episode set this assignment was computed from.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    pub fn world_size(&self) -> u32 {
        self.ranks.len() as u32
    }

    /// All shares, indexed by rank.
    pub fn ranks(&self) -> &[RankShare] {
        &self.ranks
    }

    /// The share of one rank.
    pub fn rank(&self, rank: u32) -> Result<&RankShare> {
        self.ranks
            .get(rank as usize)
            .ok_or(PartitionError::RankOutOfRange {
                rank,
                world_size: self.world_size(),
            })
    }

    /// `max_steps / min_steps` over ranks: 1.0 is perfect balance. A rank with
    /// no steps makes it infinite (or 1.0 when every rank has none).
    pub fn imbalance(&self) -> f64 {
        let (min, max) = self.min_max_steps();
        match (min, max) {
            (0, 0) => 1.0,
            (0, _) => f64::INFINITY,
            _ => max as f64 / min as f64,
        }
    }

    /// `(max_steps - min_steps) / mean_steps` over ranks: 0.0 is perfect
    /// balance; 0.0 as well when there are no steps at all.
    pub fn relative_imbalance(&self) -> f64 {
        let (min, max) = self.min_max_steps();
        let total: u64 = self.ranks.iter().map(|r| r.steps).sum();
        if total == 0 {
            return 0.0;
        }
        let mean = total as f64 / self.ranks.len() as f64;
        (max - min) as f64 / mean
    }

    fn min_max_steps(&self) -> (u64, u64) {
        let steps = self.ranks.iter().map(|r| r.steps);
        let min = steps.clone().min().unwrap_or(0);
        let max = steps.max().unwrap_or(0);
        (min, max)
    }
}

/// §3.1-§3.3: every rank's episodes, in id order, and load.
pub(super) fn place(set: &EpisodeSet, world_size: u32, seed: u64, epoch: u64) -> Vec<RankShare> {
    let episodes = set.episodes();
    let order = placement_order(set, seed, epoch);
    let tie_order = rank_tie_order(world_size, seed, epoch);
    let (rank_of, loads) = greedy_fill(order, episodes.len(), &tie_order);
    let mut sizes = vec![0usize; loads.len()];
    for &rank in &rank_of {
        sizes[rank as usize] += 1;
    }
    let mut ranks: Vec<RankShare> = loads
        .into_iter()
        .zip(sizes)
        .map(|(steps, size)| RankShare {
            episodes: Vec::with_capacity(size),
            steps,
        })
        .collect();
    // The set is in id order, so each rank's episodes arrive sorted by id: the serving
    // order's first step (§3.4) costs no sort.
    for (episode, &rank) in episodes.iter().zip(&rank_of) {
        ranks[rank as usize].episodes.push(*episode);
    }
    ranks
}

/// [`place`] for one rank, which takes every episode whatever the placement order: the set
/// itself, with no shuffle or fill (most of a single-rank loader's partition over 10^5
/// episodes, and two arrays as long as the set).
pub(super) fn one_rank(set: &EpisodeSet) -> Vec<RankShare> {
    vec![RankShare {
        episodes: set.episodes().to_vec(),
        steps: set.total_steps(),
    }]
}

/// The order in which episodes are placed, as positions in the set with their steps: the
/// id-sorted set shuffled with the `ep-order` stream, then stable-sorted by descending
/// [`size_class`].
/// Longest first up to a factor of 1.25; within a class, random per `(seed, epoch)`.
///
/// Positions rather than episodes: the shuffle draws depend only on the length, so shuffling
/// positions is the same permutation, over half the bytes.
fn placement_order(set: &EpisodeSet, seed: u64, epoch: u64) -> Vec<(usize, u64)> {
    let episodes = set.episodes();
    // Classes are at most 256: `256 - class` numbers the buckets from the longest.
    let bucket = |steps: u64| 256 - size_class(steps) as usize;
    let mut shuffled: Vec<usize> = (0..episodes.len()).collect();
    SplitMix64::derived(seed, &[PURPOSE_EPISODE_ORDER, epoch, 0]).shuffle(&mut shuffled);
    // The stable sort by descending class, as a counting sort.
    let mut starts = [0usize; 258];
    for e in episodes {
        starts[bucket(e.steps) + 1] += 1;
    }
    for i in 1..starts.len() {
        starts[i] += starts[i - 1];
    }
    // Each placement carries its steps: the greedy fill then reads them in order, and each
    // episode is looked up at random once (at 10^6 episodes the set is 16 MB, past the caches).
    let mut order = vec![(0, 0); shuffled.len()];
    for i in shuffled {
        let steps = episodes[i].steps;
        let slot = &mut starts[bucket(steps)];
        order[*slot] = (i, steps);
        *slot += 1;
    }
    order
}

/// `0..world_size` shuffled with the `rk-prior` stream: among equally loaded
/// ranks, the one earliest in this list receives the next episode. In
/// particular the first `world_size` episodes go to the ranks in this order.
fn rank_tie_order(world_size: u32, seed: u64, epoch: u64) -> Vec<u32> {
    let mut ranks: Vec<u32> = (0..world_size).collect();
    SplitMix64::derived(seed, &[PURPOSE_RANK_PRIORITY, epoch, 0]).shuffle(&mut ranks);
    ranks
}
