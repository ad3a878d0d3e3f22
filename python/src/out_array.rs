//! Arrays the core writes field values into: a caller's `out=` array, checked against the
//! field it receives, or a new numpy array (never zero-filled: every byte is written).

use pyo3::buffer::PyUntypedBuffer;
use pyo3::prelude::*;
use pyo3::types::PySlice;
use trajstore::FieldSpec;

use crate::buffer::{dtype_of_format, numpy_typestr};
use crate::error::InputError;

/// How many values an `out=` array must hold.
#[derive(Clone, Copy)]
pub enum Rows {
    /// Exactly this many (a gather: one row per pair).
    Exactly(usize),
    /// At least this many; the first ones are written (a read into a reused buffer).
    AtLeast(usize),
}

/// A writable, C-contiguous array to write values of one field into, held while the core
/// writes it (the buffer keeps the exporter's memory alive and its size fixed).
pub struct OutArray<'py> {
    pub array: Bound<'py, PyAny>,
    buffer: PyUntypedBuffer,
}

impl<'py> OutArray<'py> {
    /// A new numpy array of `rows` values of `spec` (`numpy.empty`: the core writes every byte).
    pub fn new(py: Python<'py>, spec: &FieldSpec, rows: usize) -> PyResult<Self> {
        let mut shape = vec![rows];
        shape.extend(spec.shape_usize());
        let array = py
            .import("numpy")?
            .call_method1("empty", (shape, numpy_typestr(spec.dtype)))?;
        let buffer = PyUntypedBuffer::get(&array)?;
        Ok(OutArray { array, buffer })
    }

    /// The caller's `out`, checked: a writable C-contiguous array of the field's dtype, of
    /// shape `(rows, *field shape)` (`AtLeast`: any leading length from `rows` up). Errors
    /// name `what` (the operation) and the field.
    pub fn caller(
        out: Bound<'py, PyAny>,
        what: &str,
        field: &str,
        spec: &FieldSpec,
        rows: Rows,
    ) -> PyResult<Self> {
        let buffer = PyUntypedBuffer::get(&out).map_err(|_| {
            InputError::new_err(format!(
                "{what} {field:?}: out= must be a writable numpy array"
            ))
        })?;
        if buffer.readonly() || !buffer.is_c_contiguous() {
            return Err(InputError::new_err(format!(
                "{what} {field:?}: out= must be a writable, C-contiguous array"
            )));
        }
        let format = buffer.format().to_string_lossy();
        if dtype_of_format(&format, buffer.item_size()) != Some(spec.dtype) {
            return Err(InputError::new_err(format!(
                "{what}: field {field:?} is {}, out= holds elements of format {format:?}",
                spec.dtype
            )));
        }
        let field_shape = spec.shape_usize();
        let got = buffer.shape();
        let fits = got.len() == field_shape.len() + 1
            && got[1..] == field_shape[..]
            && match rows {
                Rows::Exactly(n) => got[0] == n,
                Rows::AtLeast(n) => got[0] >= n,
            };
        if !fits {
            let (n, how) = match rows {
                Rows::Exactly(n) => (n, ""),
                Rows::AtLeast(n) => (n, " (or more rows)"),
            };
            let mut want = vec![n];
            want.extend(&field_shape);
            return Err(InputError::new_err(format!(
                "{what}: field {field:?} is {} {field_shape:?}: out= must have shape {want:?}{how}, \
                 got {got:?} ({} bytes; {} needed)",
                spec.dtype,
                buffer.len_bytes(),
                n * spec.step_bytes()
            )));
        }
        Ok(OutArray { array: out, buffer })
    }

    /// Lets `write` fill the first `rows` values with the GIL released.
    pub fn write<T: Send>(
        &self,
        py: Python<'_>,
        bytes: usize,
        write: impl FnOnce(&mut [u8]) -> T + Send,
    ) -> T {
        assert!(
            bytes <= self.buffer.len_bytes(),
            "checked by the constructors"
        );
        let ptr = self.buffer.buf_ptr() as usize;
        py.detach(|| {
            // SAFETY: `self.buffer` keeps the exporter's memory alive and its size fixed while
            // `self` lives, past this closure; it is writable and C-contiguous and at least
            // `bytes` long (checked above). Python code writing the same array from another
            // thread races as it would with any numpy function that releases the GIL.
            let out = unsafe { std::slice::from_raw_parts_mut(ptr as *mut u8, bytes) };
            write(out)
        })
    }

    /// The array, or its first `rows` values (a view) when it holds more.
    pub fn rows(self, py: Python<'py>, rows: usize) -> PyResult<Bound<'py, PyAny>> {
        let held = self.buffer.shape().first().copied().unwrap_or(0);
        drop(self.buffer);
        if held == rows {
            return Ok(self.array);
        }
        let end = isize::try_from(rows).expect("rows of an array");
        self.array.get_item(PySlice::new(py, 0, end, 1))
    }
}
