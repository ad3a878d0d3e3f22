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

from .datasets import StepIndex, distributed_rank_and_world_size
from .loader import Loader


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


class StepDataset(Dataset):
    """Every step of this rank's share, as a dict of tensors (`fields`, `next/<field>`)."""

    def __init__(self, path: str | os.PathLike, fields: Sequence[str], *, next: Sequence[str] = (), rank: int | None = None,
                 world_size: int | None = None, seed: int = 0, epoch: int = 0, verify_reads: bool = True, **filters: Any):
        r, w = distributed_rank_and_world_size()
        loader = Loader(path, rank=r if rank is None else rank, world_size=w if world_size is None else world_size, seed=seed, epoch=epoch,
                        verify_reads=verify_reads, **filters)
        self.index = StepIndex(loader, fields, next)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {k: _tensor(v) for k, v in self.index[i].items()}

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """A DataLoader batch's items gathered in one call to the core (in parallel), each a
        view of the one batch: the collate function copies them once, into its stack."""
        rows = self.index.rows(indices)
        # int64, as a single item's Python ints become (torch's unsigned types barely work).
        rows["episode"], rows["step"] = rows["episode"].astype(np.int64), rows["step"].astype(np.int64)
        tensors = {k: torch.from_numpy(v) for k, v in rows.items()}
        return [{k: t[j] for k, t in tensors.items()} for j in range(len(indices))]


class WindowDataset(IterableDataset):
    """Batches of steps or windows from this rank's and DataLoader worker's share. Use with
    `DataLoader(ds, batch_size=None)`: items are already batches."""

    def __init__(self, path: str | os.PathLike, fields: Sequence[str], batch_size: int = 256, *, window: int | None = None,
                 rank: int | None = None, world_size: int | None = None, seed: int = 0, epoch: int = 0,
                 order: str = "shuffle", pad: bool = False, offsets=None, next: Sequence[str] = (), verify_reads: bool = True,
                 **filters: Any):
        r, w = distributed_rank_and_world_size()
        self.path, self.fields, self.batch_size, self.window = path, list(fields), batch_size, window
        self.rank, self.world_size = (r if rank is None else rank), (w if world_size is None else world_size)
        self.seed, self.epoch, self.order, self.pad, self.offsets, self.next = seed, epoch, order, pad, offsets, list(next)
        self.verify_reads = verify_reads
        self.filters = filters

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        num_workers, worker = (1, 0) if info is None else (info.num_workers, info.id)
        loader = Loader(self.path, rank=self.rank, world_size=self.world_size, seed=self.seed, epoch=self.epoch,
                        num_workers=num_workers, worker=worker, verify_reads=self.verify_reads, **self.filters)
        for batch in loader.batches(self.fields, self.batch_size, order=self.order, window=self.window, pad=self.pad,
                                    offsets=self.offsets, next=self.next):
            yield {k: _tensor(v) for k, v in batch.items()}
