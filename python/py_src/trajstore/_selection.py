"""Which episodes (filters) and which share of them (rank, worker, seed, epoch): the argument
object the native module reads its query and share from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable


def as_list(v: str | Iterable[str] | None) -> list[str]:
    """None -> [], "a" -> ["a"], an iterable -> a list."""
    if v is None:
        return []
    return [v] if isinstance(v, str) else list(v)


@dataclass
class Selection:
    """Which episodes (the filters) and which share of them (rank, worker, seed, epoch)."""

    users: list[str] = field(default_factory=list)
    envs: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)
    splits: list[str] = field(default_factory=list)
    min_return: float | None = None
    max_return: float | None = None
    min_steps: int | None = None
    before_id: int | None = None
    world_size: int = 1
    rank: int = 0
    num_workers: int = 1
    worker: int = 0
    seed: int = 0
    epoch: int = 0

    @classmethod
    def of(cls, user=None, env=None, tags=None, outcome=None, split=None, **rest) -> "Selection":
        return cls(users=as_list(user), envs=as_list(env), tags=as_list(tags), outcomes=as_list(outcome), splits=as_list(split), **rest)


