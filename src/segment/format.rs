//! Segment file bytes: the file header, record framing (blobs, manifests, commit markers) and
//! the lz4 step table.
//!
//! See `schema/format.md` for the same in prose. All integers are little-endian.
//!
//! ```text
//! file   := file_header (64 B) record*
//! record := record_header (64 B) payload padding      (records start 64-byte aligned)
//! ```
//!
//! Invariants kept by the writer (segment/writer.rs) and relied on by readers:
//! - Bytes at an offset below a segment's length when a reader looked are never modified and the
//!   file is never truncated (a mapped reader would take SIGBUS).
//! - The index references a record only after the record and its header are durable.
//! - Bytes not referenced by the index (a crashed writer's tail) are garbage: readers never look
//!   at them, and a writer that adopts the segment appends after them.

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::error::{Error, Result};
use crate::schema::Codec;

/// Version of the segment file layout written by this build.
///
/// Version 1 segments hold only `BLOB` records. Version 2 adds the `MANI` (episode manifest)
/// and `DONE` (commit marker) records that make the index rebuildable (`trajstore repair`).
/// A writer appends only to segments of exactly this version (segment/writer.rs, adoption):
/// a v1 segment never receives a v2 record.
pub const SEGMENT_FORMAT_VERSION: u32 = 2;
/// The first segment version with manifests and commit markers.
pub const FIRST_MANIFEST_VERSION: u32 = 2;
/// First bytes of every segment file.
pub const FILE_MAGIC: [u8; 8] = *b"TRAJSEG\0";
/// First bytes of a record header holding field data (a chunk).
pub const RECORD_MAGIC: [u8; 4] = *b"BLOB";
/// First bytes of a record header holding an episode manifest (segment version 2).
pub const MANIFEST_MAGIC: [u8; 4] = *b"MANI";
/// First bytes of a record header holding a commit marker (segment version 2).
pub const MARKER_MAGIC: [u8; 4] = *b"DONE";
/// Size of the file header and of every record header; also the record alignment, so every
/// payload starts 64-byte aligned (any dtype can be viewed in place).
pub const HEADER_BYTES: usize = 64;

// File header layout.
const FILE_MAGIC_OFFSET: usize = 0;
const FILE_VERSION_OFFSET: usize = FILE_MAGIC_OFFSET + FILE_MAGIC.len();
const FILE_SEGMENT_ID_OFFSET: usize = FILE_VERSION_OFFSET + size_of::<u32>() + size_of::<u32>();
const HEADER_CHECKSUM_OFFSET: usize = HEADER_BYTES - size_of::<u64>();

// Record header layout.
const RECORD_MAGIC_OFFSET: usize = 0;
const RECORD_CODEC_OFFSET: usize = RECORD_MAGIC_OFFSET + RECORD_MAGIC.len();
const RECORD_PAYLOAD_LEN_OFFSET: usize = RECORD_CODEC_OFFSET + 4;
const RECORD_STEPS_OFFSET: usize = RECORD_PAYLOAD_LEN_OFFSET + size_of::<u64>();
const RECORD_STEP_BYTES_OFFSET: usize = RECORD_STEPS_OFFSET + size_of::<u32>();
const RECORD_CHECKSUM_OFFSET: usize = RECORD_STEP_BYTES_OFFSET + size_of::<u32>();

/// Rounds up to the record alignment.
pub fn align_up(offset: u64) -> u64 {
    offset.div_ceil(HEADER_BYTES as u64) * HEADER_BYTES as u64
}

/// The checksum used everywhere in the format: xxh3-64 with seed 0.
pub fn checksum(bytes: &[u8]) -> u64 {
    xxh3_64(bytes)
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn read_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn seal_header(h: &mut [u8; HEADER_BYTES]) {
    let sum = checksum(&h[..HEADER_CHECKSUM_OFFSET]);
    h[HEADER_CHECKSUM_OFFSET..].copy_from_slice(&sum.to_le_bytes());
}

fn header_checksum_ok(h: &[u8]) -> bool {
    checksum(&h[..HEADER_CHECKSUM_OFFSET]) == read_u64(h, HEADER_CHECKSUM_OFFSET)
}

/// The 64-byte header that opens a segment file.
pub fn encode_file_header(segment: u64) -> [u8; HEADER_BYTES] {
    let mut h = [0u8; HEADER_BYTES];
    h[FILE_MAGIC_OFFSET..FILE_VERSION_OFFSET].copy_from_slice(&FILE_MAGIC);
    h[FILE_VERSION_OFFSET..FILE_VERSION_OFFSET + 4]
        .copy_from_slice(&SEGMENT_FORMAT_VERSION.to_le_bytes());
    h[FILE_SEGMENT_ID_OFFSET..FILE_SEGMENT_ID_OFFSET + 8].copy_from_slice(&segment.to_le_bytes());
    seal_header(&mut h);
    h
}

/// Why a file header was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum FileHeaderError {
    /// Too short, wrong magic, bad checksum or wrong segment id.
    Invalid(String),
    /// Written by a newer trajstore.
    NewerVersion(u32),
}

/// The error for the segment file at `path`, written in segment format `found`: newer than
/// this build reads (a [`FileHeaderError::NewerVersion`]).
pub fn newer_segment_format(path: std::path::PathBuf, found: u32) -> Error {
    crate::error::OpenError::UnsupportedFormat {
        path,
        found,
        supported: SEGMENT_FORMAT_VERSION,
    }
    .into()
}

/// Checks a segment file's header and returns its segment format version.
pub fn decode_file_header(bytes: &[u8], segment: u64) -> Result<u32, FileHeaderError> {
    let (version, id) = decode_file_header_id(bytes)?;
    if id != segment {
        return Err(FileHeaderError::Invalid(
            "file header names another segment id".into(),
        ));
    }
    Ok(version)
}

/// Checks a segment file's header and returns its segment format version and the segment id
/// it names (the id the file was created with; a merged store links it under another id,
/// segment/link.rs).
pub fn decode_file_header_id(bytes: &[u8]) -> Result<(u32, u64), FileHeaderError> {
    let invalid = |m: &str| Err(FileHeaderError::Invalid(m.to_owned()));
    let Some(h) = bytes.get(..HEADER_BYTES) else {
        return invalid("file shorter than its 64-byte header");
    };
    if h[..FILE_VERSION_OFFSET] != FILE_MAGIC {
        return invalid("not a trajstore segment (bad magic)");
    }
    if !header_checksum_ok(h) {
        return invalid("file header checksum mismatch");
    }
    let version = read_u32(h, FILE_VERSION_OFFSET);
    if version > SEGMENT_FORMAT_VERSION {
        return Err(FileHeaderError::NewerVersion(version));
    }
    if version == 0 {
        return invalid("segment format version 0");
    }
    Ok((version, read_u64(h, FILE_SEGMENT_ID_OFFSET)))
}

/// Where a chunk of one field's steps lives. Stored in the index inside episode records.
///
/// Stored by postcard field order: never reorder or change these fields; a new layout is a
/// new record version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    /// Segment file id.
    pub segment: u64,
    /// Offset of the record header in the segment (64-byte aligned).
    pub offset: u64,
    /// Payload bytes after the header.
    pub payload_len: u64,
    /// Steps in this chunk.
    pub steps: u32,
    pub codec: Codec,
    /// xxh3-64 of the payload.
    pub checksum: u64,
}

impl ChunkRef {
    /// Offset of the first payload byte.
    pub fn payload_offset(&self) -> u64 {
        self.offset + HEADER_BYTES as u64
    }
}

fn codec_byte(codec: Codec) -> u8 {
    match codec {
        Codec::Raw => 0,
        Codec::Lz4 => 1,
    }
}

/// The 64-byte header in front of a record's payload.
pub fn encode_record_header(
    codec: Codec,
    payload_len: u64,
    steps: u32,
    step_bytes: u32,
    payload_checksum: u64,
) -> [u8; HEADER_BYTES] {
    let mut h = [0u8; HEADER_BYTES];
    h[..RECORD_CODEC_OFFSET].copy_from_slice(&RECORD_MAGIC);
    h[RECORD_CODEC_OFFSET] = codec_byte(codec);
    h[RECORD_PAYLOAD_LEN_OFFSET..RECORD_STEPS_OFFSET].copy_from_slice(&payload_len.to_le_bytes());
    h[RECORD_STEPS_OFFSET..RECORD_STEP_BYTES_OFFSET].copy_from_slice(&steps.to_le_bytes());
    h[RECORD_STEP_BYTES_OFFSET..RECORD_CHECKSUM_OFFSET].copy_from_slice(&step_bytes.to_le_bytes());
    h[RECORD_CHECKSUM_OFFSET..RECORD_CHECKSUM_OFFSET + 8]
        .copy_from_slice(&payload_checksum.to_le_bytes());
    seal_header(&mut h);
    h
}

/// Checks that the record header at `chunk.offset` agrees with the index's [`ChunkRef`].
/// `header` is the 64 bytes at that offset.
pub fn check_record_header(header: &[u8], chunk: &ChunkRef, step_bytes: usize) -> Result<()> {
    let bad = |reason: String| Err(Error::corrupted(chunk.segment, chunk.offset, reason));
    if header.len() < HEADER_BYTES {
        return bad("record header past the end of the segment".into());
    }
    if header[..RECORD_CODEC_OFFSET] != RECORD_MAGIC {
        return bad("record header has a bad magic".into());
    }
    if !header_checksum_ok(header) {
        return bad("record header checksum mismatch".into());
    }
    let fields = (
        header[RECORD_CODEC_OFFSET],
        read_u64(header, RECORD_PAYLOAD_LEN_OFFSET),
        read_u32(header, RECORD_STEPS_OFFSET),
        read_u32(header, RECORD_STEP_BYTES_OFFSET) as usize,
        read_u64(header, RECORD_CHECKSUM_OFFSET),
    );
    let expected = (
        codec_byte(chunk.codec),
        chunk.payload_len,
        chunk.steps,
        step_bytes,
        chunk.checksum,
    );
    if fields != expected {
        return bad(format!(
            "record header (codec, length, steps, step bytes, checksum) = {fields:?} but the index says {expected:?}"
        ));
    }
    Ok(())
}

/// The 64-byte header in front of a manifest or marker record (`magic` is [`MANIFEST_MAGIC`]
/// or [`MARKER_MAGIC`]): the same framing as a blob, codec 0, steps 0, step bytes 0.
pub fn encode_meta_record_header(
    magic: [u8; 4],
    payload_len: u64,
    payload_checksum: u64,
) -> [u8; HEADER_BYTES] {
    let mut h = encode_record_header(Codec::Raw, payload_len, 0, 0, payload_checksum);
    h[..RECORD_CODEC_OFFSET].copy_from_slice(&magic);
    seal_header(&mut h);
    h
}

/// Which record a header opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// Field data of one episode (a chunk).
    Blob,
    /// An episode manifest (segment version 2).
    Manifest,
    /// A commit marker (segment version 2).
    Marker,
}

/// A record header as found by a sequential scan (repair), not yet checked against anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    pub kind: RecordKind,
    pub payload_len: u64,
    pub checksum: u64,
}

impl RecordHeader {
    /// Offset one past the payload of the record whose header is at `offset`.
    pub fn payload_end(&self, offset: u64) -> Option<u64> {
        offset
            .checked_add(HEADER_BYTES as u64)?
            .checked_add(self.payload_len)
    }
}

/// Parses the 64 bytes at a record offset: `None` unless they are a record header with a known
/// magic and a valid header checksum (a torn tail, padding or garbage).
pub fn parse_record_header(header: &[u8]) -> Option<RecordHeader> {
    let h = header.get(..HEADER_BYTES)?;
    let kind = match &h[..RECORD_CODEC_OFFSET] {
        m if m == RECORD_MAGIC => RecordKind::Blob,
        m if m == MANIFEST_MAGIC => RecordKind::Manifest,
        m if m == MARKER_MAGIC => RecordKind::Marker,
        _ => return None,
    };
    if !header_checksum_ok(h) {
        return None;
    }
    Some(RecordHeader {
        kind,
        payload_len: read_u64(h, RECORD_PAYLOAD_LEN_OFFSET),
        checksum: read_u64(h, RECORD_CHECKSUM_OFFSET),
    })
}

/// Layout of an lz4 chunk's payload:
///
/// ```text
/// ends:  (steps) u32   end offset of block k, relative to the first block byte
/// kinds: (steps) u8    0 = lz4 block, 1 = stored raw (compression saved too little)
/// pad to 8 bytes
/// blocks
/// ```
pub struct Lz4Table<'a> {
    ends: &'a [u8],
    kinds: &'a [u8],
    blocks: &'a [u8],
}

/// Block kind: LZ4 block format.
pub const BLOCK_LZ4: u8 = 0;
/// Block kind: the step's bytes stored as they are.
pub const BLOCK_STORED: u8 = 1;

/// Bytes of an lz4 chunk's table for `steps` steps (padded to 8).
pub fn lz4_table_bytes(steps: usize) -> usize {
    (steps * 5).div_ceil(8) * 8
}

impl<'a> Lz4Table<'a> {
    /// Splits an lz4 chunk payload, checking the table is consistent with the payload length.
    pub fn parse(payload: &'a [u8], steps: usize, chunk: &ChunkRef) -> Result<Self> {
        let table = lz4_table_bytes(steps);
        let bad = |m: &str| Error::corrupted(chunk.segment, chunk.offset, m.to_owned());
        let (head, blocks) = payload
            .split_at_checked(table)
            .ok_or_else(|| bad("lz4 table past the payload"))?;
        let t = Lz4Table {
            ends: &head[..steps * 4],
            kinds: &head[steps * 4..steps * 5],
            blocks,
        };
        if steps > 0 && t.end(steps - 1) != blocks.len() {
            return Err(bad("lz4 table does not match the payload length"));
        }
        Ok(t)
    }

    fn end(&self, step: usize) -> usize {
        read_u32(self.ends, step * 4) as usize
    }

    /// The stored block of one step and its kind, or why it is out of bounds.
    pub fn block(&self, step: usize) -> Option<(u8, &'a [u8])> {
        let start = if step == 0 { 0 } else { self.end(step - 1) };
        let end = self.end(step);
        Some((*self.kinds.get(step)?, self.blocks.get(start..end)?))
    }
}

/// Appends one step's block to an lz4 chunk under construction (`ends`, `kinds`, `blocks`).
pub fn push_lz4_block(step: &[u8], ends: &mut Vec<u32>, kinds: &mut Vec<u8>, blocks: &mut Vec<u8>) {
    let start = blocks.len();
    let bound = lz4_flex::block::get_maximum_output_size(step.len());
    blocks.resize(start + bound, 0);
    let written =
        lz4_flex::block::compress_into(step, &mut blocks[start..]).expect("buffer sized by bound");
    // Keep the compressed form only when it saves at least 1/8: decoding costs more than a copy.
    if written <= step.len() - step.len() / 8 {
        blocks.truncate(start + written);
        kinds.push(BLOCK_LZ4);
    } else {
        blocks.truncate(start);
        blocks.extend_from_slice(step);
        kinds.push(BLOCK_STORED);
    }
    ends.push(u32::try_from(blocks.len()).expect("chunks are cut below 4 GiB"));
}

/// Serialises an lz4 chunk's table (the bytes in front of its blocks).
pub fn encode_lz4_table(ends: &[u32], kinds: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(lz4_table_bytes(ends.len()));
    for e in ends {
        t.extend_from_slice(&e.to_le_bytes());
    }
    t.extend_from_slice(kinds);
    t.resize(lz4_table_bytes(ends.len()), 0);
    t
}

/// Decodes one stored block into `out` (exactly `step_bytes` long).
pub fn decode_block(
    kind: u8,
    block: &[u8],
    out: &mut [u8],
    chunk: &ChunkRef,
    step: usize,
) -> Result<()> {
    let bad = |m: String| {
        Err(Error::corrupted(
            chunk.segment,
            chunk.offset,
            format!("step {step} of chunk: {m}"),
        ))
    };
    match kind {
        BLOCK_STORED if block.len() == out.len() => {
            out.copy_from_slice(block);
            Ok(())
        }
        BLOCK_LZ4 => match lz4_flex::block::decompress_into(block, out) {
            Ok(n) if n == out.len() => Ok(()),
            Ok(n) => bad(format!(
                "lz4 block decoded to {n} bytes, expected {}",
                out.len()
            )),
            Err(e) => bad(format!("lz4 block does not decode: {e}")),
        },
        _ => bad(format!("block kind {kind} with {} bytes", block.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_header_round_trips_and_refuses_newer_versions() {
        let h = encode_file_header(7);
        assert_eq!(decode_file_header(&h, 7), Ok(SEGMENT_FORMAT_VERSION));
        assert!(matches!(
            decode_file_header(&h, 8),
            Err(FileHeaderError::Invalid(_))
        ));
        let mut newer = h;
        newer[FILE_VERSION_OFFSET..FILE_VERSION_OFFSET + 4].copy_from_slice(&3u32.to_le_bytes());
        seal_header(&mut newer);
        assert_eq!(
            decode_file_header(&newer, 7),
            Err(FileHeaderError::NewerVersion(3))
        );
        let mut flipped = h;
        flipped[20] ^= 1;
        assert!(
            matches!(decode_file_header(&flipped, 7), Err(FileHeaderError::Invalid(m)) if m.contains("checksum"))
        );
    }

    #[test]
    fn record_header_must_agree_with_the_index() {
        let chunk = ChunkRef {
            segment: 1,
            offset: 64,
            payload_len: 100,
            steps: 10,
            codec: Codec::Raw,
            checksum: 42,
        };
        let h = encode_record_header(Codec::Raw, 100, 10, 10, 42);
        check_record_header(&h, &chunk, 10).unwrap();
        let err = check_record_header(&h, &ChunkRef { steps: 11, ..chunk }, 10).unwrap_err();
        assert!(err.to_string().contains("the index says"), "{err}");
        let mut flipped = h;
        flipped[9] ^= 0x10;
        assert!(
            check_record_header(&flipped, &chunk, 10)
                .unwrap_err()
                .to_string()
                .contains("checksum")
        );
    }

    #[test]
    fn manifest_and_marker_headers_parse_and_torn_ones_do_not() {
        let h = encode_meta_record_header(MANIFEST_MAGIC, 300, 99);
        let parsed = parse_record_header(&h).unwrap();
        assert_eq!(parsed.kind, RecordKind::Manifest);
        assert_eq!((parsed.payload_len, parsed.checksum), (300, 99));
        assert_eq!(parsed.payload_end(64), Some(64 + 64 + 300));
        let marker = encode_meta_record_header(MARKER_MAGIC, 10, 1);
        assert_eq!(
            parse_record_header(&marker).unwrap().kind,
            RecordKind::Marker
        );
        let blob = encode_record_header(Codec::Lz4, 5, 1, 5, 0);
        assert_eq!(parse_record_header(&blob).unwrap().kind, RecordKind::Blob);
        let mut torn = h;
        torn[9] ^= 1;
        assert_eq!(parse_record_header(&torn), None);
        assert_eq!(parse_record_header(&[0u8; 64]), None);
        assert_eq!(parse_record_header(&h[..63]), None);
        let mut huge = encode_meta_record_header(MARKER_MAGIC, u64::MAX, 0);
        seal_header(&mut huge);
        assert_eq!(parse_record_header(&huge).unwrap().payload_end(64), None);
    }

    #[test]
    fn lz4_blocks_round_trip_and_incompressible_steps_are_stored() {
        let compressible = vec![7u8; 1000];
        let mut rng = crate::partition::rng::SplitMix64::new(3);
        let noise: Vec<u8> = (0..1000).map(|_| rng.next_u64() as u8).collect();
        let (mut ends, mut kinds, mut blocks) = (vec![], vec![], vec![]);
        push_lz4_block(&compressible, &mut ends, &mut kinds, &mut blocks);
        push_lz4_block(&noise, &mut ends, &mut kinds, &mut blocks);
        assert_eq!(kinds, [BLOCK_LZ4, BLOCK_STORED]);
        let mut payload = encode_lz4_table(&ends, &kinds);
        payload.extend_from_slice(&blocks);
        let chunk = ChunkRef {
            segment: 0,
            offset: 0,
            payload_len: 0,
            steps: 2,
            codec: Codec::Lz4,
            checksum: 0,
        };
        let table = Lz4Table::parse(&payload, 2, &chunk).unwrap();
        for (i, want) in [&compressible, &noise].into_iter().enumerate() {
            let (kind, block) = table.block(i).unwrap();
            let mut out = vec![0u8; 1000];
            decode_block(kind, block, &mut out, &chunk, i).unwrap();
            assert_eq!(&out, want);
        }
        assert!(Lz4Table::parse(&payload[..payload.len() - 1], 2, &chunk).is_err());
    }
}
