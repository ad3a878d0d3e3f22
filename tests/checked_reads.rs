//! Checked reads: a damaged chunk fails the read that touches it, naming user,
//! episode, field and steps, on every read path; it never returns wrong bytes silently
//! unless the store was opened with `verify_reads: false`.

use crate::util;

use std::path::Path;

use trajstore::loader::{
    Batch, FieldRequest, Loader, Order, ReplayEnv, ReplayOptions, Sampler, SamplerSpec, Selection,
};
use trajstore::{Codec, EpisodeId, Error, ErrorKind, Query, ReadError, Store, StoreOptions};

fn unchecked(dir: &Path) -> Store {
    let options = StoreOptions {
        verify_reads: false,
        ..StoreOptions::default()
    };
    Store::open_read_only_with(dir, options).unwrap()
}

/// A store with a good episode of alice and one of bob whose frames have one payload byte
/// flipped at `payload_byte` (relative to the payload start). Returns (dir, good, bad).
fn damaged_store(codec: Codec, payload_byte: u64) -> (tempfile::TempDir, EpisodeId, EpisodeId) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path()).unwrap();
    let good = util::record_small(&store, "alice", 1, 10, codec);
    let bad = util::record_small(&store, "bob", 2, 10, codec);
    let also_good = util::record_small(&store, "alice", 3, 6, codec);
    drop(store);
    let (segment, header) = util::frame_record(dir.path(), bad);
    util::flip_bit(&segment, header + 64 + payload_byte);
    let _ = also_good;
    (dir, good, bad)
}

/// Asserts `err` is the checked-read error naming bob's episode `bad`, its frames and steps.
fn assert_names_the_damage(err: &Error, bad: EpisodeId, steps: std::ops::Range<usize>) {
    assert_eq!(err.kind(), ErrorKind::Corruption, "{err}");
    match err {
        Error::Read(ReadError::CorruptRead(d)) => {
            assert_eq!(
                (
                    d.user.as_str(),
                    d.episode,
                    d.field.as_str(),
                    d.steps.clone()
                ),
                ("bob", bad, "obs/frame", steps)
            );
            assert!(d.path.exists(), "{}", d.path.display());
            assert!(d.reason.contains("checksum"), "{}", d.reason);
        }
        other => panic!("expected CorruptRead, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "user \"bob\" episode {bad} field \"obs/frame\" steps"
        )),
        "{text}"
    );
    assert!(text.contains(".seg"), "names the segment file: {text}");
}

/// A payload byte to flip: in step 3 of 11 frames of 192 bytes (raw); inside the blocks,
/// past the 56-byte table (lz4, whose payload is much shorter).
fn inside(codec: Codec) -> u64 {
    match codec {
        Codec::Raw => 3 * 192 + 5,
        Codec::Lz4 => 70,
    }
}

fn check_every_field_read_fails(codec: Codec) {
    let (dir, good, bad) = damaged_store(codec, inside(codec));
    let store = Store::open_read_only(dir.path()).unwrap();
    let snap = store.snapshot().unwrap();
    let e = snap.episode(bad).unwrap();
    let field = snap
        .field(&e, "obs/frame")
        .expect("opening reads no payload");

    // Every read path of the field fails, naming the chunk's steps (one chunk: all 11).
    let mut one = vec![0u8; field.step_bytes()];
    let errors = [
        field.to_vec().err(),
        field.read_into(0..1, &mut one).err(),
        field.read_into(10..11, &mut one).err(),
    ];
    for err in errors {
        assert_names_the_damage(&err.expect("the read fails"), bad, 0..11);
    }
    if codec == Codec::Raw {
        assert_names_the_damage(&field.contiguous().err().unwrap(), bad, 0..11);
        assert_names_the_damage(&field.as_slice::<u8>().err().unwrap(), bad, 0..11);
        assert_names_the_damage(&field.raw_step(7).err().unwrap(), bad, 0..11);
    }
    // A failed check is not remembered as good: a new field of the same chunk fails too.
    let again = snap.field(&e, "obs/frame").unwrap();
    assert_names_the_damage(&again.to_vec().unwrap_err(), bad, 0..11);
    assert_names_the_damage(
        &snap.fields(&e).unwrap()[0].to_vec().unwrap_err(),
        bad,
        0..11,
    );

    // The other fields of the damaged episode and the other episodes read fine.
    let actions = snap.field(&e, "action").unwrap().to_vec().unwrap();
    assert_eq!(actions.len(), 10 * 8);
    util::check_small(dir.path(), good, 1, 10);
    for other in snap.episodes(&Query::default().user("alice")).unwrap() {
        for f in snap.fields(&other).unwrap() {
            f.to_vec().unwrap();
        }
    }

    // The opt-out reads the (wrong) bytes as they are.
    let trusted = unchecked(dir.path());
    let snap = trusted.snapshot().unwrap();
    let field = snap
        .field(&snap.episode(bad).unwrap(), "obs/frame")
        .unwrap();
    let want: Vec<u8> = (0..=10).flat_map(|t| util::small_frame(2, t)).collect();
    if codec == Codec::Raw {
        let bytes = field.to_vec().unwrap();
        assert_ne!(bytes, want, "unchecked: the flipped byte comes through");
        assert_eq!(bytes[3 * 192 + 5], want[3 * 192 + 5] ^ 0x40);
        assert_eq!(&field.contiguous().unwrap().unwrap()[..], &bytes[..]);
        assert_eq!(trusted.verified_chunks(), 0, "nothing checked");
    } else {
        // lz4: the damaged block decodes to other bytes or fails to decode; either way the
        // checksum is not what stopped it.
        match field.to_vec() {
            Ok(bytes) => assert_ne!(bytes, want),
            Err(e) => assert!(!e.to_string().contains("checksum"), "{e}"),
        }
    }
}

#[test]
fn flipped_byte_in_raw_chunk_fails_the_read_not_silently() {
    check_every_field_read_fails(Codec::Raw);
}

#[test]
fn flipped_byte_in_lz4_chunk_fails_the_read_not_silently() {
    check_every_field_read_fails(Codec::Lz4);
}

#[test]
fn flipped_byte_in_lz4_table_fails_the_read_not_silently() {
    // Byte 1 of the `ends` entry of step 0: the table no longer frames the blocks.
    let (dir, _, bad) = damaged_store(Codec::Lz4, 1);
    let store = Store::open_read_only(dir.path()).unwrap();
    let snap = store.snapshot().unwrap();
    let field = snap
        .field(&snap.episode(bad).unwrap(), "obs/frame")
        .unwrap();
    let mut one = vec![0u8; field.step_bytes()];
    assert_names_the_damage(&field.read_into(5..6, &mut one).unwrap_err(), bad, 0..11);
}

fn sampler(store: &Store, user: Option<&str>, codec_unit: usize) -> Sampler {
    let query = match user {
        Some(u) => Query::default().user(u),
        None => Query::default(),
    };
    let loader = Loader::new(store, &Selection::new(query, 1, 0, 0)).unwrap();
    let fields = vec![
        FieldRequest::new("obs/frame").offsets(&[-1, 0]),
        FieldRequest::next("obs/frame"),
        FieldRequest::new("action"),
    ];
    Sampler::new(
        &loader,
        SamplerSpec::steps(fields, codec_unit, Order::Shuffle),
    )
    .expect("opening the sampler reads no payload")
}

#[test]
fn loader_batches_touching_a_damaged_episode_fail() {
    for codec in [Codec::Raw, Codec::Lz4] {
        let (dir, _, bad) = damaged_store(codec, inside(codec));
        let store = Store::open_read_only(dir.path()).unwrap();

        // Batches of one step: exactly those of bob's episode fail, the others are served.
        let mut s = sampler(&store, None, 1);
        let mut batch = Batch::new();
        let (mut served, mut failed) = (0, 0);
        for _ in 0..s.units() {
            match s.next_into(&mut batch) {
                Ok(true) => {
                    assert_ne!(batch.episode[0], bad.get(), "a damaged step was served");
                    served += 1;
                }
                Ok(false) => unreachable!("units() batches per epoch"),
                Err(e) => {
                    assert_names_the_damage(&e, bad, 0..11);
                    failed += 1;
                }
            }
        }
        assert_eq!((served, failed), (16, 10), "{codec:?}");

        // A whole-epoch batch touches the damaged episode: the batch fails.
        let mut s = sampler(&store, None, 64);
        assert_names_the_damage(&s.next_into(&mut batch).unwrap_err(), bad, 0..11);

        // Alice's share reads fine, twice (the second epoch from remembered checks).
        for _ in 0..2 {
            let mut s = sampler(&store, Some("alice"), 8);
            while s.next_into(&mut batch).unwrap() {}
        }

        // The opt-out serves bob's steps.
        let trusted = unchecked(dir.path());
        let mut s = sampler(&trusted, Some("bob"), 64);
        if codec == Codec::Raw {
            assert!(s.next_into(&mut batch).unwrap());
        }
    }
}

#[test]
fn replay_of_a_damaged_episode_fails() {
    let (dir, _, bad) = damaged_store(Codec::Raw, inside(Codec::Raw));
    let store = Store::open_read_only(dir.path()).unwrap();
    let selection = Selection::new(Query::default().user("bob"), 1, 0, 0);
    let mut env = ReplayEnv::new(&store, &selection, ReplayOptions::default()).unwrap();
    let Err(err) = env.reset() else {
        panic!("the first observation is damaged")
    };
    assert_names_the_damage(&err, bad, 0..11);
}

#[test]
fn checks_are_remembered_per_chunk_and_shared_by_snapshots_and_threads() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path()).unwrap();
    let a = util::record_small(&store, "alice", 1, 10, Codec::Raw);
    let b = util::record_small(&store, "alice", 2, 10, Codec::Lz4);
    drop(store);
    let store = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(store.verified_chunks(), 0);
    let snap = store.snapshot().unwrap();
    let fa = snap.field(&snap.episode(a).unwrap(), "obs/frame").unwrap();
    let fb = snap.field(&snap.episode(b).unwrap(), "obs/frame").unwrap();
    // Opening checks nothing; one step read checks its chunk, once, from many threads.
    assert_eq!(store.verified_chunks(), 0);
    std::thread::scope(|s| {
        for t in 0..8 {
            let (fa, fb) = (&fa, &fb);
            s.spawn(move || {
                let mut one = vec![0u8; fb.step_bytes()];
                fb.read_into(t..t + 1, &mut one).unwrap();
                assert_eq!(one, util::small_frame(2, t as u32));
                assert_eq!(
                    &fa.raw_step(t).unwrap()[..],
                    &util::small_frame(1, t as u32)
                );
            });
        }
    });
    assert_eq!(store.verified_chunks(), 2);
    // Another snapshot of the handle reuses the checks; other fields are checked on use.
    let snap = store.snapshot().unwrap();
    for id in [a, b] {
        snap.field(&snap.episode(id).unwrap(), "obs/frame")
            .unwrap()
            .to_vec()
            .unwrap();
    }
    assert_eq!(store.verified_chunks(), 2);
    snap.field(&snap.episode(a).unwrap(), "action")
        .unwrap()
        .to_vec()
        .unwrap();
    assert_eq!(store.verified_chunks(), 3);
}
