//! Checking a step's values against the schema, before anything is buffered: a call that
//! fails changes nothing.

use crate::dtype::DType;
use crate::error::{Error, RecordError, Result};
use crate::schema::{FieldKind, FieldSpec, Schema};
use crate::value::ArrayRef;

/// Matches named values to schema fields and checks each; nothing is mutated on error.
///
/// Per step and field this is on the recording hot path: callers almost always give values in
/// schema order, so the field at the next position is tried first (one string compare) before
/// the name map.
pub(crate) fn match_values<'v>(
    schema: &Schema,
    given: &[(&str, ArrayRef<'v>)],
    during: &'static str,
    with_transition: bool,
) -> Result<Vec<Option<ArrayRef<'v>>>> {
    let fields = schema.fields();
    let mut matched: Vec<Option<ArrayRef<'v>>> = vec![None; fields.len()];
    let mut next = 0;
    for (name, value) in given {
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
        if matched[i].is_some() {
            return Err(RecordError::DuplicateField {
                field: spec.name.clone(),
                during,
            }
            .into());
        }
        check_value(spec, value)?;
        matched[i] = Some(*value);
    }
    for (spec, value) in fields.iter().zip(&matched) {
        let needed = with_transition || spec.kind == FieldKind::Observation;
        if needed && value.is_none() {
            return Err(RecordError::MissingField {
                field: spec.name.clone(),
                during,
            }
            .into());
        }
    }
    Ok(matched)
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
