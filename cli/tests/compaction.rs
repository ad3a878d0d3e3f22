//! `trajstore compact` killed at random moments, and racing a live recorder process: nothing
//! committed is ever lost, `verify` is clean after, and `repair` still rebuilds the store.

use crate::util;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use trajstore::{Codec, EpisodeId, Query, RepairAction, Store, StoreOptions};

/// Every step spilled to the segment, so an abandoned episode leaves bytes behind; small
/// segments, so there are many.
fn options() -> StoreOptions {
    StoreOptions {
        spill_bytes: 1,
        segment_target_bytes: 256 << 10,
        ..Default::default()
    }
}

/// Every committed episode reads back as recorded and verify finds nothing wrong.
fn check(dir: &Path, committed: &[(EpisodeId, u64, u32)], when: &str) {
    for &(id, seed, steps) in committed {
        util::check_small(dir, id, seed, steps);
    }
    let store = Store::open_read_only(dir).unwrap();
    let snap = store.snapshot().unwrap();
    assert_eq!(
        snap.episodes(&Query::default()).unwrap().len(),
        committed.len(),
        "{when}"
    );
    let v = snap.verify().unwrap();
    assert!(v.problems.is_empty(), "{when}: {:?}", v.problems);
}

#[test]
fn compaction_killed_at_random_moments_loses_nothing_committed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let dir_s = dir.to_str().unwrap().to_owned();
    let mut rng = trajstore::partition::rng::SplitMix64::new(11);
    let mut committed = Vec::new();
    let mut seed = 0;
    let mut killed = 0;
    for round in 0..12 {
        {
            let store = Store::create_with(&dir, options()).unwrap();
            for _ in 0..2 {
                seed += 1;
                let steps = 300 + rng.below(300) as u32;
                let id = util::record_small(&store, "ann", seed, steps, Codec::Raw);
                committed.push((id, seed, steps));
            }
            util::abandon_small(&store, "ghost", 0, 400, Codec::Raw);
        }
        let mut child = util::bin()
            .args(["compact", &dir_s])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let delay = Duration::from_micros(rng.below(40_000));
        let start = Instant::now();
        while start.elapsed() < delay {
            std::hint::spin_loop();
        }
        if child.try_wait().unwrap().is_none() {
            killed += 1;
        }
        child.kill().unwrap(); // SIGKILL (or it had finished)
        child.wait().unwrap();
        check(&dir, &committed, &format!("round {round}"));
    }
    assert!(
        killed >= 4,
        "only {killed} kills landed during a compaction"
    );
    let report: serde_json::Value =
        serde_json::from_str(&util::cli_ok(&["compact", &dir_s, "--json"])).unwrap();
    assert_eq!(report["pending_files"], 0, "{report}");
    check(&dir, &committed, "after a whole compaction");
    let again: serde_json::Value =
        serde_json::from_str(&util::cli_ok(&["compact", &dir_s, "--json"])).unwrap();
    assert_eq!(again["bytes_reclaimed"], 0, "{again}");

    let healthy = trajstore::repair(&dir).unwrap();
    assert_eq!(healthy.action, RepairAction::NothingToDo, "{healthy:?}");
    let rebuilt = util::rebuild_index(&dir);
    assert!(rebuilt.unrestorable.is_empty(), "{rebuilt:?}");
    assert!(rebuilt.restored_unmarked.is_empty(), "{rebuilt:?}");
    check(&dir, &committed, "after repair");
}

#[test]
fn compaction_racing_a_live_recorder_process_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let dir_s = dir.to_str().unwrap().to_owned();
    {
        let store = Store::create_with(&dir, options()).unwrap();
        for seed in 1..=3 {
            util::record_small(&store, "ann", seed, 200, Codec::Raw);
            util::abandon_small(&store, "ghost", 0, 300, Codec::Raw);
        }
    }
    let mut recorder = util::bin()
        .args(["synth", &dir_s, "--user", "live", "--episodes", "40"])
        .args([
            "--frame",
            "24x24x3",
            "--min-steps",
            "20",
            "--max-steps",
            "80",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = recorder.stdout.take().unwrap();
    let lines = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(&l.unwrap()).unwrap())
            .collect::<Vec<_>>()
    });
    let mut runs = 0;
    let mut rewritten = 0;
    while recorder.try_wait().unwrap().is_none() || runs == 0 {
        let report = trajstore::compact(&dir, &trajstore::CompactOptions::default()).unwrap();
        rewritten += report.rewritten.len() + report.dropped.len();
        runs += 1;
    }
    assert!(recorder.wait().unwrap().success());
    assert!(rewritten > 0, "the abandoned recordings were reclaimed");
    let reported = lines.join().unwrap();
    assert_eq!(reported.len(), 40);
    let store = Store::open_read_only(&dir).unwrap();
    let snap = store.snapshot().unwrap();
    for line in &reported {
        let e = snap
            .episode(EpisodeId(line["episode"].as_u64().unwrap()))
            .unwrap();
        assert_eq!(u64::from(e.steps()), line["steps"].as_u64().unwrap());
    }
    let v = snap.verify().unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
    assert_eq!(v.episodes, 43);
}

#[test]
fn merge_killed_at_random_moments_leaves_the_output_as_it_was_or_merged_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let small_segments = StoreOptions {
        segment_target_bytes: 48 << 10,
        ..Default::default()
    };
    let sources: Vec<_> = ["a", "b"].iter().map(|n| tmp.path().join(n)).collect();
    let mut source_episodes = 0;
    for (i, dir) in sources.iter().enumerate() {
        let store = Store::create_with(dir, small_segments.clone()).unwrap();
        for seed in 0..12 {
            util::record_small(&store, "src", 100 * i as u64 + seed, 60, Codec::Raw);
            source_episodes += 1;
        }
    }
    let mut rng = trajstore::partition::rng::SplitMix64::new(5);
    let mut killed = 0;
    for round in 0..8 {
        let out = tmp.path().join(format!("out{round}"));
        let own = {
            let store = Store::create(&out).unwrap();
            vec![
                util::record_small(&store, "own", 1, 5, Codec::Raw),
                util::record_small(&store, "own", 2, 6, Codec::Lz4),
            ]
        };
        let mut child = util::bin()
            .arg("merge")
            .arg(&out)
            .args(&sources)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let delay = Duration::from_micros(rng.below(60_000));
        let start = Instant::now();
        while start.elapsed() < delay {
            std::hint::spin_loop();
        }
        if child.try_wait().unwrap().is_none() {
            killed += 1;
        }
        child.kill().unwrap();
        child.wait().unwrap();

        let count = |out: &Path| {
            let store = Store::open_read_only(out).unwrap();
            let snap = store.snapshot().unwrap();
            let v = snap.verify().unwrap();
            assert!(v.problems.is_empty(), "round {round}: {:?}", v.problems);
            snap.episodes(&Query::default()).unwrap().len()
        };
        let n = count(&out);
        assert!(
            n == own.len() || n == own.len() + source_episodes,
            "round {round}: {n} episodes: a merge is all or nothing"
        );
        util::check_small(&out, own[0], 1, 5);
        // What a stopped merge linked is garbage compaction removes; the store still
        // rebuilds from its segments with nothing left over.
        trajstore::compact(&out, &trajstore::CompactOptions::default()).unwrap();
        assert_eq!(count(&out), n);
        let rebuilt = util::rebuild_index(&out);
        assert!(
            rebuilt.unrestorable.is_empty(),
            "round {round}: {rebuilt:?}"
        );
        assert_eq!(rebuilt.episodes as usize, n, "round {round}: {rebuilt:?}");
        assert_eq!(count(&out), n);
    }
    assert!(killed >= 3, "only {killed} kills landed during a merge");
}
