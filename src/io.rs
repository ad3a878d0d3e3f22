//! The one place trajstore touches the file system: creating, opening, writing, syncing and
//! mapping segment files, and (optionally) the index's storage.
//!
//! [`OsIo`], the default, is the real file system: the only memory map of segment data and
//! every segment sync go through it. Other implementations exist for tests that the real file
//! system cannot give on demand: one that keeps a live and a durable image of every file and
//! cuts the power at a chosen sync (what survives is what was synced), and one that fails the
//! N-th write or sync with EIO or ENOSPC. A store is opened with one through
//! [`StoreOptions::io`](crate::StoreOptions::io).
//!
//! What the store relies on (and a test implementation must model):
//! - `write_at` is not durable until `sync_data`/`sync_all` of that file returns;
//! - a new file's *name* is not durable until `sync_dir` of its directory returns;
//! - `create_new` fails with `AlreadyExists` when the name exists (`O_EXCL`);
//! - `try_lock` is an exclusive advisory lock held until the file handle is dropped, and
//!   excludes other handles of this and other processes (`flock`).

use std::ffi::OsString;
use std::fmt::Debug;
use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::ops::Deref;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// File-system operations of a store. See the module docs for the guarantees relied on.
pub trait StoreIo: Send + Sync + Debug + 'static {
    /// Creates `dir` and its parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Makes the names in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Names of the entries of `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>>;
    /// Length of the file at `path`.
    fn len(&self, path: &Path) -> io::Result<u64>;
    /// Whether `path` names a directory.
    fn is_dir(&self, path: &Path) -> bool;
    /// Creates a file that must not exist yet (`O_CREAT | O_EXCL`), for reading and writing.
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn StoreFile>>;
    /// Opens an existing file for reading and writing.
    fn open(&self, path: &Path) -> io::Result<Box<dyn StoreFile>>;
    /// A read-only view of the whole file as it is now; bytes below its length never change
    /// while the view lives (the store never rewrites them).
    fn map(&self, path: &Path) -> io::Result<Arc<dyn FileView>>;
    /// The index's storage: `None` lets redb open and lock the file itself (the real file
    /// system, where other processes share it); `Some` serves it from this implementation
    /// (one process only: no cross-process locking).
    fn index_file(&self, path: &Path) -> io::Result<Option<Box<dyn StoreFile>>>;
    /// Which file `path` names now (device and inode), `None` when unknown. A writer that
    /// opened a segment and then took its lock checks the name still leads to that file:
    /// compaction may have moved it to `retired/` in between.
    fn identity(&self, _path: &Path) -> Option<(u64, u64)> {
        None
    }
    /// Whether a commit may sync its segment on a helper thread while the index commits
    /// (src/index/presync.rs): two syncs of two files at once. The real file system does.
    /// Implementations that number their operations to cut the power or fail the N-th one
    /// (the test simulations) say no, and get one fixed order: the segment sync returns before
    /// the index transaction begins. Both orders keep the same guarantee.
    fn overlapped_syncs(&self) -> bool {
        false
    }
}

/// An open file.
#[allow(clippy::len_without_is_empty)] // a file handle, not a collection
pub trait StoreFile: Send + Sync + Debug {
    /// Reads exactly `buf.len()` bytes at `offset`.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset` (not durable until a sync).
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes the file's data durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
    /// Makes the file's data and metadata durable (`fsync`).
    fn sync_all(&self) -> io::Result<()>;
    fn len(&self) -> io::Result<u64>;
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Takes the file's exclusive lock without waiting; `false` when someone else holds it.
    fn try_lock(&self) -> io::Result<bool>;
    /// Takes the file's exclusive lock, waiting for it.
    fn lock(&self) -> io::Result<()>;
    /// Which file this is (device and inode), `None` when unknown ([`StoreIo::identity`]).
    fn identity(&self) -> Option<(u64, u64)> {
        None
    }
}

/// Bytes of a mapped file.
pub trait FileView: Deref<Target = [u8]> + Send + Sync + Debug {
    /// Hands back this process's pages of `range` (the file's pages stay in the page
    /// cache): for a reader done with those bytes, such as `verify`, so that reading a whole
    /// store does not leave all of it in the process's resident set. The bytes stay readable:
    /// the next access maps them again. Whole pages inside `range` only; out-of-range parts
    /// are ignored. Nothing by default.
    fn release(&self, _range: std::ops::Range<usize>) {}
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsIo;

impl StoreIo for OsIo {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        std::fs::read_dir(dir)?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect()
    }

    fn len(&self, path: &Path) -> io::Result<u64> {
        Ok(std::fs::metadata(path)?.len())
    }

    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn StoreFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        Ok(Box::new(OsFile(file)))
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn StoreFile>> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Box::new(OsFile(file)))
    }

    fn map(&self, path: &Path) -> io::Result<Arc<dyn FileView>> {
        let file = File::open(path)?;
        // SAFETY: trajstore never modifies or truncates bytes of a segment file below the
        // length a reader may have seen (schema/format.md, invariants), and readers only look
        // at ranges the committed index references, which were durable before the commit.
        // Another program truncating the file would break this, as it would for LMDB; that is
        // outside the store's contract (schema/format.md, "Assumptions").
        let map = unsafe { memmap2::Mmap::map(&file) }?;
        Ok(Arc::new(OsMap(map)))
    }

    fn index_file(&self, _path: &Path) -> io::Result<Option<Box<dyn StoreFile>>> {
        Ok(None)
    }

    fn identity(&self, path: &Path) -> Option<(u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }

    fn overlapped_syncs(&self) -> bool {
        true
    }
}

/// A file of the real file system.
#[derive(Debug)]
pub struct OsFile(pub File);

impl StoreFile for OsFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn try_lock(&self) -> io::Result<bool> {
        match self.0.try_lock() {
            Ok(()) => Ok(true),
            Err(TryLockError::WouldBlock) => Ok(false),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }

    fn lock(&self) -> io::Result<()> {
        self.0.lock()
    }

    fn identity(&self) -> Option<(u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        self.0.metadata().ok().map(|m| (m.dev(), m.ino()))
    }
}

#[derive(Debug)]
struct OsMap(memmap2::Mmap);

impl Deref for OsMap {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl FileView for OsMap {
    fn release(&self, range: std::ops::Range<usize>) {
        // Whole 64 KiB blocks inside the range: page-aligned for every page size up to
        // 64 KiB (the map itself starts on a page), and never a page partly outside it.
        const BLOCK: usize = 64 << 10;
        let start = range.start.div_ceil(BLOCK) * BLOCK;
        let end = range.end.min(self.0.len()) / BLOCK * BLOCK;
        if start < end {
            // SAFETY: the map is a read-only shared map of a segment file, whose bytes below
            // the length mapped never change (schema/format.md, invariants): MADV_DONTNEED
            // only drops this process's page table entries, and the next access maps the
            // same bytes again from the page cache. No reference into the map is invalidated
            // (a private writable map would lose its changes; this one has none).
            let _ = unsafe {
                self.0.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    start,
                    end - start,
                )
            };
        }
    }
}

/// Serves a redb index from a [`StoreFile`] (single process: every lock is granted).
#[derive(Debug)]
pub(crate) struct IndexBackend(pub Box<dyn StoreFile>);

impl redb::StorageBackend for IndexBackend {
    fn len(&self) -> Result<u64, io::Error> {
        self.0.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.0.read_exact_at(out, offset)
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.0.set_len(len)
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        self.0.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.0.write_all_at(data, offset)
    }

    fn try_lock_range(
        &self,
        _start: std::ops::Bound<u64>,
        _end: std::ops::Bound<u64>,
    ) -> Result<bool, redb::BackendError> {
        Ok(true)
    }

    fn try_lock_shared_range(
        &self,
        _start: std::ops::Bound<u64>,
        _end: std::ops::Bound<u64>,
    ) -> Result<bool, redb::BackendError> {
        Ok(true)
    }

    fn lock_range(
        &self,
        _start: std::ops::Bound<u64>,
        _end: std::ops::Bound<u64>,
    ) -> Result<(), redb::BackendError> {
        Ok(())
    }

    fn lock_shared_range(
        &self,
        _start: std::ops::Bound<u64>,
        _end: std::ops::Bound<u64>,
    ) -> Result<(), redb::BackendError> {
        Ok(())
    }

    fn unlock_range(
        &self,
        _start: std::ops::Bound<u64>,
        _end: std::ops::Bound<u64>,
    ) -> Result<(), redb::BackendError> {
        Ok(())
    }

    /// No other process shares the file: nothing ever conflicts.
    fn query_lock_range(
        &self,
        _start: std::ops::Bound<u64>,
        _end: std::ops::Bound<u64>,
    ) -> Result<bool, redb::BackendError> {
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_bytes_read_the_same_after_their_pages_are_released() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file");
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 4096) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let map = OsIo.map(&path).unwrap();
        assert_eq!(&map[..], &bytes[..]);
        for range in [
            0..bytes.len(),
            1..70_000,
            65_536..196_608,
            200_000..usize::MAX,
        ] {
            map.release(range);
            assert_eq!(&map[..], &bytes[..], "readable again, the same bytes");
        }
    }
}
