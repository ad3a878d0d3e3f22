"""Field statistics kept at commit, combined for a set of episodes by the core
(`Store.stats`), as numpy arrays of each field's shape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: The quantiles reported, by name, in order.
QUANTILES: tuple[str, ...] = ("q01", "q05", "q10", "q25", "q50", "q75", "q90", "q95", "q99")


@dataclass(frozen=True)
class FieldStats:
    """Per-element statistics of one field over a set of episodes. Every array has the
    field's shape (a scalar field: shape `()`). `std` is the population standard deviation
    (numpy's default, `ddof=0`); `quantiles[name]` is within 1% (relative) of the order
    statistic numpy's `np.quantile(..., method="lower")` returns (exact for integer fields
    of magnitude below about 50). NaN and infinities are counted in `non_finite` only; an
    element without finite values has NaN figures."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    #: Episodes whose values are included.
    episodes: int
    count: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    min: np.ndarray
    max: np.ndarray
    non_finite: np.ndarray
    quantiles: dict[str, np.ndarray]

    @classmethod
    def _of(cls, d: dict[str, Any], quantile_names: list[str]) -> "FieldStats":
        shape = tuple(d["shape"])

        def arr(values: Any, dtype: Any) -> np.ndarray:
            return np.asarray(values, dtype=dtype).reshape(shape)

        return cls(
            name=d["name"],
            dtype=d["dtype"],
            shape=shape,
            episodes=d["episodes"],
            count=arr(d["count"], np.int64),
            mean=arr(d["mean"], np.float64),
            std=arr(d["std"], np.float64),
            min=arr(d["min"], np.float64),
            max=arr(d["max"], np.float64),
            non_finite=arr(d["non_finite"], np.int64),
            quantiles={q: arr(v, np.float64) for q, v in zip(quantile_names, d["quantiles"])},
        )


class StoreStats(dict):
    """Field name -> `FieldStats` for the selected episodes (a name recorded with several
    dtypes or shapes appears once per kind, keyed `"name dtype[shape]"` beyond the first).
    `episodes` counts the selection; `missing` lists the ids of selected episodes without
    stored statistics (recorded by an older build, or restored by `repair`), which are left
    out; `computed` those whose statistics were computed from their frames
    (`compute_missing=True`)."""

    episodes: int
    missing: list[int]
    computed: list[int]

    @classmethod
    def _of(cls, d: dict[str, Any]) -> "StoreStats":
        out = cls()
        out.episodes = d["episodes"]
        out.missing = list(d["missing"])
        out.computed = list(d["computed"])
        for f in d["fields"]:
            stats = FieldStats._of(f, d["quantile_names"])
            key = stats.name
            if key in out:
                key = f"{stats.name} {stats.dtype}{list(stats.shape)}"
            out[key] = stats
        return out

    def __repr__(self) -> str:
        return f"StoreStats(episodes={self.episodes}, fields={list(self)}, missing={len(self.missing)})"
