//! Curation in the index (store format 2): delete and restore (tombstones), relabel with
//! history, split labels, the format-1 upgrade, and repair replaying the curation log.

use std::collections::BTreeMap;
use std::path::Path;

use crate::util::{self, record_small};
use proptest::prelude::*;
use trajstore::loader::select;
use trajstore::{
    Codec, CurateOptions, Curated, EpisodeId, Error, LabelChange, Outcome, Query, ReadError,
    Relabel, RepairAction, Restore, Snapshot, SplitKey, SplitRequest, Store, Target, Value,
};

fn by(name: &str) -> CurateOptions {
    CurateOptions {
        dry_run: false,
        by: Some(name.into()),
    }
}

/// A store with alice (4 episodes of 3..=6 steps) and bob (2 episodes of 7, 8 steps).
fn two_users(dir: &Path) -> (Store, Vec<EpisodeId>, Vec<EpisodeId>) {
    let store = Store::create(dir).unwrap();
    let alice = (0..4)
        .map(|i| record_small(&store, "alice", i, 3 + i as u32, Codec::Raw))
        .collect();
    let bob = (0..2)
        .map(|i| record_small(&store, "bob", 10 + i, 7 + i as u32, Codec::Lz4))
        .collect();
    (store, alice, bob)
}

/// Deletes every episode of `user`, by "ana".
fn delete_user(store: &Store, user: &str) -> Curated {
    store
        .delete(&Target::query(Query::default().user(user)), &by("ana"))
        .unwrap()
}

fn ids(store: &Store, query: &Query) -> Vec<EpisodeId> {
    ids_in(&store.snapshot().unwrap(), query)
}

/// The ids of the episodes `snap` selects by `query`, from their full records.
fn ids_in(snap: &Snapshot, query: &Query) -> Vec<EpisodeId> {
    snap.episodes(query)
        .unwrap()
        .iter()
        .map(|e| e.id())
        .collect()
}

/// The ids of the episodes `snap` selects by `query`, from the catalog.
fn catalog_ids(snap: &Snapshot, query: &Query) -> Vec<EpisodeId> {
    snap.catalog(query)
        .unwrap()
        .iter()
        .map(|e| e.id())
        .collect()
}

fn user_stats(store: &Store) -> BTreeMap<String, (u64, u64)> {
    store
        .snapshot()
        .unwrap()
        .users()
        .unwrap()
        .into_iter()
        .map(|u| (u.name, (u.episodes, u.steps)))
        .collect()
}

fn verify_clean(store: &Store) {
    let report = store.snapshot().unwrap().verify().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[test]
fn delete_moves_episodes_out_of_every_query_path_and_restore_puts_them_back() {
    let dir = tempfile::tempdir().unwrap();
    let (store, alice, bob) = two_users(dir.path());
    let before_users = user_stats(&store);
    let before: Vec<_> = store
        .snapshot()
        .unwrap()
        .episodes(&Query::default())
        .unwrap();

    let gone = vec![alice[1], alice[3]];
    let done = store
        .delete(&Target::ids(gone.clone()), &by("ana"))
        .unwrap();
    assert_eq!(done.selected, gone);
    assert_eq!(done.changed, gone);
    assert_eq!(done.upgraded_from, None, "a new store is format 2 already");

    let left = vec![alice[0], alice[2], bob[0], bob[1]];
    assert_eq!(ids(&store, &Query::default()), left);
    assert_eq!(
        ids(&store, &Query::default().user("alice")),
        vec![alice[0], alice[2]]
    );
    assert_eq!(ids(&store, &Query::default().env("Test-v0")), left);
    let snap = store.snapshot().unwrap();
    assert!(matches!(
        snap.episode(alice[1]),
        Err(Error::Read(ReadError::EpisodeNotFound { .. }))
    ));
    // The catalog (what listing, selection and partition read) follows.
    let catalog = catalog_ids(&snap, &Query::default());
    assert_eq!(catalog, left);
    // Loader and partition selection: the same path.
    let selected = select(&snap, &Query::default()).unwrap();
    assert_eq!(
        selected
            .set
            .episodes()
            .iter()
            .map(|e| EpisodeId(e.id))
            .collect::<Vec<_>>(),
        left
    );
    // User statistics follow: alice lost 2 episodes of 4 + 6 steps.
    let users = user_stats(&store);
    assert_eq!(users["alice"], (2, 3 + 5));
    assert_eq!(users["bob"], before_users["bob"]);
    verify_clean(&store);

    let tombstones = snap.tombstones().unwrap();
    assert_eq!(
        tombstones
            .iter()
            .map(|t| t.episode.id())
            .collect::<Vec<_>>(),
        gone
    );
    assert_eq!(tombstones[0].deleted_by, "ana");
    assert_eq!(
        snap.history(alice[1]).unwrap()[0].changes,
        vec![LabelChange::Deleted]
    );

    let back = store
        .restore(&Restore::Ids(vec![alice[3]]), &by("ana"))
        .unwrap();
    assert_eq!(back.changed, vec![alice[3]]);
    let back = store.restore(&Restore::All, &by("ana")).unwrap();
    assert_eq!(back.changed, vec![alice[1]]);
    assert_eq!(
        store
            .snapshot()
            .unwrap()
            .episodes(&Query::default())
            .unwrap(),
        before,
        "restored records are the records deleted"
    );
    assert_eq!(user_stats(&store), before_users);
    assert!(store.snapshot().unwrap().tombstones().unwrap().is_empty());
    verify_clean(&store);
}

#[test]
fn a_user_whose_every_episode_is_deleted_leaves_the_user_list() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _, bob) = two_users(dir.path());
    let done = delete_user(&store, "bob");
    assert_eq!(done.changed, bob);
    assert!(!user_stats(&store).contains_key("bob"));
    verify_clean(&store);
    store.restore(&Restore::All, &by("ana")).unwrap();
    assert_eq!(user_stats(&store)["bob"], (2, 15));
}

#[test]
fn unknown_or_already_deleted_ids_are_an_error_naming_them_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (store, alice, _) = two_users(dir.path());
    store.delete(&Target::ids([alice[0]]), &by("ana")).unwrap();
    let err = store
        .delete(
            &Target::ids([alice[1], EpisodeId(999), alice[0]]),
            &by("ana"),
        )
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("999") && text.contains("already deleted"),
        "{text}"
    );
    assert!(text.contains("nothing was changed"), "{text}");
    match err {
        Error::Read(ReadError::NoSuchEpisodes { ids, .. }) => {
            assert_eq!(ids, vec![EpisodeId(999), alice[0]]);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        ids(&store, &Query::default()).contains(&alice[1]),
        "alice[1] untouched"
    );
    // Restore of live or unknown ids: the same.
    let err = store
        .restore(&Restore::Ids(vec![alice[1], EpisodeId(999)]), &by("ana"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("999") && err.contains("is not deleted"),
        "{err}"
    );
    assert_eq!(store.snapshot().unwrap().tombstones().unwrap().len(), 1);
}

#[test]
fn a_curation_without_a_selector_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _, _) = two_users(dir.path());
    for target in [
        Target::default(),
        // A cutoff alone is no selector either.
        Target::query(Query::default().before(EpisodeId(100))),
    ] {
        let err = store.delete(&target, &by("ana")).unwrap_err();
        assert!(err.to_string().contains("no filter given"), "{err}");
        let err = store
            .relabel(&target, &Relabel::default().add_tag("x"), &by("ana"))
            .unwrap_err();
        assert!(err.to_string().contains("no filter given"), "{err}");
    }
    assert_eq!(ids(&store, &Query::default()).len(), 6);
}

#[test]
fn an_empty_selection_changes_nothing_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _, _) = two_users(dir.path());
    let done = delete_user(&store, "carol");
    assert_eq!(
        done,
        Curated {
            selected: vec![],
            changed: vec![],
            dry_run: false,
            upgraded_from: None
        }
    );
    assert_eq!(ids(&store, &Query::default()).len(), 6);
}

#[test]
fn a_dry_run_reports_what_would_change_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, alice, _) = two_users(dir.path());
    let dry = CurateOptions {
        dry_run: true,
        by: None,
    };
    let mut q = Query::default().user("alice");
    q.min_steps = Some(5);
    let done = store.delete(&Target::query(q), &dry).unwrap();
    assert!(done.dry_run);
    assert_eq!(done.changed, vec![alice[2], alice[3]]);
    assert_eq!(ids(&store, &Query::default()).len(), 6);
    assert!(store.snapshot().unwrap().tombstones().unwrap().is_empty());
    assert!(
        !dir.path().join("curation.log").exists(),
        "a dry run writes no log"
    );
}

#[test]
fn a_snapshot_taken_before_a_delete_keeps_its_episodes_and_its_cutoff_reproduces_them() {
    let dir = tempfile::tempdir().unwrap();
    let (store, alice, bob) = two_users(dir.path());
    let before = store.snapshot().unwrap();
    let cutoff = before.cutoff().unwrap();
    let set_before = select(&before, &Query::default()).unwrap().set;

    store
        .delete(&Target::ids([alice[0], bob[1]]), &by("ana"))
        .unwrap();
    // The old snapshot (what a running Loader holds) still sees and reads them.
    let kept = before.episode(alice[0]).unwrap();
    assert_eq!(before.field(&kept, "obs/frame").unwrap().len(), 4);
    assert_eq!(before.episodes(&Query::default()).unwrap().len(), 6);

    // A rank starting after the delete, with the job's cutoff, selects the same set.
    record_small(&store, "alice", 77, 3, Codec::Raw);
    let later = store.snapshot().unwrap();
    let shared = select(&later, &Query::default().before(cutoff)).unwrap();
    assert_eq!(shared.set.fingerprint(), set_before.fingerprint());
    assert_eq!(
        ids_in(&later, &Query::default().user("bob").before(cutoff)),
        bob
    );
    // A new job does not see them.
    let fresh = select(&later, &Query::default()).unwrap();
    assert_eq!(fresh.set.len(), 5);
    assert!(
        !fresh
            .set
            .episodes()
            .iter()
            .any(|e| e.id == alice[0].get() || e.id == bob[1].get())
    );
}

/// `Snapshot::metadata_maps` (what `ls --json` prints beside the catalog rows) gives each
/// asked episode its own map, by a range scan (ids dense in their span) or by point lookups
/// (sparse ids); a deleted one its tombstone's; an id that never was, an empty one.
#[test]
fn metadata_maps_are_each_episode_s_own_and_a_deleted_one_s_from_its_tombstone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path()).unwrap();
    let ids: Vec<u64> = (0..12)
        .map(|i| util::record_rich(&store, "ann", i, 2, Codec::Raw).get())
        .collect();
    let snap = store.snapshot().unwrap();
    let own: Vec<trajstore::Info> = ids
        .iter()
        .map(|&id| snap.episode(EpisodeId(id)).unwrap().metadata().clone())
        .collect();
    assert_ne!(own[0], own[1], "maps that differ, so a shifted one shows");
    store
        .delete(
            &Target::ids([EpisodeId(ids[3]), EpisodeId(ids[11])]),
            &by("ana"),
        )
        .unwrap();
    let after = store.snapshot().unwrap();
    let maps_of = |asked: &[u64]| {
        let maps = after.metadata_maps(asked).unwrap();
        (0..maps.len())
            .map(|i| maps.get(i).to_info())
            .collect::<Vec<_>>()
    };
    assert_eq!(maps_of(&ids), own);
    assert_eq!(maps_of(&ids[2..5]), own[2..5]);
    let never = ids[11] + 1000;
    assert_eq!(
        maps_of(&[ids[0], ids[11], never]),
        [own[0].clone(), own[11].clone(), trajstore::Info::new()]
    );
    assert_eq!(after.metadata(&ids).unwrap(), own);
}

#[test]
fn relabel_changes_labels_in_place_and_keeps_each_change_in_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let (store, alice, bob) = two_users(dir.path());
    let relabel = Relabel::default()
        .user("carol")
        .add_tag("expert")
        .outcome(Outcome::Truncated)
        .set_meta("level", Value::Int(3));
    let done = store
        .relabel(&Target::ids([alice[0], bob[0]]), &relabel, &by("ana"))
        .unwrap();
    assert_eq!(done.changed, vec![alice[0], bob[0]]);
    let snap = store.snapshot().unwrap();
    let e = snap.episode(alice[0]).unwrap();
    assert_eq!(e.user(), "carol");
    assert_eq!(e.outcome(), Outcome::Truncated);
    assert!(e.tags().contains(&"expert".to_owned()));
    assert_eq!(e.metadata().get("level"), Some(&Value::Int(3)));
    // Field data untouched, the query paths follow the new user.
    assert_eq!(snap.field(&e, "obs/frame").unwrap().len(), 4);
    assert_eq!(
        ids(&store, &Query::default().user("carol")),
        vec![alice[0], bob[0]]
    );
    assert_eq!(ids(&store, &Query::default().user("bob")), vec![bob[1]]);
    let relabelled = catalog_ids(&snap, &Query::default().user("carol"));
    assert_eq!(
        relabelled,
        vec![alice[0], bob[0]],
        "the catalog row follows the record"
    );
    let users = user_stats(&store);
    assert_eq!(users["carol"], (2, 3 + 7));
    assert_eq!(users["alice"].0, 3);
    verify_clean(&store);

    let history = snap.history(alice[0]).unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].by, "ana");
    assert_eq!(
        history[0].changes,
        vec![
            LabelChange::User {
                from: "alice".into(),
                to: "carol".into()
            },
            LabelChange::Outcome {
                from: Outcome::Terminated,
                to: Outcome::Truncated
            },
            LabelChange::AddTag("expert".into()),
            LabelChange::SetMeta {
                key: "level".into(),
                from: None,
                to: Value::Int(3)
            },
        ]
    );
    // The same relabel again changes nothing and adds no history.
    let again = store
        .relabel(&Target::ids([alice[0]]), &relabel, &by("bo"))
        .unwrap();
    assert_eq!(again.selected, vec![alice[0]]);
    assert!(again.changed.is_empty());
    assert_eq!(
        store.snapshot().unwrap().history(alice[0]).unwrap().len(),
        1
    );
    // Removing and unsetting are recorded with what was there.
    store
        .relabel(
            &Target::ids([alice[0]]),
            &Relabel::default().remove_tag("expert").unset_meta("level"),
            &by("bo"),
        )
        .unwrap();
    let history = store.snapshot().unwrap().history(alice[0]).unwrap();
    assert_eq!(history[1].by, "bo");
    assert_eq!(
        history[1].changes,
        vec![
            LabelChange::RemoveTag("expert".into()),
            LabelChange::UnsetMeta {
                key: "level".into(),
                from: Value::Int(3)
            }
        ]
    );
}

#[test]
fn a_relabel_that_breaks_a_recording_rule_is_refused_before_anything_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (store, alice, _) = two_users(dir.path());
    for bad in [
        Relabel::default(),
        Relabel::default().user(" padded "),
        Relabel::default().add_tag("a").remove_tag("a"),
        Relabel::default().add_tag("bad\ttag"),
    ] {
        assert!(
            store
                .relabel(&Target::ids([alice[0]]), &bad, &by("ana"))
                .is_err(),
            "{bad:?}"
        );
    }
    assert!(
        store
            .snapshot()
            .unwrap()
            .history(alice[0])
            .unwrap()
            .is_empty()
    );
}

fn split(fractions: &[(&str, f64)], seed: u64, by_key: SplitKey) -> SplitRequest {
    SplitRequest {
        fractions: fractions
            .iter()
            .map(|(n, f)| ((*n).to_owned(), *f))
            .collect(),
        seed,
        by: by_key,
    }
}

#[test]
fn split_selects_through_queries_and_a_user_split_keeps_users_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _, _) = two_users(dir.path());
    let err = store
        .snapshot()
        .unwrap()
        .episodes(&Query::default().split("train"))
        .unwrap_err();
    assert!(err.to_string().contains("no split"), "{err}");
    for bad in [
        split(&[("train", 0.9), ("val", 0.2)], 1, SplitKey::Episode),
        split(&[("train", 1.0), ("train", 0.0)], 1, SplitKey::Episode),
        split(&[], 1, SplitKey::Episode),
    ] {
        assert!(store.set_split(&bad, &by("ana")).is_err(), "{bad:?}");
    }
    store
        .set_split(
            &split(&[("train", 0.5), ("val", 0.5)], 3, SplitKey::User),
            &by("ana"),
        )
        .unwrap();
    let snap = store.snapshot().unwrap();
    let train = snap.episodes(&Query::default().split("train")).unwrap();
    let val = snap.episodes(&Query::default().split("val")).unwrap();
    assert_eq!(train.len() + val.len(), 6);
    for e in train.iter().chain(&val) {
        let label = snap.split_of(e).unwrap().unwrap();
        let same_user = snap.episodes(&Query::default().user(e.user())).unwrap();
        assert!(
            same_user
                .iter()
                .all(|o| snap.split_of(o).unwrap().as_deref() == Some(label.as_str()))
        );
    }
    let err = snap.episodes(&Query::default().split("test")).unwrap_err();
    assert!(err.to_string().contains("train, val"), "{err}");
    // The loader's selection takes the same path.
    assert_eq!(
        select(&snap, &Query::default().split("val"))
            .unwrap()
            .set
            .len(),
        val.len()
    );
}

#[test]
fn split_fractions_hold_over_many_episodes() {
    let spec = trajstore::SplitSpec {
        fractions: vec![
            ("train".into(), 0.8),
            ("val".into(), 0.15),
            ("test".into(), 0.05),
        ],
        seed: 42,
        by: SplitKey::Episode,
        set_at_us: 0,
        set_by: String::new(),
    };
    let mut counts = BTreeMap::new();
    for id in 1..=100_000u64 {
        *counts.entry(spec.label(id, "u")).or_insert(0u64) += 1;
    }
    for (name, fraction) in [("train", 0.8), ("val", 0.15), ("test", 0.05)] {
        let got = counts[name] as f64 / 100_000.0;
        assert!((got - fraction).abs() < 0.01, "{name}: {got}");
    }
    // The function is the one schema/index.md ("Split labels") specifies, written again here
    // from the text: a reader in another language computes the same labels.
    let from_spec = |key: &[u8]| {
        let u = (xxhash_rust::xxh3::xxh3_64_with_seed(key, 42) >> 11) as f64 / 2f64.powi(53);
        let mut cumulative = 0.0;
        for (name, f) in [("train", 0.8), ("val", 0.15), ("test", 0.05)] {
            cumulative += f;
            if u < cumulative {
                return name;
            }
        }
        "test"
    };
    for id in 1..=10_000u64 {
        assert_eq!(
            spec.label(id, "u"),
            from_spec(&id.to_le_bytes()),
            "episode {id}"
        );
    }
    let by_user = trajstore::SplitSpec {
        by: SplitKey::User,
        ..spec
    };
    for user in ["alice", "bob", "ünïcode"] {
        assert_eq!(by_user.label(1, user), from_spec(user.as_bytes()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]

    #[test]
    fn split_labels_of_old_episodes_never_move_when_episodes_are_added(
        seed in any::<u64>(),
        first in 0.05f64..0.95,
        by_user in any::<bool>(),
        more in 1usize..6,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (store, _, _) = two_users(dir.path());
        let by_key = if by_user { SplitKey::User } else { SplitKey::Episode };
        store
            .set_split(&split(&[("a", first), ("b", 1.0 - first)], seed, by_key), &by("ana"))
            .unwrap();
        let labels = |store: &Store| -> BTreeMap<EpisodeId, String> {
            let snap = store.snapshot().unwrap();
            snap.episodes(&Query::default())
                .unwrap()
                .iter()
                .map(|e| (e.id(), snap.split_of(e).unwrap().unwrap()))
                .collect()
        };
        let old = labels(&store);
        for i in 0..more {
            record_small(&store, ["alice", "dan"][i % 2], 100 + i as u64, 2, Codec::Raw);
        }
        let new = labels(&store);
        for (id, label) in &old {
            prop_assert_eq!(&new[id], label);
        }
        let a: Vec<EpisodeId> = ids(&store, &Query::default().split("a"));
        prop_assert!(a.iter().all(|id| new[id] == "a"));
        prop_assert_eq!(a.len(), new.values().filter(|l| *l == "a").count());
    }
}

#[test]
fn the_v1_fixture_reads_as_it_is_then_its_first_curation_write_upgrades_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1");
    util::copy_v1_fixture(&path);
    {
        let store = Store::open_read_only(&path).unwrap();
        let snap = store.snapshot().unwrap();
        assert_eq!(snap.format_version().unwrap(), 1);
        // The format-2 tables are absent: read as empty.
        assert!(snap.tombstones().unwrap().is_empty());
        assert!(snap.split_spec().unwrap().is_none());
        let first = snap.episodes(&Query::default()).unwrap()[0].id();
        assert!(snap.history(first).unwrap().is_empty());
    }
    let store = Store::open(&path).unwrap();
    let all = store
        .snapshot()
        .unwrap()
        .episodes(&Query::default())
        .unwrap();
    assert_eq!(
        store.snapshot().unwrap().format_version().unwrap(),
        1,
        "opening is no upgrade"
    );
    // An empty selection and a dry run commit nothing: still format 1.
    delete_user(&store, "nobody");
    store
        .delete(
            &Target::ids([all[0].id()]),
            &CurateOptions {
                dry_run: true,
                by: None,
            },
        )
        .unwrap();
    assert_eq!(store.snapshot().unwrap().format_version().unwrap(), 1);

    let done = store
        .delete(&Target::ids([all[0].id()]), &by("ana"))
        .unwrap();
    assert_eq!(done.upgraded_from, Some(1));
    let snap = store.snapshot().unwrap();
    assert_eq!(snap.format_version().unwrap(), 2);
    assert_eq!(snap.episodes(&Query::default()).unwrap(), all[1..].to_vec());
    for e in &all[1..] {
        // The rest reads back as before (the compat test pins the bytes).
        assert_eq!(
            snap.field(e, "obs/frame").unwrap().to_vec().unwrap(),
            Store::open_read_only(&path)
                .unwrap()
                .snapshot()
                .unwrap()
                .field(e, "obs/frame")
                .unwrap()
                .to_vec()
                .unwrap()
        );
    }
    verify_clean(&store);
    store.restore(&Restore::All, &by("ana")).unwrap();
    assert_eq!(
        store
            .snapshot()
            .unwrap()
            .episodes(&Query::default())
            .unwrap(),
        all
    );
    // The v1 episodes have no manifests: repair of this healthy index changes nothing.
    drop(snap);
    drop(store);
    assert_eq!(
        trajstore::repair(&path).unwrap().action,
        RepairAction::NothingToDo
    );
}

/// Everything curation decides, as a reader sees it.
#[derive(Debug, PartialEq)]
struct Curation {
    live: Vec<trajstore::Episode>,
    deleted: Vec<(EpisodeId, i64, String)>,
    history: Vec<Vec<trajstore::HistoryEntry>>,
    split: Option<Vec<(String, f64)>>,
    users: BTreeMap<String, (u64, u64)>,
}

fn curation(dir: &Path) -> Curation {
    let store = Store::open_read_only(dir).unwrap();
    let snap = store.snapshot().unwrap();
    let live = snap.episodes(&Query::default()).unwrap();
    let tombstones = snap.tombstones().unwrap();
    let history = live
        .iter()
        .map(|e| e.id())
        .chain(tombstones.iter().map(|t| t.episode.id()))
        .map(|id| snap.history(id).unwrap())
        .collect();
    Curation {
        live,
        deleted: tombstones
            .iter()
            .map(|t| (t.episode.id(), t.deleted_at_us, t.deleted_by.clone()))
            .collect(),
        history,
        split: snap.split_spec().unwrap().map(|s| s.fractions),
        users: user_stats(&store),
    }
}

#[test]
fn repair_after_curation_keeps_deletes_restores_relabels_and_the_split() {
    let dir = tempfile::tempdir().unwrap();
    let (store, alice, bob) = two_users(dir.path());
    store
        .delete(&Target::ids([alice[0], alice[1], bob[0]]), &by("ana"))
        .unwrap();
    store
        .restore(&Restore::Ids(vec![alice[1]]), &by("ana"))
        .unwrap();
    store
        .relabel(
            &Target::query(Query::default().user("alice")),
            &Relabel::default().user("carol").add_tag("kept"),
            &by("bo"),
        )
        .unwrap();
    store
        .set_split(
            &split(&[("train", 0.7), ("val", 0.3)], 9, SplitKey::Episode),
            &by("bo"),
        )
        .unwrap();
    drop(store);
    let want = curation(dir.path());
    assert_eq!(want.deleted.len(), 2);

    // A healthy curated index: deleted episodes' manifests are not "missing".
    assert_eq!(
        trajstore::repair(dir.path()).unwrap().action,
        RepairAction::NothingToDo
    );

    let report = util::rebuild_index(dir.path());
    assert_eq!(report.action, RepairAction::Rebuilt);
    assert_eq!(report.curation_replayed, 4);
    assert!(report.curation_log_problem.is_none());
    assert_eq!(curation(dir.path()), want);
    let store = Store::open(dir.path()).unwrap();
    verify_clean(&store);
    // And curation goes on from there.
    store.restore(&Restore::All, &by("ana")).unwrap();
    assert_eq!(ids(&store, &Query::default()).len(), 6);
}

#[test]
fn purge_removes_tombstones_for_good_and_expired_ones_are_listed_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let (store, alice, _) = two_users(dir.path());
    store
        .delete(&Target::ids([alice[0], alice[1]]), &by("ana"))
        .unwrap();
    assert_eq!(
        store
            .expired_tombstones(std::time::Duration::from_secs(3600))
            .unwrap()
            .len(),
        0
    );
    let expired = store.expired_tombstones(std::time::Duration::ZERO).unwrap();
    assert_eq!(expired.len(), 2);
    let err = store.purge_tombstones(&[alice[2]]).unwrap_err();
    assert!(err.to_string().contains("no tombstone"), "{err}");
    let done = store.purge_tombstones(&[alice[0]]).unwrap();
    assert_eq!(done.changed, vec![alice[0]]);
    let snap = store.snapshot().unwrap();
    assert_eq!(snap.tombstones().unwrap().len(), 1);
    assert!(snap.history(alice[0]).unwrap().is_empty());
    let err = store
        .restore(&Restore::Ids(vec![alice[0]]), &by("ana"))
        .unwrap_err();
    assert!(err.to_string().contains("purged"), "{err}");
}

#[test]
fn a_delete_racing_live_recorders_deletes_whole_episodes_and_keeps_statistics_true() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path()).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let recorders: Vec<_> = (0..2)
        .map(|r| {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut committed = Vec::new();
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || committed.len() < 10 {
                    committed.push(record_small(
                        &store,
                        "live",
                        r * 1000 + i,
                        2 + (i % 3) as u32,
                        Codec::Raw,
                    ));
                    i += 1;
                }
                committed
            })
        })
        .collect();
    let mut deleted = Vec::new();
    for _ in 0..20 {
        let done = delete_user(&store, "live");
        deleted.extend(done.changed);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let committed: Vec<EpisodeId> = recorders
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let snap = store.snapshot().unwrap();
    let live = ids_in(&snap, &Query::default());
    let tombstoned: Vec<EpisodeId> = snap
        .tombstones()
        .unwrap()
        .iter()
        .map(|t| t.episode.id())
        .collect();
    deleted.sort();
    assert_eq!(tombstoned, deleted, "each delete reported what it deleted");
    let mut all: Vec<EpisodeId> = live.iter().chain(&tombstoned).copied().collect();
    all.sort();
    let mut want = committed.clone();
    want.sort();
    assert_eq!(
        all, want,
        "every committed episode is live or deleted, exactly once"
    );
    let stats = user_stats(&store);
    let live_steps: u64 = snap
        .episodes(&Query::default())
        .unwrap()
        .iter()
        .map(|e| u64::from(e.steps()))
        .sum();
    if live.is_empty() {
        assert!(!stats.contains_key("live"));
    } else {
        assert_eq!(stats["live"], (live.len() as u64, live_steps));
    }
    verify_clean(&store);
    // Every deleted episode is still whole in the segments: restore and read it.
    store.restore(&Restore::All, &by("ana")).unwrap();
    let snap = store.snapshot().unwrap();
    for e in snap.episodes(&Query::default()).unwrap() {
        assert_eq!(
            snap.field(&e, "obs/frame").unwrap().len(),
            e.steps() as usize + 1
        );
    }
}

#[test]
fn compaction_keeps_the_bytes_of_deleted_episodes_until_their_tombstones_are_purged() {
    let dir = tempfile::tempdir().unwrap();
    let options = trajstore::StoreOptions {
        spill_bytes: 1,
        ..Default::default()
    };
    let store = Store::create_with(dir.path(), options).unwrap();
    let gone = record_small(&store, "ann", 1, 200, Codec::Raw);
    let kept = record_small(&store, "ann", 2, 3, Codec::Raw);
    store.delete(&Target::ids([gone]), &by("ana")).unwrap();
    drop(store);
    let report = trajstore::compact(dir.path(), &trajstore::CompactOptions::default()).unwrap();
    assert!(
        report.rewritten.is_empty() && report.dropped.is_empty(),
        "{report:?}"
    );

    let store = Store::open(dir.path()).unwrap();
    store.restore(&Restore::All, &by("ana")).unwrap();
    let snap = store.snapshot().unwrap();
    let e = snap.episode(gone).unwrap();
    assert_eq!(
        snap.field(&e, "obs/frame").unwrap().to_vec().unwrap().len(),
        201 * 192
    );
    // Purged, its bytes are garbage compaction reclaims.
    store.delete(&Target::ids([gone]), &by("ana")).unwrap();
    store.purge_tombstones(&[gone]).unwrap();
    drop((snap, store));
    let report = trajstore::compact(dir.path(), &trajstore::CompactOptions::default()).unwrap();
    assert!(report.bytes_reclaimed >= 200 * 192, "{report:?}");
    let store = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(ids(&store, &Query::default()), vec![kept]);
    verify_clean(&store);
}
