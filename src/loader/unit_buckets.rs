//! Which episode (slot) holds a unit: the sampler's index over its slots' first units.
//!
//! A shuffled or drawn unit is a number below the epoch's total; its slot is the last one
//! whose first unit is at most the unit. A binary search over every slot misses the cache
//! on its last steps once the episodes number 10^4 and more, and branches at random on
//! every step (a mispredicted branch costs more than the rest of a pick). The buckets cut
//! the units into ranges of a power of two, about one per slot, each naming its first slot
//! and where in the bucket the next slot starts: a unit whose bucket spans at most two slots
//! (every bucket when the episodes are as long as one another) is located with one load and
//! a comparison, without reading the slots' first units at all.

/// Buckets from which [`UnitBuckets::warm`] loads ahead: about as many slots, whose buckets and
/// first units (8 + 16 bytes a slot) then outgrow a core's L2 cache (512 KiB to 2 MiB). Below,
/// the extra loop is pure cost: at 10^3 episodes, a tenth of a batch's time.
const WARM_FROM_BUCKETS: usize = 1 << 15;

/// [`Bucket::split`] of a bucket spanning three slots or more: the slot is searched for.
const SEARCH: u32 = u32::MAX;

/// A coarse index over the slots' first units (sorted; `first_unit(slot)`), so that
/// locating a unit reads one bucket, and a slot or two only where a bucket spans three slots
/// or more. About one bucket per slot: 8 bytes a slot.
pub(super) struct UnitBuckets {
    shift: u32,
    /// Per bucket `b` (units `b << shift ..`), then one past the last (the last slot).
    buckets: Vec<Bucket>,
}

/// One bucket of units: `slot` holds its first unit; the units from `split` on (counted from
/// the bucket's first) are in `slot + 1`, and none is in a later slot. [`SEARCH`] when a
/// later slot holds some: the slot is then searched for.
#[derive(Clone, Copy)]
struct Bucket {
    slot: u32,
    split: u32,
}

impl UnitBuckets {
    /// Buckets over `slots` slots holding `total` units, the first of slot `s` being
    /// `first_unit(s)` (non-decreasing, 0 for the first slot).
    pub(super) fn new(slots: usize, first_unit: impl Fn(usize) -> u64, total: u64) -> UnitBuckets {
        if slots == 0 || total == 0 {
            return UnitBuckets {
                shift: 0,
                buckets: Vec::new(),
            };
        }
        // Units per bucket: the largest power of two at most the mean units per slot, so
        // that a bucket spans one or two slots unless some are shorter than the mean.
        let shift = (total / slots as u64).max(1).ilog2();
        let width = 1u64 << shift;
        let count = ((total - 1) >> shift) as usize + 2;
        // The first unit of slot `s`, and past the last slot: never reached.
        let start = |s: usize| if s < slots { first_unit(s) } else { u64::MAX };
        let mut buckets = Vec::with_capacity(count);
        let mut slot = 0usize;
        for b in 0..count as u64 {
            let first = b << shift;
            // The last slot whose first unit is at most `first`.
            while slot + 1 < slots && first_unit(slot + 1) <= first {
                slot += 1;
            }
            let end = first + width;
            let split = if start(slot + 1) >= end {
                width as u32
            } else if start(slot + 2) >= end {
                (start(slot + 1) - first) as u32
            } else {
                SEARCH
            };
            buckets.push(Bucket {
                slot: slot as u32,
                split,
            });
        }
        UnitBuckets { shift, buckets }
    }

    /// Loads what [`slot_of`](Self::slot_of) and then the caller will read for each of
    /// `units` (random ones, a batch's worth) in one loop of independent loads: their
    /// buckets and the slots they name. The CPU then has a batch's cache misses in flight
    /// at once, where locating a unit alone waits for its bucket before it can ask for its
    /// slot (two misses in a row per unit once the episodes number 10^5 and more). Below
    /// [`WARM_FROM_BUCKETS`] the loads would hit the cache anyway: nothing is done.
    pub(super) fn warm(&self, first_unit: impl Fn(usize) -> u64, units: &[u64]) {
        if self.buckets.len() < WARM_FROM_BUCKETS {
            return;
        }
        let buckets = units.iter().fold(0u32, |acc, &u| {
            acc ^ self.buckets[(u >> self.shift) as usize].slot
        });
        let slots = units.iter().fold(0u64, |acc, &u| {
            acc ^ first_unit(self.buckets[(u >> self.shift) as usize].slot as usize)
        });
        std::hint::black_box((buckets, slots));
    }

    /// The slot holding `unit` (below the total): the last one whose first unit is at most
    /// `unit`, as a binary search of the whole list would find. `first_unit` is also read one
    /// past the last slot, where it must be above every unit (the total).
    #[inline(always)]
    pub(super) fn slot_of(&self, first_unit: impl Fn(usize) -> u64, unit: u64) -> usize {
        let b = (unit >> self.shift) as usize;
        let Bucket { slot, split } = self.buckets[b];
        let offset = (unit & ((1u64 << self.shift) - 1)) as u32;
        if split != SEARCH {
            // A comparison, not a branch: which of the two slots is as random as the unit.
            return slot as usize + usize::from(offset >= split);
        }
        self.search(first_unit, unit, slot as usize, b)
    }

    /// [`slot_of`](Self::slot_of) in a bucket spanning three slots or more, from its first
    /// slot `lo`.
    #[cold]
    fn search(
        &self,
        first_unit: impl Fn(usize) -> u64,
        unit: u64,
        mut lo: usize,
        b: usize,
    ) -> usize {
        // Mostly three slots, four with a short one: two steps forward without a branch
        // find the answer then (a step never passes it: the slot after the answer starts
        // past `unit`), and the check below is a branch the CPU predicts.
        for _ in 0..2 {
            lo += usize::from(first_unit(lo + 1) <= unit);
        }
        if first_unit(lo + 1) > unit {
            return lo;
        }
        // Many short or empty slots in the bucket: the answer is in lo + 1..=hi.
        let (mut lo, mut hi) = (lo + 1, self.buckets[b + 1].slot as usize);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if first_unit(mid) <= unit {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        lo
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::rng::SplitMix64;

    /// The buckets find the slot a binary search over every first unit finds, for every
    /// unit, with episodes of mixed lengths and episodes with no unit (strict windows longer
    /// than the episode).
    #[test]
    fn unit_buckets_locate_like_a_binary_search() {
        let mut rng = SplitMix64::new(7);
        for case in 0..200u64 {
            let slots = 1 + rng.below(40) as usize;
            let mut unit_start = Vec::with_capacity(slots + 1);
            let mut total = 0u64;
            for _ in 0..slots {
                unit_start.push(total);
                // Every third case has many empty episodes; some have one long one.
                total += match (case % 3, rng.below(4)) {
                    (0, 0 | 1) => 0,
                    (1, 0) => 1000,
                    _ => rng.below(9),
                };
            }
            // One past the last slot: the total.
            unit_start.push(total);
            let buckets = UnitBuckets::new(slots, |s| unit_start[s], total);
            for unit in 0..total {
                let expected = unit_start.partition_point(|&s| s <= unit) - 1;
                assert_eq!(
                    buckets.slot_of(|s| unit_start[s], unit),
                    expected,
                    "case {case}: unit {unit} of {unit_start:?}"
                );
            }
        }
    }

    /// Episodes of one length, or of lengths no shorter than a bucket (a power of two at
    /// most the mean), are located without a search: each bucket spans at most two slots.
    #[test]
    fn buckets_of_episodes_as_long_as_the_mean_need_no_search() {
        let mut rng = SplitMix64::new(3);
        for (slots, shortest, spread) in [(1000usize, 50u64, 0u64), (777, 1, 0), (5000, 64, 64)] {
            let lengths: Vec<u64> = (0..slots)
                .map(|_| shortest + rng.below(spread + 1))
                .collect();
            let mut unit_start = vec![0u64];
            for t in &lengths {
                unit_start.push(unit_start.last().unwrap() + t);
            }
            let total = *unit_start.last().unwrap();
            let buckets = UnitBuckets::new(slots, |s| unit_start[s], total);
            assert!(
                buckets.buckets.iter().all(|b| b.split != SEARCH),
                "{slots} slots of {shortest} + up to {spread} units"
            );
        }
    }
}
