//! Checked reads: the first read of a chunk in a process verifies it; the result is
//! remembered per chunk, so later reads cost one atomic load.
//!
//! Two levels of memory:
//!
//! - [`VerifiedChunks`], one per store handle (shared by every snapshot, loader and replay env
//!   of the handle): the `(segment, offset)` of every chunk whose payload checksum (and, for
//!   lz4, table framing) this process has verified. Segment bytes below a length any reader
//!   saw are never modified (schema/format.md, invariant 2), so a chunk once good stays good
//!   for the life of the process (short of another program writing into the store, which is
//!   outside the store's contract).
//! - [`ChunkCheck`], one per chunk of a [`Field`](crate::Field): an atomic flag set once the
//!   chunk is known good, so the hot path of a read never touches the shared set. It is set
//!   at field construction when the shared set already holds the chunk (a later epoch), or
//!   at the first read of the chunk otherwise, under a per-chunk lock so that threads racing
//!   on the same chunk hash it once.
//!
//! A failed check is never remembered: every read of a damaged chunk fails.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};

use crate::schema::Codec;
use crate::segment::format::{BLOCK_LZ4, BLOCK_STORED, ChunkRef, Lz4Table};

/// The chunks this process has verified, for one store handle.
#[derive(Debug)]
pub(crate) struct VerifiedChunks {
    /// Whether reads are checked at all ([`StoreOptions::verify_reads`](crate::StoreOptions)).
    enabled: bool,
    /// The store's segment directory, to name the file of a damaged chunk.
    segments_dir: PathBuf,
    set: RwLock<HashSet<(u64, u64)>>,
}

impl VerifiedChunks {
    pub(crate) fn new(enabled: bool, segments_dir: PathBuf) -> Self {
        VerifiedChunks {
            enabled,
            segments_dir,
            set: RwLock::new(HashSet::new()),
        }
    }

    /// Path of a segment file of the store.
    pub(crate) fn segment_path(&self, segment: u64) -> PathBuf {
        crate::segment::segment_path(&self.segments_dir, segment)
    }

    /// Whether a read of this chunk may skip the check: reads are unchecked, or the chunk was
    /// verified before in this process.
    pub(crate) fn known_good(&self, chunk: &ChunkRef) -> bool {
        !self.enabled
            || self
                .set
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&(chunk.segment, chunk.offset))
    }

    fn remember(&self, chunk: &ChunkRef) {
        self.set
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert((chunk.segment, chunk.offset));
    }

    /// Chunks verified so far (for tests and benchmarks).
    pub(crate) fn len(&self) -> usize {
        self.set.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Whether one chunk of one [`Field`](crate::Field) is known good.
#[derive(Debug)]
pub(crate) struct ChunkCheck {
    good: AtomicBool,
    /// Held while the chunk is being verified, so racing readers hash it once.
    busy: Mutex<()>,
}

impl ChunkCheck {
    pub(crate) fn new(good: bool) -> Self {
        ChunkCheck {
            good: AtomicBool::new(good),
            busy: Mutex::new(()),
        }
    }

    /// Verifies the chunk unless it is known good; `Err(reason)` when it is damaged.
    #[inline]
    pub(crate) fn ensure(
        &self,
        verified: &VerifiedChunks,
        chunk: &ChunkRef,
        payload: &[u8],
        step_bytes: usize,
    ) -> Result<(), String> {
        if self.good.load(Ordering::Acquire) {
            return Ok(());
        }
        self.ensure_slow(verified, chunk, payload, step_bytes)
    }

    #[cold]
    fn ensure_slow(
        &self,
        verified: &VerifiedChunks,
        chunk: &ChunkRef,
        payload: &[u8],
        step_bytes: usize,
    ) -> Result<(), String> {
        let _busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        if self.good.load(Ordering::Acquire) {
            return Ok(());
        }
        if !verified.known_good(chunk) {
            check_chunk(chunk, payload, step_bytes)?;
            verified.remember(chunk);
        }
        self.good.store(true, Ordering::Release);
        Ok(())
    }
}

/// The check of a read: the payload's xxh3 against the index, and for lz4 chunks the table
/// framing (every block in bounds, a known kind, stored blocks exactly one value long, lz4
/// blocks no longer than one value). Blocks are not decoded here: a block that fails to
/// decode fails the read that decodes it.
pub(crate) fn check_chunk(
    chunk: &ChunkRef,
    payload: &[u8],
    step_bytes: usize,
) -> Result<(), String> {
    let found = fast_checksum(payload);
    if found != chunk.checksum {
        return Err(format!(
            "payload checksum mismatch (xxh3 {found:016x}, the index says {:016x})",
            chunk.checksum
        ));
    }
    if chunk.codec == Codec::Lz4 {
        let steps = chunk.steps as usize;
        let table = Lz4Table::parse(payload, steps, chunk).map_err(|e| lz4_reason(&e))?;
        for k in 0..steps {
            match table.block(k) {
                None => return Err(format!("lz4 block {k} out of bounds")),
                Some((BLOCK_STORED, b)) if b.len() == step_bytes => {}
                Some((BLOCK_LZ4, b)) if b.len() <= step_bytes => {}
                Some((kind, b)) => {
                    return Err(format!(
                        "lz4 block {k}: kind {kind} with {} bytes for a {step_bytes}-byte value",
                        b.len()
                    ));
                }
            }
        }
    }
    Ok(())
}

/// xxh3-64, seed 0 (the format's checksum, `segment::format::checksum`), with AVX2 when the
/// CPU has it.
pub(crate) fn fast_checksum(bytes: &[u8]) -> u64 {
    twox_hash::XxHash3_64::oneshot(bytes)
}

fn lz4_reason(e: &crate::Error) -> String {
    match e {
        crate::Error::Read(crate::ReadError::Corrupted { reason, .. }) => reason.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_checksum_is_the_format_checksum() {
        let bytes: Vec<u8> = (0..1_000_003u32)
            .map(|i| i.wrapping_mul(2_654_435_761) as u8)
            .collect();
        for len in [
            0,
            1,
            3,
            16,
            17,
            128,
            129,
            240,
            241,
            1024,
            4096,
            100_000,
            bytes.len(),
        ] {
            assert_eq!(
                fast_checksum(&bytes[..len]),
                crate::segment::format::checksum(&bytes[..len]),
                "{len} bytes"
            );
        }
    }
}
