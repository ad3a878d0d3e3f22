//! Checking a step's values against the schema, before anything is buffered: a call that
//! fails changes nothing.

use crate::dtype::{DType, element_count};
use crate::error::{Error, Result};
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
            return Err(Error::UnknownField {
                field: (*name).to_owned(),
                known: schema.field_names(),
            });
        };
        let spec = &fields[i];
        if spec.kind == FieldKind::Transition && !with_transition {
            return Err(Error::MisplacedField {
                field: spec.name.clone(),
                kind: "transition",
                during,
            });
        }
        if matched[i].is_some() {
            return Err(Error::DuplicateField {
                field: spec.name.clone(),
                during,
            });
        }
        check_value(spec, value)?;
        matched[i] = Some(*value);
    }
    for (spec, value) in fields.iter().zip(&matched) {
        let needed = with_transition || spec.kind == FieldKind::Observation;
        if needed && value.is_none() {
            return Err(Error::MissingField {
                field: spec.name.clone(),
                during,
            });
        }
    }
    Ok(matched)
}

fn check_value(spec: &FieldSpec, value: &ArrayRef<'_>) -> Result<()> {
    if value.dtype != spec.dtype {
        return Err(Error::DTypeMismatch {
            field: spec.name.clone(),
            expected: spec.dtype,
            got: value.dtype,
        });
    }
    let expected = spec.shape_usize();
    match value.shape {
        Some(shape) if shape != expected.as_slice() => {
            return Err(Error::ShapeMismatch {
                field: spec.name.clone(),
                expected,
                got: shape.to_vec(),
            });
        }
        Some(shape)
            if element_count(shape).map(|n| n * spec.dtype.size()) != Some(value.bytes.len()) =>
        {
            return Err(Error::ShapeMismatch {
                field: spec.name.clone(),
                expected,
                got: vec![value.bytes.len() / spec.dtype.size()],
            });
        }
        None if value.bytes.len() != spec.step_bytes() => {
            return Err(Error::ShapeMismatch {
                field: spec.name.clone(),
                expected,
                got: vec![value.bytes.len() / spec.dtype.size()],
            });
        }
        _ => {}
    }
    if spec.dtype == DType::Bool && value.bytes.iter().any(|&b| b > 1) {
        return Err(Error::InvalidValue {
            field: spec.name.clone(),
            reason: "bool bytes must be 0 or 1".into(),
        });
    }
    Ok(())
}
