//! Handles used in a child after `fork()` (DataLoader workers, multiprocessing pools, vector
//! envs built from a parent's objects) never share the parent's index handle, locks, id
//! counter or segment tail: they reopen what they need, or refuse with a clear error, and no
//! committed episode is ever lost.
//!
//! One test function per binary process: `fork()` in a process running other test threads
//! could copy a lock held mid-operation; the harness thread is idle while this one forks.

use crate::util;

use std::panic::AssertUnwindSafe;
use std::path::Path;

use crate::util::{check_small, record_small, small_schema};
use trajstore::{Codec, EpisodeMeta, Error, ErrorKind, OpenError, Query, ReadError, Store};

/// Runs `body` in a forked child; returns the child's pid. The child exits 0 when `body`
/// returned, 101 when it panicked (the message goes to stderr).
fn fork_child(body: impl FnOnce()) -> libc::pid_t {
    // SAFETY: fork() is safe to call; the child only runs `body` and then _exit()s without
    // running the parent's destructors or atexit handlers.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = match std::panic::catch_unwind(AssertUnwindSafe(body)) {
            Ok(()) => 0,
            Err(_) => 101,
        };
        // SAFETY: _exit ends the child at once, as a forked child must.
        unsafe { libc::_exit(code) };
    }
    pid
}

fn wait_ok(pid: libc::pid_t, what: &str) {
    let mut status = 0;
    // SAFETY: waiting for our own child with a valid status pointer.
    let got = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(got, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{what}: child {pid} failed (status {status:#x})"
    );
}

fn all_ids(dir: &Path) -> Vec<u64> {
    let store = Store::open_read_only(dir).unwrap();
    let snap = store.snapshot().unwrap();
    let ids: Vec<u64> = snap
        .episodes(&Query::default())
        .unwrap()
        .iter()
        .map(|e| e.id().get())
        .collect();
    assert!(
        snap.verify().unwrap().problems.is_empty(),
        "verify after fork"
    );
    ids
}

#[test]
fn handles_used_after_fork_reopen_per_process_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = Store::create(&root).unwrap();
    // Committed before the fork: the issue saw these destroyed by children using the handle.
    let before: Vec<_> = (0..2)
        .map(|s| record_small(&store, "parent", s, 5, Codec::Raw))
        .collect();
    let snapshot = store.snapshot().unwrap();
    let cutoff = snapshot.cutoff().unwrap();
    // An episode in flight in the parent at the fork, with a chunk already in its segment.
    let mut in_flight = store
        .begin_episode(
            EpisodeMeta::new("parent", "Test-v0"),
            &small_schema(Codec::Raw),
        )
        .unwrap();

    // 4 children record through the parent's handle and read through its snapshot, while the
    // parent records too.
    let children: Vec<_> = (0..4u64)
        .map(|c| {
            fork_child(|| {
                for k in 0..3 {
                    let seed = 100 + c * 10 + k;
                    let id = record_small(&store, "child", seed, 4, Codec::Lz4);
                    check_small(store.path(), id, seed, 4);
                }
                // The parent's snapshot: same episodes, though the child's read is newer.
                let seen: Vec<_> = snapshot
                    .episodes(&Query::default())
                    .unwrap()
                    .iter()
                    .map(|e| e.id())
                    .collect();
                assert_eq!(
                    seen, before,
                    "a forked snapshot lists the parent's episodes"
                );
                assert_eq!(snapshot.cutoff().unwrap(), cutoff);
                // Verify of the parent's snapshot checks the parent's episodes, all of them
                // intact (user statistics are the child's newer ones: not compared here).
                let report = snapshot.verify().unwrap();
                assert_eq!(report.episodes, before.len() as u64);
                assert_eq!(report.chunks, 5 * before.len() as u64, "{report:?}");
                assert!(
                    report.problems.iter().all(|p| p.episode.is_none()),
                    "{report:?}"
                );
                let first = snapshot.episode(before[0]).unwrap();
                let frames = snapshot.field(&first, "obs/frame").unwrap();
                assert_eq!(frames.len(), 6);
                assert!(matches!(
                    snapshot.episode(cutoff),
                    Err(Error::Read(ReadError::EpisodeNotFound { .. }))
                ));
            })
        })
        .collect();
    let mut parent_ids = Vec::new();
    for s in 0..3 {
        parent_ids.push(record_small(&store, "parent", 50 + s, 3, Codec::Raw));
    }
    for pid in children {
        wait_ok(pid, "recording child");
    }

    // A commit the parent handed to the background runs on the parent's threads: a child
    // cannot wait for it (it is told so, and dropping it there does not hang); the parent can.
    let pending = util::begin_small(&store, "parent", 77, 3, Codec::Raw)
        .commit_in_background()
        .unwrap();
    let mut in_child = Some(pending);
    let pid = fork_child(|| {
        let pending = in_child.take().unwrap();
        let err = pending
            .wait()
            .expect_err("a child may not wait for the parent's commit");
        assert!(
            matches!(err, Error::Open(OpenError::ForkedHandle { .. })),
            "{err}"
        );
    });
    wait_ok(pid, "background commit waited in a child");
    let id = in_child.take().unwrap().wait().unwrap();
    check_small(&root, id, 77, 3);
    parent_ids.push(id);

    // A child may not continue the parent's episode: it belongs to the parent.
    let err = in_flight_error(&mut in_flight);
    assert!(err.is_none(), "the parent keeps its own episode: {err:?}");
    drop(in_flight);

    // Everything committed anywhere is there, once, and whole.
    let ids = all_ids(&root);
    assert_eq!(ids.len(), 2 + 4 * 3 + 3 + 1, "ids: {ids:?}");
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(unique, ids, "no id given twice");
    for (s, id) in before.iter().enumerate() {
        check_small(&root, *id, s as u64, 5);
    }
    // The parent's handles still work after its children used (and dropped) copies of them.
    assert_eq!(snapshot.episodes(&Query::default()).unwrap().len(), 2);
    let id = record_small(&store, "parent", 99, 2, Codec::Raw);
    check_small(&root, id, 99, 2);
}

/// Records a reset into the parent's in-flight episode from a child and returns the child's
/// error kind, then checks the parent can still record it.
fn in_flight_error(in_flight: &mut trajstore::EpisodeWriter) -> Option<ErrorKind> {
    let pid = fork_child(|| {
        let frame = util::small_frame(0, 0);
        let err = in_flight
            .reset(
                &[("obs/frame", trajstore::ArrayRef::new(&frame))],
                &trajstore::Info::new(),
            )
            .expect_err("a child may not record the parent's episode");
        assert!(
            matches!(err, Error::Open(OpenError::ForkedHandle { .. })),
            "{err}"
        );
        assert!(err.to_string().contains("after a fork"), "{err}");
    });
    wait_ok(pid, "in-flight episode in child");
    let frame = util::small_frame(0, 0);
    in_flight
        .reset(
            &[("obs/frame", trajstore::ArrayRef::new(&frame))],
            &trajstore::Info::new(),
        )
        .err()
        .map(|e| e.kind())
}
