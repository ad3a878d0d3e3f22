//! The catalog chunks against the rows they are derived from, through every index write path:
//! commit, curation (delete, restore, relabel), repair's rebuild, and the first writable open
//! of a store that has none. Each test needs more than one chunk of episodes, so it writes
//! through the index directly (one transaction) rather than record thousands of episodes.

use super::catalog::{CATALOG_CHUNKS, CHUNK_BITS, META_CATALOG_SEALED, Want};
use super::catalog_columns::Catalog;
use super::records::{CatalogRecordV1, DeletedRecordV1, EpisodeRecordV1, Outcome};
use super::{Index, IndexSnapshot, META, PendingEpisode};
use crate::io::OsIo;

const CHUNK: u64 = 1 << CHUNK_BITS;

fn record(i: u64) -> EpisodeRecordV1 {
    EpisodeRecordV1 {
        user: format!("user{}", i % 5),
        env: format!("env{}", i % 2),
        schema_id: 1,
        started_at_us: 1_700_000_000_000_000 + i as i64,
        ended_at_us: 1_700_000_000_000_100 + i as i64,
        committed_at_us: 1_700_000_000_000_200 + i as i64,
        steps: (i % 97) as u32 + 1,
        total_return: i as f64 * 0.25,
        outcome: Outcome::Terminated,
        seed: i.is_multiple_of(3).then_some(i),
        tags: if i.is_multiple_of(4) {
            vec!["even".into()]
        } else {
            vec![]
        },
        metadata: Default::default(),
        raw_bytes: 10 * i,
        stored_bytes: 9 * i,
        fields: Vec::new(),
    }
}

fn pending(i: u64) -> PendingEpisode {
    PendingEpisode {
        record: record(i),
        infos: Vec::new(),
        stats: None,
        schema_metadata: Default::default(),
    }
}

/// An index of `n` episodes (ids 1..=n), committed in one transaction.
fn index_of(dir: &std::path::Path, n: u64) -> Index {
    let index = Index::open_write(&dir.join("index.redb"), &OsIo).unwrap();
    let batch: Vec<PendingEpisode> = (1..=n).map(pending).collect();
    let refs: Vec<&PendingEpisode> = batch.iter().collect();
    index.commit(&refs, Vec::new()).unwrap();
    index
}

/// The catalog as read (chunks and rows), row for row against the `episodes` table.
fn assert_catalog_is_the_records(index: &Index) {
    let snapshot = IndexSnapshot::new(index.begin_read().unwrap());
    let Some(Want::All(catalog)) = snapshot.catalog(None, Want::All(Catalog::new())).unwrap()
    else {
        panic!("no complete catalog");
    };
    let got: Vec<(u64, CatalogRecordV1)> = (0..catalog.len())
        .map(|i| (catalog.ids[i], catalog.record(i)))
        .collect();
    let want: Vec<(u64, CatalogRecordV1)> = snapshot
        .episodes(None)
        .unwrap()
        .iter()
        .map(|(id, r)| (*id, CatalogRecordV1::of(r)))
        .collect();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
}

/// How many chunks are stored, and `catalog_sealed`.
fn chunks(index: &Index) -> (u64, u64) {
    use redb::ReadableTableMetadata;
    let txn = index.begin_read().unwrap();
    let stored = match txn.open_table(CATALOG_CHUNKS) {
        Ok(t) => t.len().unwrap(),
        Err(redb::TableError::TableDoesNotExist(_)) => 0,
        Err(e) => panic!("{e}"),
    };
    let sealed = txn
        .open_table(META)
        .unwrap()
        .get(META_CATALOG_SEALED)
        .unwrap()
        .map_or(0, |v| v.value());
    (stored, sealed)
}

#[test]
fn commits_seal_every_chunk_whose_ids_are_all_taken() {
    let dir = tempfile::tempdir().unwrap();
    let index = index_of(dir.path(), 2 * CHUNK + 10);
    // next_episode_id is 2 * CHUNK + 11: chunks 0 and 1 are sealed, chunk 2 is still open.
    assert_eq!(chunks(&index), (2, 2));
    assert_catalog_is_the_records(&index);
    let more: Vec<PendingEpisode> = (0..CHUNK).map(|i| pending(5000 + i)).collect();
    index
        .commit(&more.iter().collect::<Vec<_>>(), Vec::new())
        .unwrap();
    assert_eq!(chunks(&index), (3, 3));
    assert_catalog_is_the_records(&index);
}

#[test]
fn a_relabel_delete_or_restore_in_a_sealed_chunk_is_reflected_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let index = index_of(dir.path(), 2 * CHUNK + 10);
    let relabelled = 7;
    let deleted = CHUNK + 3;
    index
        .curate(|c| {
            let old = c.episode(relabelled)?.unwrap();
            let new = EpisodeRecordV1 {
                user: "carol".into(),
                outcome: Outcome::Truncated,
                tags: vec!["relabelled".into()],
                ..old.clone()
            };
            c.replace(relabelled, &old, &new)?;
            let r = c.episode(deleted)?.unwrap();
            let hidden_from = c.advance_clock()?;
            let tombstone = DeletedRecordV1 {
                record: r,
                deleted_at_us: 1,
                deleted_by: "ana".into(),
                hidden_from,
            };
            c.delete(deleted, &tombstone)?;
            Ok(((), true))
        })
        .unwrap();
    // Both chunks were rebuilt in the curation's transaction, not left to the rows.
    assert_eq!(chunks(&index).0, 2);
    assert_catalog_is_the_records(&index);
    let snapshot = IndexSnapshot::new(index.begin_read().unwrap());
    let Some(Want::All(c)) = snapshot.catalog(None, Want::All(Catalog::new())).unwrap() else {
        panic!("no catalog");
    };
    let row = c.position(relabelled).unwrap();
    assert_eq!(c.record(row).user, "carol");
    assert_eq!(c.record(row).tags, ["relabelled"]);
    assert!(c.position(deleted).is_none());

    index
        .curate(|c| {
            let t = c.tombstone(deleted)?.unwrap();
            c.restore(deleted, &t.record)?;
            Ok(((), true))
        })
        .unwrap();
    assert_catalog_is_the_records(&index);
}

#[test]
fn a_repaired_index_has_its_chunks_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rebuilt.redb");
    let episodes: Vec<(u64, PendingEpisode)> = (1..=CHUNK + 5)
        .filter(|id| id % 10 != 0)
        .map(|id| (id, pending(id)))
        .collect();
    Index::build_restored(&path, &[], &episodes).unwrap();
    let index = Index::open_write(&path, &OsIo).unwrap();
    assert_eq!(chunks(&index), (1, 1));
    assert_catalog_is_the_records(&index);
}

#[test]
fn a_store_without_chunks_gets_them_at_its_first_writable_open_and_reads_right_before() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.redb");
    {
        let index = index_of(dir.path(), 3 * CHUNK);
        // As a build before the chunks left it: rows only.
        let txn = index.writable().unwrap().begin_write().unwrap();
        txn.delete_table(CATALOG_CHUNKS).unwrap();
        txn.open_table(META)
            .unwrap()
            .remove(META_CATALOG_SEALED)
            .unwrap();
        txn.commit().unwrap();
        assert_eq!(chunks(&index), (0, 0));
    }
    let read_only = Index::open_read(&path, &OsIo).unwrap();
    assert_catalog_is_the_records(&read_only);
    drop(read_only);
    let index = Index::open_write(&path, &OsIo).unwrap();
    assert_eq!(chunks(&index), (3, 3));
    assert_catalog_is_the_records(&index);
    // And the cutoffs: a chunk read in part.
    let snapshot = IndexSnapshot::new(index.begin_read().unwrap());
    let Some(Want::Lens(lens)) = snapshot
        .catalog(Some(CHUNK + 2), Want::Lens(Vec::new()))
        .unwrap()
    else {
        panic!("no catalog");
    };
    assert_eq!(lens.len() as u64, CHUNK + 1);
    assert_eq!(lens.last().unwrap().id, CHUNK + 1);
    let ids = [3, CHUNK + 9, 2 * CHUNK + 1];
    let Some(Want::Ids(_, some)) = snapshot
        .catalog(None, Want::Ids(&ids, Catalog::new()))
        .unwrap()
    else {
        panic!("no catalog");
    };
    assert_eq!(some.ids, ids);
}

/// The command line opens its stores with a page cache of about a megabyte (it reads each page
/// once): reads then evict as they go, smaller than one chunk's page at the extreme, and must
/// still return every row.
#[test]
fn an_index_read_through_a_cache_smaller_than_a_chunk_reads_every_row() {
    let dir = tempfile::tempdir().unwrap();
    drop(index_of(dir.path(), 3 * CHUNK + 7));
    for cache_bytes in [0, 4096, 1 << 20] {
        let path = dir.path().join("index.redb");
        let index = Index::open_read_caching(&path, &OsIo, cache_bytes).unwrap();
        assert_catalog_is_the_records(&index);
    }
}
