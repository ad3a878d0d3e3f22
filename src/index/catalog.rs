//! The episode catalog (format 2, table `catalog`): one compact row per episode, id to
//! [`CatalogRecordV1`], so that listing, selecting and partitioning decode neither chunk
//! lists nor metadata maps (schema/index.md, "Format 2").
//!
//! Every path that adds, removes or rewrites an `episodes` row keeps the catalog with it, in
//! the same write transaction, through [`put`] and [`remove`]. The table is complete or
//! absent: the first writable open of a store without it (format 1, or written by a build
//! before the catalog) builds it from the `episodes` table in one transaction
//! ([`build_if_missing`]) and only then marks it complete in `meta`. Readers use it only when
//! marked complete, and otherwise decode full episode records ([`IndexSnapshot::catalog`]).
//!
//! [`IndexSnapshot::catalog`]: super::IndexSnapshot::catalog

use redb::{ReadableTable, Table, TableDefinition, WriteTransaction};

use super::records::{CatalogRecordV1, EpisodeRecordV1, Record};
use super::{EPISODES, META};
use crate::error::Result;

pub(crate) const CATALOG: TableDefinition<u64, &[u8]> = TableDefinition::new("catalog");
/// `meta` key set (to 1) once the catalog holds a row for every episode.
pub(crate) const META_CATALOG_COMPLETE: &str = "catalog_complete";

/// Writes (or rewrites) the catalog row of episode `id` from its record.
pub(crate) fn put(
    catalog: &mut Table<'_, u64, &'static [u8]>,
    id: u64,
    record: &EpisodeRecordV1,
) -> Result<()> {
    catalog.insert(id, CatalogRecordV1::of(record).encode().as_slice())?;
    Ok(())
}

/// Removes the catalog row of episode `id` (when its `episodes` row goes: a delete).
pub(crate) fn remove(catalog: &mut Table<'_, u64, &'static [u8]>, id: u64) -> Result<()> {
    catalog.remove(id)?;
    Ok(())
}

/// Builds the catalog from the `episodes` table unless it is marked complete; returns the
/// rows written. One pass, in the caller's transaction.
pub(crate) fn build_if_missing(txn: &WriteTransaction) -> Result<u64> {
    let mut meta = txn.open_table(META)?;
    if meta.get(META_CATALOG_COMPLETE)?.is_some() {
        return Ok(0);
    }
    let episodes = txn.open_table(EPISODES)?;
    let mut catalog = txn.open_table(CATALOG)?;
    let mut rows = 0;
    for entry in episodes.iter()? {
        let (id, bytes) = entry?;
        put(
            &mut catalog,
            id.value(),
            &EpisodeRecordV1::decode(bytes.value())?,
        )?;
        rows += 1;
    }
    meta.insert(META_CATALOG_COMPLETE, 1)?;
    Ok(rows)
}
