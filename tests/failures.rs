//! Bad input gets a clear error naming what was wrong, and loses nothing; damaged or newer
//! stores are refused or reported, never misread.

use crate::util;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use trajstore::{
    ArrayRef, Codec, EpisodeId, EpisodeMeta, Error, ErrorKind, Info, OpenError, Query, ReadError,
    RecordError, Store,
};

fn frame() -> Vec<u8> {
    util::small_frame(0, 0)
}

fn transition<'a>(
    frame: &'a [u8],
    action: &'a i64,
    reward: &'a f32,
    done: &'a bool,
) -> Vec<(&'static str, ArrayRef<'a>)> {
    vec![
        ("obs/frame", ArrayRef::new(frame)),
        ("action", ArrayRef::scalar(action)),
        ("reward", ArrayRef::scalar(reward)),
        ("terminated", ArrayRef::scalar(done)),
        ("truncated", ArrayRef::scalar(&false)),
    ]
}

#[test]
fn wrong_values_are_refused_naming_field_expected_and_got() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path()).unwrap();
    let schema = util::small_schema(Codec::Raw);
    let mut w = store
        .begin_episode(EpisodeMeta::new("alice", "Test-v0"), &schema)
        .unwrap();
    let f = frame();
    let err = w
        .step(&transition(&f, &1, &0.0, &false), &Info::new())
        .unwrap_err();
    assert!(
        matches!(err, Error::Record(RecordError::EpisodeState { ref reason, .. }) if reason.contains("before reset")),
        "{err}"
    );

    let floats = vec![0f32; 192];
    let err = w
        .reset(&[("obs/frame", ArrayRef::new(&floats))], &Info::new())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "field \"obs/frame\": expected dtype u8, got f32"
    );
    let short = vec![0u8; 100];
    let err = w
        .reset(&[("obs/frame", ArrayRef::new(&short))], &Info::new())
        .unwrap_err();
    assert!(
        matches!(err, Error::Record(RecordError::ShapeMismatch { ref field, .. }) if field == "obs/frame"),
        "{err}"
    );
    let err = w
        .reset(
            &[("obs/frame", ArrayRef::with_shape(&f, &[3, 8, 8]))],
            &Info::new(),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "field \"obs/frame\": expected shape [8, 8, 3], got [3, 8, 8]"
    );
    let err = w
        .reset(
            &[
                ("obs/frame", ArrayRef::new(&f)),
                ("obs/depth", ArrayRef::new(&f)),
            ],
            &Info::new(),
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::Record(RecordError::UnknownField { ref field, .. }) if field == "obs/depth"),
        "{err}"
    );
    let err = w.reset(&[], &Info::new()).unwrap_err();
    assert!(
        matches!(err, Error::Record(RecordError::MissingField { ref field, .. }) if field == "obs/frame"),
        "{err}"
    );
    let err = w
        .reset(
            &[
                ("obs/frame", ArrayRef::new(&f)),
                ("action", ArrayRef::scalar(&1i64)),
            ],
            &Info::new(),
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::Record(RecordError::MisplacedField { ref field, .. }) if field == "action"),
        "{err}"
    );

    // None of that changed the episode: it records normally afterwards.
    w.reset(&[("obs/frame", ArrayRef::new(&f))], &Info::new())
        .unwrap();
    let err = w
        .reset(&[("obs/frame", ArrayRef::new(&f))], &Info::new())
        .unwrap_err();
    assert!(matches!(
        err,
        Error::Record(RecordError::EpisodeState { .. })
    ));
    let mut missing_reward = transition(&f, &1, &0.0, &false);
    missing_reward.remove(2);
    let err = w.step(&missing_reward, &Info::new()).unwrap_err();
    assert!(
        matches!(err, Error::Record(RecordError::MissingField { ref field, .. }) if field == "reward"),
        "{err}"
    );
    let bad_bool = [2u8];
    let mut values = transition(&f, &1, &0.0, &false);
    values[3] = (
        "terminated",
        ArrayRef::from_bytes(trajstore::DType::Bool, &[], &bad_bool),
    );
    assert!(matches!(
        w.step(&values, &Info::new()),
        Err(Error::Record(RecordError::InvalidValue { .. }))
    ));
    w.step(&transition(&f, &1, &1.0, &true), &Info::new())
        .unwrap();
    let err = w
        .step(&transition(&f, &1, &0.0, &false), &Info::new())
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("after the episode terminated at step 1"),
        "{err}"
    );
    let id = w.commit().unwrap();
    let snap = store.snapshot().unwrap();
    assert_eq!(snap.episode(id).unwrap().steps(), 1);
    assert_eq!(snap.episode(id).unwrap().total_return(), 1.0);
}

#[test]
fn empty_episodes_invalid_users_and_read_only_handles_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path()).unwrap();
    let schema = util::small_schema(Codec::Raw);
    let w = store
        .begin_episode(EpisodeMeta::new("alice", "Test-v0"), &schema)
        .unwrap();
    assert!(matches!(
        w.commit(),
        Err(Error::Record(RecordError::EmptyEpisode))
    ));
    for bad in ["", "a\nb", " padded", &"x".repeat(300)] {
        let err = store
            .begin_episode(EpisodeMeta::new(bad, "Test-v0"), &schema)
            .err()
            .expect("refused");
        assert!(
            matches!(err, Error::Record(RecordError::InvalidUser { .. })),
            "{bad:?}: {err}"
        );
        assert_eq!(err.kind(), ErrorKind::Input);
    }
    // A user name that looks like a path is just data.
    let id = util::record_small(&store, "../../etc/passwd", 1, 2, Codec::Raw);
    assert_eq!(
        store.snapshot().unwrap().episode(id).unwrap().user(),
        "../../etc/passwd"
    );
    let reader = Store::open_read_only(dir.path()).unwrap();
    assert!(matches!(
        reader.begin_episode(EpisodeMeta::new("a", "b"), &schema),
        Err(Error::Open(OpenError::ReadOnly))
    ));
    assert!(matches!(
        reader.snapshot().unwrap().episode(EpisodeId(999)),
        Err(Error::Read(ReadError::EpisodeNotFound {
            id: EpisodeId(999)
        }))
    ));
}

#[test]
fn store_paths_that_are_files_or_not_stores_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"hello").unwrap();
    assert!(matches!(
        Store::create(&file),
        Err(Error::Open(OpenError::NotADirectory { .. }))
    ));
    assert!(matches!(
        Store::open(&file),
        Err(Error::Open(OpenError::NotADirectory { .. }))
    ));
    let err = Store::open(dir.path()).err().unwrap();
    assert!(matches!(err, Error::Open(OpenError::NotAStore { .. })));
    assert!(
        err.to_string().contains("trajstore init"),
        "the error says what to do: {err}"
    );
}

#[test]
fn a_store_of_a_newer_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::create(dir.path()).unwrap());
    util::set_format_version(dir.path(), 99);
    for result in [
        Store::open(dir.path()),
        Store::open_read_only(dir.path()),
        Store::create(dir.path()),
    ] {
        let err = result.err().expect("refused");
        assert!(
            matches!(
                err,
                Error::Open(OpenError::UnsupportedFormat {
                    found: 99,
                    supported: trajstore::STORE_FORMAT_VERSION,
                    ..
                })
            ),
            "{err}"
        );
        assert!(err.to_string().contains("upgrade trajstore"), "{err}");
    }
}

#[test]
fn a_flipped_payload_byte_is_named_by_verify_and_other_episodes_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path()).unwrap();
    let good = util::record_small(&store, "alice", 1, 10, Codec::Raw);
    let bad = util::record_small(&store, "bob", 2, 10, Codec::Lz4);
    drop(store);
    let (segment, header) = util::frame_record(dir.path(), bad);
    util::flip_bit(&segment, header + 64 + 70); // inside the lz4 payload

    let report = Store::open_read_only(dir.path())
        .unwrap()
        .snapshot()
        .unwrap()
        .verify()
        .unwrap();
    let named: Vec<_> = report
        .problems
        .iter()
        .map(|p| (p.episode, p.user.as_str(), p.field.as_deref()))
        .collect();
    assert_eq!(
        named,
        [(Some(bad), "bob", Some("obs/frame"))],
        "only the damaged episode is named: {report:?}"
    );
    assert!(report.problems[0].error.contains("checksum"), "{report:?}");
    util::check_small(dir.path(), good, 1, 10);
}

#[test]
fn a_flipped_record_header_byte_is_refused_on_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path()).unwrap();
    let id = util::record_small(&store, "alice", 1, 10, Codec::Raw);
    let other = util::record_small(&store, "alice", 2, 4, Codec::Raw);
    drop(store);
    let (segment, header) = util::frame_record(dir.path(), id);
    util::flip_bit(&segment, header + 9); // the payload length
    let store = Store::open_read_only(dir.path()).unwrap();
    let snap = store.snapshot().unwrap();
    let e = snap.episode(id).unwrap();
    let err = snap.field(&e, "obs/frame").err().expect("refused");
    assert!(
        matches!(err, Error::Read(ReadError::Corrupted { .. })),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Corruption);
    let report = snap.verify().unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(
        (
            report.problems[0].episode,
            report.problems[0].field.as_deref()
        ),
        (Some(id), Some("obs/frame"))
    );
    util::check_small(dir.path(), other, 2, 4);
    assert_eq!(
        snap.episodes(&Query::default()).unwrap().len(),
        2,
        "listing touches no segment"
    );
}

#[test]
fn a_segment_of_a_newer_format_is_refused_not_misread() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path()).unwrap();
    let id = util::record_small(&store, "alice", 1, 3, Codec::Raw);
    drop(store);
    let (segment, _) = util::frame_record(dir.path(), id);
    // Rewrite the file header with the next version and a valid header checksum.
    let newer = trajstore::SEGMENT_FORMAT_VERSION + 1;
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&segment)
        .unwrap();
    let mut h = [0u8; 64];
    f.read_exact_at(&mut h, 0).unwrap();
    h[8..12].copy_from_slice(&newer.to_le_bytes());
    let sum = xxhash_rust::xxh3::xxh3_64(&h[..56]);
    h[56..].copy_from_slice(&sum.to_le_bytes());
    f.write_all_at(&h, 0).unwrap();
    let store = Store::open_read_only(dir.path()).unwrap();
    let snap = store.snapshot().unwrap();
    let err = snap
        .field(&snap.episode(id).unwrap(), "obs/frame")
        .err()
        .expect("refused");
    assert!(
        matches!(err, Error::Open(OpenError::UnsupportedFormat { found, .. }) if found == newer),
        "{err}"
    );
}
