"""Training reads: this rank's share of episodes, batches of steps and windows, resume."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence, Union

import numpy as np

from ._trajstore import Loader as _NativeLoader
from ._selection import Filters, Selection
from ._trajstore import TrajstoreError
from .store import Episode, EpisodeInfo, Store, _episode_info

if TYPE_CHECKING:
    from typing_extensions import Unpack


def field_requests(
    fields: Sequence[str], offsets: Mapping[str, Sequence[int]] | None = None, next: Sequence[str] = ()
) -> list[tuple[str, str, list[int]]]:
    """(field, batch key, offsets) of every column asked for, as the native sampler takes them."""
    offsets = dict(offsets or {})
    requests = [(f, f, list(offsets.get(f, [0]))) for f in fields]
    return requests + [(f, f"next/{f}", [1]) for f in next]


StoreArg = Union[str, os.PathLike, Store]


def _store(store: StoreArg, verify_reads: bool = True) -> Store:
    """`store` itself, or the store at a path opened read-only (`verify_reads` applies only
    then: a `Store` keeps the setting it was opened with)."""
    return store if isinstance(store, Store) else Store.open(store, read_only=True, verify_reads=verify_reads)


def _stores(stores: StoreArg | Sequence[StoreArg], verify_reads: bool = True) -> list[Store]:
    """One store, or a list of them (shards of one dataset, in list order), each opened as by
    `_store`. With several, an error opening one names its position in the list."""
    if isinstance(stores, (str, os.PathLike, Store)):
        return [_store(stores, verify_reads)]
    items = list(stores)
    if len(items) <= 1:
        return [_store(s, verify_reads) for s in items]
    opened = []
    for i, s in enumerate(items):
        try:
            opened.append(_store(s, verify_reads))
        except TrajstoreError as e:
            raise type(e)(f"shard {i} ({os.fspath(s) if not isinstance(s, Store) else s.path}): {e}") from e
    return opened


class Loader:
    """This rank's share of the selected episodes for one epoch.

    Every rank computes the same global assignment on its own (balanced by steps, episodes
    whole, shuffled per seed and epoch); pass the same `before_id` (e.g. rank 0's `cutoff`)
    to every rank while recording goes on. Reads are checked (a damaged chunk raises
    `trajstore.CorruptionError`); `verify_reads=False` opens a store path unchecked.

    `store` may be a list of stores (shards recorded on several hosts): they are read as one
    dataset (schema/partition.md §7), every rank listing them in the same order, with the same
    `cutoffs` (one per store; rank 0's `loader.cutoffs`). Episodes are then known by their key
    `shard << 48 | id` (`episode_ids`, the `episode` column of batches; `split_key` decodes it).
    """

    def __init__(
        self,
        store: StoreArg | Sequence[StoreArg],
        *,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        epoch: int = 0,
        num_workers: int = 1,
        worker: int = 0,
        verify_reads: bool = True,
        cutoffs: Sequence[int] | None = None,
        _native: Any = None,
        **filters: Unpack[Filters],
    ):
        self.stores = _stores(store, verify_reads)
        self.store = self.stores[0]
        self.selection = Selection.of(filters, world_size=world_size, rank=rank, num_workers=num_workers, worker=worker,
                                      seed=seed, epoch=epoch)
        self._native = _native or _NativeLoader([s._native for s in self.stores], self.selection,
                                                None if cutoffs is None else [int(c) for c in cutoffs])

    @classmethod
    def resume(cls, store: StoreArg | Sequence[StoreArg], cursor: Mapping[str, Any], verify_reads: bool = True,
               **filters: Unpack[Filters]) -> "Loader":
        """The loader a `cursor()` was taken from, serving exactly what was left. Over several
        stores, give the same list in the same order: another list, order, cutoff or filter is
        refused naming the shard that differs."""
        stores = _stores(store, verify_reads)
        native = _NativeLoader.resume([s._native for s in stores], Selection.of(filters), dict(cursor))
        # The share is the cursor's (rank, worker, seed, epoch), not the filters' defaults.
        c = native.cursor()
        return cls(stores, **filters, rank=c["rank"], world_size=c["world_size"], seed=c["seed"], epoch=c["epoch"],
                   num_workers=c["num_workers"], worker=c["worker"], _native=native)

    def next_epoch(self) -> "Loader":
        nxt = Loader.__new__(Loader)
        nxt.stores, nxt.store, nxt._native = self.stores, self.store, self._native.next_epoch()
        nxt.selection = Selection(**{**self.selection.__dict__, "epoch": self.selection.epoch + 1})
        return nxt

    @property
    def episode_ids(self) -> list[int]:
        """Episode ids of this share, in serving order; over several stores, keys
        (`shard << 48 | id`)."""
        return self._native.episode_ids()

    @property
    def cutoffs(self) -> list[int]:
        """Every store's cutoff, in list order: pass them to the other ranks."""
        return self._native.cutoffs

    @property
    def steps(self) -> int:
        return self._native.steps

    @property
    def imbalance(self) -> float:
        """Max over min steps across ranks (1.0 is perfect balance)."""
        return self._native.imbalance

    @property
    def cutoff(self) -> int:
        return self._native.cutoff

    def cursor(self) -> dict[str, Any]:
        """Where this share stands (JSON-serializable). Over several stores it also holds the
        stamp of each (`"shards"`), checked on resume."""
        return self._native.cursor()

    def shards(self) -> list[int]:
        """The store (position in the list) of each episode of this share, in serving order."""
        return [d["shard"] for d in self._native.episodes()]

    def infos(self) -> list[EpisodeInfo]:
        infos = []
        for d in self._native.episodes():
            del d["shard"]
            infos.append(_episode_info(d))
        return infos

    def episodes(self) -> Iterator[Episode]:
        """The episodes of this share, in serving order, each read from its own store: fields
        load lazily (zero-copy), and so does `Episode.info` (a scan reads no metadata)."""
        snapshots = [s.snapshot() for s in self.stores]
        shards = len(snapshots)
        for key in self._native.episode_ids():
            shard, episode_id = split_key(key, shards)
            yield Episode._of_id(snapshots[shard], episode_id)


    def batches(
        self,
        fields: Sequence[str],
        batch_size: int = 256,
        *,
        order: str = "shuffle",
        window: int | None = None,
        pad: bool = False,
        offsets: Mapping[str, Sequence[int]] | None = None,
        next: Sequence[str] = (),
        edge: str = "clamp",
    ) -> "Batches":
        """Batches of `batch_size` steps (or windows of `window` steps) as dicts of arrays.

        `order`: "sequential", "shuffle" (each unit once per epoch) or "replacement".
        `offsets`: frame stacking, e.g. {"obs/frame": [-3, -2, -1, 0]} adds an axis.
        `next`: observation fields also served at t + 1, under `next/<field>`.
        Each batch also holds `episode`, `step`, `mask` (padding rows) and `valid/<key>`.

        Every array of a batch is a fresh, writable array the caller owns (no view of the
        store), and all of them start with the same row axes: `(batch,)` for steps,
        `(batch, window)` for windows (also for `window=1`), then the offsets axis of a
        stacked field, then the field's shape."""
        sampler = self._native.sampler(field_requests(fields, offsets, next), batch_size, order, window, pad, edge)
        return Batches(sampler)


class Batches:
    """An epoch of batches; iterate it, or `seek(position)` to resume mid-epoch."""

    def __init__(self, native: Any):
        self._native = native

    def __iter__(self) -> "Batches":
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        batch = self._native.next_batch()
        if batch is None:
            raise StopIteration
        return {key: np.asarray(value) for key, value in batch.items()}

    def __len__(self) -> int:
        return self._native.batches_left

    @property
    def position(self) -> int:
        """Units (steps or windows) served so far this epoch."""
        return self._native.position

    def seek(self, position: int) -> None:
        self._native.seek(position)


#: Bits of a key that hold the episode id; the store's position in the list sits above.
SHARD_ID_BITS = 48


def split_key(key: int, shards: int) -> tuple[int, int]:
    """`(shard, id)` of an episode key of a list of `shards` stores (schema/partition.md §7)."""
    return (0, int(key)) if shards <= 1 else (int(key) >> SHARD_ID_BITS, int(key) & ((1 << SHARD_ID_BITS) - 1))
