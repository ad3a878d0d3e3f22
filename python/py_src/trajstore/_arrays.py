"""dtype names shared with the Rust core, and conversions of values to stored arrays."""

from __future__ import annotations

import numbers
import warnings
from typing import Any, Mapping

import numpy as np

from ._trajstore import InputError

#: trajstore dtype name -> numpy dtype
NUMPY_DTYPES: dict[str, np.dtype] = {
    "bool": np.dtype(np.bool_),
    "u8": np.dtype(np.uint8),
    "u16": np.dtype(np.uint16),
    "u32": np.dtype(np.uint32),
    "u64": np.dtype(np.uint64),
    "i8": np.dtype(np.int8),
    "i16": np.dtype(np.int16),
    "i32": np.dtype(np.int32),
    "i64": np.dtype(np.int64),
    "f16": np.dtype(np.float16),
    "f32": np.dtype(np.float32),
    "f64": np.dtype(np.float64),
}
_NAMES = {v: k for k, v in NUMPY_DTYPES.items()}


def dtype_name(dtype: Any) -> str:
    """The trajstore name of a numpy dtype (little-endian, native layout)."""
    dt = np.dtype(dtype)
    name = _NAMES.get(dt.newbyteorder("=") if dt.byteorder == ">" else dt)
    if name is None:
        raise InputError(f"dtype {dt} is not storable (bool, u8..u64, i8..i64, f16, f32, f64)")
    return name


def as_field_array(name: str, value: Any, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """A C-contiguous little-endian array for a field value.

    numpy arrays must have the field's dtype exactly (a mismatch names the field, expected and
    got). Python scalars and lists are converted to the field's dtype when numpy considers the
    cast same-kind (an int into a float field, say)."""
    target = NUMPY_DTYPES[dtype]
    if isinstance(value, (np.ndarray, np.generic)):
        arr = np.asarray(value)
        if arr.dtype != target:
            raise InputError(f"field {name!r}: expected dtype {dtype}, got {_NAMES.get(arr.dtype, str(arr.dtype))}")
    else:
        arr = np.asarray(value)
        if arr.dtype != target and not np.can_cast(arr.dtype, target, casting="same_kind"):
            raise InputError(f"field {name!r}: expected dtype {dtype}, got {arr.dtype} value {value!r}")
        arr = arr.astype(target, copy=False)
    if arr.shape != shape:
        raise InputError(f"field {name!r}: expected shape {list(shape)}, got {list(arr.shape)}")
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    # Not np.ascontiguousarray: it turns a 0-d array (a scalar field) into shape (1,).
    return arr if arr.flags.c_contiguous else arr.copy(order="C")


def normalize_info(info: Mapping[str, Any] | None, prefix: str = "") -> dict[str, Any]:
    """Flattens an info dict into storable values: nested dicts become `a/b` keys, numpy
    scalars and 0/1-d arrays become Python values. Values that cannot be stored (objects,
    None, n-d arrays) are left out with a warning, once per key."""
    out: dict[str, Any] = {}
    for key, value in (info or {}).items():
        k = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(normalize_info(value, prefix=f"{k}/"))
            continue
        if isinstance(value, np.generic):
            value = value.item()
        elif isinstance(value, (list, tuple)):
            value = np.asarray(value) if value and all(isinstance(v, numbers.Number) for v in value) else value
        if isinstance(value, np.ndarray):
            if value.ndim == 0:
                value = value.item()
            elif value.ndim == 1 and value.dtype.kind in "biuf":
                value = value.astype(np.float64 if value.dtype.kind == "f" else np.int64).tolist()
        if isinstance(value, (bool, int, float, str)) or (
            isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        ):
            out[k] = value
        else:
            _warn_once(k, value)
    return out


_warned: set[str] = set()


def _warn_once(key: str, value: Any) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(f"trajstore: info key {key!r} ({type(value).__name__}) is not storable and is left out", stacklevel=4)
