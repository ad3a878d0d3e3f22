"""Ray Data over a store (Ray is optional: imported only here).

`read_trajstore(path, fields=..., user=..., ...)` builds a `ray.data.Dataset` through Ray's
`Datasource` API: the filters select episodes from the index (no field data read to choose),
each read task reads a group of whole episodes (groups balanced by steps), and every row is
a row of the steps table of schema/export.md: `episode`, `step`, then one column per field,
`T + 1` rows per episode (the last holds the final observation; transition fields are null
there), the same rows `trajstore export` writes and `Store.steps_table` returns.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Iterator, Sequence

try:
    import pyarrow as pa
    from ray.data import Dataset, read_datasource
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(f"trajstore.ray needs Ray Data: pip install 'ray[data]' ({e})") from e

from ._selection import Selection, take_filters
from .store import Store

#: a read task yields a block each time its rows reach about this many bytes
BLOCK_BYTES = 64 << 20


def step_balanced_groups(episodes: Sequence[tuple[int, int]], groups: int) -> list[list[tuple[int, int]]]:
    """Splits (episode id, rows) pairs, in order, into at most `groups` contiguous groups of
    whole episodes with about the same number of rows each (deterministic)."""
    total = sum(rows for _, rows in episodes)
    groups = max(1, min(groups, len(episodes)))
    out: list[list[tuple[int, int]]] = [[]]
    done = 0
    for i, (episode, rows) in enumerate(episodes):
        left = len(episodes) - i
        # Start the next group when this episode's middle lies past the current group's
        # share of the rows, or when every group still to fill needs one of the episodes left.
        if out[-1] and len(out) < groups and (done + rows / 2 > total * len(out) / groups or left <= groups - len(out)):
            out.append([])
        out[-1].append((episode, rows))
        done += rows
    return out


def _read_group(path: str, verify_reads: bool, episodes: list[int], fields: list[str] | None, schemas: list[int], rows_per_block: int) -> Iterator[Any]:
    """A read task: the steps of `episodes` as pyarrow tables of about BLOCK_BYTES each, with
    the columns of the whole selection (`schemas`)."""
    snapshot = Store(path, read_only=True, verify_reads=verify_reads).snapshot()
    block: list[int] = []
    rows = 0
    for episode in episodes:
        block.append(episode)
        rows += snapshot.episode(episode)["steps"] + 1
        if rows >= rows_per_block:
            yield pa.table(snapshot.steps_table(block, fields, schemas))
            block, rows = [], 0
    if block:
        yield pa.table(snapshot.steps_table(block, fields, schemas))


class TrajstoreDatasource(Datasource):
    """The steps of the episodes a selection picks from a store, one read task per group of
    whole episodes. The episode list is taken from one snapshot when the datasource is made,
    so recording may go on while the dataset is read."""

    def __init__(self, path: str | os.PathLike, fields: Sequence[str] | None, selection: Selection, verify_reads: bool = True):
        super().__init__()
        self._path = os.fspath(path)
        self._fields = None if fields is None else list(fields)
        self._verify_reads = verify_reads
        snapshot = Store(self._path, read_only=True, verify_reads=verify_reads).snapshot()
        episodes = snapshot.episodes(selection)
        self._episodes = [(e["id"], e["steps"] + 1) for e in episodes]
        self.cutoff = snapshot.cutoff()
        # The columns come from every selected schema, planned here (a field of two dtypes
        # fails now, not in a task) and handed to every task.
        self._schemas = list(dict.fromkeys(e["schema_id"] for e in episodes))
        sample = pa.table(snapshot.steps_table([e for e, _ in self._episodes[:1]], self._fields, self._schemas))
        self._schema = sample.schema
        self._row_bytes = max(1, sample.nbytes // max(1, sample.num_rows))

    def get_name(self) -> str:
        return "Trajstore"

    def estimate_inmemory_data_size(self) -> int | None:
        return sum(rows for _, rows in self._episodes) * self._row_bytes

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None) -> list[ReadTask]:
        rows_per_block = max(1, BLOCK_BYTES // self._row_bytes)
        tasks = []
        for group in step_balanced_groups(self._episodes, parallelism):
            if not group:
                continue
            rows = sum(r for _, r in group)
            metadata = BlockMetadata(num_rows=rows, size_bytes=rows * self._row_bytes, exec_stats=None, input_files=None)
            read = functools.partial(_read_group, self._path, self._verify_reads, [e for e, _ in group], self._fields, self._schemas, rows_per_block)
            tasks.append(ReadTask(read, metadata, schema=self._schema, per_task_row_limit=per_task_row_limit))
        return tasks


def read_trajstore(
    path: str | os.PathLike,
    fields: Sequence[str] | None = None,
    *,
    verify_reads: bool = True,
    **args: Any,
) -> Dataset:
    """The steps of the selected episodes as a `ray.data.Dataset` (columns: `episode`, `step`,
    then `fields` in order, or every field). The filter keywords are those of `Store.episodes`
    (`trajstore.Filters`), applied to the index; the other keywords go to
    `ray.data.read_datasource` (`override_num_blocks`, `concurrency`, `ray_remote_args`, ...)."""
    selection = Selection.of(take_filters(args))
    return read_datasource(TrajstoreDatasource(path, fields, selection, verify_reads), **args)
