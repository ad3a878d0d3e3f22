//! Greedy list scheduling, shared by the rank assignment and the worker split.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Greedy list scheduling: each size, in the given order, goes to the bin with
/// the smallest load; equally loaded bins are taken in `tie_order`. Returns the
/// bin of every item (in item order) and the final load of every bin.
///
/// Whatever the item order, `max load - min load <= largest item`: when the last
/// item of the fullest bin was placed, that bin was the emptiest.
pub(super) fn greedy_fill(
    sizes: impl IntoIterator<Item = u64>,
    tie_order: &[u32],
) -> (Vec<u32>, Vec<u64>) {
    // Heap entries are (load, position in tie_order): the minimum is the least
    // loaded bin, earliest in tie order.
    let mut heap: BinaryHeap<Reverse<(u64, usize)>> =
        (0..tie_order.len()).map(|p| Reverse((0, p))).collect();
    let mut loads = vec![0u64; tie_order.len()];
    let bins = sizes
        .into_iter()
        .map(|size| {
            // Mutating through `PeekMut` re-sifts the entry when `top` drops.
            let mut top = heap.peek_mut().expect("greedy_fill needs at least one bin");
            let Reverse((load, pos)) = &mut *top;
            *load += size;
            let bin = tie_order[*pos];
            loads[bin as usize] = *load;
            bin
        })
        .collect();
    (bins, loads)
}
