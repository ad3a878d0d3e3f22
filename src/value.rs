//! Values a caller hands in: typed arrays for fields, small scalars for info and metadata.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::dtype::{DType, Element};

/// A borrowed, typed array: the value of one field for one step.
///
/// Build it from a typed slice ([`ArrayRef::new`]), so the dtype cannot disagree with the
/// bytes. The shape is checked against the schema when given ([`ArrayRef::with_shape`]);
/// otherwise only the element count is.
#[derive(Clone, Copy, Debug)]
pub struct ArrayRef<'a> {
    pub(crate) dtype: DType,
    pub(crate) shape: Option<&'a [usize]>,
    pub(crate) bytes: &'a [u8],
}

impl<'a> ArrayRef<'a> {
    /// A flat slice; its length must equal the field's element count.
    pub fn new<T: Element>(data: &'a [T]) -> Self {
        ArrayRef {
            dtype: T::DTYPE,
            shape: None,
            bytes: bytemuck::cast_slice(data),
        }
    }

    /// A slice with an explicit shape, which must equal the field's shape.
    pub fn with_shape<T: Element>(data: &'a [T], shape: &'a [usize]) -> Self {
        ArrayRef {
            dtype: T::DTYPE,
            shape: Some(shape),
            bytes: bytemuck::cast_slice(data),
        }
    }

    /// One scalar value.
    pub fn scalar<T: Element>(value: &'a T) -> Self {
        Self::with_shape(std::slice::from_ref(value), &[])
    }

    /// Raw little-endian bytes of the given dtype and shape (for bindings that hold untyped
    /// buffers). The byte length is checked against the schema like any other value.
    pub fn from_bytes(dtype: DType, shape: &'a [usize], bytes: &'a [u8]) -> Self {
        ArrayRef {
            dtype,
            shape: Some(shape),
            bytes,
        }
    }

    /// The dtype of the elements.
    pub fn dtype(&self) -> DType {
        self.dtype
    }
}

/// A small scalar or list, for per-step `info` and per-episode metadata.
///
/// Stored in the index by variant index: never reorder the variants, only append.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Ints(Vec<i64>),
    Floats(Vec<f64>),
}

impl Value {
    /// A JSON-like rendering for listings.
    pub fn render(&self) -> String {
        match self {
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Str(s) => format!("{s:?}"),
            Value::Ints(v) => format!("{v:?}"),
            Value::Floats(v) => format!("{v:?}"),
        }
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}

/// The `info` map of one step (Gymnasium's `info` dict), and the free metadata of an episode.
pub type Info = BTreeMap<String, Value>;
