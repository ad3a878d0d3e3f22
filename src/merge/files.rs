//! Bringing a source store's segment file into the merged store: a hard link when both are on
//! one file system and nobody holds the file's lock, else a copy; then a link sidecar naming
//! its origin (segment/link.rs, schema/format.md "Merge").

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::segment::format::{HEADER_BYTES, decode_file_header_id};
use crate::segment::link::{RETIRED_DIR, SegmentLink, link_path};
use crate::segment::{list_segment_ids, segment_path};

/// A source segment brought into the merged store, locked until the merge is over.
pub struct Brought {
    /// Its id in the merged store.
    pub id: u64,
    /// Its size when it was brought in.
    pub bytes: u64,
    /// Copied (another file system, or a live recorder holds it) rather than hard-linked.
    pub copied: bool,
    /// Held until the merge's index transaction is over, so a compaction of the merged store
    /// never takes the file for unreferenced garbage meanwhile.
    _lock: File,
}

/// The source's segment file `id`: in `segments/`, or in `segments/retired/` when the source's
/// own compaction replaced it after our snapshot of the source was taken.
pub fn source_file(source_segments: &Path, id: u64) -> PathBuf {
    let path = segment_path(source_segments, id);
    if path.exists() {
        return path;
    }
    let retired = segment_path(&source_segments.join(RETIRED_DIR), id);
    if retired.exists() { retired } else { path }
}

/// Links (or copies) `source` into `segments` under a fresh id, writes its link sidecar
/// (`origin_store`, `origin_segment`) and returns it locked. Nothing is synced here but the
/// sidecar and a copy's bytes: the caller syncs the directory once for all.
pub fn bring(
    segments: &Path,
    source: &Path,
    origin_store: &Path,
    origin_segment: u64,
) -> Result<Brought> {
    let header_segment = read_header_id(source)?;
    let tmp = temp_name(segments);
    let (lock, copied) = match link_locked(source, &tmp)? {
        Some(lock) => (lock, false),
        None => (copy_locked(source, &tmp)?, true),
    };
    let bytes = lock.metadata().map_err(|e| Error::io(&tmp, e))?.len();
    let claimed = claim_id(segments, &tmp, header_segment);
    let _ = std::fs::remove_file(&tmp);
    let id = claimed?;
    let link = SegmentLink {
        header_segment,
        origin_segment,
        origin_store: origin_store.display().to_string(),
    };
    let sidecar = link_path(segments, id);
    write_synced(&sidecar, &link.encode()).map_err(|e| Error::io(&sidecar, e))?;
    Ok(Brought {
        id,
        bytes,
        copied,
        _lock: lock,
    })
}

/// The segment id the file's header names (the id it was created with).
fn read_header_id(source: &Path) -> Result<u64> {
    let mut header = [0u8; HEADER_BYTES];
    let file = File::open(source).map_err(|e| Error::io(source, e))?;
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut header, 0)
        .map_err(|e| Error::io(source, e))?;
    decode_file_header_id(&header)
        .map(|(_, id)| id)
        .map_err(|e| Error::corrupted(0, 0, format!("{}: {e:?}", source.display())))
}

/// A name in `segments/` that no reader, writer or scan looks at (not `*.seg`).
fn temp_name(segments: &Path) -> PathBuf {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    segments.join(format!(
        ".merge-{}-{}.tmp",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Hard-links `source` to `tmp` and takes the file's lock: `None` when a link cannot be made
/// here (another file system) or the lock is held (a live recorder of the source appends to
/// it; the lock is the inode's, so linking would leave the merged store's copy unlocked).
fn link_locked(source: &Path, tmp: &Path) -> Result<Option<File>> {
    match std::fs::hard_link(source, tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::CrossesDevices => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::Unsupported => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return Ok(None),
        Err(e) => return Err(Error::io(tmp, e)),
    }
    let file = File::open(tmp).map_err(|e| Error::io(tmp, e))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(TryLockError::WouldBlock) => {
            let _ = std::fs::remove_file(tmp);
            Ok(None)
        }
        Err(TryLockError::Error(e)) => Err(Error::io(tmp, e)),
    }
}

/// Copies `source` to a new file `tmp`, locked, and syncs it.
fn copy_locked(source: &Path, tmp: &Path) -> Result<File> {
    let mut from = File::open(source).map_err(|e| Error::io(source, e))?;
    let mut to = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(tmp)
        .map_err(|e| Error::io(tmp, e))?;
    to.lock().map_err(|e| Error::io(tmp, e))?;
    io::copy(&mut from, &mut to).map_err(|e| Error::io(tmp, e))?;
    to.sync_all().map_err(|e| Error::io(tmp, e))?;
    Ok(to)
}

/// Gives the file at `tmp` a segment name: `1 +` the largest id listed, skipping `avoid` (the
/// id in the file's header: a linked file's name never equals it, so a linked file without
/// its sidecar is never mistaken for one of this store's own). `link` fails when the name
/// exists, which makes the id ours as `O_EXCL` does for recorders (invariant 3).
fn claim_id(segments: &Path, tmp: &Path, avoid: u64) -> Result<u64> {
    let mut id = list_segment_ids(segments)?
        .last()
        .map_or(1, |last| last + 1);
    loop {
        if id == avoid {
            id += 1;
            continue;
        }
        let name = segment_path(segments, id);
        match std::fs::hard_link(tmp, &name) {
            Ok(()) => return Ok(id),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => id += 1,
            Err(e) => return Err(Error::io(&name, e)),
        }
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut f = File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}
