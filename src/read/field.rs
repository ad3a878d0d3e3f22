//! One field of one episode, read from segment maps: zero-copy for raw data, checked on first
//! read (segment/checked.rs).

use std::ops::Range;
use std::sync::Arc;

use rayon::prelude::*;

use crate::dtype::PlainElement;
use crate::error::{DamagedRead, Error, ReadError, Result};
use crate::ids::{EpisodeId, SegmentId};
use crate::schema::{Codec, FieldSpec};
use crate::segment::MappedBytes;
use crate::segment::checked::{ChunkCheck, VerifiedChunks};
use crate::segment::format::{ChunkRef, Lz4Table, decode_block};

/// Decodes of at least this many bytes run in parallel on the library's pool.
const PARALLEL_DECODE_MIN_BYTES: usize = 1 << 20;
/// Bytes each parallel decode task writes (whole values), so tasks outweigh their hand-off.
const PARALLEL_DECODE_TASK_BYTES: usize = 512 << 10;

pub(super) struct Chunk {
    pub(super) first: usize,
    pub(super) re: ChunkRef,
    pub(super) payload: MappedBytes,
    /// Whether the payload is known good (checked reads).
    pub(super) check: ChunkCheck,
}

/// One field of one episode: `len()` values of the field's shape and dtype.
///
/// Raw fields are read straight from the segment's memory map (no copy); lz4 fields decode
/// each step into a caller's buffer.
///
/// Reads are checked (unless the store was opened with
/// [`StoreOptions::verify_reads`](crate::StoreOptions) `false`): every read verifies, before
/// returning anything of a chunk, the xxh3 checksum of the chunk's whole payload (and for lz4
/// the table framing), the first time this process reads that chunk; a damaged chunk fails
/// the read with [`ReadError::CorruptRead`] naming user, episode, field and steps. Reading one
/// step of a chunk checks the whole chunk once (episodes below the writer's spill size have
/// one chunk per field).
pub struct Field {
    pub(super) spec: FieldSpec,
    pub(super) len: usize,
    pub(super) chunks: Vec<Chunk>,
    pub(super) episode: EpisodeId,
    pub(super) user: String,
    pub(super) verified: Arc<VerifiedChunks>,
}

impl Field {
    pub fn spec(&self) -> &FieldSpec {
        &self.spec
    }

    /// Number of values: `T + 1` for observations, `T` for transition fields.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of one value.
    pub fn step_bytes(&self) -> usize {
        self.spec.step_bytes()
    }

    fn chunk_of(&self, step: usize) -> Result<&Chunk> {
        if step >= self.len {
            return Err(ReadError::StepOutOfRange {
                episode: self.episode,
                field: self.spec.name.clone(),
                start: step,
                end: step + 1,
                len: self.len,
            }
            .into());
        }
        let i = self.chunks.partition_point(|c| c.first <= step) - 1;
        Ok(&self.chunks[i])
    }

    /// Verifies `chunk` unless known good (checked reads).
    #[inline]
    fn checked(&self, chunk: &Chunk) -> Result<()> {
        chunk
            .check
            .ensure(&self.verified, &chunk.re, &chunk.payload, self.step_bytes())
            .map_err(|reason| {
                self.corrupt(
                    chunk,
                    chunk.first..chunk.first + chunk.re.steps as usize,
                    reason,
                )
            })
    }

    /// The error of a damaged chunk, naming what it holds.
    fn corrupt(&self, chunk: &Chunk, steps: Range<usize>, reason: String) -> Error {
        ReadError::CorruptRead(Box::new(DamagedRead {
            user: self.user.clone(),
            episode: self.episode,
            field: self.spec.name.clone(),
            steps,
            segment: SegmentId(chunk.re.segment),
            path: self.verified.segment_path(chunk.re.segment),
            offset: chunk.re.offset,
            reason,
        }))
        .into()
    }

    /// A decoding error of `step` of `chunk`, with what the chunk holds.
    fn named(&self, chunk: &Chunk, step: usize, e: Error) -> Error {
        match e {
            Error::Read(ReadError::Corrupted { reason, .. }) => {
                self.corrupt(chunk, step..step + 1, reason)
            }
            e => e,
        }
    }

    /// Whether the field is raw and stored in one chunk, so [`Field::contiguous`] is `Some`.
    /// Reads nothing.
    pub fn is_contiguous(&self) -> bool {
        matches!(self.chunks.as_slice(), [only] if only.re.codec == Codec::Raw)
    }

    /// All values as one zero-copy slice of the map, when the field is raw and was written in
    /// one chunk (episodes smaller than the writer's spill size always are); `Ok(None)`
    /// otherwise. Checked: fails with [`ReadError::CorruptRead`] when the chunk is damaged.
    pub fn contiguous(&self) -> Result<Option<MappedBytes>> {
        match self.chunks.as_slice() {
            [only] if only.re.codec == Codec::Raw => {
                self.checked(only)?;
                Ok(Some(only.payload.clone()))
            }
            _ => Ok(None),
        }
    }

    /// All values as a borrowed slice of the map when [`Field::is_contiguous`], checked like
    /// [`Field::contiguous`]; `Ok(None)` otherwise. The per-value path of a gather: no clone.
    #[inline]
    pub(super) fn raw_values(&self) -> Result<Option<&[u8]>> {
        match self.chunks.as_slice() {
            [only] if only.re.codec == Codec::Raw => {
                self.checked(only)?;
                Ok(Some(&only.payload))
            }
            _ => Ok(None),
        }
    }

    /// All values as a typed zero-copy slice; `Ok(None)` unless [`Field::contiguous`] and `T`
    /// matches the dtype. Checked like [`Field::contiguous`].
    pub fn as_slice<T: PlainElement>(&self) -> Result<Option<&[T]>> {
        if T::DTYPE != self.spec.dtype {
            return Ok(None);
        }
        match self.chunks.as_slice() {
            // Payloads start 64-byte aligned, so the cast cannot fail on alignment.
            [only] if only.re.codec == Codec::Raw => {
                self.checked(only)?;
                Ok(bytemuck::try_cast_slice(&only.payload).ok())
            }
            _ => Ok(None),
        }
    }

    /// One raw value, zero-copy. Fails for lz4 fields (use [`Field::read_into`]).
    pub fn raw_step(&self, step: usize) -> Result<MappedBytes> {
        let chunk = self.chunk_of(step)?;
        if chunk.re.codec != Codec::Raw {
            return Err(Error::invalid_request(
                "raw read",
                format!(
                    "field {:?} is lz4-compressed: decode it with read_into",
                    self.spec.name
                ),
            ));
        }
        self.checked(chunk)?;
        let n = self.step_bytes();
        Ok(chunk
            .payload
            .slice((step - chunk.first) * n, n)
            .expect("length checked at load"))
    }

    /// Copies (raw) or decodes (lz4) the values of `steps` into `out`, which must be exactly
    /// `steps.len() * step_bytes()` long: any step range, since lz4 chunks compress each step
    /// on its own (schema/format.md). Allocates nothing; lz4 ranges of 1 MiB and more decode
    /// in parallel on the library's pool.
    pub fn read_into(&self, steps: Range<usize>, out: &mut [u8]) -> Result<()> {
        let n = self.step_bytes();
        if out.len() != steps.len() * n || steps.end > self.len || steps.start > steps.end {
            return Err(Error::invalid_request(
                "read_into",
                format!(
                    "field {:?}: steps {steps:?} need {} bytes and steps below {}; got a {}-byte buffer",
                    self.spec.name,
                    steps.len() * n,
                    self.len,
                    out.len()
                ),
            ));
        }
        let mut step = steps.start;
        while step < steps.end {
            let chunk = self.chunk_of(step)?;
            let upto = steps.end.min(chunk.first + chunk.re.steps as usize);
            let dst = &mut out[(step - steps.start) * n..(upto - steps.start) * n];
            self.checked(chunk)?;
            match chunk.re.codec {
                Codec::Raw => dst.copy_from_slice(
                    &chunk.payload[(step - chunk.first) * n..(upto - chunk.first) * n],
                ),
                Codec::Lz4 => {
                    self.decode_lz4(chunk, step - chunk.first..upto - chunk.first, dst)?
                }
            }
            step = upto;
        }
        Ok(())
    }

    /// Decodes blocks `blocks` (steps of `chunk`, relative to its first) into `out`, one value
    /// each. Large ranges are decoded in parallel on the library's pool: blocks are
    /// independent (schema/format.md), so a whole-episode decode runs at the pool's width.
    fn decode_lz4(&self, chunk: &Chunk, blocks: Range<usize>, out: &mut [u8]) -> Result<()> {
        let n = self.step_bytes();
        if n == 0 {
            return Ok(());
        }
        let table = Lz4Table::parse(&chunk.payload, chunk.re.steps as usize, &chunk.re)
            .map_err(|e| self.named(chunk, chunk.first + blocks.start, e))?;
        let decode = |first: usize, out: &mut [u8]| -> Result<()> {
            for (k, out) in (first..).zip(out.chunks_exact_mut(n)) {
                let (kind, block) = table.block(k).ok_or_else(|| {
                    self.corrupt(
                        chunk,
                        chunk.first + k..chunk.first + k + 1,
                        format!("lz4 block {k} out of bounds"),
                    )
                })?;
                decode_block(kind, block, out, &chunk.re, k)
                    .map_err(|e| self.named(chunk, chunk.first + k, e))?;
            }
            Ok(())
        };
        if out.len() < PARALLEL_DECODE_MIN_BYTES || blocks.len() < 2 {
            return decode(blocks.start, out);
        }
        let per_task = (PARALLEL_DECODE_TASK_BYTES / n).max(1);
        crate::pool::install(|| {
            out.par_chunks_mut(per_task * n)
                .enumerate()
                .try_for_each(|(i, out)| decode(blocks.start + i * per_task, out))
        })?
    }

    /// All values, copied or decoded into a new buffer.
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        let mut out = vec![0u8; self.len * self.step_bytes()];
        self.read_into(0..self.len, &mut out)?;
        Ok(out)
    }

    /// Checks every chunk's payload checksum and, for lz4, that every block decodes. Returns
    /// the first problem with the step range it covers.
    pub fn verify(&self) -> std::result::Result<(), (Range<usize>, Error)> {
        let mut scratch = Vec::new();
        for c in &self.chunks {
            verify_chunk(c.first, &c.re, &c.payload, self.step_bytes(), &mut scratch)?;
        }
        Ok(())
    }

    /// Where the field's bytes are on disk, chunk by chunk in step order: for tools that hand
    /// a file range to something else (a plain-read baseline, direct I/O, a damage test).
    pub fn extents(&self) -> Vec<Extent> {
        self.chunks
            .iter()
            .map(|c| Extent {
                path: self.verified.segment_path(c.re.segment),
                segment: SegmentId(c.re.segment),
                payload_offset: c.re.payload_offset(),
                payload_len: c.re.payload_len,
                steps: c.first..c.first + c.re.steps as usize,
                codec: c.re.codec,
            })
            .collect()
    }
}

/// One chunk of a field on disk ([`Field::extents`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extent {
    /// The segment file.
    pub path: std::path::PathBuf,
    pub segment: SegmentId,
    /// Offset of the chunk's first payload byte in the file.
    pub payload_offset: u64,
    pub payload_len: u64,
    /// The values (step indices) the chunk holds.
    pub steps: Range<usize>,
    /// `Raw`: the values back to back; `Lz4`: see schema/format.md.
    pub codec: Codec,
}

/// Checks one chunk's payload checksum and, for lz4, that every block decodes (into
/// `scratch`, one value long); the first problem with the steps it covers. `first`: the
/// chunk's first step in its field.
pub(super) fn verify_chunk(
    first: usize,
    c: &ChunkRef,
    payload: &[u8],
    step_bytes: usize,
    scratch: &mut Vec<u8>,
) -> std::result::Result<(), (Range<usize>, Error)> {
    let steps = first..first + c.steps as usize;
    // The format's xxh3, with the CPU's vector unit (segment/checked.rs).
    if crate::segment::checked::fast_checksum(payload) != c.checksum {
        return Err((
            steps,
            Error::corrupted(c.segment, c.offset, "payload checksum mismatch"),
        ));
    }
    if c.codec == Codec::Lz4 {
        scratch.resize(step_bytes, 0);
        let table =
            Lz4Table::parse(payload, c.steps as usize, c).map_err(|e| (steps.clone(), e))?;
        for k in 0..c.steps as usize {
            let step = first + k;
            let (kind, block) = table.block(k).ok_or_else(|| {
                (
                    step..step + 1,
                    Error::corrupted(c.segment, c.offset, "lz4 block out of bounds"),
                )
            })?;
            decode_block(kind, block, scratch, c, k).map_err(|e| (step..step + 1, e))?;
        }
    }
    Ok(())
}
