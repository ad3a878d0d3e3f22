"""PyTorch datasets over a store (torch is optional: imported only here).

- `StepDataset`: map-style, one item per step of this rank's share.
- `WindowDataset`: iterable, batches or windows from the loader's sampler, split across
  DataLoader workers.

Rank and world size come from `torch.distributed` when initialised, else from the `RANK` /
`WORLD_SIZE` variables torchrun sets; pass them explicitly to override.
"""

from __future__ import annotations

import os
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from .datasets import StepIndex, _even_policy, _require_data, distributed_rank_and_world_size, rank_loaders, rank_step_index


def _tensor(value: Any) -> Any:
    """A tensor of `value`. Loader batches are writable arrays the caller owns, so they are
    wrapped without a copy; episode fields (StepDataset items) are read-only views of the
    store's map, which a tensor may not alias, so those steps are copied."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value if value.flags.writeable else value.copy())
    try:
        return torch.as_tensor(value)
    except TypeError:
        return value


def _share_cores_in_worker() -> None:
    """Inside a DataLoader worker, sizes the library's thread pool (rayon's, built lazily per
    process) to this worker's share of the cores, as torch does for its own threads there:
    with one pool per worker each as wide as the machine, N workers run N x cores gathering
    threads on the same cores, and they evict each other. A RAYON_NUM_THREADS the user set
    is kept. Called before the first gather of a process (the pool is built then)."""
    if "RAYON_NUM_THREADS" in os.environ:
        return
    info = get_worker_info()
    if info is None:
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    os.environ["RAYON_NUM_THREADS"] = str(max(1, cores // info.num_workers))


#: Row keys that index the store; served as int64 (torch's unsigned types barely work).
_INDEX_KEYS = ("episode", "step")


def _batch_tensors(batch: dict[str, np.ndarray]) -> dict[str, Any]:
    for key in _INDEX_KEYS:
        if key in batch:
            batch[key] = batch[key].astype(np.int64, copy=False)
    return {k: _tensor(v) for k, v in batch.items()}


class StepDataset(Dataset):
    """Every step of this rank's share, as a dict of tensors (`fields`, `next/<field>`,
    `episode`, `step`).

    Ranks get disjoint episodes, balanced by steps, but step counts still differ a little
    between ranks, and a DDP job whose ranks run different numbers of batches hangs at the
    last collective. So every rank serves the same number of items: `even="pad"` (default)
    serves the largest rank's count, repeating this rank's first steps; `even="drop"` the
    smallest rank's, dropping this rank's tail (`DistributedSampler`'s `drop_last`).

    Picklable (the store path and selection, not the open store): DataLoader workers under
    fork, spawn or forkserver reopen the store lazily on first use."""

    def __init__(self, path: str | os.PathLike, fields: Sequence[str], *, next: Sequence[str] = (), rank: int | None = None,
                 world_size: int | None = None, seed: int = 0, epoch: int = 0, even: str = "pad", verify_reads: bool = True,
                 **filters: Any):
        r, w = distributed_rank_and_world_size()
        self.path, self.fields, self.next = os.fspath(path), list(fields), list(next)
        self.rank, self.world_size = (r if rank is None else rank), (w if world_size is None else world_size)
        self.seed, self.epoch, self.even, self.verify_reads, self.filters = seed, epoch, even, verify_reads, filters
        self._share: tuple[StepIndex, int] | None = None
        self._index()  # fail here, in the caller, on a bad selection or an empty rank

    def _index(self) -> tuple[StepIndex, int]:
        if self._share is None:
            _share_cores_in_worker()
            self._share = rank_step_index(self.path, self.fields, self.next, rank=self.rank, world_size=self.world_size,
                                          seed=self.seed, epoch=self.epoch, even=self.even, verify_reads=self.verify_reads,
                                          **self.filters)
        return self._share

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_share": None}

    def set_epoch(self, epoch: int) -> None:
        """Reshuffles episodes across ranks for `epoch` (call before each epoch, as with
        `DistributedSampler`); every rank must pass the same epoch."""
        if epoch != self.epoch:
            self.epoch, self._share = epoch, None

    def __len__(self) -> int:
        return self._index()[1]

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.__getitems__([i])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """A DataLoader batch's items gathered in one call to the core (in parallel), each a
        view of the one batch: the collate function copies them once, into its stack."""
        _share_cores_in_worker()  # a forked worker inherits the parent's index: not rebuilt
        index, count = self._index()
        if any(not 0 <= i < count for i in indices):
            bad = next(i for i in indices if not 0 <= i < count)
            raise IndexError(f"step {bad} out of range ({count} steps)")
        # Padding repeats this rank's steps from its start.
        tensors = _batch_tensors(index.rows([i % len(index) for i in indices]))
        return [{k: t[j] for k, t in tensors.items()} for j in range(len(indices))]


class WindowDataset(IterableDataset):
    """Batches of steps or windows from this rank's and DataLoader worker's share. Use with
    `DataLoader(ds, batch_size=None)`: items are already batches.

    Every rank yields the same number of batches per epoch (see `StepDataset`): with
    `even="pad"` (default) each DataLoader worker serves as many batches as the same worker of
    the largest rank, starting its share again when it runs out; with `even="drop"` as many as
    the smallest rank's. Picklable: workers reopen the store."""

    def __init__(self, path: str | os.PathLike, fields: Sequence[str], batch_size: int = 256, *, window: int | None = None,
                 rank: int | None = None, world_size: int | None = None, seed: int = 0, epoch: int = 0,
                 order: str = "shuffle", pad: bool = False, offsets=None, next: Sequence[str] = (), even: str = "pad",
                 verify_reads: bool = True, **filters: Any):
        r, w = distributed_rank_and_world_size()
        self.path, self.fields, self.batch_size, self.window = os.fspath(path), list(fields), batch_size, window
        self.rank, self.world_size = (r if rank is None else rank), (w if world_size is None else world_size)
        self.seed, self.epoch, self.order, self.pad, self.offsets, self.next = seed, epoch, order, pad, offsets, list(next)
        self.even, self.verify_reads, self.filters = _even_policy(even), verify_reads, filters
        self._batches(1, 0)  # fail here, in the caller, on a bad argument or an empty rank

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self, num_workers: int, worker: int) -> tuple[Any, int]:
        """This worker's batches and how many it must serve (the even policy applied over the
        same worker of every rank)."""
        loaders = rank_loaders(self.path, self.rank, self.world_size, seed=self.seed, epoch=self.epoch, num_workers=num_workers,
                               worker=worker, verify_reads=self.verify_reads, **self.filters)
        if num_workers == 1:  # with workers, one worker may have nothing while its rank has
            _require_data(loaders, self.rank)
        counts = [len(loader.batches(self.fields, self.batch_size, order=self.order, window=self.window, pad=self.pad,
                                     offsets=self.offsets, next=self.next)) for loader in loaders]
        return loaders[self.rank], (max(counts) if self.even == "pad" else min(counts))

    def __len__(self) -> int:
        """Batches per epoch without DataLoader workers (each worker serves its own share)."""
        return self._batches(1, 0)[1]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        num_workers, worker = (1, 0) if info is None else (info.num_workers, info.id)
        _share_cores_in_worker()
        loader, count = self._batches(num_workers, worker)
        served = 0
        while served < count:
            for batch in loader.batches(self.fields, self.batch_size, order=self.order, window=self.window, pad=self.pad,
                                        offsets=self.offsets, next=self.next):
                if served == count:
                    break
                served += 1
                yield _batch_tensors(batch)
            else:
                if served == 0:  # this worker has nothing; the others serve the rank's batches
                    break
