//! Zero-copy export of memory-mapped bytes through the Python buffer protocol.
//!
//! `numpy.frombuffer(MappedBuffer)` gives a read-only array that views the segment's memory
//! map; the array's base keeps this object, and so the map, alive after the store is closed.

use std::ffi::c_int;

use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;
use trajstore::MappedBytes;

/// Read-only bytes inside a segment's memory map.
#[pyclass(frozen, module = "trajstore._trajstore")]
pub struct MappedBuffer {
    bytes: MappedBytes,
}

impl MappedBuffer {
    pub fn new(bytes: MappedBytes) -> Self {
        MappedBuffer { bytes }
    }
}

#[pymethods]
impl MappedBuffer {
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        if flags & ffi::PyBUF_WRITABLE == ffi::PyBUF_WRITABLE {
            return Err(PyBufferError::new_err("trajstore data is read-only"));
        }
        let bytes: &[u8] = &slf.get().bytes;
        let (ptr, len) = (bytes.as_ptr(), bytes.len() as ffi::Py_ssize_t);
        // SAFETY: `view` is the buffer struct CPython passed in. PyBuffer_FillInfo stores a new
        // reference to `slf` in `view.obj`, so the MappedBuffer (and the Arc'd memory map it
        // holds) outlives every consumer of the view; the bytes are never written (readonly=1).
        let rc =
            unsafe { ffi::PyBuffer_FillInfo(view, slf.as_ptr(), ptr as *mut _, len, 1, flags) };
        if rc == -1 {
            Err(PyErr::fetch(slf.py()))
        } else {
            Ok(())
        }
    }

    fn __len__(&self) -> usize {
        self.bytes.len()
    }
}
