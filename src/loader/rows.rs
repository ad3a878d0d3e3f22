//! Where a sampled unit's rows lie in the segment maps: one 16-byte entry per (episode slot,
//! column), so that locating a row costs one load into a dense array before the row itself.
//!
//! Random small rows (68-byte observations) are bound by memory latency: each random load
//! that misses the cache costs about as much as the row. A plain gather from maps reads one
//! table entry and the row; the sampler used to read its episode's open index, then a
//! 32-byte `Option<MappedBytes>` by open order, then the map through its `dyn` view, each a
//! dependent miss. Here the entry holds the map (an index into a short list of whole maps,
//! dereferenced once per batch) and the offset, and is indexed by slot, the number the pick
//! already has.

use std::collections::HashMap;

use crate::segment::MappedBytes;

/// Map indices above this do not fit an entry: such columns are read through their field.
const MAX_MAPS: usize = (1 << 16) - 1;
/// Offsets in a map at or above this do not fit an entry (256 TiB).
const MAX_OFFSET: u64 = 1 << 48;

/// Where one column of one episode lies, for the units whose rows are all in place.
#[derive(Clone, Copy, Default)]
struct Entry {
    /// Low 48 bits: the offset in its map of the rows of unit `lo`; high 16 bits: the map's
    /// index + 1, 0 when the column has no entry (not opened yet, or not raw in one chunk).
    at: u64,
    /// The units an entry serves: first steps `lo..hi`.
    lo: u32,
    hi: u32,
}

/// The entries of a sampler's episodes, and the maps they point into.
pub(super) struct RowTable {
    columns: usize,
    /// `entries[slot * columns + c]`. Allocated for every slot up front (16 bytes a slot and
    /// column) so that the lookup is a multiplication, not a search.
    entries: Vec<Entry>,
    maps: Vec<MappedBytes>,
    map_of: HashMap<usize, u16>,
}

/// One column as a unit source: `rows` rows of `step_bytes`, the unit starting at step `s`
/// reads value `s + offset` onwards, in an episode of `steps` steps.
pub(super) struct Placed<'a> {
    pub values: &'a MappedBytes,
    pub step_bytes: usize,
    pub steps: u32,
    pub offset: i64,
    pub rows: usize,
}

impl RowTable {
    pub(super) fn new(slots: usize, columns: usize) -> RowTable {
        RowTable {
            columns,
            entries: vec![Entry::default(); slots * columns],
            maps: Vec::new(),
            map_of: HashMap::new(),
        }
    }

    /// Records column `c` of `slot`: the units whose rows are all recorded values of the
    /// episode (the others are read through the field, with its edge policy). Nothing is
    /// recorded when no unit qualifies or the entry cannot hold it.
    pub(super) fn place(&mut self, slot: usize, c: usize, placed: &Placed<'_>) {
        let n = placed.step_bytes as i64;
        let len = if n == 0 {
            0
        } else {
            placed.values.len() as i64 / n
        };
        // Units s with s + offset >= 0 and s + rows <= steps and s + rows + offset <= len.
        let lo = (-placed.offset).max(0);
        let hi = (i64::from(placed.steps).min(len - placed.offset) - placed.rows as i64 + 1)
            .min(i64::from(u32::MAX));
        if lo >= hi || n == 0 {
            return;
        }
        let (whole, start) = placed.values.in_whole_map();
        let at = start as u64 + ((lo + placed.offset) * n) as u64;
        let Some(map) = self.map_index(whole) else {
            return;
        };
        if at >= MAX_OFFSET {
            return;
        }
        self.entries[slot * self.columns + c] = Entry {
            at: at | (u64::from(map) + 1) << 48,
            lo: lo as u32,
            hi: hi as u32,
        };
    }

    /// Whether a column of `slot` has an entry (so the episode was opened).
    #[inline]
    pub(super) fn has_entry(&self, slot: usize) -> bool {
        let entries = &self.entries[slot * self.columns..(slot + 1) * self.columns];
        entries.iter().any(|e| e.at != 0)
    }

    fn map_index(&mut self, whole: MappedBytes) -> Option<u16> {
        if let Some(&i) = self.map_of.get(&whole.map_identity()) {
            return Some(i);
        }
        if self.maps.len() >= MAX_MAPS {
            return None;
        }
        let i = self.maps.len() as u16;
        self.map_of.insert(whole.map_identity(), i);
        self.maps.push(whole);
        Some(i)
    }

    /// The maps, dereferenced: what [`RowTable::unit`] reads from. Taken once per batch.
    pub(super) fn views(&self) -> Vec<&[u8]> {
        self.maps.iter().map(|m| &m[..]).collect()
    }

    /// The `unit_bytes` of the unit starting at `start` of column `c` of `slot` (rows of
    /// `step_bytes`), when its entry serves it; `None` otherwise.
    #[inline]
    pub(super) fn unit<'v>(
        &self,
        views: &[&'v [u8]],
        slot: usize,
        c: usize,
        start: u32,
        step_bytes: usize,
        unit_bytes: usize,
    ) -> Option<&'v [u8]> {
        let e = self.entries[slot * self.columns + c];
        let map = (e.at >> 48) as usize;
        if map == 0 || start < e.lo || start >= e.hi {
            return None;
        }
        let at = (e.at & (MAX_OFFSET - 1)) as usize + (start - e.lo) as usize * step_bytes;
        views[map - 1].get(at..at + unit_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry serves a unit exactly when every row of it is a recorded value of the
    /// episode, and then the very bytes of those values; whatever the offset, the unit's
    /// length, the values' place in the map and the other columns and slots in the table.
    #[test]
    fn entries_serve_exactly_the_units_whose_rows_are_recorded() {
        let (n, steps) = (3usize, 9u32);
        // Two maps, the values 64 bytes into each: 10 values (steps + 1, like observations)
        // and 7 (a field recorded short).
        let maps: Vec<MappedBytes> = [10usize, 7]
            .iter()
            .enumerate()
            .map(|(m, &len)| {
                let bytes = (0..64 + len * n).map(|i| (i * 7 + m * 101) as u8).collect();
                MappedBytes::owning(bytes)
            })
            .collect();
        for rows in [1usize, 4] {
            for offset in [-3i64, -1, 0, 2] {
                let mut table = RowTable::new(3, 2);
                let values: Vec<MappedBytes> = maps
                    .iter()
                    .map(|m| m.slice(64, m.len() - 64).expect("in range"))
                    .collect();
                for (c, v) in values.iter().enumerate() {
                    let placed = Placed {
                        values: v,
                        step_bytes: n,
                        steps,
                        offset,
                        rows,
                    };
                    // Slot 1 only; slots 0 and 2 stay without entries.
                    table.place(1, c, &placed);
                }
                let views = table.views();
                for (c, v) in values.iter().enumerate() {
                    let len = (v.len() / n) as i64;
                    for start in 0..steps + rows as u32 {
                        let first = i64::from(start) + offset;
                        let end = first + rows as i64;
                        let expected = (first >= 0
                            && i64::from(start) + rows as i64 <= i64::from(steps)
                            && end <= len)
                            .then(|| &v[first as usize * n..end as usize * n]);
                        let got = table.unit(&views, 1, c, start, n, rows * n);
                        assert_eq!(
                            got, expected,
                            "rows {rows} offset {offset} column {c} start {start}"
                        );
                        for other in [0, 2] {
                            assert_eq!(table.unit(&views, other, c, start, n, rows * n), None);
                        }
                    }
                }
            }
        }
    }
}
