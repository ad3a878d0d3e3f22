//! Zero-copy export of typed arrays through the Python buffer protocol.
//!
//! Every array the package hands out is one of these buffers, exported with its element
//! format and shape, so `numpy.asarray(obj)` gives the finished array without a copy and
//! without a dtype table on the Python side; the array's base keeps `obj` (and whatever owns
//! the bytes: a segment's memory map, a batch buffer) alive.
//!
//! The writability convention (README, "Arrays"): bytes inside the store (a memory map) and
//! an episode's decoded fields are exported read-only; bytes gathered for the caller (loader
//! batches, replay observations and actions) are exported writable: the caller owns them,
//! and `torch.from_numpy` wraps them without a copy.

use std::cell::UnsafeCell;
use std::ffi::{CStr, c_int};
use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;
use trajstore::{DType, MappedBytes};

/// The PEP 3118 (struct module) format of a dtype's elements; stored data is little-endian.
fn format_of(dtype: DType) -> &'static CStr {
    match dtype {
        DType::Bool => c"?",
        DType::U8 => c"B",
        DType::U16 => c"<H",
        DType::U32 => c"<I",
        DType::U64 => c"<Q",
        DType::I8 => c"b",
        DType::I16 => c"<h",
        DType::I32 => c"<i",
        DType::I64 => c"<q",
        DType::F16 => c"<e",
        DType::F32 => c"<f",
        DType::F64 => c"<d",
    }
}

/// The numpy array-interface type string of a dtype (`"<f4"`), by which the Python layer
/// makes numpy dtypes from the core's dtype names instead of keeping its own table.
pub fn numpy_typestr(dtype: DType) -> &'static str {
    match dtype {
        DType::Bool => "|b1",
        DType::U8 => "|u1",
        DType::U16 => "<u2",
        DType::U32 => "<u4",
        DType::U64 => "<u8",
        DType::I8 => "|i1",
        DType::I16 => "<i2",
        DType::I32 => "<i4",
        DType::I64 => "<i8",
        DType::F16 => "<f2",
        DType::F32 => "<f4",
        DType::F64 => "<f8",
    }
}

/// The dtype of elements exported with a PEP 3118 `format` of `item_size` bytes each (what
/// numpy exports for its arrays), or `None` for anything the store cannot hold (objects,
/// complex numbers, big-endian data, structs).
pub fn dtype_of_format(format: &str, item_size: usize) -> Option<DType> {
    // Native ('@', '=', no prefix) is little-endian on every platform the package builds for.
    let code = format.strip_prefix(['@', '=', '<']).unwrap_or(format);
    let dtype = match (code, item_size) {
        ("?", 1) => DType::Bool,
        ("B", 1) => DType::U8,
        ("H", 2) => DType::U16,
        ("I" | "L", 4) => DType::U32,
        ("L" | "Q", 8) => DType::U64,
        ("b", 1) => DType::I8,
        ("h", 2) => DType::I16,
        ("i" | "l", 4) => DType::I32,
        ("l" | "q", 8) => DType::I64,
        ("e", 2) => DType::F16,
        ("f", 4) => DType::F32,
        ("d", 8) => DType::F64,
        _ => return None,
    };
    Some(dtype)
}

/// Element type, shape and C-order strides of an exported array. Lives in the exporting
/// object, so the pointers CPython keeps in a `Py_buffer` stay valid while the view does.
struct Layout {
    dtype: DType,
    shape: Vec<ffi::Py_ssize_t>,
    strides: Vec<ffi::Py_ssize_t>,
}

impl Layout {
    fn new(dtype: DType, shape: &[usize]) -> Layout {
        let shape: Vec<ffi::Py_ssize_t> = shape.iter().map(|&d| d as ffi::Py_ssize_t).collect();
        let mut strides = vec![dtype.size() as ffi::Py_ssize_t; shape.len()];
        for i in (0..shape.len().saturating_sub(1)).rev() {
            strides[i] = strides[i + 1] * shape[i + 1];
        }
        Layout {
            dtype,
            shape,
            strides,
        }
    }

    fn bytes(&self) -> usize {
        self.shape.iter().map(|&d| d as usize).product::<usize>() * self.dtype.size()
    }
}

/// Read-only elements inside a segment's memory map; outlives the store it came from.
#[pyclass(frozen, module = "trajstore._trajstore")]
pub struct MappedBuffer {
    bytes: MappedBytes,
    layout: Layout,
}

impl MappedBuffer {
    /// `bytes` holding `shape` elements of `dtype`, C order.
    pub fn new(bytes: MappedBytes, dtype: DType, shape: &[usize]) -> PyResult<Self> {
        let layout = checked_layout(bytes.len(), dtype, shape)?;
        Ok(MappedBuffer { bytes, layout })
    }
}

#[pymethods]
impl MappedBuffer {
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let this = slf.get();
        let ptr = this.bytes.as_ptr() as *mut u8;
        let layout: *const Layout = &this.layout;
        // SAFETY: the map and the layout are held by `slf` (frozen, never replaced) and the
        // map is never written; `view` is CPython's.
        unsafe { export(slf.into_any(), view, flags, ptr, &*layout, false) }
    }

    fn __len__(&self) -> usize {
        self.bytes.len()
    }
}

/// Elements gathered or decoded for Python, handed over without a copy: the sampler gives up
/// its buffer and takes another for its next batch (from its [`BufferPool`] when a batch of
/// the same size was dropped). `writable` decides the convention above: batch and replay
/// arrays are the caller's, decoded episode fields are read-only like the mapped ones.
#[pyclass(frozen, module = "trajstore._trajstore")]
pub struct OwnedBuffer {
    /// Written only by Python consumers of a writable export, never by Rust after `new`
    /// (until the buffer is dropped and its bytes go back to `recycle`).
    bytes: UnsafeCell<Box<[u8]>>,
    layout: Layout,
    writable: bool,
    /// Where the bytes go when the buffer is dropped, for another batch to be gathered into.
    recycle: Option<Arc<BufferPool>>,
}

/// Bytes of dropped batch arrays, kept for the next batches of the sampler that gave them
/// out: a batch is then gathered into memory already faulted in, instead of a fresh
/// allocation zero-filled only to be overwritten. A buffer comes back only when its
/// [`OwnedBuffer`] is dropped, which CPython does after the last view of it (every numpy
/// array, memoryview or tensor over it holds a reference) is gone: no array ever sees its
/// bytes change.
#[derive(Default)]
pub struct BufferPool {
    free: Mutex<Vec<Box<[u8]>>>,
}

impl BufferPool {
    /// Buffers kept at most; the oldest goes first (a consumer that keeps every batch hands
    /// none back, and one that drops them keeps a few in circulation).
    const KEEPS: usize = 16;

    /// A dropped buffer of exactly `len` bytes, if one is kept. Its content is stale.
    pub fn take(&self, len: usize) -> Option<Vec<u8>> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        let i = free.iter().position(|b| b.len() == len)?;
        Some(free.swap_remove(i).into_vec())
    }

    fn give(&self, bytes: Box<[u8]>) {
        if bytes.is_empty() {
            return;
        }
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if free.len() >= Self::KEEPS {
            free.remove(0);
        }
        free.push(bytes);
    }
}

// SAFETY: Rust never reads or writes `bytes` after construction; it only hands out its
// address through the buffer protocol, as a `bytearray` does. Python code writing the array
// from several threads races exactly as it would on any numpy array.
unsafe impl Sync for OwnedBuffer {}

impl OwnedBuffer {
    /// `bytes` holding `shape` elements of `dtype`, C order.
    pub fn new(bytes: Vec<u8>, dtype: DType, shape: &[usize], writable: bool) -> PyResult<Self> {
        let layout = checked_layout(bytes.len(), dtype, shape)?;
        Ok(OwnedBuffer {
            bytes: UnsafeCell::new(bytes.into_boxed_slice()),
            layout,
            writable,
            recycle: None,
        })
    }

    /// A writable buffer (the caller's) whose bytes go back to `pool` when it is dropped.
    pub fn recycled(
        bytes: Vec<u8>,
        dtype: DType,
        shape: &[usize],
        pool: &Arc<BufferPool>,
    ) -> PyResult<Self> {
        let mut buffer = Self::new(bytes, dtype, shape, true)?;
        buffer.recycle = Some(pool.clone());
        Ok(buffer)
    }
}

impl Drop for OwnedBuffer {
    fn drop(&mut self) {
        if let Some(pool) = &self.recycle {
            // Dropped: no view of the bytes is left (each held a reference to this object).
            pool.give(std::mem::take(self.bytes.get_mut()));
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
        let this = slf.get();
        // SAFETY: the box is never replaced (no `&mut` to it is ever made), so its address is
        // stable while `slf` lives; only the bytes behind it are written, by Python.
        let ptr = unsafe { (*this.bytes.get()).as_mut_ptr() };
        let layout: *const Layout = &this.layout;
        let writable = this.writable;
        // SAFETY: the bytes and layout live as long as `slf`; see the struct's contract.
        unsafe { export(slf.into_any(), view, flags, ptr, &*layout, writable) }
    }
}

fn checked_layout(len: usize, dtype: DType, shape: &[usize]) -> PyResult<Layout> {
    let layout = Layout::new(dtype, shape);
    if layout.bytes() != len {
        // A bug between the core and this module, reported instead of exporting bad bounds.
        return Err(PyBufferError::new_err(format!(
            "internal error: {len} bytes do not hold shape {shape:?} of {dtype}"
        )));
    }
    Ok(layout)
}

/// Fills `view` with the array `layout` describes at `ptr`, owned by `owner`; read-only
/// unless `writable`.
///
/// # Safety
/// `view` is the struct CPython passed to `__getbuffer__`; the bytes and `layout` must stay
/// valid as long as `owner` lives, and unmodified unless `writable`. `view.obj` takes a new
/// reference to `owner`, so every consumer of the view keeps them alive.
unsafe fn export(
    owner: Bound<'_, PyAny>,
    view: *mut ffi::Py_buffer,
    flags: c_int,
    ptr: *mut u8,
    layout: &Layout,
    writable: bool,
) -> PyResult<()> {
    if !writable && flags & ffi::PyBUF_WRITABLE == ffi::PyBUF_WRITABLE {
        return Err(PyBufferError::new_err(
            "trajstore data is read-only; copy the array to modify it",
        ));
    }
    let len = layout.bytes();
    // SAFETY: see the function's contract. PyBuffer_FillInfo sets every member for a plain
    // byte buffer; the element format and shape are set below when the consumer asks.
    let rc = unsafe {
        ffi::PyBuffer_FillInfo(
            view,
            owner.as_ptr(),
            ptr.cast(),
            len as ffi::Py_ssize_t,
            c_int::from(!writable),
            flags,
        )
    };
    if rc == -1 {
        return Err(PyErr::fetch(owner.py()));
    }
    // SAFETY: `view` was filled above; the pointers stored point into `layout` (see contract).
    unsafe {
        let view = &mut *view;
        if flags & ffi::PyBUF_FORMAT == ffi::PyBUF_FORMAT {
            view.format = format_of(layout.dtype).as_ptr() as *mut _;
            view.itemsize = layout.dtype.size() as ffi::Py_ssize_t;
        }
        if flags & ffi::PyBUF_ND == ffi::PyBUF_ND {
            view.itemsize = layout.dtype.size() as ffi::Py_ssize_t;
            view.ndim = layout.shape.len() as c_int;
            view.shape = layout.shape.as_ptr() as *mut _;
            view.strides = if flags & ffi::PyBUF_STRIDES == ffi::PyBUF_STRIDES {
                layout.strides.as_ptr() as *mut _
            } else {
                std::ptr::null_mut()
            };
        }
    }
    Ok(())
}
