//! Checking a step's values against the schema, before anything is buffered: a call that
//! fails changes nothing.

use crate::dtype::{DType, element_count};
use crate::error::{RecordError, Result};
use crate::schema::{FieldKind, FieldSpec, Schema};
use crate::value::ArrayRef;

/// Matches named values to schema fields and checks each; nothing is mutated on error.
pub(crate) fn match_values<'v>(
    schema: &Schema,
    given: &[(&str, ArrayRef<'v>)],
    during: &'static str,
    with_transition: bool,
) -> Result<Vec<Option<ArrayRef<'v>>>> {
    let fields = schema.fields();
    let mut matched: Vec<Option<ArrayRef<'v>>> = vec![None; fields.len()];
    for (name, value) in given {
        let Some(i) = schema.index_of(name) else {
            return Err(RecordError::UnknownField {
                field: (*name).to_owned(),
                known: schema.field_names(),
            }
            .into());
        };
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
    let expected = spec.shape_usize();
    match value.shape {
        Some(shape) if shape != expected.as_slice() => {
            return Err(RecordError::ShapeMismatch {
                field: spec.name.clone(),
                expected,
                got: shape.to_vec(),
            }
            .into());
        }
        Some(shape)
            if element_count(shape).map(|n| n * spec.dtype.size()) != Some(value.bytes.len()) =>
        {
            return Err(RecordError::ShapeMismatch {
                field: spec.name.clone(),
                expected,
                got: vec![value.bytes.len() / spec.dtype.size()],
            }
            .into());
        }
        None if value.bytes.len() != spec.step_bytes() => {
            return Err(RecordError::ShapeMismatch {
                field: spec.name.clone(),
                expected,
                got: vec![value.bytes.len() / spec.dtype.size()],
            }
            .into());
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
