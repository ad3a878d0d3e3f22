//! Field declarations as Python passes and reads them, and the [`Schema`] they stand for.

use pyo3::prelude::*;
use trajstore::{Codec, DType, FieldKind, Schema};

use crate::error::{InputError, IntoPy};

/// A field declaration as Python passes it: (name, dtype, shape, kind, codec).
pub(crate) type FieldDecl = (String, String, Vec<u32>, String, String);

/// The schema Python's field declarations describe, naming the field a bad one is in.
pub(crate) fn build_schema(fields: &[FieldDecl]) -> PyResult<Schema> {
    let mut b = Schema::builder();
    for (name, dtype, shape, kind, codec) in fields {
        let dtype = DType::parse(dtype).ok_or_else(|| {
            InputError::new_err(format!("field {name:?}: unknown dtype {dtype:?}"))
        })?;
        let kind = match kind.as_str() {
            "observation" => FieldKind::Observation,
            "transition" => FieldKind::Transition,
            k => {
                return Err(InputError::new_err(format!(
                    "field {name:?}: kind {k:?} is not observation or transition"
                )));
            }
        };
        let codec = Codec::parse(codec).ok_or_else(|| {
            InputError::new_err(format!("field {name:?}: codec {codec:?} is not raw or lz4"))
        })?;
        b = b.field(name, dtype, shape, kind, codec);
    }
    b.build().py_err()
}

/// A schema's fields as Python sees them.
pub(crate) fn field_decls(schema: &Schema) -> Vec<FieldDecl> {
    schema
        .fields()
        .iter()
        .map(|f| {
            (
                f.name.clone(),
                f.dtype.name().to_owned(),
                f.shape.clone(),
                f.kind.name().to_owned(),
                f.codec.name().to_owned(),
            )
        })
        .collect()
}
