//! The segment sync that runs beside the index commit (src/index/presync.rs): on the real file
//! system a commit syncs its segment on a helper thread while the index transaction commits,
//! and redb's first index sync waits for it. These pin that a segment sync that fails, or is
//! slow, never lets the index commit name bytes that are not durable. Background commits
//! (`EpisodeWriter::commit_in_background`) run that same path on the store's queue: they are
//! pinned here too, with syncs made slow or failing.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use trajstore::io::{FileView, OsFile, OsIo, StoreFile, StoreIo};
use trajstore::{ArrayRef, Codec, EpisodeMeta, Info, Query, Store, StoreOptions};

use crate::util::{small_frame, small_schema};

/// The real file system, whose segment syncs can be made to fail or to be slow; the index is
/// redb's own file (its cross-process locks included), as in production.
#[derive(Debug, Default)]
struct SegmentSyncs {
    fail: AtomicBool,
    delay_ms: AtomicU64,
    /// Segment syncs finished (successful or not).
    finished: AtomicU64,
}

#[derive(Debug)]
struct Io(Arc<SegmentSyncs>);

#[derive(Debug)]
struct File_ {
    inner: OsFile,
    syncs: Arc<SegmentSyncs>,
}

impl File_ {
    fn sync(&self, real: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        std::thread::sleep(Duration::from_millis(
            self.syncs.delay_ms.load(Ordering::SeqCst),
        ));
        let result = if self.syncs.fail.load(Ordering::SeqCst) {
            Err(io::Error::from_raw_os_error(libc::EIO))
        } else {
            real()
        };
        self.syncs.finished.fetch_add(1, Ordering::SeqCst);
        result
    }
}

impl StoreFile for File_ {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.sync(|| self.inner.sync_data())
    }
    fn sync_all(&self) -> io::Result<()> {
        self.sync(|| self.inner.sync_all())
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn try_lock(&self) -> io::Result<bool> {
        self.inner.try_lock()
    }
    fn lock(&self) -> io::Result<()> {
        self.inner.lock()
    }
    fn identity(&self) -> Option<(u64, u64)> {
        self.inner.identity()
    }
}

impl Io {
    fn wrap_file(&self, file: File) -> Box<dyn StoreFile> {
        Box::new(File_ {
            inner: OsFile(file),
            syncs: self.0.clone(),
        })
    }
}

impl StoreIo for Io {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        OsIo.create_dir_all(dir)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        OsIo.sync_dir(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<std::ffi::OsString>> {
        OsIo.list(dir)
    }
    fn len(&self, path: &Path) -> io::Result<u64> {
        OsIo.len(path)
    }
    fn is_dir(&self, path: &Path) -> bool {
        OsIo.is_dir(path)
    }
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn StoreFile>> {
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        Ok(self.wrap_file(file))
    }
    fn open(&self, path: &Path) -> io::Result<Box<dyn StoreFile>> {
        let file = File::options().read(true).write(true).open(path)?;
        Ok(self.wrap_file(file))
    }
    fn map(&self, path: &Path) -> io::Result<Arc<dyn FileView>> {
        OsIo.map(path)
    }
    fn index_file(&self, path: &Path) -> io::Result<Option<Box<dyn StoreFile>>> {
        OsIo.index_file(path)
    }
    fn identity(&self, path: &Path) -> Option<(u64, u64)> {
        OsIo.identity(path)
    }
    fn overlapped_syncs(&self) -> bool {
        true
    }
}

/// A new store on the file system whose segment syncs the returned handle controls.
fn fresh_store() -> (tempfile::TempDir, Arc<SegmentSyncs>, Store) {
    let dir = tempfile::tempdir().unwrap();
    let syncs = Arc::new(SegmentSyncs::default());
    let store = Store::create_with(dir.path(), options(&syncs)).unwrap();
    (dir, syncs, store)
}

fn options(syncs: &Arc<SegmentSyncs>) -> StoreOptions {
    StoreOptions {
        io: Arc::new(Io(syncs.clone())),
        ..StoreOptions::default()
    }
}

/// A 5-step episode with `seed`, ready to commit.
fn recorded(store: &Store, seed: u64) -> trajstore::Result<trajstore::EpisodeWriter> {
    let schema = small_schema(Codec::Raw);
    let mut w = store.begin_episode(EpisodeMeta::new("sync", "Test-v0").seed(seed), &schema)?;
    w.reset(
        &[("obs/frame", ArrayRef::new(&small_frame(seed, 0)))],
        &Info::new(),
    )?;
    for t in 1..=5u32 {
        w.step(
            &[
                ("obs/frame", ArrayRef::new(&small_frame(seed, t))),
                ("action", ArrayRef::scalar(&i64::from(t))),
                ("reward", ArrayRef::scalar(&1.0f32)),
                ("terminated", ArrayRef::scalar(&(t == 5))),
                ("truncated", ArrayRef::scalar(&false)),
            ],
            &Info::new(),
        )?;
    }
    Ok(w)
}

fn record(store: &Store, seed: u64) -> trajstore::Result<trajstore::EpisodeId> {
    recorded(store, seed)?.commit()
}

fn seeds_listed(store: &Store) -> Vec<Option<u64>> {
    let snap = store.snapshot().unwrap();
    snap.episodes(&Query::default())
        .unwrap()
        .iter()
        .map(|e| e.seed())
        .collect()
}

#[test]
fn a_segment_sync_failing_beside_the_index_commit_commits_nothing() {
    let (dir, syncs, store) = fresh_store();
    record(&store, 1).unwrap();

    syncs.fail.store(true, Ordering::SeqCst);
    let err = record(&store, 2).expect_err("the segment sync failed: no commit");
    syncs.fail.store(false, Ordering::SeqCst);
    let text = err.to_string();
    assert!(
        text.contains(&io::Error::from_raw_os_error(libc::EIO).to_string()),
        "the error says what failed: {text}"
    );
    // The failure reached redb inside its commit, as a failed index sync would: this handle
    // refuses the index from now on (reopen it), and a fresh one never lists the episode.
    assert!(store.snapshot().is_err(), "the handle is told to reopen");
    drop(store);
    let store = Store::open_with(dir.path(), options(&syncs)).unwrap();
    assert_eq!(seeds_listed(&store), vec![Some(1)]);
    let report = store.snapshot().unwrap().verify().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    // Recording goes on (in a new segment: the failed one is never appended to again).
    record(&store, 3).unwrap();
    assert_eq!(seeds_listed(&store), vec![Some(1), Some(3)]);
}

#[test]
fn a_slow_segment_sync_holds_the_commit_until_it_is_durable() {
    let (dir, syncs, store) = fresh_store();
    record(&store, 1).unwrap();
    // A reader in another handle must not see the episode before its segment sync finished:
    // the commit is published (god byte written) only after the index's first sync, which
    // waits for the segment sync.
    syncs.delay_ms.store(300, Ordering::SeqCst);
    let before = syncs.finished.load(Ordering::SeqCst);
    let watcher = {
        let path = dir.path().to_owned();
        let syncs = syncs.clone();
        std::thread::spawn(move || {
            let reader = Store::open_read_only(&path).unwrap();
            // Polls while the commit runs; every time the episode is listed, the segment
            // sync must have finished already.
            let mut seen = false;
            for _ in 0..200 {
                let listed = seeds_listed(&reader).contains(&Some(2));
                if listed {
                    // Loaded after the listing: the sync counted itself before it signalled.
                    let finished = syncs.finished.load(Ordering::SeqCst);
                    assert!(
                        finished > before,
                        "episode listed before its segment was synced"
                    );
                    seen = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            seen
        })
    };
    record(&store, 2).unwrap();
    assert!(syncs.finished.load(Ordering::SeqCst) > before);
    syncs.delay_ms.store(0, Ordering::SeqCst);
    assert!(
        watcher.join().unwrap(),
        "the reader saw the commit in the end"
    );
    assert_eq!(seeds_listed(&store), vec![Some(1), Some(2)]);
}

#[test]
fn background_commits_in_flight_share_index_transactions_and_all_land() {
    let (_dir, syncs, store) = fresh_store();
    record(&store, 1).unwrap();
    let before = store.commit_stats();
    // Slow segment syncs: the first commit is still in flight when the others are handed
    // over, so they wait for the next index transaction together.
    syncs.delay_ms.store(50, Ordering::SeqCst);
    let pending: Vec<_> = (2..6)
        .map(|seed| {
            recorded(&store, seed)
                .unwrap()
                .commit_in_background()
                .unwrap()
        })
        .collect();
    let ids: Vec<_> = pending.into_iter().map(|p| p.wait().unwrap()).collect();
    syncs.delay_ms.store(0, Ordering::SeqCst);
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 4, "four distinct ids: {ids:?}");
    let mut seeds = seeds_listed(&store);
    seeds.sort();
    assert_eq!(seeds, (1..6).map(Some).collect::<Vec<_>>());
    let stats = store.commit_stats();
    let (episodes, transactions) = (
        stats.episodes - before.episodes,
        stats.transactions - before.transactions,
    );
    assert_eq!(episodes, 4);
    assert!(
        transactions < episodes,
        "episodes in flight at once share a transaction: {transactions} for {episodes}"
    );
    // Each id names the episode handed over with it.
    let snap = store.snapshot().unwrap();
    for (seed, id) in (2..6).zip(&ids) {
        assert_eq!(snap.episode(*id).unwrap().seed(), Some(seed));
    }
    assert!(snap.verify().unwrap().problems.is_empty());
}

#[test]
fn a_background_commit_that_fails_reports_the_error_and_commits_nothing() {
    let (dir, syncs, store) = fresh_store();
    record(&store, 1).unwrap();
    syncs.fail.store(true, Ordering::SeqCst);
    let pending = recorded(&store, 2).unwrap().commit_in_background().unwrap();
    let err = pending
        .wait()
        .expect_err("the segment sync failed: no commit");
    syncs.fail.store(false, Ordering::SeqCst);
    assert!(
        err.to_string()
            .contains(&io::Error::from_raw_os_error(libc::EIO).to_string()),
        "the error says what failed: {err}"
    );
    drop(store);
    let store = Store::open_with(dir.path(), options(&syncs)).unwrap();
    assert_eq!(seeds_listed(&store), vec![Some(1)]);
}

#[test]
fn a_dropped_pending_commit_waits_until_its_episode_is_durable() {
    let (dir, syncs, store) = fresh_store();
    syncs.delay_ms.store(100, Ordering::SeqCst);
    let before = syncs.finished.load(Ordering::SeqCst);
    let pending = recorded(&store, 7).unwrap().commit_in_background().unwrap();
    drop(pending);
    assert!(syncs.finished.load(Ordering::SeqCst) > before);
    syncs.delay_ms.store(0, Ordering::SeqCst);
    // Another handle, as another process would: the episode is there once the drop returned.
    let reader = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(seeds_listed(&reader), vec![Some(7)]);
}

#[test]
fn an_empty_episode_is_refused_before_it_is_handed_to_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path()).unwrap();
    let w = store
        .begin_episode(
            EpisodeMeta::new("sync", "Test-v0"),
            &small_schema(Codec::Raw),
        )
        .unwrap();
    let err = w.commit_in_background().expect_err("nothing recorded");
    assert!(
        matches!(
            err,
            trajstore::Error::Record(trajstore::RecordError::EmptyEpisode)
        ),
        "{err}"
    );
    assert!(seeds_listed(&store).is_empty());
}
