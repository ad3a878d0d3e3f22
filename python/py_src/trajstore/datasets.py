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
