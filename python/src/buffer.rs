//! Zero-copy export of bytes through the Python buffer protocol.
//!
//! `numpy.frombuffer(obj)` gives a read-only array viewing the bytes; the array's base keeps
//! `obj` (and whatever owns the bytes: a segment's memory map, a batch buffer) alive.

use std::ffi::c_int;

use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;
use trajstore::MappedBytes;

/// Read-only bytes inside a segment's memory map; outlives the store it came from.
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
        let bytes: &[u8] = &slf.get().bytes;
        let (ptr, len) = (bytes.as_ptr(), bytes.len());
        // SAFETY: the map is held by `slf` (an Arc inside MappedBytes) and never written.
        unsafe { export_read_only(slf.into_any(), view, flags, ptr, len) }
    }

    fn __len__(&self) -> usize {
        self.bytes.len()
    }
}

/// Bytes a batch column was gathered into, handed to Python without a copy: the sampler
/// gives up the buffer and allocates a new one for its next batch.
#[pyclass(frozen, module = "trajstore._trajstore")]
pub struct OwnedBuffer {
    bytes: Box<[u8]>,
}

impl OwnedBuffer {
    pub fn new(bytes: Vec<u8>) -> Self {
        OwnedBuffer {
            bytes: bytes.into_boxed_slice(),
        }
    }
}

#[pymethods]
impl OwnedBuffer {
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let (ptr, len) = (slf.get().bytes.as_ptr(), slf.get().bytes.len());
        // SAFETY: the boxed bytes belong to `slf` (frozen: never replaced) and are never written.
        unsafe { export_read_only(slf.into_any(), view, flags, ptr, len) }
    }
}

/// Fills `view` with a read-only view of `len` bytes at `ptr`, owned by `owner`.
///
/// # Safety
/// `view` is the struct CPython passed to `__getbuffer__`, and the bytes must stay valid and
/// unmodified as long as `owner` lives. PyBuffer_FillInfo stores a new reference to `owner`
/// in `view.obj`, so every consumer of the view keeps the bytes alive.
unsafe fn export_read_only(
    owner: Bound<'_, PyAny>,
    view: *mut ffi::Py_buffer,
    flags: c_int,
    ptr: *const u8,
    len: usize,
) -> PyResult<()> {
    if flags & ffi::PyBUF_WRITABLE == ffi::PyBUF_WRITABLE {
        return Err(PyBufferError::new_err(
            "trajstore data is read-only; copy the array to modify it",
        ));
    }
    // SAFETY: see the function's contract; readonly = 1.
    let rc = unsafe {
        ffi::PyBuffer_FillInfo(
            view,
            owner.as_ptr(),
            ptr as *mut _,
            len as ffi::Py_ssize_t,
            1,
            flags,
        )
    };
    if rc == -1 {
        Err(PyErr::fetch(owner.py()))
    } else {
        Ok(())
    }
}
