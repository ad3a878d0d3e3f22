//! Power loss and I/O faults, through a simulated file system under both the segments and the
//! index (tests/util/sim_io.rs). SIGKILL keeps the page cache, so only these exercise "the
//! segment is synced before the index commit" and redb's two-phase commit for real.
//!
//! - The power is cut at every sync point of a recording session in turn; the disk's durable
//!   image then holds every episode whose commit returned, whole, and nothing partial.
//! - The N-th write or sync fails with EIO or ENOSPC, for every N reached while recording; the
//!   error reaches the caller, every episode committed before is intact, the store reopens and
//!   verifies, and recording goes on.

use std::path::Path;
use std::sync::Arc;

use crate::util::sim_io::{Failure, SimHandle, SimIo};
use crate::util::{small_frame, small_schema};
use trajstore::{ArrayRef, Codec, EpisodeMeta, Info, Query, Store, StoreOptions};

const EPISODES: u64 = 4;
/// Marks a failure while creating the store: on the real file system creation is atomic
/// (the index is built under a temporary name and linked into place, cli/tests/concurrency.rs);
/// the simulation creates the index in place, so a fault there leaves no store to reopen.
const CREATING: &str = "while creating the store: ";

fn options(io: &Arc<SimIo>) -> StoreOptions {
    StoreOptions {
        io: Arc::new(SimHandle(io.clone())),
        // Small enough that the second and later episodes spill a chunk before commit.
        spill_bytes: 2_000,
        // Raw frames stream to the segment after two steps (a cut mid-stream leaves an
        // unfinished chunk with no header); lz4 ones are held until commit or spill.
        stream_bytes: 400,
        ..StoreOptions::default()
    }
}

/// Records one small episode; `Err` with the failure's text when anything failed.
fn record(store: &Store, seed: u64, steps: u32) -> Result<trajstore::EpisodeId, String> {
    let codec = if seed.is_multiple_of(2) {
        Codec::Raw
    } else {
        Codec::Lz4
    };
    let schema = small_schema(codec);
    let e = |e: trajstore::Error| e.to_string();
    let mut w = store
        .begin_episode(EpisodeMeta::new("power", "Test-v0").seed(seed), &schema)
        .map_err(e)?;
    w.reset(
        &[("obs/frame", ArrayRef::new(&small_frame(seed, 0)))],
        &Info::new(),
    )
    .map_err(e)?;
    for t in 1..=steps {
        let mut info = Info::new();
        info.insert("t".into(), i64::from(t).into());
        w.step(
            &[
                ("obs/frame", ArrayRef::new(&small_frame(seed, t))),
                ("action", ArrayRef::scalar(&i64::from(t))),
                ("reward", ArrayRef::scalar(&1.0f32)),
                ("terminated", ArrayRef::scalar(&(t == steps))),
                ("truncated", ArrayRef::scalar(&false)),
            ],
            &info,
        )
        .map_err(e)?;
    }
    w.commit().map_err(e)
}

fn steps_of(seed: u64) -> u32 {
    3 + (seed as u32 % 3) * 7
}

/// Records [`EPISODES`] episodes until the first failure; returns (id, seed) of each episode
/// whose commit returned, and the first error. The store is created first (and
/// dropped, closing it, at the end).
fn session(root: &Path, io: &Arc<SimIo>) -> (Vec<(trajstore::EpisodeId, u64)>, Option<String>) {
    let store = match Store::create_with(root, options(io)) {
        Ok(store) => store,
        Err(e) => return (Vec::new(), Some(format!("{CREATING}{e}"))),
    };
    let mut committed = Vec::new();
    for seed in 0..EPISODES {
        match record(&store, seed, steps_of(seed)) {
            Ok(id) => committed.push((id, seed)),
            Err(e) => return (committed, Some(e)),
        }
    }
    LAST_COMMIT_OPS.with(|c| c.set(io.ops()));
    (committed, None)
}

/// Every committed episode is listed and whole (metadata, infos, every value); nothing
/// else is listed but whole episodes; verify finds no problem.
fn check_survivors(store: &Store, committed: &[(trajstore::EpisodeId, u64)], case: &str) {
    let snap = store.snapshot().unwrap();
    let listed = snap.episodes(&Query::default()).unwrap();
    for (id, seed) in committed {
        let e = snap
            .episode(*id)
            .unwrap_or_else(|err| panic!("{case}: committed episode {id} lost: {err}"));
        let steps = steps_of(*seed);
        assert_eq!(e.steps(), steps, "{case}: episode {id}");
        assert_eq!(e.seed(), Some(*seed));
        let frames = snap.field(&e, "obs/frame").unwrap().to_vec().unwrap();
        let want: Vec<u8> = (0..=steps).flat_map(|t| small_frame(*seed, t)).collect();
        assert_eq!(frames, want, "{case}: frames of episode {id}");
        let infos = snap.infos(&e).unwrap();
        assert_eq!(infos.len(), steps as usize + 1);
        assert_eq!(
            infos[steps as usize].get("t"),
            Some(&i64::from(steps).into())
        );
    }
    assert!(listed.len() >= committed.len());
    let report = snap.verify().unwrap();
    assert!(report.problems.is_empty(), "{case}: {:?}", report.problems);
}

#[test]
fn power_cut_at_every_sync_point_keeps_every_committed_episode_whole() {
    let root = Path::new("/sim/store");
    // A run without failure counts the sync points.
    let clean = SimIo::new(Failure::None);
    let (all, err) = session(root, &clean);
    assert_eq!(err, None);
    assert_eq!(all.len() as u64, EPISODES);
    let sync_points = clean.syncs();
    assert!(sync_points >= EPISODES * 2, "{sync_points} syncs");

    let mut survived = 0;
    for n in 1..=sync_points {
        let io = SimIo::new(Failure::PowerCutAtSync(n));
        // The cut may land in the store's close, after every commit returned.
        let (committed, _) = session(root, &io);
        let disk = io.durable_image();
        let case = format!("power cut at sync {n}/{sync_points}");
        match Store::open_with(root, options(&disk)) {
            Ok(store) => {
                check_survivors(&store, &committed, &case);
                // Recording goes on after the reboot.
                let id = record(&store, 99, steps_of(99)).unwrap();
                check_survivors(&store, &[(id, 99)], &case);
                survived += committed.len();
            }
            // Only before the store's creation was durable.
            Err(e) => assert!(
                committed.is_empty(),
                "{case}: {} committed episodes but the store does not open: {e}",
                committed.len()
            ),
        }
    }
    println!("{sync_points} power-cut points, {survived} committed episodes all whole");
}

#[test]
fn injected_eio_and_enospc_at_every_write_and_sync_lose_nothing_committed() {
    let root = Path::new("/sim/store");
    let clean = SimIo::new(Failure::None);
    assert_eq!(session(root, &clean).1, None);
    let ops = clean.ops();
    let last_commit_ops = LAST_COMMIT_OPS.with(|c| c.get());
    for errno in [libc::EIO, libc::ENOSPC] {
        for n in 1..=ops {
            let io = SimIo::new(Failure::FailOp(n, errno));
            let case = format!("errno {errno} at op {n}/{ops}");
            let (committed, err) = session(root, &io);
            match &err {
                // A fault reaches no caller only where nothing depends on the write: the
                // close after the last commit, or a commit marker written after its index
                // commit returned (repair-only data: losing one costs the episode only its id
                // on a rebuild).
                None => assert!(
                    n > last_commit_ops || committed.len() as u64 == EPISODES,
                    "{case}: the failure surfaced to no caller"
                ),
                Some(err) if err.starts_with(CREATING) => continue,
                Some(err) => {
                    let errno_text = io::Error::from_raw_os_error(errno).to_string();
                    assert!(
                        err.contains(&errno_text) || err.contains("index"),
                        "{case}: error does not say what failed: {err}"
                    );
                }
            }
            // Reopen on the same (now healthy) disk: everything committed is there, and
            // recording goes on. (Creating opens the store, and finishes a creation the fault
            // interrupted.)
            let store = Store::create_with(root, options(&io))
                .unwrap_or_else(|e| panic!("{case}: reopen failed: {e}"));
            check_survivors(&store, &committed, &case);
            let id = record(&store, 77, steps_of(77)).unwrap_or_else(|e| panic!("{case}: {e}"));
            check_survivors(&store, &[(id, 77)], &case);
        }
    }
}

use std::io;

thread_local! {
    /// Writes and syncs done when the last commit of the latest session returned.
    static LAST_COMMIT_OPS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}
