//! Conversions between Python objects and trajstore values.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString};
use trajstore::{Info, Value};

/// A Python scalar or list (already normalised by the Python layer) as a [`Value`].
pub fn to_value(key: &str, obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    if obj.is_instance_of::<PyBool>() {
        return Ok(Value::Bool(obj.extract()?));
    }
    if obj.is_instance_of::<PyInt>() {
        return Ok(Value::Int(obj.extract()?));
    }
    if obj.is_instance_of::<PyFloat>() {
        return Ok(Value::Float(obj.extract()?));
    }
    if obj.is_instance_of::<PyString>() {
        return Ok(Value::Str(obj.extract()?));
    }
    if let Ok(list) = obj.cast::<PyList>() {
        if list
            .iter()
            .all(|v| v.is_instance_of::<PyInt>() && !v.is_instance_of::<PyBool>())
        {
            return Ok(Value::Ints(list.extract()?));
        }
        if list
            .iter()
            .all(|v| v.is_instance_of::<PyInt>() || v.is_instance_of::<PyFloat>())
        {
            return Ok(Value::Floats(list.extract()?));
        }
    }
    Err(PyTypeError::new_err(format!(
        "info/metadata key {key:?}: {} is not storable (bool, int, float, str, or a list of numbers)",
        obj.get_type().name()?
    )))
}

/// A dict of storable values as an [`Info`].
pub fn to_info(dict: Option<&Bound<'_, PyDict>>) -> PyResult<Info> {
    let mut info = Info::new();
    if let Some(dict) = dict {
        for (k, v) in dict.iter() {
            let key: String = k.extract()?;
            let value = to_value(&key, &v)?;
            info.insert(key, value);
        }
    }
    Ok(info)
}

pub fn value_to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Int(i) => i.into_pyobject(py)?.into_any(),
        Value::Float(f) => f.into_pyobject(py)?.into_any(),
        Value::Str(s) => s.into_pyobject(py)?.into_any(),
        Value::Ints(v) => PyList::new(py, v)?.into_any(),
        Value::Floats(v) => PyList::new(py, v)?.into_any(),
        #[allow(unreachable_patterns)]
        _ => py.None().into_bound(py),
    })
}

pub fn info_to_py<'py>(py: Python<'py>, info: &Info) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in info {
        d.set_item(k, value_to_py(py, v)?)?;
    }
    Ok(d)
}
