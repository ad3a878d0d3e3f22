//! Checking one episode's chunks against the segment bytes: what opening each field checks
//! (chunk list, record headers, step counts), then every payload's checksum and lz4 blocks.
//! A verifying thread holds each segment's map once ([`Segments`]), not one reference to it
//! per chunk.

use std::collections::HashMap;
use std::ops::Range;

use crate::error::{Error, Result};
use crate::read::field::verify_chunk;
use crate::read::{check_field_steps, check_framing, chunk_list};
use crate::schema::FieldSpec;
use crate::segment::format::{ChunkRef, HEADER_BYTES};
use crate::segment::{MappedBytes, SegmentMaps};

use super::rows::{Batch, Row};

/// The segment maps one verifying thread has in hand.
pub(super) struct Segments<'m> {
    maps: &'m SegmentMaps,
    slots: HashMap<u64, usize>,
    mapped: Vec<MappedBytes>,
    /// The segment of the last chunk and its slot (an episode's chunks share one).
    last: Option<(u64, usize)>,
    /// Per field: (first step, slot of its segment, chunk) of each chunk located.
    located: Vec<(usize, usize, ChunkRef)>,
    /// One decoded lz4 value.
    value: Vec<u8>,
}

impl<'m> Segments<'m> {
    pub fn new(maps: &'m SegmentMaps) -> Self {
        Segments {
            maps,
            slots: HashMap::new(),
            mapped: Vec::new(),
            last: None,
            located: Vec::new(),
            value: Vec::new(),
        }
    }

    /// The record (header and payload) of `r`, mapped: the slot of its segment's map, and
    /// where the record ends in it.
    fn record(&mut self, r: &ChunkRef) -> Result<(usize, usize)> {
        let end = (HEADER_BYTES as u64)
            .checked_add(r.payload_len)
            .and_then(|len| r.offset.checked_add(len))
            .ok_or_else(|| Error::corrupted(r.segment, r.offset, "record length overflows"))?;
        let held = match self.last {
            Some((segment, slot)) if segment == r.segment => Some(slot),
            _ => self.slots.get(&r.segment).copied(),
        };
        let slot = match held {
            Some(slot) if self.mapped[slot].len() as u64 >= end => slot,
            _ => {
                // First chunk of this segment here, or one past the length it was mapped at.
                let whole = self.maps.covering(r.segment, r.offset, end)?;
                match held {
                    Some(slot) => {
                        self.mapped[slot] = whole;
                        slot
                    }
                    None => {
                        self.mapped.push(whole);
                        self.slots.insert(r.segment, self.mapped.len() - 1);
                        self.mapped.len() - 1
                    }
                }
            }
        };
        self.last = Some((r.segment, slot));
        Ok((slot, end as usize))
    }

    /// What opening field `i` of `row` checks, its chunks into `self.located`.
    fn locate(&mut self, batch: &Batch, row: &Row, spec: &FieldSpec, i: usize) -> Result<()> {
        self.located.clear();
        let list = chunk_list(row.id, batch.list(row, i), spec)?;
        let mut first = 0usize;
        for r in list {
            let (slot, end) = self.record(r)?;
            check_framing(
                &self.mapped[slot][r.offset as usize..end],
                r,
                spec.step_bytes(),
            )?;
            self.located.push((first, slot, *r));
            first += r.steps as usize;
        }
        check_field_steps(row.id, row.steps, spec, first).map(drop)
    }
}

/// A problem of one row; the caller names the episode, user and field.
pub(super) struct Found {
    /// Schema index of the field, `None` for the episode as a whole.
    pub field: Option<usize>,
    pub steps: Option<Range<usize>>,
    pub error: String,
}

/// What checking one row found: chunks and payload bytes checked (of the fields that open),
/// and its problems.
#[derive(Default)]
pub(super) struct Checked {
    pub chunks: u64,
    pub bytes: u64,
    pub problems: Vec<Found>,
}

/// Every field of one row: what opening the field checks, then every chunk's checksum and
/// lz4 blocks, stopping at a field's first bad chunk.
pub(super) fn check_row(batch: &Batch, row: &Row, segments: &mut Segments<'_>) -> Checked {
    let mut checked = Checked::default();
    let schema = match &batch.schemas[row.schema as usize] {
        Ok(schema) => schema,
        Err(e) => {
            checked.problems.push(Found {
                field: None,
                steps: None,
                error: e.clone(),
            });
            return checked;
        }
    };
    for (i, spec) in schema.fields().iter().enumerate() {
        if let Err(e) = segments.locate(batch, row, spec, i) {
            checked.problems.push(Found {
                field: Some(i),
                steps: None,
                error: e.to_string(),
            });
            continue;
        }
        for &(first, slot, ref c) in &segments.located {
            checked.chunks += 1;
            checked.bytes += c.payload_len;
            let start = c.payload_offset() as usize;
            let payload = &segments.mapped[slot][start..start + c.payload_len as usize];
            let step_bytes = spec.step_bytes();
            if let Err((steps, e)) =
                verify_chunk(first, c, payload, step_bytes, &mut segments.value)
            {
                checked.problems.push(Found {
                    field: Some(i),
                    steps: Some(steps),
                    error: e.to_string(),
                });
                break;
            }
        }
    }
    checked
}
