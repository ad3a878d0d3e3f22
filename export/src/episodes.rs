//! The episode index as one Arrow record batch: a row per episode, metadata only.

use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::{
    ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray, UInt32Array,
    UInt64Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use trajstore::{Episode, Info, Value};

use crate::error::Result;

fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The columns of the episodes table (schema/export.md, "The episodes table").
pub fn episodes_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::UInt64, false),
        Field::new("user", DataType::Utf8, false),
        Field::new("env", DataType::Utf8, false),
        Field::new("schema_id", DataType::UInt64, false),
        Field::new("steps", DataType::UInt32, false),
        Field::new("total_return", DataType::Float64, false),
        Field::new("outcome", DataType::Utf8, false),
        Field::new("seed", DataType::UInt64, true),
        Field::new(
            "tags",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            false,
        ),
        Field::new("metadata", DataType::Utf8, false),
        Field::new("started_at", timestamp(), false),
        Field::new("ended_at", timestamp(), false),
        Field::new("committed_at", timestamp(), false),
        Field::new("raw_bytes", DataType::UInt64, false),
        Field::new("stored_bytes", DataType::UInt64, false),
    ]))
}

/// Episodes (as listed from a snapshot) as one record batch of [`episodes_schema`].
pub fn episodes_batch(episodes: &[Episode]) -> Result<RecordBatch> {
    let strings = |f: fn(&Episode) -> &str| -> ArrayRef {
        Arc::new(episodes.iter().map(|e| Some(f(e))).collect::<StringArray>())
    };
    let u64s = |f: fn(&Episode) -> u64| -> ArrayRef {
        Arc::new(episodes.iter().map(f).collect::<UInt64Array>())
    };
    let times = |f: fn(&Episode) -> i64| -> ArrayRef {
        Arc::new(
            TimestampMicrosecondArray::from(episodes.iter().map(f).collect::<Vec<i64>>())
                .with_timezone("UTC"),
        )
    };
    let mut tags = ListBuilder::new(StringBuilder::new());
    for e in episodes {
        for t in e.tags() {
            tags.values().append_value(t);
        }
        tags.append(true);
    }
    let columns: Vec<ArrayRef> = vec![
        u64s(|e| e.id().get()),
        strings(|e| e.user()),
        strings(|e| e.env()),
        u64s(|e| e.schema_id().get()),
        Arc::new(episodes.iter().map(|e| e.steps()).collect::<UInt32Array>()),
        Arc::new(
            episodes
                .iter()
                .map(|e| e.total_return())
                .collect::<Float64Array>(),
        ),
        strings(|e| e.outcome().name()),
        Arc::new(episodes.iter().map(|e| e.seed()).collect::<UInt64Array>()),
        Arc::new(tags.finish()),
        Arc::new(
            episodes
                .iter()
                .map(|e| Some(metadata_json(e.metadata())))
                .collect::<StringArray>(),
        ),
        times(|e| e.started_at_us()),
        times(|e| e.ended_at_us()),
        times(|e| e.committed_at_us()),
        u64s(|e| e.raw_bytes()),
        u64s(|e| e.stored_bytes()),
    ];
    Ok(RecordBatch::try_new(episodes_schema(), columns)?)
}

/// An episode's metadata as a JSON object (keys in order; values as JSON scalars and lists).
pub(crate) fn metadata_json(info: &Info) -> String {
    let map: serde_json::Map<String, serde_json::Value> = info
        .iter()
        .map(|(k, v)| (k.clone(), value_json(v)))
        .collect();
    serde_json::Value::Object(map).to_string()
}

fn value_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::Float(f) => (*f).into(),
        Value::Str(s) => s.clone().into(),
        Value::Ints(v) => v.clone().into(),
        Value::Floats(v) => v.clone().into(),
    }
}
