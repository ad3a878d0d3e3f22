//! Append-only segment files holding field data; see `format.rs` for the bytes.

pub(crate) mod checked;
pub mod format;
pub mod link;
pub mod manifest;
mod reader;
pub mod readers;
mod sync_thread;
mod writer;

pub use reader::{MappedBytes, SegmentMaps};
pub use writer::{Appender, ChunkSink, RecordBuf, SegmentPool, list_segment_ids, sync_dir};

use std::path::{Path, PathBuf};

/// Name of the directory holding segment files, inside the store directory.
pub const SEGMENTS_DIR: &str = "segments";

/// Path of a segment file: `{id:016x}.seg`, so directory order is id order.
pub fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016x}.seg"))
}

/// Parses a segment file name back into its id.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let hex = name.strip_suffix(".seg")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}
