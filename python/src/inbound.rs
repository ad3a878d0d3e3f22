//! Reading the buffer a value exports (PEP 3118), in place, for recording.
//!
//! pyo3's `PyUntypedBuffer` refuses 0-d exports (numpy scalars and 0-d arrays give no shape
//! array), and scalar fields (`reward`, a discrete action, health counters) are the most common
//! values of all; this asks for a C-contiguous export with its format and takes ndim 0 as the
//! empty shape.

use std::ffi::CStr;

use pyo3::ffi;
use pyo3::prelude::*;
use trajstore::DType;

use crate::buffer::dtype_of_format;

/// A C-contiguous buffer exported by a Python object, released when dropped.
pub struct ExportedBuffer {
    // Boxed: the exporter may keep pointers into the view while it is held.
    view: Box<ffi::Py_buffer>,
}

impl ExportedBuffer {
    /// The object's buffer when it exports a C-contiguous one; `None` otherwise (no buffer
    /// protocol, a strided view, ...), with the exporter's error cleared.
    pub fn get(obj: &Bound<'_, PyAny>) -> Option<Self> {
        let mut view = Box::new(ffi::Py_buffer::new());
        // SAFETY: `view` points to a valid, writable Py_buffer that outlives the call, and the
        // object is bound, so we hold the GIL. On success the view holds a reference to the
        // exporter until `PyBuffer_Release` (in `Drop`).
        let rc = unsafe {
            ffi::PyObject_GetBuffer(
                obj.as_ptr(),
                &mut *view,
                ffi::PyBUF_C_CONTIGUOUS | ffi::PyBUF_FORMAT,
            )
        };
        if rc != 0 {
            drop(PyErr::take(obj.py()));
            return None;
        }
        Some(ExportedBuffer { view })
    }

    /// The PEP 3118 format of the elements (`B` when the exporter gives none).
    pub fn format(&self) -> std::borrow::Cow<'_, str> {
        if self.view.format.is_null() {
            return "B".into();
        }
        // SAFETY: a non-null format is a NUL-terminated string owned by the exporter, valid
        // while the buffer is held (as long as `self`).
        unsafe { CStr::from_ptr(self.view.format) }.to_string_lossy()
    }

    /// The stored dtype of the elements, or `None` when the store cannot hold them.
    pub fn dtype(&self) -> Option<DType> {
        dtype_of_format(&self.format(), self.view.itemsize as usize)
    }

    /// The shape (empty for a 0-d export: a scalar).
    pub fn shape(&self) -> &[usize] {
        let ndim = self.view.ndim as usize;
        if ndim == 0 || self.view.shape.is_null() {
            return &[];
        }
        // SAFETY: with PyBUF_ND (part of PyBUF_C_CONTIGUOUS) the exporter fills `shape` with
        // `ndim` non-negative Py_ssize_t values, valid while the buffer is held; Py_ssize_t and
        // usize have the same size and alignment, and the values are non-negative.
        unsafe { std::slice::from_raw_parts(self.view.shape as *const usize, ndim) }
    }

    /// The elements' bytes, in C order.
    pub fn bytes(&self) -> &[u8] {
        if self.view.len == 0 {
            return &[];
        }
        // SAFETY: the export is C-contiguous (asked for), `len` bytes long from `buf`, and
        // stays valid and unmoved while the buffer is held (as long as `self`); we only read.
        unsafe { std::slice::from_raw_parts(self.view.buf as *const u8, self.view.len as usize) }
    }
}

impl Drop for ExportedBuffer {
    fn drop(&mut self) {
        // SAFETY: the view was filled by a successful PyObject_GetBuffer and is released
        // exactly once, with the GIL held.
        Python::attach(|_| unsafe { ffi::PyBuffer_Release(&mut *self.view) });
    }
}
