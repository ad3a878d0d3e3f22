"""Framework-neutral pieces of the PyTorch datasets: who am I (rank / world size / worker),
and a flat index over this rank's steps. `trajstore.torch` wraps them in torch classes."""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from .loader import Loader, field_requests


def distributed_rank_and_world_size() -> tuple[int, int]:
    """From an initialised `torch.distributed`, else torchrun's RANK / WORLD_SIZE, else (0, 1)."""
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
    except ImportError:
        pass
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


class StepIndex:
    """Random access to the steps of a loader's share: step `i` is the `i`-th step in serving
    order (episodes in order, then their steps). The core's sampler does the indexing and the
    gathering; items hold `fields`, `next/<field>`, `episode` and `step`."""

    def __init__(self, loader: Loader, fields: Sequence[str], next_fields: Sequence[str] = ()):
        self.fields = list(fields)
        self.next_fields = list(next_fields)
        self._sampler = loader._native.sampler(field_requests(self.fields, None, self.next_fields), 1, "sequential")
        self._keys = [*self.fields, *(f"next/{f}" for f in self.next_fields), "episode", "step"]

    def __len__(self) -> int:
        return self._sampler.units

    def rows(self, indices: Sequence[int]) -> dict[str, np.ndarray]:
        """The steps at `indices` as one batch: arrays with a leading axis of `len(indices)`,
        writable and owned by the caller."""
        # IndexError, as a sequence raises (the core would refuse it as an InputError).
        if len(indices) and not (0 <= min(indices) and max(indices) < len(self)):
            bad = next(i for i in indices if not 0 <= i < len(self))
            raise IndexError(f"step {bad} out of range ({len(self)} steps)")
        batch = self._sampler.batch_of([int(i) for i in indices])
        return {key: np.asarray(batch[key]) for key in self._keys}

    def __getitem__(self, i: int) -> dict[str, Any]:
        item: dict[str, Any] = {key: column[0] for key, column in self.rows([i]).items()}
        item["episode"], item["step"] = int(item["episode"]), int(item["step"])
        return item


EVEN_POLICIES = ("pad", "drop")


def _even_policy(even: str) -> str:
    if even not in EVEN_POLICIES:
        raise ValueError(f"even={even!r}: expected 'pad' (repeat steps so every rank serves the largest rank's count) or 'drop' (serve the smallest rank's count)")
    return even


def rank_loaders(path: Any, rank: int, world_size: int, **share: Any) -> list[Loader]:
    """Every rank's loader, in rank order (index only, no field data read). This rank's is
    opened first, so the core refuses a bad rank or selection before anything else. `path`:
    a store or a list of stores (shards of one dataset); the other ranks' loaders reuse this
    rank's open stores and, over several, its cutoffs, so all of them count the same set."""
    mine = Loader(path, rank=rank, world_size=world_size, **share)
    if len(mine.stores) > 1:
        share = {**share, "cutoffs": mine.cutoffs}
    return [mine if r == rank else Loader(mine.stores, rank=r, world_size=world_size, **share) for r in range(world_size)]


def store_paths(path: Any) -> Any:
    """A store path, or a list of them (shards), as plain strings: what a dataset pickles."""
    return os.fspath(path) if isinstance(path, (str, os.PathLike)) else [os.fspath(p) for p in path]


def _require_data(loaders: Sequence[Loader], rank: int) -> None:
    """A rank with nothing to serve would leave its DDP peers waiting forever: say so now.
    `loaders`: every rank's loader, in rank order."""
    if loaders[rank].steps == 0:
        total = sum(len(loader.episode_ids) for loader in loaders)
        raise ValueError(
            f"rank {rank} of {len(loaders)} has no steps to serve: the selection holds {total} episode(s) and an "
            f"episode is never split across ranks; record more episodes, widen the selection or use fewer ranks"
        )


def rank_step_index(path: Any, fields: Sequence[str], next_fields: Sequence[str], *, rank: int, world_size: int, seed: int,
                    epoch: int, even: str, verify_reads: bool, **filters: Any) -> tuple[StepIndex, int]:
    """This rank's StepIndex and the number of items every rank serves under `even`."""
    even = _even_policy(even)
    loaders = rank_loaders(path, rank, world_size, seed=seed, epoch=epoch, verify_reads=verify_reads, **filters)
    _require_data(loaders, rank)
    steps = [loader.steps for loader in loaders]
    return StepIndex(loaders[rank], fields, next_fields), (max(steps) if even == "pad" else min(steps))
