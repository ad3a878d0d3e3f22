//! The step schema: which fields a step has, their dtype, shape and codec.
//!
//! Terminology follows Gymnasium (and Minari): an episode of `T` transitions has `T + 1`
//! observations (the reset observation and the one after each step) and `T` of every
//! transition field (action, reward, terminated, truncated). `info` is a free map stored in
//! the index, `T + 1` of them (reset info and one per step).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::dtype::{DType, element_count};
use crate::error::{Error, RecordError, Result};

/// Field names every schema has. [`SchemaBuilder::build`] adds them when not declared.
pub const REWARD: &str = "reward";
/// See [`REWARD`].
pub const TERMINATED: &str = "terminated";
/// See [`REWARD`].
pub const TRUNCATED: &str = "truncated";

/// Longest field name, in bytes.
pub const MAX_FIELD_NAME_BYTES: usize = 128;
/// Most fields in one schema.
pub const MAX_FIELDS: usize = 256;
/// Most bytes in one step of one field (a 4096x4096x4 f32 frame is 256 MiB).
pub const MAX_STEP_BYTES: usize = 256 << 20;

/// How a field's bytes are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Codec {
    /// Stored as is; read back as a slice of the segment's memory map, never copied.
    Raw,
    /// Each step compressed on its own with the LZ4 block format (random access to any step);
    /// decoded into a caller's buffer. A step that compresses by less than 1/8 is stored raw.
    Lz4,
}

impl Codec {
    /// `"raw"` or `"lz4"`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Raw => "raw",
            Codec::Lz4 => "lz4",
        }
    }

    /// Parses a name as printed by [`Codec::name`].
    pub fn parse(name: &str) -> Option<Codec> {
        match name {
            "raw" => Some(Codec::Raw),
            "lz4" => Some(Codec::Lz4),
            _ => None,
        }
    }
}

/// Whether a field has one value per observation (`T + 1`) or per transition (`T`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FieldKind {
    /// Given at `reset` and with every `step` (the observation the step led to).
    Observation,
    /// Given with every `step`: action, reward, terminated, truncated, and any other per-step value.
    Transition,
}

impl FieldKind {
    /// `"observation"` or `"transition"`.
    pub fn name(self) -> &'static str {
        match self {
            FieldKind::Observation => "observation",
            FieldKind::Transition => "transition",
        }
    }
}

/// One named field of a step.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FieldSpec {
    /// Unique within the schema, e.g. `obs/frame` or `action`.
    pub name: String,
    pub dtype: DType,
    /// Fixed shape of one step's value; empty for a scalar.
    pub shape: Vec<u32>,
    pub kind: FieldKind,
    pub codec: Codec,
}

impl FieldSpec {
    /// The shape as `usize`s.
    pub fn shape_usize(&self) -> Vec<usize> {
        self.shape.iter().map(|&d| d as usize).collect()
    }

    /// Bytes of one step's value.
    pub fn step_bytes(&self) -> usize {
        // Validated at schema construction not to overflow nor exceed MAX_STEP_BYTES.
        self.shape.iter().map(|&d| d as usize).product::<usize>() * self.dtype.size()
    }
}

/// The fields of a step, validated. Build one with [`Schema::builder`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<FieldSpec>", into = "Vec<FieldSpec>")]
pub struct Schema {
    fields: Vec<FieldSpec>,
    #[serde(skip)]
    by_name: HashMap<String, usize>,
}

impl TryFrom<Vec<FieldSpec>> for Schema {
    type Error = Error;
    fn try_from(fields: Vec<FieldSpec>) -> Result<Schema> {
        Schema::from_fields(fields)
    }
}

impl From<Schema> for Vec<FieldSpec> {
    fn from(schema: Schema) -> Vec<FieldSpec> {
        schema.fields
    }
}

impl Schema {
    /// Starts a schema; `reward` (f32), `terminated` and `truncated` (bool) are added by
    /// [`SchemaBuilder::build`] unless declared.
    pub fn builder() -> SchemaBuilder {
        SchemaBuilder { fields: Vec::new() }
    }

    /// Validates a complete field list (as stored in the index).
    pub fn from_fields(fields: Vec<FieldSpec>) -> Result<Schema> {
        let invalid = |m: String| Err(RecordError::InvalidSchema { reason: m }.into());
        if fields.len() > MAX_FIELDS {
            return invalid(format!("{} fields, at most {MAX_FIELDS}", fields.len()));
        }
        let mut by_name = HashMap::with_capacity(fields.len());
        for (i, f) in fields.iter().enumerate() {
            validate_field_name(&f.name)?;
            if by_name.insert(f.name.clone(), i).is_some() {
                return invalid(format!("field {:?} declared twice", f.name));
            }
            let shape = f.shape_usize();
            let bytes = element_count(&shape).and_then(|n| n.checked_mul(f.dtype.size()));
            match bytes {
                Some(0) => {
                    return invalid(format!(
                        "field {:?} has a zero-sized shape {shape:?}",
                        f.name
                    ));
                }
                Some(b) if b <= MAX_STEP_BYTES => {}
                _ => {
                    return invalid(format!(
                        "field {:?}: one step of shape {shape:?} {} exceeds {MAX_STEP_BYTES} bytes",
                        f.name, f.dtype
                    ));
                }
            }
        }
        let schema = Schema { fields, by_name };
        for (name, dtypes) in [
            (REWARD, &[DType::F32, DType::F64][..]),
            (TERMINATED, &[DType::Bool][..]),
            (TRUNCATED, &[DType::Bool][..]),
        ] {
            let Some(f) = schema.field(name) else {
                return invalid(format!("required field {name:?} is missing"));
            };
            if !dtypes.contains(&f.dtype) || !f.shape.is_empty() || f.kind != FieldKind::Transition
            {
                return invalid(format!(
                    "field {name:?} must be a scalar transition field of dtype {}",
                    dtypes
                        .iter()
                        .map(|d| d.name())
                        .collect::<Vec<_>>()
                        .join(" or ")
                ));
            }
        }
        Ok(schema)
    }

    /// All fields, in declaration order (the order their data is stored in).
    pub fn fields(&self) -> &[FieldSpec] {
        &self.fields
    }

    /// A field by name.
    pub fn field(&self, name: &str) -> Option<&FieldSpec> {
        self.index_of(name).map(|i| &self.fields[i])
    }

    /// The position of a field in [`Schema::fields`].
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// Comma-separated field names, for error messages.
    pub(crate) fn field_names(&self) -> String {
        self.fields
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Bytes of one step of every observation field.
    pub fn observation_bytes(&self) -> usize {
        self.bytes_of(FieldKind::Observation)
    }

    /// Bytes of one step of every transition field.
    pub fn transition_bytes(&self) -> usize {
        self.bytes_of(FieldKind::Transition)
    }

    fn bytes_of(&self, kind: FieldKind) -> usize {
        self.fields
            .iter()
            .filter(|f| f.kind == kind)
            .map(|f| f.step_bytes())
            .sum()
    }
}

fn validate_field_name(name: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ':');
    if name.is_empty() || name.len() > MAX_FIELD_NAME_BYTES || !name.chars().all(ok_char) {
        return Err(RecordError::InvalidSchema { reason: format!(
            "field name {name:?} must be 1..={MAX_FIELD_NAME_BYTES} characters of [A-Za-z0-9_-./:]"
        ) }.into());
    }
    Ok(())
}

/// Builds a [`Schema`]; see [`Schema::builder`].
#[derive(Clone, Debug)]
pub struct SchemaBuilder {
    fields: Vec<FieldSpec>,
}

impl SchemaBuilder {
    /// Declares an observation field (`T + 1` values per episode).
    pub fn observation(self, name: &str, dtype: DType, shape: &[u32], codec: Codec) -> Self {
        self.field(name, dtype, shape, FieldKind::Observation, codec)
    }

    /// Declares a raw transition field (`T` values per episode), e.g. `action`.
    pub fn transition(self, name: &str, dtype: DType, shape: &[u32]) -> Self {
        self.field(name, dtype, shape, FieldKind::Transition, Codec::Raw)
    }

    /// Declares any field.
    pub fn field(
        mut self,
        name: &str,
        dtype: DType,
        shape: &[u32],
        kind: FieldKind,
        codec: Codec,
    ) -> Self {
        self.fields.push(FieldSpec {
            name: name.to_owned(),
            dtype,
            shape: shape.to_vec(),
            kind,
            codec,
        });
        self
    }

    /// Validates the schema, adding `reward` (f32), `terminated` and `truncated` if absent.
    pub fn build(mut self) -> Result<Schema> {
        for (name, dtype) in [
            (REWARD, DType::F32),
            (TERMINATED, DType::Bool),
            (TRUNCATED, DType::Bool),
        ] {
            if !self.fields.iter().any(|f| f.name == name) {
                self = self.transition(name, dtype, &[]);
            }
        }
        Schema::from_fields(self.fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_adds_required_fields() {
        let s = Schema::builder()
            .observation("obs", DType::U8, &[4, 4], Codec::Raw)
            .build()
            .unwrap();
        assert_eq!(s.field(REWARD).unwrap().dtype, DType::F32);
        assert_eq!(s.field(TERMINATED).unwrap().dtype, DType::Bool);
        assert_eq!(s.fields().len(), 4);
    }

    #[test]
    fn bad_schemas_are_refused_with_the_field_named() {
        let dup = Schema::builder()
            .transition("action", DType::I64, &[])
            .transition("action", DType::I64, &[])
            .build();
        assert!(
            matches!(dup, Err(Error::Record(RecordError::InvalidSchema { reason: m })) if m.contains("\"action\" declared twice"))
        );
        let bad_reward = Schema::builder()
            .transition(REWARD, DType::I32, &[])
            .build();
        assert!(
            matches!(bad_reward, Err(Error::Record(RecordError::InvalidSchema { reason: m })) if m.contains("reward"))
        );
        let zero = Schema::builder()
            .observation("o", DType::U8, &[0, 3], Codec::Raw)
            .build();
        assert!(
            matches!(zero, Err(Error::Record(RecordError::InvalidSchema { reason: m })) if m.contains("zero-sized"))
        );
        let huge = Schema::builder()
            .observation("o", DType::F64, &[u32::MAX, u32::MAX], Codec::Raw)
            .build();
        assert!(matches!(
            huge,
            Err(Error::Record(RecordError::InvalidSchema { .. }))
        ));
        let name = Schema::builder()
            .observation("a b", DType::U8, &[1], Codec::Raw)
            .build();
        assert!(
            matches!(name, Err(Error::Record(RecordError::InvalidSchema { reason: m })) if m.contains("\"a b\""))
        );
    }

    #[test]
    fn schema_round_trips_through_postcard() {
        let s = Schema::builder()
            .observation("obs/frame", DType::U8, &[8, 8, 3], Codec::Lz4)
            .transition("action", DType::I64, &[2])
            .build()
            .unwrap();
        let bytes = postcard::to_allocvec(&s).unwrap();
        let back: Schema = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.index_of("action"), s.index_of("action"));
    }
}
