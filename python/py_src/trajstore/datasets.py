"""Framework-neutral pieces of the PyTorch datasets: who am I (rank / world size / worker),
and a flat index over this rank's steps. `trajstore.torch` wraps them in torch classes."""

from __future__ import annotations

import bisect
import os
from typing import Any, Sequence

import numpy as np

from .loader import Loader


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
    """Random access to the steps of a loader's share: step i -> (episode, t)."""

    def __init__(self, loader: Loader, fields: Sequence[str], next_fields: Sequence[str] = ()):
        self.fields = list(fields)
        self.next_fields = list(next_fields)
        self.episodes = list(loader.episodes())
        self.starts = np.cumsum([0] + [e.info.steps for e in self.episodes]).tolist()

    def __len__(self) -> int:
        return self.starts[-1]

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not 0 <= i < len(self):
            raise IndexError(f"step {i} out of range ({len(self)} steps)")
        e = bisect.bisect_right(self.starts, i) - 1
        episode, t = self.episodes[e], i - self.starts[e]
        item = {f: episode[f][t] for f in self.fields}
        item.update({f"next/{f}": episode[f][t + 1] for f in self.next_fields})
        item["episode"], item["step"] = episode.id, t
        return item
