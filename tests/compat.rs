//! The format is a contract: a store written by format v1 (checked in under
//! tests/fixtures/v1-store, made by `trajstore synth` at the time v1 shipped) must be read
//! back identically by every later build.

use crate::util;

use trajstore::{Codec, Query, Store, Value};

fn digest(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

#[test]
fn the_v1_fixture_store_reads_back_identically() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("v1-store");
    util::copy_v1_fixture(&copy);
    let store = Store::open_read_only(&copy).unwrap();
    let snap = store.snapshot().unwrap();
    assert_eq!(snap.format_version().unwrap(), 1);
    let episodes = snap.episodes(&Query::default()).unwrap();
    let mut seen = Vec::new();
    for e in &episodes {
        let frames = snap.field(e, "obs/frame").unwrap();
        let actions = snap.field(e, "action").unwrap();
        let health = snap.field(e, "obs/ram/health").unwrap();
        seen.push((
            e.id(),
            e.user().to_owned(),
            e.steps(),
            frames.spec().codec,
            digest(&frames.to_vec().unwrap()),
            digest(&actions.to_vec().unwrap()),
            digest(&health.to_vec().unwrap()),
            e.total_return(),
        ));
        assert!(matches!(
            e.metadata().get("difficulty"),
            Some(Value::Int(_))
        ));
        assert_eq!(snap.infos(e).unwrap()[0].get("stage"), Some(&Value::Int(1)));
    }
    let expected = GOLDEN;
    assert_eq!(seen.len(), expected.len());
    for (got, want) in seen.iter().zip(expected) {
        assert_eq!(
            (
                got.0.get(),
                got.1.as_str(),
                got.2,
                got.3,
                got.4,
                got.5,
                got.6,
                got.7
            ),
            *want
        );
    }
    assert!(snap.verify().unwrap().problems.is_empty());
}

type Golden = (u64, &'static str, u32, Codec, u64, u64, u64, f64);

#[rustfmt::skip]
const GOLDEN: &[Golden] = &[
    (1, "fixture-raw", 4, Codec::Raw, 8875781407977472406, 2444312736592220916, 18015383993232829316, -2.0),
    (2, "fixture-raw", 5, Codec::Raw, 2392394206770893451, 4072713137002611, 17522433660884926765, 0.0),
    (3, "fixture-lz4", 3, Codec::Lz4, 431723176007577000, 9202807598501862493, 1275739417840454573, 0.0),
];

/// The episode catalog (format 2) is absent from a format-1 store: a read-only open answers
/// from the full records; the first writable open builds it, and both agree row for row.
#[test]
fn the_v1_fixture_store_gets_a_catalog_that_matches_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("v1-store");
    util::copy_v1_fixture(&copy);
    let summaries = |store: &Store| {
        let snap = store.snapshot().unwrap();
        let full = util::summaries_from_records(&snap);
        (full, snap.catalog(&Query::default()).unwrap())
    };
    let (full, from_records) = summaries(&Store::open_read_only(&copy).unwrap());
    assert!(!full.is_empty());
    assert_eq!(from_records, full);
    let (full, from_catalog) = summaries(&Store::open(&copy).unwrap());
    assert_eq!(from_catalog, full, "the catalog built on open");
    let q = Query::default().user(full[0].user()).before(full[1].id());
    let store = Store::open_read_only(&copy).unwrap();
    let ids: Vec<_> = store
        .snapshot()
        .unwrap()
        .catalog(&q)
        .unwrap()
        .iter()
        .map(|e| e.id())
        .collect();
    assert_eq!(ids, vec![full[0].id()]);
}
