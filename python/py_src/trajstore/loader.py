"""Training reads: this rank's share of episodes, batches of steps and windows, resume."""

from __future__ import annotations

import os
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ._trajstore import Loader as _NativeLoader
from ._selection import Selection
from .store import Episode, EpisodeInfo, Store


def field_requests(
    fields: Sequence[str], offsets: Mapping[str, Sequence[int]] | None = None, next: Sequence[str] = ()
) -> list[tuple[str, str, list[int]]]:
    """(field, batch key, offsets) of every column asked for, as the native sampler takes them."""
    offsets = dict(offsets or {})
    requests = [(f, f, list(offsets.get(f, [0]))) for f in fields]
    return requests + [(f, f"next/{f}", [1]) for f in next]


def _store(store: str | os.PathLike | Store, verify_reads: bool = True) -> Store:
    """`store` itself, or the store at a path opened read-only (`verify_reads` applies only
    then: a `Store` keeps the setting it was opened with)."""
    return store if isinstance(store, Store) else Store.open(store, read_only=True, verify_reads=verify_reads)


class Loader:
    """This rank's share of the selected episodes for one epoch.

    Every rank computes the same global assignment on its own (balanced by steps, episodes
    whole, shuffled per seed and epoch); pass the same `before_id` (e.g. rank 0's `cutoff`)
    to every rank while recording goes on. Reads are checked (a damaged chunk raises
    `trajstore.CorruptionError`); `verify_reads=False` opens a store path unchecked.
    """

    def __init__(
        self,
        store: str | os.PathLike | Store,
        *,
        user: str | Iterable[str] | None = None,
        env: str | Iterable[str] | None = None,
        tags: str | Iterable[str] | None = None,
        outcome: str | Iterable[str] | None = None,
        min_return: float | None = None,
        max_return: float | None = None,
        min_steps: int | None = None,
        before_id: int | None = None,
        split: str | Iterable[str] | None = None,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        epoch: int = 0,
        num_workers: int = 1,
        worker: int = 0,
        verify_reads: bool = True,
        _native: Any = None,
    ):
        self.store = _store(store, verify_reads)
        self.selection = Selection.of(
            user, env, tags, outcome, split, min_return=min_return, max_return=max_return, min_steps=min_steps,
            before_id=before_id, world_size=world_size, rank=rank, num_workers=num_workers, worker=worker, seed=seed, epoch=epoch,
        )
        self._native = _native or _NativeLoader(self.store._native, self.selection)

    @classmethod
    def resume(cls, store: str | os.PathLike | Store, cursor: Mapping[str, int], verify_reads: bool = True, **filters: Any) -> "Loader":
        """The loader a `cursor()` was taken from, serving exactly what was left."""
        store = _store(store, verify_reads)
        native = _NativeLoader.resume(store._native, Selection.of(**filters), dict(cursor))
        # The share is the cursor's (rank, worker, seed, epoch), not the filters' defaults.
        c = native.cursor()
        return cls(store, **filters, rank=c["rank"], world_size=c["world_size"], seed=c["seed"], epoch=c["epoch"],
                   num_workers=c["num_workers"], worker=c["worker"], _native=native)

    def next_epoch(self) -> "Loader":
        nxt = Loader.__new__(Loader)
        nxt.store, nxt._native = self.store, self._native.next_epoch()
        nxt.selection = Selection(**{**self.selection.__dict__, "epoch": self.selection.epoch + 1})
        return nxt

    @property
    def episode_ids(self) -> list[int]:
        """Episode ids of this share, in serving order."""
        return self._native.episode_ids()

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

    def cursor(self) -> dict[str, int]:
        return self._native.cursor()

    def infos(self) -> list[EpisodeInfo]:
        return [EpisodeInfo(**d) for d in self._native.episodes()]

    def episodes(self) -> Iterator[Episode]:
        """The episodes of this share, in serving order (fields load lazily, zero-copy)."""
        snapshot = self.store.snapshot()
        for info in self.infos():
            yield Episode(snapshot, info)

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
