"""numpy dtypes of the core's dtype names, and conversions of Python values to arrays.

Nothing here validates a value against a schema: the core does (once), and its errors name
the field, the expected and the given dtype or shape."""

from __future__ import annotations

import numbers
import warnings
from typing import Any, Mapping

import numpy as np

from ._trajstore import DTYPES, InputError

#: trajstore dtype name -> numpy dtype, from the core's own list
NUMPY_DTYPES: dict[str, np.dtype] = {name: np.dtype(typestr) for name, typestr in DTYPES.items()}
_NAMES = {v: k for k, v in NUMPY_DTYPES.items()}


def dtype_name(dtype: Any) -> str:
    """The trajstore name of a numpy dtype (a gymnasium space's, say), either byte order."""
    dt = np.dtype(dtype)
    name = _NAMES.get(dt.newbyteorder("<") if dt.byteorder == ">" else dt)
    if name is None:
        raise InputError(f"dtype {dt} is not storable ({', '.join(NUMPY_DTYPES)})")
    return name


#: numpy kinds between which a value may be cast exactly: bool, ints, floats
_NUMERIC_KINDS = "biuf"


def as_stored_array(value: Any, dtype: str | None, field: str = "") -> np.ndarray:
    """`value` as a C-contiguous little-endian array of the field's dtype `dtype`, for the core
    to check and store.

    Python scalars and lists take the field's dtype when numpy considers the cast same-kind
    (an int into a float field, say). A numeric array of another numeric dtype is cast when
    every element survives the cast unchanged (Gymnasium envs often declare int16 and return
    int64): anything else raises `InputError` naming the field, both dtypes and the value.
    Other values keep their dtype, and the core refuses a mismatch the same way."""
    arr = np.asarray(value)
    if dtype is not None and arr.dtype != NUMPY_DTYPES[dtype]:
        target = NUMPY_DTYPES[dtype]
        if not isinstance(value, (np.ndarray, np.generic)):
            if np.can_cast(arr.dtype, target, casting="same_kind"):
                arr = arr.astype(target, copy=False)
        elif arr.dtype.kind in _NUMERIC_KINDS and target.kind in _NUMERIC_KINDS:
            arr = _exact_cast(arr, target, field, dtype)
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    # Not np.ascontiguousarray: it turns a 0-d array (a scalar field) into shape (1,).
    return arr if arr.flags.c_contiguous else arr.copy(order="C")


def _exact_cast(arr: np.ndarray, target: np.dtype, field: str, dtype: str) -> np.ndarray:
    with np.errstate(all="ignore"):
        cast = arr.astype(target)
        back = cast.astype(arr.dtype)
    same = (back == arr) | (np.isnan(arr) & np.isnan(back) if arr.dtype.kind == "f" and target.kind == "f" else False)
    if np.all(same):
        return cast
    where = tuple(int(i) for i in np.argwhere(~np.asarray(same))[0])
    bad = arr[where].item()
    at = f" at index {where}" if where else ""
    raise InputError(
        f'field "{field}": declared dtype {dtype} ({target}), given {arr.dtype}: value {bad!r}{at} is not exactly '
        f"representable as {target}; record values that fit, or declare the field's space with a wider dtype"
    )


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
