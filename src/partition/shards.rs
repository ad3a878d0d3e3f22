//! Several stores as one episode set (`schema/partition.md` §7): globally unique keys from
//! `(position of the store in the shard list, episode id)`, and per-shard stamps that let a
//! resumed cursor say which shard differs.
//!
//! Keys are plain `u64`s, so everything else of the contract (§2–§5) applies unchanged. A list
//! of one store keys every episode by its own id: a single store's partition, fingerprint and
//! cursors are exactly those of §1–§6.

use serde::{Deserialize, Serialize};

use super::{EpisodeLen, EpisodeSet, PartitionError, Result};

/// Bits of a key that hold the episode id (the low bits); the shard's position sits above.
pub const SHARD_ID_BITS: u32 = 48;

/// The most stores one dataset may list: 2^15, so every key stays below 2^63 and survives a
/// signed 64-bit column (torch, numpy `int64`, Arrow `int64`).
pub const MAX_SHARDS: usize = 1 << 15;

const ID_MASK: u64 = (1 << SHARD_ID_BITS) - 1;

/// The key of episode `id` of the store at position `shard` in a list of `shards` stores:
/// `id` itself for a list of one, `shard * 2^48 + id` otherwise.
pub fn shard_key(shards: usize, shard: u32, id: u64) -> Result<u64> {
    check_shard_count(shards)?;
    if shards == 1 {
        return Ok(id);
    }
    if id > ID_MASK {
        return Err(PartitionError::ShardIdTooLarge { shard, id });
    }
    Ok((u64::from(shard) << SHARD_ID_BITS) | id)
}

/// The `(shard, id)` a key of a list of `shards` stores stands for.
pub fn split_key(shards: usize, key: u64) -> (u32, u64) {
    if shards <= 1 {
        (0, key)
    } else {
        ((key >> SHARD_ID_BITS) as u32, key & ID_MASK)
    }
}

fn check_shard_count(shards: usize) -> Result<()> {
    if shards == 0 || shards > MAX_SHARDS {
        return Err(PartitionError::ShardCount { shards });
    }
    Ok(())
}

/// What one shard contributed to a set: enough for a resumed cursor to name the shard that
/// differs and how. `path` is informative only (hosts may mount a store at different paths);
/// the other fields are compared.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ShardStamp {
    /// The store's path as it was given.
    pub path: String,
    /// The shard's cutoff: every selected episode id is below it.
    pub cutoff: u64,
    /// How many episodes the shard contributed.
    pub episodes: u64,
    /// [`EpisodeSet::fingerprint`] of the shard's own `(id, steps)` selection (ids, not keys).
    pub fingerprint: u64,
}

/// One shard's selection before keying: its path, cutoff and `(id, steps)` pairs.
#[derive(Debug, Clone)]
pub struct ShardEpisodes {
    pub path: String,
    pub cutoff: u64,
    pub episodes: Vec<EpisodeLen>,
}

/// The union of several shards' selections as one [`EpisodeSet`] keyed by [`shard_key`], and
/// each shard's [`ShardStamp`] (in list order).
pub fn union(shards: &[ShardEpisodes]) -> Result<(EpisodeSet, Vec<ShardStamp>)> {
    let sets = shards
        .iter()
        .map(|shard| {
            Ok((
                shard.path.clone(),
                shard.cutoff,
                EpisodeSet::new(&shard.episodes)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    union_sets(sets)
}

/// [`union`] of shards whose selections are sets already: `(path, cutoff, set)` in list
/// order. A list of one is its set, as it is.
pub fn union_sets(shards: Vec<(String, u64, EpisodeSet)>) -> Result<(EpisodeSet, Vec<ShardStamp>)> {
    check_shard_count(shards.len())?;
    let count = shards.len();
    let stamps = shards
        .iter()
        .map(|(path, cutoff, own)| ShardStamp {
            path: path.clone(),
            cutoff: *cutoff,
            episodes: own.len() as u64,
            fingerprint: own.fingerprint(),
        })
        .collect();
    if count == 1 {
        let (_, _, own) = shards.into_iter().next().expect("one shard");
        return Ok((own, stamps));
    }
    let mut keyed = Vec::with_capacity(shards.iter().map(|(_, _, s)| s.len()).sum());
    for (i, (_, _, own)) in shards.iter().enumerate() {
        for e in own.episodes() {
            keyed.push(EpisodeLen {
                id: shard_key(count, i as u32, e.id)?,
                steps: e.steps,
            });
        }
    }
    Ok((EpisodeSet::from_vec(keyed)?, stamps))
}

/// Checks that `current` is the shard list a cursor was taken on (`taken`), naming the first
/// difference: the number of shards, a reordering, a cutoff, or a shard's selection.
pub fn check_shards(taken: &[ShardStamp], current: &[ShardStamp]) -> Result<()> {
    let differs = |m: String| Err(PartitionError::ShardMismatch(m));
    if taken.len() != current.len() {
        return differs(format!(
            "the cursor was taken on {} shard(s), {} given",
            taken.len(),
            current.len()
        ));
    }
    let same = |a: &ShardStamp, b: &ShardStamp| {
        (a.cutoff, a.episodes, a.fingerprint) == (b.cutoff, b.episodes, b.fingerprint)
    };
    for (i, (was, now)) in taken.iter().zip(current).enumerate() {
        if same(was, now) {
            continue;
        }
        // Resumed with the cursor's cutoffs in list order, a moved shard may carry another
        // shard's cutoff: its content (count and fingerprint) still says where it was.
        let same_content =
            |a: &ShardStamp| (a.episodes, a.fingerprint) == (now.episodes, now.fingerprint);
        if let Some(j) = taken
            .iter()
            .position(|t| same(t, now))
            .or_else(|| taken.iter().position(same_content).filter(|&j| j != i))
        {
            return differs(format!(
                "shard {i} ({}) was shard {j} ({}) when the cursor was taken: \
                 the shard list is in another order",
                now.path, taken[j].path
            ));
        }
        if was.cutoff != now.cutoff {
            return differs(format!(
                "shard {i} ({}): cutoff {} given, the cursor was taken with cutoff {}",
                now.path, now.cutoff, was.cutoff
            ));
        }
        return differs(format!(
            "shard {i} ({}): the selection differs ({} episodes, fingerprint {:#018x}; \
             the cursor was taken on {} episodes, fingerprint {:#018x}, in {}): \
             another store or another filter",
            now.path, now.episodes, now.fingerprint, was.episodes, was.fingerprint, was.path
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::{Assignment, Cursor, Share, remaining, worker_split};
    use proptest::prelude::*;

    fn ep(id: u64, steps: u64) -> EpisodeLen {
        EpisodeLen { id, steps }
    }

    fn shard(path: &str, cutoff: u64, episodes: &[(u64, u64)]) -> ShardEpisodes {
        ShardEpisodes {
            path: path.into(),
            cutoff,
            episodes: episodes.iter().map(|&(i, s)| ep(i, s)).collect(),
        }
    }

    /// §6's golden set as two hosts recorded it: host A holds §6's ids 1..=9 ...
    const HOST_A: [(u64, u64); 8] = [
        (1, 37),
        (2, 90),
        (3, 100),
        (4, 100),
        (5, 100),
        (7, 100),
        (8, 64),
        (9, 64),
    ];
    /// ... and host B its ids 11..=42 (as §6 numbers them; host B numbers them 1..=8).
    const HOST_B: [(u64, u64); 8] = [
        (11, 120),
        (13, 150),
        (17, 75),
        (19, 128),
        (21, 80),
        (25, 200),
        (30, 33),
        (42, 210),
    ];

    /// The golden set of §6 recorded on two hosts: ids 1..=9 on one, 11.. on the other
    /// (each store numbers its own episodes, so the second host's ids restart at 1).
    fn golden_shards() -> Vec<ShardEpisodes> {
        let host_b: Vec<(u64, u64)> = (1..).zip(HOST_B.map(|(_, steps)| steps)).collect();
        vec![
            shard("host-a/demos", 10, &HOST_A),
            shard("host-b/demos", 9, &host_b),
        ]
    }

    /// §7's test vector: frozen. Any change to the keying breaks this test; do not update
    /// these values without treating it as a breaking contract change.
    #[test]
    fn golden_two_shards() {
        let (set, stamps) = union(&golden_shards()).unwrap();
        assert_eq!(set.fingerprint(), 0x3163_1d79_a470_2ba9);
        assert_eq!(
            stamps.iter().map(|s| s.fingerprint).collect::<Vec<_>>(),
            [0xa2f0_576a_ece5_494d, 0x38a8_b019_e9d2_207d]
        );
        let a = Assignment::new(&set, 3, 42, 0).unwrap();
        let ranks: Vec<Vec<(u32, u64)>> = a
            .ranks()
            .iter()
            .map(|r| r.ids().map(|k| split_key(2, k)).collect())
            .collect();
        assert_eq!(ranks, GOLDEN_RANKS);
        let steps: Vec<u64> = a.ranks().iter().map(|r| r.steps).collect();
        assert_eq!(steps, [560, 559, 532]);
        let workers: Vec<Vec<(u32, u64)>> = worker_split(a.rank(1).unwrap(), 2)
            .unwrap()
            .iter()
            .map(|w| w.iter().map(|e| split_key(2, e.id)).collect())
            .collect();
        assert_eq!(workers, GOLDEN_WORKERS);
    }
    // Keys keep the relative order of §6's ids (shard 0 holds §6's ids 1..=9, shard 1 its
    // ids 11..=42 renumbered 1..=8), so the assignment is §6's with the ids renamed: a check
    // of the keying against the single-store golden values.
    const GOLDEN_RANKS: [&[(u32, u64)]; 3] = [
        &[(0, 7), (1, 8), (0, 1), (1, 5), (1, 7), (0, 5)],
        &[(1, 6), (1, 1), (1, 3), (0, 9), (0, 3)],
        &[(1, 4), (0, 4), (0, 8), (1, 2), (0, 2)],
    ];
    const GOLDEN_WORKERS: [&[(u32, u64)]; 2] = [&[(1, 6), (1, 3)], &[(1, 1), (0, 9), (0, 3)]];

    /// A list of one store is the store itself: keys are ids, and the set, its fingerprint and
    /// every cursor are those of the plain episode set (§6's golden values).
    #[test]
    fn one_shard_is_the_plain_set() {
        let plain: Vec<(u64, u64)> = HOST_A.iter().chain(&HOST_B).copied().collect();
        let (set, stamps) = union(&[shard("demos", 43, &plain)]).unwrap();
        assert_eq!(set.fingerprint(), 0x10fd_768e_e670_ebaa);
        assert_eq!(stamps[0].fingerprint, set.fingerprint());
        let a = Assignment::new(&set, 3, 42, 0).unwrap();
        let rank0: Vec<u64> = a.rank(0).unwrap().ids().collect();
        assert_eq!(rank0, [7, 42, 1, 21, 30, 5]);
        assert_eq!(shard_key(1, 0, u64::MAX), Ok(u64::MAX));
        assert_eq!(split_key(1, u64::MAX), (0, u64::MAX));
    }

    #[test]
    fn keys_put_the_shard_above_the_id() {
        assert_eq!(shard_key(3, 2, 5), Ok((2 << 48) | 5));
        assert_eq!(split_key(3, (2 << 48) | 5), (2, 5));
        assert_eq!(
            shard_key(2, 1, 1 << 48),
            Err(PartitionError::ShardIdTooLarge {
                shard: 1,
                id: 1 << 48
            })
        );
        assert_eq!(
            shard_key(0, 0, 1),
            Err(PartitionError::ShardCount { shards: 0 })
        );
        let last = shard_key(MAX_SHARDS, (MAX_SHARDS - 1) as u32, ID_MASK).unwrap();
        assert!(last < 1 << 63, "keys fit a signed 64-bit column");
        assert!(shard_key(MAX_SHARDS + 1, 0, 1).is_err());
    }

    #[test]
    fn resume_names_the_shard_that_differs() {
        let (_, stamps) = union(&golden_shards()).unwrap();
        assert_eq!(check_shards(&stamps, &stamps), Ok(()));

        let mut reversed = golden_shards();
        reversed.reverse();
        let (_, swapped) = union(&reversed).unwrap();
        let err = check_shards(&stamps, &swapped).unwrap_err().to_string();
        assert!(
            err.contains("shard 0 (host-b/demos) was shard 1") && err.contains("another order"),
            "{err}"
        );
        // Resumed with the cursor's cutoffs, which follow the list positions, not the stores.
        reversed[0].cutoff = 10;
        reversed[1].cutoff = 9;
        let (_, swapped) = union(&reversed).unwrap();
        let err = check_shards(&stamps, &swapped).unwrap_err().to_string();
        assert!(
            err.contains("was shard 1") && err.contains("another order"),
            "{err}"
        );

        let err = check_shards(&stamps, &stamps[..1]).unwrap_err().to_string();
        assert!(err.contains("2 shard(s), 1 given"), "{err}");

        let mut later = golden_shards();
        later[1].cutoff = 12;
        later[1].episodes.push(ep(10, 5));
        let (_, moved) = union(&later).unwrap();
        let err = check_shards(&stamps, &moved).unwrap_err().to_string();
        assert!(
            err.contains("shard 1 (host-b/demos): cutoff 12 given"),
            "{err}"
        );

        let mut filtered = golden_shards();
        filtered[0].episodes.pop();
        let (_, other) = union(&filtered).unwrap();
        let err = check_shards(&stamps, &other).unwrap_err().to_string();
        assert!(
            err.contains("shard 0 (host-a/demos): the selection differs (7 episodes"),
            "{err}"
        );
    }

    /// Shards as a proptest sees them: up to 5 stores, each with up to 60 episodes whose ids
    /// restart at small numbers (so every store shares ids with the others).
    fn shards_strategy() -> impl Strategy<Value = Vec<ShardEpisodes>> {
        prop::collection::vec(
            prop::collection::btree_map(1u64..200, 1u64..400, 0..60),
            1..6,
        )
        .prop_map(|stores| {
            stores
                .into_iter()
                .enumerate()
                .map(|(i, eps)| ShardEpisodes {
                    path: format!("host-{i}"),
                    cutoff: 200,
                    episodes: eps.into_iter().map(|(id, s)| ep(id, s)).collect(),
                })
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// Every `(shard, id)` of every store is served exactly once across all ranks and
        /// workers, for any seed and epoch, and resuming at any position serves the rest.
        #[test]
        fn every_shard_key_is_served_exactly_once(
            shards in shards_strategy(),
            world_size in 1u32..6,
            num_workers in 1u32..4,
            seed in any::<u64>(),
            epoch in 0u64..50,
            pick in any::<prop::sample::Index>(),
        ) {
            let (set, _) = union(&shards).unwrap();
            let mut served: Vec<(u32, u64)> = Vec::new();
            for rank in 0..world_size {
                for worker in 0..num_workers {
                    let share = Share::rank(rank, world_size).worker(worker, num_workers);
                    let cursor = Cursor::start(&set, share).unwrap().seed(seed).epoch(epoch);
                    let items = remaining(&set, &cursor).unwrap();
                    let k = pick.index(items.len() + 1);
                    prop_assert_eq!(&remaining(&set, &cursor.advanced(k as u64)).unwrap()[..], &items[k..]);
                    served.extend(items.iter().map(|e| split_key(shards.len(), e.id)));
                }
            }
            served.sort_unstable();
            let mut expected: Vec<(u32, u64)> = shards
                .iter()
                .enumerate()
                .flat_map(|(i, s)| s.episodes.iter().map(move |e| (i as u32, e.id)))
                .collect();
            expected.sort_unstable();
            prop_assert_eq!(served, expected);
        }
    }
}
