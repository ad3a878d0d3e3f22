//! Greedy list scheduling, shared by the rank assignment and the worker split.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Greedy list scheduling: each item `(index, size)`, in the given order, goes to the bin
/// with the smallest load; equally loaded bins are taken in `tie_order`. `index` names the
/// item in the caller's own list (each of `0..items` once). Returns the bin of every item by
/// that index, and the final load of every bin.
///
/// By index rather than in placement order because both callers then lay the items out in
/// their own order (the set's id order, a rank's serving order) with no sort and no second
/// scatter.
///
/// Whatever the item order, `max load - min load <= largest item`: when the last
/// item of the fullest bin was placed, that bin was the emptiest.
pub(super) fn greedy_fill(
    order: impl IntoIterator<Item = (usize, u64)>,
    items: usize,
    tie_order: &[u32],
) -> (Vec<u32>, Vec<u64>) {
    // Heap entries are (load, position in tie_order): the minimum is the least
    // loaded bin, earliest in tie order.
    let mut heap: BinaryHeap<Reverse<(u64, usize)>> =
        (0..tie_order.len()).map(|p| Reverse((0, p))).collect();
    let mut loads = vec![0u64; tie_order.len()];
    let mut bin_of = vec![0u32; items];
    for (index, size) in order {
        // Mutating through `PeekMut` re-sifts the entry when `top` drops.
        let mut top = heap.peek_mut().expect("greedy_fill needs at least one bin");
        let Reverse((load, pos)) = &mut *top;
        *load += size;
        let bin = tie_order[*pos];
        loads[bin as usize] = *load;
        bin_of[index] = bin;
    }
    (bin_of, loads)
}
