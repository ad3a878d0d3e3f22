"""`trajstore export --format lance` (the wheel's command): the Rust CLI hands each table's
record batches here through the Arrow C stream interface, and pylance writes the dataset."""

from __future__ import annotations

import os
from typing import Any


def write_table(path: str | os.PathLike, stream: Any) -> int:
    """Writes the record batches of `stream` (an object with `__arrow_c_stream__`) as a new
    Lance dataset at `path`; returns its row count."""
    try:
        import lance
        import pyarrow as pa
    except ImportError as e:
        raise ImportError(f"--format lance needs pylance and pyarrow: pip install pylance pyarrow ({e})") from e
    reader = pa.RecordBatchReader.from_stream(stream)
    dataset = lance.write_dataset(reader, os.fspath(path), mode="create")
    return int(dataset.count_rows())
