//! The steps table: one record batch per episode, one row per observation.
//!
//! An episode of `T` transitions has `T + 1` rows, `step` 0 to `T`. Row `t` holds the
//! observation fields' value `t` and, for `t < T`, the transition fields' value `t` (the
//! action taken from observation `t`, the reward it earned, ...). Row `T` holds the final
//! observation; its transition fields are null. So a consumer that wants transitions keeps
//! the rows where `action` is valid, and finds the next observation on the following row.

use std::collections::{BTreeMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::ptr::NonNull;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, RecordBatch, RecordBatchReader, UInt32Array, UInt64Array, new_null_array,
};
use arrow_buffer::{Buffer, MutableBuffer};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use trajstore::{Episode, FieldKind, FieldSpec, MappedBytes, SchemaId, Snapshot};

use crate::columns::{column, field_of};
use crate::error::{ExportError, Result};

/// The column naming each row's episode id.
pub const EPISODE_COLUMN: &str = "episode";
/// The column naming each row's step (0 to `T`).
pub const STEP_COLUMN: &str = "step";

/// Which fields become columns, checked against every selected episode's schema.
#[derive(Debug)]
pub struct StepsPlan {
    fields: Vec<FieldSpec>,
    schema: SchemaRef,
}

fn describe(spec: &FieldSpec) -> String {
    format!("{} {} {:?}", spec.kind.name(), spec.dtype, spec.shape)
}

impl StepsPlan {
    /// The columns for `episodes`: `wanted` fields in that order, or every field of their
    /// schemas in order of first appearance. A field must have one dtype, shape and kind in
    /// every schema that has it; episodes whose schema lacks a field get nulls there.
    pub fn new(
        snapshot: &Snapshot,
        episodes: &[Episode],
        wanted: Option<&[String]>,
    ) -> Result<Self> {
        let mut schema_ids: Vec<SchemaId> = Vec::new();
        for e in episodes {
            if !schema_ids.contains(&e.schema_id()) {
                schema_ids.push(e.schema_id());
            }
        }
        Self::from_schemas(snapshot, &schema_ids, wanted)
    }

    /// The columns for episodes of the schemas `schema_ids` (in that order of appearance):
    /// what [`StepsPlan::new`] computes from the episodes' schemas, for readers that read a
    /// selection in parts (each part's batches then have the whole selection's columns).
    pub fn from_schemas(
        snapshot: &Snapshot,
        schema_ids: &[SchemaId],
        wanted: Option<&[String]>,
    ) -> Result<Self> {
        // Every field seen, with the schema it was first seen in; and the first conflict of
        // each field (an error only if that field is exported).
        let mut seen: BTreeMap<String, (u64, FieldSpec)> = BTreeMap::new();
        let mut conflicts: BTreeMap<String, ExportError> = BTreeMap::new();
        let mut order: Vec<String> = Vec::new();
        for id in schema_ids {
            let schema = snapshot.schema(*id)?;
            for spec in schema.fields() {
                match seen.get(&spec.name) {
                    None => {
                        seen.insert(spec.name.clone(), (id.get(), spec.clone()));
                        order.push(spec.name.clone());
                    }
                    Some((first_schema, first))
                        if (first.dtype != spec.dtype
                            || first.shape != spec.shape
                            || first.kind != spec.kind)
                            && !conflicts.contains_key(&spec.name) =>
                    {
                        let conflict = ExportError::FieldConflict {
                            field: spec.name.clone(),
                            first_schema: *first_schema,
                            first: describe(first),
                            second_schema: id.get(),
                            second: describe(spec),
                        };
                        conflicts.insert(spec.name.clone(), conflict);
                    }
                    Some(_) => {}
                }
            }
        }
        let names: Vec<String> = match wanted {
            None => order,
            Some(wanted) => {
                let mut unique = HashSet::new();
                for name in wanted {
                    if !unique.insert(name) {
                        return Err(ExportError::BadField {
                            field: name.clone(),
                            reason: "is asked for twice",
                        });
                    }
                    if !seen.contains_key(name) {
                        return Err(ExportError::UnknownField {
                            field: name.clone(),
                            known: order.join(", "),
                        });
                    }
                }
                wanted.to_vec()
            }
        };
        if let Some(conflict) = names.iter().find_map(|n| conflicts.remove(n)) {
            return Err(conflict);
        }
        let fields: Vec<FieldSpec> = names.iter().map(|n| seen[n].1.clone()).collect();
        let mut columns = vec![
            Field::new(EPISODE_COLUMN, DataType::UInt64, false),
            Field::new(STEP_COLUMN, DataType::UInt32, false),
        ];
        for spec in &fields {
            if spec.name == EPISODE_COLUMN || spec.name == STEP_COLUMN {
                return Err(ExportError::BadField {
                    field: spec.name.clone(),
                    reason: "has the name of a column every steps table has (episode, step)",
                });
            }
            columns.push(field_of(spec));
        }
        Ok(StepsPlan {
            fields,
            schema: Arc::new(Schema::new(columns)),
        })
    }

    /// The steps table's Arrow schema: `episode`, `step`, then a column per field.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The planned fields, in column order.
    pub fn fields(&self) -> &[FieldSpec] {
        &self.fields
    }

    /// One episode's rows (`T + 1`). Raw observation fields written in one chunk are slices of
    /// the memory map (no copy); everything else is read (and checked) into new buffers.
    pub fn episode_batch(&self, snapshot: &Snapshot, episode: &Episode) -> Result<RecordBatch> {
        let rows = episode.steps() as usize + 1;
        let schema = snapshot.schema(episode.schema_id())?;
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.fields.len() + 2);
        columns.push(Arc::new(UInt64Array::from(vec![episode.id().get(); rows])));
        columns.push(Arc::new((0..rows as u32).collect::<UInt32Array>()));
        for (spec, arrow_field) in self.fields.iter().zip(self.schema.fields().iter().skip(2)) {
            let Some(stored) = schema.field(&spec.name) else {
                columns.push(new_null_array(arrow_field.data_type(), rows));
                continue;
            };
            if stored.dtype != spec.dtype || stored.shape != spec.shape || stored.kind != spec.kind
            {
                // An episode of a schema the plan was not made from.
                return Err(ExportError::FieldConflict {
                    field: spec.name.clone(),
                    first_schema: u64::MAX,
                    first: describe(spec),
                    second_schema: episode.schema_id().get(),
                    second: describe(stored),
                });
            }
            let field = snapshot.field(episode, &spec.name)?;
            let n = field.step_bytes();
            let valid = field.len();
            let bytes = match (spec.kind, field.contiguous()?) {
                (FieldKind::Observation, Some(mapped)) => mapped_buffer(mapped),
                _ => {
                    // Rows past the field's values (the last row of a transition field) are
                    // zeroes under a null.
                    let mut buf = MutableBuffer::from_len_zeroed(rows * n);
                    field.read_into(0..valid, &mut buf.as_slice_mut()[..valid * n])?;
                    buf.into()
                }
            };
            columns.push(column(spec, bytes, rows, valid)?);
        }
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

/// An Arrow buffer over a slice of a segment's memory map, keeping the map alive.
fn mapped_buffer(mapped: MappedBytes) -> Buffer {
    let len = mapped.len();
    let Some(ptr) = NonNull::new(mapped.as_ptr() as *mut u8) else {
        return Buffer::from_vec(Vec::<u8>::new());
    };
    // The owner is only ever read through; no panic can leave it in a broken state.
    let owner = Arc::new(AssertUnwindSafe(mapped));
    // SAFETY: `ptr` points at `len` readable bytes of a read-only map that `owner` keeps
    // mapped for as long as the buffer (and every Arrow array sharing it) lives; committed
    // segment bytes are never modified or truncated while mapped (schema/format.md), and
    // Arrow only reads them. Payloads start 64-byte aligned, as Arrow's typed views need.
    unsafe { Buffer::from_custom_allocation(ptr, len, owner) }
}

/// The steps of a list of episodes, one record batch per episode, as an Arrow reader (owning
/// its snapshot, so it can be handed to a writer or across the C stream interface).
pub struct StepsReader {
    snapshot: Arc<Snapshot>,
    plan: Arc<StepsPlan>,
    episodes: std::vec::IntoIter<Episode>,
    on_batch: Option<OnBatch>,
}

/// What a [`StepsReader`] calls with each batch it produces.
type OnBatch = Box<dyn FnMut(&RecordBatch) + Send>;

impl StepsReader {
    pub fn new(snapshot: Arc<Snapshot>, plan: Arc<StepsPlan>, episodes: Vec<Episode>) -> Self {
        StepsReader {
            snapshot,
            plan,
            episodes: episodes.into_iter(),
            on_batch: None,
        }
    }

    /// Calls `f` with every batch as it is produced (progress reporting).
    pub fn on_batch(mut self, f: impl FnMut(&RecordBatch) + Send + 'static) -> Self {
        self.on_batch = Some(Box::new(f));
        self
    }
}

impl Iterator for StepsReader {
    type Item = std::result::Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        let episode = self.episodes.next()?;
        Some(match self.plan.episode_batch(&self.snapshot, &episode) {
            Ok(batch) => {
                if let Some(f) = self.on_batch.as_mut() {
                    f(&batch);
                }
                Ok(batch)
            }
            Err(e) => Err(ArrowError::ExternalError(Box::new(e))),
        })
    }
}

impl RecordBatchReader for StepsReader {
    fn schema(&self) -> SchemaRef {
        self.plan.schema()
    }
}
