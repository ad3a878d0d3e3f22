//! `Snapshot::gather`: explicit (episode, step) pairs into one reused buffer, raw and lz4,
//! sequential and parallel, and every bad pair refused before anything is written.

use trajstore::{Codec, EpisodeId, ErrorKind, Store};

use crate::util::{record_small, small_frame};

const FRAME: usize = 192;

/// Episodes of 5, 9 and 3 steps with seeds 1, 2, 3; returns their ids.
fn three_episodes(store: &Store, codec: Codec) -> Vec<EpisodeId> {
    [(1, 5), (2, 9), (3, 3)]
        .map(|(seed, steps)| record_small(store, "alice", seed, steps, codec))
        .to_vec()
}

fn gather_matches_the_recorded_frames(codec: Codec) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path().join("s")).unwrap();
    let ids = three_episodes(&store, codec);
    let snap = store.snapshot().unwrap();
    // Out of order, repeated, across episodes, last observation (step T) included.
    let pairs = [(1, 9u32), (0, 0), (2, 3), (1, 0), (1, 9), (0, 5), (2, 1)];
    let episodes: Vec<EpisodeId> = pairs.iter().map(|&(e, _)| ids[e]).collect();
    let steps: Vec<u64> = pairs.iter().map(|&(_, s)| u64::from(s)).collect();
    let mut out = vec![0xAAu8; pairs.len() * FRAME];
    for _ in 0..2 {
        // The second round reads through the fields the first one opened.
        snap.gather("obs/frame", &episodes, &steps, &mut out)
            .unwrap();
        for (i, &(e, s)) in pairs.iter().enumerate() {
            let seed = e as u64 + 1;
            assert_eq!(
                &out[i * FRAME..(i + 1) * FRAME],
                small_frame(seed, s).as_slice(),
                "pair {i}: episode {e} step {s}"
            );
        }
        out.fill(0);
    }
    let mut actions = vec![0u8; 2 * 8];
    snap.gather("action", &[ids[1], ids[0]], &[8, 0], &mut actions)
        .unwrap();
    // Action of transition t (0-based) is t + 1 in record_small.
    assert_eq!(i64::from_le_bytes(actions[..8].try_into().unwrap()), 9);
    assert_eq!(i64::from_le_bytes(actions[8..].try_into().unwrap()), 1);
}

#[test]
fn gather_matches_the_recorded_frames_raw() {
    gather_matches_the_recorded_frames(Codec::Raw);
}

#[test]
fn gather_matches_the_recorded_frames_lz4() {
    gather_matches_the_recorded_frames(Codec::Lz4);
}

/// Past the parallel threshold (1 MiB of output) the rows are split across the pool's
/// threads; each must still land at its own index.
#[test]
fn gather_of_a_large_output_is_in_pair_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path().join("s")).unwrap();
    let ids = three_episodes(&store, Codec::Lz4);
    let snap = store.snapshot().unwrap();
    let lens = [6u64, 10, 4];
    let n = 8_000;
    let (episodes, steps): (Vec<EpisodeId>, Vec<u64>) = (0..n)
        .map(|i| {
            let e = (i * 7) % 3;
            (ids[e], (i as u64 * 13) % lens[e])
        })
        .unzip();
    let mut out = vec![0u8; n * FRAME];
    snap.gather("obs/frame", &episodes, &steps, &mut out)
        .unwrap();
    for i in 0..n {
        let e = (i * 7) % 3;
        let want = small_frame(e as u64 + 1, steps[i] as u32);
        assert_eq!(
            &out[i * FRAME..(i + 1) * FRAME],
            want.as_slice(),
            "pair {i}"
        );
    }
}

#[test]
fn gather_refuses_bad_pairs_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path().join("s")).unwrap();
    let ids = three_episodes(&store, Codec::Raw);
    let snap = store.snapshot().unwrap();
    let mut out = vec![7u8; 2 * FRAME];
    let untouched = out.clone();

    // Step 4 of a 3-step episode's observations (0..=3) is out of range.
    let e = snap
        .gather("obs/frame", &[ids[0], ids[2]], &[0, 4], &mut out)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Input);
    assert!(e.to_string().contains("episode 3"), "{e}");
    // Transition fields have T values: step T is out of range.
    let mut action = vec![0u8; 8];
    let e = snap
        .gather("action", &[ids[2]], &[3], &mut action)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Input, "{e}");

    let e = snap
        .gather("obs/frame", &[ids[0], EpisodeId(999)], &[0, 0], &mut out)
        .unwrap_err();
    assert!(e.to_string().contains("999"), "{e}");
    let e = snap
        .gather("obs/nope", &[ids[0]], &[0], &mut out[..FRAME])
        .unwrap_err();
    assert!(e.to_string().contains("obs/nope"), "{e}");
    let e = snap
        .gather("obs/frame", &[ids[0]], &[0, 1], &mut out)
        .unwrap_err();
    assert!(e.to_string().contains("1 episodes but 2 steps"), "{e}");
    let e = snap
        .gather("obs/frame", &[ids[0], ids[1]], &[0, 1], &mut out[..FRAME])
        .unwrap_err();
    assert!(e.to_string().contains("384-byte output"), "{e}");
    assert_eq!(out, untouched, "a refused gather writes nothing");

    // Nothing to gather: an empty output is right, anything else is not.
    snap.gather("obs/frame", &[], &[], &mut []).unwrap();
}
