//! Schema metadata (format 2, table `schema_metadata`): key/values that belong to a schema
//! rather than to an episode, such as the Gymnasium spaces its fields were flattened from,
//! stored once per schema instead of in every episode's metadata (schema/index.md, "Format 2").
//!
//! A recorder hands them over with its episode ([`EpisodeMeta::schema_metadata`]); the commit
//! transaction keeps the first value given for each key of the schema, so the table grows by
//! a row per schema, not per episode. An episode whose value of a key differs from the one
//! stored keeps its own value in its own metadata (readers look there first). The table is
//! created by the first commit that has schema metadata; every reader treats a missing table
//! or row as empty.
//!
//! [`EpisodeMeta::schema_metadata`]: crate::EpisodeMeta::schema_metadata

use std::borrow::Cow;

use redb::{ReadableTable, Table, TableDefinition};

use super::records::{EpisodeRecordV1, Record, SchemaMetadataV1};
use crate::error::Result;
use crate::value::Info;

pub(crate) const SCHEMA_METADATA: TableDefinition<u64, &[u8]> =
    TableDefinition::new("schema_metadata");

/// Reads a schema's row (empty when there is none).
pub(crate) fn get(table: &impl ReadableTable<u64, &'static [u8]>, schema: u64) -> Result<Info> {
    Ok(match table.get(schema)? {
        Some(v) => SchemaMetadataV1::decode(v.value())?.metadata,
        None => Info::new(),
    })
}

/// Files `given` (an episode's schema metadata) under the episode's schema: keys the row
/// lacks are added to it; a key the row holds with another value stays the episode's own,
/// added to its metadata (unless the episode set that key itself). Returns the record to
/// store: `record` itself unless a key had to stay with the episode.
pub(crate) fn put<'r>(
    table: &mut Table<'_, u64, &'static [u8]>,
    record: &'r EpisodeRecordV1,
    given: &Info,
) -> Result<Cow<'r, EpisodeRecordV1>> {
    if given.is_empty() {
        return Ok(Cow::Borrowed(record));
    }
    let mut row = get(table, record.schema_id)?;
    let mut grew = false;
    let mut record = Cow::Borrowed(record);
    for (key, value) in given {
        match row.get(key) {
            None => {
                row.insert(key.clone(), value.clone());
                grew = true;
            }
            Some(stored) if stored == value => {}
            Some(_) => {
                if !record.metadata.contains_key(key) {
                    record.to_mut().metadata.insert(key.clone(), value.clone());
                }
            }
        }
    }
    if grew {
        table.insert(
            record.schema_id,
            SchemaMetadataV1 { metadata: row }.encode().as_slice(),
        )?;
    }
    Ok(record)
}

/// `metadata` with `schema`'s keys added where it has none: what an episode's metadata means
/// once its schema's row is taken into account (the episode's own value of a key wins).
pub(crate) fn effective(metadata: &Info, schema: &Info) -> Info {
    let mut out = schema.clone();
    out.extend(metadata.iter().map(|(k, v)| (k.clone(), v.clone())));
    out
}
