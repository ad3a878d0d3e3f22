//! Checking a step's values against the schema, before anything is buffered: a call that
//! fails changes nothing.

use crate::dtype::DType;
use crate::error::{Error, RecordError, Result};
use crate::schema::{FieldKind, FieldSpec, Schema};
use crate::value::ArrayRef;

/// Which given value each schema field got at one step: the position in the caller's slice,
/// per field. Kept by the writer from step to step, so that matching allocates nothing on the
/// recording hot path (it runs per step and field).
pub(crate) struct Matched {
    slots: Vec<u32>,
}

/// A field given no value at this step.
const ABSENT: u32 = u32::MAX;

impl Matched {
    pub fn new(fields: usize) -> Matched {
        Matched {
            slots: vec![ABSENT; fields],
        }
    }

    /// Matches named values to schema fields and checks each. On error only this scratch
    /// state changes, never the episode.
    ///
    /// Callers almost always give values in schema order, so the field at the next position
    /// is tried first (one string compare) before the name map.
    pub fn match_values(
        &mut self,
        schema: &Schema,
        given: &[(&str, ArrayRef<'_>)],
        during: &'static str,
        with_transition: bool,
    ) -> Result<()> {
        let fields = schema.fields();
        self.slots.fill(ABSENT);
        let mut next = 0;
        for (at, (name, value)) in given.iter().enumerate() {
            let i = match fields.get(next) {
                Some(f) if f.name == *name => next,
                _ => schema
                    .index_of(name)
                    .ok_or_else(|| RecordError::UnknownField {
                        field: (*name).to_owned(),
                        known: schema.field_names(),
                    })?,
            };
            next = i + 1;
            let spec = &fields[i];
            if spec.kind == FieldKind::Transition && !with_transition {
                return Err(RecordError::MisplacedField {
                    field: spec.name.clone(),
                    kind: "transition",
                    during,
                }
                .into());
            }
            if self.slots[i] != ABSENT {
                return Err(RecordError::DuplicateField {
                    field: spec.name.clone(),
                    during,
                }
                .into());
            }
            check_value(spec, value)?;
            // Every value before this one took a distinct field, so `at` is at most the
            // schema's field count (far below `u32::MAX`, schema.rs).
            self.slots[i] = at as u32;
        }
        for (spec, &slot) in fields.iter().zip(&self.slots) {
            let needed = with_transition || spec.kind == FieldKind::Observation;
            if needed && slot == ABSENT {
                return Err(RecordError::MissingField {
                    field: spec.name.clone(),
                    during,
                }
                .into());
            }
        }
        Ok(())
    }

    /// The value field `field` got from `given` (the slice last matched), if any.
    #[inline]
    pub fn value<'v>(&self, given: &[(&str, ArrayRef<'v>)], field: usize) -> Option<ArrayRef<'v>> {
        match self.slots[field] {
            ABSENT => None,
            at => Some(given[at as usize].1),
        }
    }
}

fn check_value(spec: &FieldSpec, value: &ArrayRef<'_>) -> Result<()> {
    if value.dtype != spec.dtype {
        return Err(RecordError::DTypeMismatch {
            field: spec.name.clone(),
            expected: spec.dtype,
            got: value.dtype,
        }
        .into());
    }
    // The expected shape is only built for the error: this runs per field per step.
    let mismatch = |got: Vec<usize>| -> Error {
        RecordError::ShapeMismatch {
            field: spec.name.clone(),
            expected: spec.shape_usize(),
            got,
        }
        .into()
    };
    match value.shape {
        Some(shape)
            if shape.len() != spec.shape.len()
                || shape
                    .iter()
                    .zip(&spec.shape)
                    .any(|(&g, &e)| g as u64 != u64::from(e)) =>
        {
            return Err(mismatch(shape.to_vec()));
        }
        Some(_) | None if value.bytes.len() != spec.step_bytes() => {
            return Err(mismatch(vec![value.bytes.len() / spec.dtype.size()]));
        }
        _ => {}
    }
    if spec.dtype == DType::Bool && value.bytes.iter().any(|&b| b > 1) {
        return Err(RecordError::InvalidValue {
            field: spec.name.clone(),
            reason: "bool bytes must be 0 or 1".into(),
        }
        .into());
    }
    Ok(())
}
