//! `EpisodeRecorder`: one native call per step, values read in place.
//!
//! Per step the Python layer hands the values over as they are (numpy arrays, numpy scalars,
//! Python numbers): a value whose buffer already has the field's dtype and is C-contiguous is
//! read in place, a Python number of a field's natural dtype is converted here, and only
//! anything else (another dtype, a list, big-endian data) goes through the Python helper
//! `trajstore._arrays.as_stored_array` (its exact-cast rule). Whether a value fits its field
//! (dtype, shape, name, kind) is the core's check, done once there.

use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyString, PyTuple};
use trajstore::{ArrayRef, DType, EpisodeId, EpisodeWriter, Info, PendingCommit};

use crate::error::{InputError, IntoPy, try_lock};
use crate::inbound::ExportedBuffer;
use crate::schema::{FieldDecl, field_decls};
use crate::values::to_value;

/// One episode being recorded. `reset` once, `step` per transition, then `commit` or `discard`.
///
/// Meant for one thread at a time: the writer's lock is only ever taken with `try_lock`, so a
/// second thread calling in while the first is inside a call gets a `TrajstoreError` instead of
/// waiting (and possibly deadlocking on the GIL).
#[pyclass(frozen, module = "trajstore._trajstore", name = "EpisodeRecorder")]
pub struct PyEpisodeRecorder {
    writer: Mutex<Option<EpisodeWriter>>,
    /// The schema's fields (name, dtype) in storage order, resolved once per episode.
    layout: Vec<(String, DType)>,
}

impl PyEpisodeRecorder {
    pub fn new(writer: EpisodeWriter) -> Self {
        let layout = writer
            .schema()
            .fields()
            .iter()
            .map(|f| (f.name.clone(), f.dtype))
            .collect();
        PyEpisodeRecorder {
            writer: Mutex::new(Some(writer)),
            layout,
        }
    }

    /// The dtype of the field called `name`, trying position `at` first (callers give values
    /// in schema order); `None` for a name the schema does not have (the core names it).
    fn field_dtype(&self, at: usize, name: &str) -> Option<DType> {
        match self.layout.get(at) {
            Some((n, dtype)) if n == name => Some(*dtype),
            _ => self.layout.iter().find(|(n, _)| n == name).map(|(_, d)| *d),
        }
    }
}

/// A value's bytes for the core: a buffer exported by the value (read in place) or a Python
/// number converted here.
enum Held {
    Buffer(ExportedBuffer, DType),
    Scalar([u8; 8], DType),
}

impl Held {
    fn array(&self) -> ArrayRef<'_> {
        match self {
            Held::Buffer(buffer, dtype) => {
                ArrayRef::from_bytes(*dtype, buffer.shape(), buffer.bytes())
            }
            Held::Scalar(bytes, dtype) => ArrayRef::from_bytes(*dtype, &[], &bytes[..dtype.size()]),
        }
    }
}

fn scalar(bytes: &[u8], dtype: DType) -> Held {
    let mut out = [0u8; 8];
    out[..bytes.len()].copy_from_slice(bytes);
    Held::Scalar(out, dtype)
}

/// A Python `float`, `int` or `bool` (exactly those types) as the field's dtype, when that is
/// the number's natural dtype or numpy's same-kind cast of it (a float into an f32 field, an
/// int into a float field); `None` leaves the value to the general path.
fn python_number(obj: &Bound<'_, PyAny>, field: Option<DType>) -> Option<Held> {
    if obj.is_exact_instance_of::<PyFloat>() {
        let x = obj.cast::<PyFloat>().ok()?.value();
        return match field {
            Some(DType::F32) => Some(scalar(&(x as f32).to_le_bytes(), DType::F32)),
            // Any other field gets the f64 it is: the core refuses a mismatch, naming both.
            Some(DType::F16) => None,
            _ => Some(scalar(&x.to_le_bytes(), DType::F64)),
        };
    }
    if obj.is_exact_instance_of::<PyBool>() {
        return match field {
            None | Some(DType::Bool) => {
                Some(scalar(&[u8::from(obj.is_truthy().ok()?)], DType::Bool))
            }
            _ => None,
        };
    }
    if obj.is_exact_instance_of::<PyInt>() {
        let x: i64 = obj.extract().ok()?;
        return match field {
            Some(DType::F64) => Some(scalar(&(x as f64).to_le_bytes(), DType::F64)),
            Some(DType::F32) => Some(scalar(&(x as f32).to_le_bytes(), DType::F32)),
            None | Some(DType::I64) | Some(DType::Bool) => {
                Some(scalar(&x.to_le_bytes(), DType::I64))
            }
            _ => None,
        };
    }
    None
}

/// A buffer the value exports, when it is C-contiguous and of the field's dtype (or of any
/// storable dtype, for a name the schema does not have: the core names the unknown field).
fn matching_buffer(obj: &Bound<'_, PyAny>, field: Option<DType>) -> Option<Held> {
    let buffer = ExportedBuffer::get(obj)?;
    let dtype = buffer.dtype()?;
    (field.is_none_or(|f| f == dtype)).then(|| Held::Buffer(buffer, dtype))
}

/// A value's buffer after `trajstore._arrays.as_stored_array` made it an array of the field's
/// dtype where it could (its rules: same-kind casts of Python values, exact casts of numeric
/// arrays), for the core to check.
fn converted(
    py: Python<'_>,
    name: &str,
    obj: &Bound<'_, PyAny>,
    field: Option<DType>,
) -> PyResult<Held> {
    let convert = py.import("trajstore._arrays")?.getattr("as_stored_array")?;
    let arr = convert.call1((obj, field.map(DType::name), name))?;
    let buffer = ExportedBuffer::get(&arr).ok_or_else(|| {
        InputError::new_err(format!(
            "field {name:?}: value must be a number, a list of numbers or a numeric numpy array, got {}",
            obj.get_type().name().map(|n| n.to_string()).unwrap_or_default()
        ))
    })?;
    let format = buffer.format().into_owned();
    let dtype = buffer.dtype().ok_or_else(|| {
        // Named as numpy names it when the value is an array, else by its buffer format.
        let given = arr
            .getattr("dtype")
            .and_then(|d| d.str())
            .map(|d| format!("dtype {d}"))
            .unwrap_or_else(|_| format!("elements of format {format:?}"));
        InputError::new_err(format!(
            "field {name:?}: {given} cannot be stored (bool, u8..u64, i8..i64, f16, f32, f64)"
        ))
    })?;
    Ok(Held::Buffer(buffer, dtype))
}

fn hold(
    py: Python<'_>,
    name: &str,
    obj: &Bound<'_, PyAny>,
    field: Option<DType>,
) -> PyResult<Held> {
    if let Some(held) = python_number(obj, field).or_else(|| matching_buffer(obj, field)) {
        return Ok(held);
    }
    converted(py, name, obj, field)
}

/// `info` as the core's map: directly when every key is a string and every value a bool,
/// int, float or str; otherwise through `trajstore._arrays.normalize_info` (nested dicts,
/// numpy scalars and arrays, unstorable values left out with a warning).
fn step_info(py: Python<'_>, info: Option<&Bound<'_, PyDict>>) -> PyResult<Info> {
    let mut out = Info::new();
    let Some(info) = info else { return Ok(out) };
    for (k, v) in info.iter() {
        let simple = k.is_exact_instance_of::<PyString>()
            && (v.is_instance_of::<PyBool>()
                || v.is_instance_of::<PyInt>()
                || v.is_instance_of::<PyFloat>()
                || v.is_instance_of::<PyString>());
        if !simple {
            let normalize = py.import("trajstore._arrays")?.getattr("normalize_info")?;
            let normalized = normalize.call1((info,))?;
            return crate::values::to_info(Some(normalized.cast::<PyDict>()?));
        }
        let key: String = k.extract()?;
        let value = to_value(&key, &v)?;
        out.insert(key, value);
    }
    Ok(out)
}

impl PyEpisodeRecorder {
    fn with_writer<T>(&self, f: impl FnOnce(&mut EpisodeWriter) -> PyResult<T>) -> PyResult<T> {
        let mut guard = try_lock(&self.writer, "EpisodeRecorder")?;
        match guard.as_mut() {
            Some(w) => f(w),
            None => Err(InputError::new_err(
                "this episode was already committed or discarded; begin a new one",
            )),
        }
    }

    /// Records named values (`reset` or `step`), converting each for its field.
    fn push_named(
        &self,
        py: Python<'_>,
        values: &Bound<'_, PyAny>,
        info: Option<&Bound<'_, PyDict>>,
        reset: bool,
    ) -> PyResult<()> {
        let info = step_info(py, info)?;
        let mut names = Vec::new();
        let mut held = Vec::new();
        if let Ok(dict) = values.cast::<PyDict>() {
            for (at, (k, v)) in dict.iter().enumerate() {
                let name: String = k.extract()?;
                held.push(hold(py, &name, &v, self.field_dtype(at, &name))?);
                names.push(name);
            }
        } else {
            for (at, pair) in values.try_iter()?.enumerate() {
                let (name, v): (String, Bound<'_, PyAny>) = pair?.extract()?;
                held.push(hold(py, &name, &v, self.field_dtype(at, &name))?);
                names.push(name);
            }
        }
        self.with_writer(|w| {
            let refs: Vec<(&str, ArrayRef<'_>)> = names
                .iter()
                .zip(&held)
                .map(|(n, h)| (n.as_str(), h.array()))
                .collect();
            if reset {
                w.reset(&refs, &info)
            } else {
                w.step(&refs, &info)
            }
            .py_err()
        })
    }
}

#[pymethods]
impl PyEpisodeRecorder {
    /// The episode's schema as the core resolved it (defaults added): (name, dtype, shape,
    /// kind, codec) tuples, in storage order.
    fn fields(&self) -> PyResult<Vec<FieldDecl>> {
        self.with_writer(|w| Ok(field_decls(w.schema())))
    }

    /// Records the first observation: `values` maps observation field names to values (a
    /// dict, or (name, value) pairs).
    #[pyo3(signature = (values, info = None))]
    fn reset(
        &self,
        py: Python<'_>,
        values: &Bound<'_, PyAny>,
        info: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        self.push_named(py, values, info, true)
    }

    /// Records one transition: `values` maps field names to values (a dict, or (name, value)
    /// pairs).
    #[pyo3(signature = (values, info = None))]
    fn step(
        &self,
        py: Python<'_>,
        values: &Bound<'_, PyAny>,
        info: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        self.push_named(py, values, info, false)
    }

    /// Records one transition from one value per schema field, in the order of `fields()`:
    /// the recording wrapper's path, with no names to match per step.
    #[pyo3(signature = (values, info = None))]
    fn step_in_order(
        &self,
        py: Python<'_>,
        values: &Bound<'_, PyTuple>,
        info: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let info = step_info(py, info)?;
        let layout = &self.layout;
        if values.len() != layout.len() {
            let names: Vec<&str> = layout.iter().map(|(n, _)| n.as_str()).collect();
            return Err(InputError::new_err(format!(
                "step_in_order: {} values given for the {} fields ({})",
                values.len(),
                layout.len(),
                names.join(", ")
            )));
        }
        let held = layout
            .iter()
            .zip(values.iter())
            .map(|((name, dtype), v)| hold(py, name, &v, Some(*dtype)))
            .collect::<PyResult<Vec<_>>>()?;
        let refs: Vec<(&str, ArrayRef<'_>)> = layout
            .iter()
            .zip(&held)
            .map(|((name, _), h)| (name.as_str(), h.array()))
            .collect();
        self.with_writer(|w| w.step(&refs, &info).py_err())
    }

    /// Transitions recorded so far.
    #[getter]
    fn steps(&self) -> PyResult<u32> {
        self.with_writer(|w| Ok(w.steps()))
    }

    /// Whether the episode is still open (neither committed nor discarded).
    #[getter]
    fn active(&self) -> PyResult<bool> {
        Ok(try_lock(&self.writer, "EpisodeRecorder")?.is_some())
    }

    /// Makes the episode durable and visible; returns its id.
    fn commit(&self, py: Python<'_>) -> PyResult<u64> {
        // The writer leaves the lock before the GIL is released: no lock is held meanwhile.
        let writer = try_lock(&self.writer, "EpisodeRecorder")?.take();
        let Some(writer) = writer else {
            return Err(InputError::new_err(
                "this episode was already committed or discarded; begin a new one",
            ));
        };
        py.detach(|| writer.commit()).py_err().map(EpisodeId::get)
    }

    /// Starts the commit on a thread of the store's and returns at once (the GIL is released
    /// only while the store makes room: at most `background_commits` are in flight).
    fn commit_in_background(&self, py: Python<'_>) -> PyResult<PyPendingCommit> {
        let writer = try_lock(&self.writer, "EpisodeRecorder")?.take();
        let Some(writer) = writer else {
            return Err(InputError::new_err(
                "this episode was already committed or discarded; begin a new one",
            ));
        };
        let pending = py.detach(|| writer.commit_in_background()).py_err()?;
        Ok(PyPendingCommit { pending })
    }

    /// Drops the episode; nothing of it becomes visible.
    fn discard(&self) -> PyResult<()> {
        let writer = try_lock(&self.writer, "EpisodeRecorder")?.take();
        drop(writer);
        Ok(())
    }
}

/// A commit running in the background. `wait()` returns the episode id once it is durable
/// and visible, or raises what `commit()` would have; `done` says whether it has returned.
/// Shared freely by threads. Dropping it waits for the commit (its result is then lost).
#[pyclass(frozen, module = "trajstore._trajstore", name = "PendingCommit")]
pub struct PyPendingCommit {
    pending: PendingCommit,
}

#[pymethods]
impl PyPendingCommit {
    /// Waits (GIL released) until the commit returned; its episode id.
    fn wait(&self, py: Python<'_>) -> PyResult<u64> {
        py.detach(|| self.pending.wait())
            .py_err()
            .map(EpisodeId::get)
    }

    #[getter]
    fn done(&self) -> bool {
        self.pending.is_finished()
    }
}
