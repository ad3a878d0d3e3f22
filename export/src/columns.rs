//! How a field of the store becomes an Arrow column: its type (scalars as primitives, images
//! as fixed-size binary, other arrays as fixed-size lists) and the array built from its bytes.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, FixedSizeBinaryArray, FixedSizeListArray, PrimitiveArray,
    types::{
        Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
        UInt8Type, UInt16Type, UInt32Type, UInt64Type,
    },
};
use arrow_buffer::{BooleanBuffer, Buffer, NullBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field};
use trajstore::{DType, FieldSpec};

use crate::error::Result;

/// Field metadata keys every step column carries, so a reader can rebuild the array shape.
pub(crate) const META_DTYPE: &str = "trajstore.dtype";
pub(crate) const META_SHAPE: &str = "trajstore.shape";
pub(crate) const META_KIND: &str = "trajstore.kind";

/// How the values of one step of a field are laid out in a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// A scalar field (shape `[]`): one primitive value.
    Scalar,
    /// A `u8` field of two or more dimensions (an image): the step's bytes as one value.
    Binary { width: usize },
    /// Any other array: its elements, flattened in row-major order.
    List { len: usize },
}

fn layout(spec: &FieldSpec) -> Layout {
    if spec.shape.is_empty() {
        Layout::Scalar
    } else if spec.dtype == DType::U8 && spec.shape.len() >= 2 {
        Layout::Binary {
            width: spec.step_bytes(),
        }
    } else {
        Layout::List {
            len: spec.step_bytes() / spec.dtype.size(),
        }
    }
}

fn element_type(dtype: DType) -> DataType {
    match dtype {
        DType::Bool => DataType::Boolean,
        DType::U8 => DataType::UInt8,
        DType::U16 => DataType::UInt16,
        DType::U32 => DataType::UInt32,
        DType::U64 => DataType::UInt64,
        DType::I8 => DataType::Int8,
        DType::I16 => DataType::Int16,
        DType::I32 => DataType::Int32,
        DType::I64 => DataType::Int64,
        DType::F16 => DataType::Float16,
        DType::F32 => DataType::Float32,
        DType::F64 => DataType::Float64,
    }
}

/// The list's element field: named `item` (Arrow's convention), never null.
fn item_field(dtype: DType) -> Arc<Field> {
    Arc::new(Field::new("item", element_type(dtype), false))
}

/// The Arrow type of a field's column (schema/export.md, "Column types").
pub fn column_type(spec: &FieldSpec) -> DataType {
    match layout(spec) {
        Layout::Scalar => element_type(spec.dtype),
        Layout::Binary { width } => DataType::FixedSizeBinary(width as i32),
        Layout::List { len } => DataType::FixedSizeList(item_field(spec.dtype), len as i32),
    }
}

/// The column's Arrow field: named after the store field, nullable (transition fields are
/// null on an episode's last row), with dtype, shape and kind as field metadata.
pub fn field_of(spec: &FieldSpec) -> Field {
    let shape = serde_json::to_string(&spec.shape).expect("a list of integers");
    Field::new(&spec.name, column_type(spec), true).with_metadata(HashMap::from([
        (META_DTYPE.to_owned(), spec.dtype.name().to_owned()),
        (META_SHAPE.to_owned(), shape),
        (META_KIND.to_owned(), spec.kind.name().to_owned()),
    ]))
}

/// A column of `rows` rows from `bytes` (`rows` steps of the field, little-endian, payloads
/// 64-byte aligned or in an Arrow-allocated buffer), whose first `valid` rows are values and
/// the rest null.
pub(crate) fn column(
    spec: &FieldSpec,
    bytes: Buffer,
    rows: usize,
    valid: usize,
) -> Result<ArrayRef> {
    debug_assert_eq!(bytes.len(), rows * spec.step_bytes());
    let nulls =
        (valid < rows).then(|| NullBuffer::new(BooleanBuffer::collect_bool(rows, |i| i < valid)));
    Ok(match layout(spec) {
        Layout::Scalar => elements(spec.dtype, bytes, rows, nulls),
        Layout::Binary { width } => {
            Arc::new(FixedSizeBinaryArray::try_new(width as i32, bytes, nulls)?)
        }
        Layout::List { len } => {
            let values = elements(spec.dtype, bytes, rows * len, None);
            Arc::new(FixedSizeListArray::try_new(
                item_field(spec.dtype),
                len as i32,
                values,
                nulls,
            )?)
        }
    })
}

/// `count` elements of `dtype` from `bytes` as a primitive (or boolean) array.
fn elements(dtype: DType, bytes: Buffer, count: usize, nulls: Option<NullBuffer>) -> ArrayRef {
    fn primitive<T: arrow_array::ArrowPrimitiveType>(
        bytes: Buffer,
        count: usize,
        nulls: Option<NullBuffer>,
    ) -> ArrayRef {
        Arc::new(PrimitiveArray::<T>::new(
            ScalarBuffer::new(bytes, 0, count),
            nulls,
        ))
    }
    match dtype {
        // Stored one byte per value (0 or 1); Arrow packs booleans into bits.
        DType::Bool => Arc::new(BooleanArray::new(
            BooleanBuffer::collect_bool(count, |i| bytes[i] != 0),
            nulls,
        )),
        DType::U8 => primitive::<UInt8Type>(bytes, count, nulls),
        DType::U16 => primitive::<UInt16Type>(bytes, count, nulls),
        DType::U32 => primitive::<UInt32Type>(bytes, count, nulls),
        DType::U64 => primitive::<UInt64Type>(bytes, count, nulls),
        DType::I8 => primitive::<Int8Type>(bytes, count, nulls),
        DType::I16 => primitive::<Int16Type>(bytes, count, nulls),
        DType::I32 => primitive::<Int32Type>(bytes, count, nulls),
        DType::I64 => primitive::<Int64Type>(bytes, count, nulls),
        DType::F16 => primitive::<Float16Type>(bytes, count, nulls),
        DType::F32 => primitive::<Float32Type>(bytes, count, nulls),
        DType::F64 => primitive::<Float64Type>(bytes, count, nulls),
    }
}
