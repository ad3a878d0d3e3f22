"""Which episodes (filters) and which share of them (rank, worker, seed, epoch): the argument
object the native module reads its query and share from.

The filter keywords are defined here once (`Filters`, `FILTERS`) and turned into a query once
(`Selection.of`); every call that selects episodes (`Store.episodes`, `episodes_table`,
`stats`, `delete`, `relabel`, `Loader`, `ImitationLearning`, `read_trajstore`) takes them as
`**filters` and hands them over as they are, so they cannot drift apart."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, TypedDict


def as_list(v: str | Iterable[str] | None) -> list[str]:
    """None -> [], "a" -> ["a"], an iterable -> a list."""
    if v is None:
        return []
    return [v] if isinstance(v, str) else list(v)


class Filters(TypedDict, total=False):
    """The episode filters (every one given must match; a list means any of them, except
    `tags`: all of them)."""

    user: str | Iterable[str] | None
    env: str | Iterable[str] | None
    tags: str | Iterable[str] | None
    outcome: str | Iterable[str] | None
    #: episodes of that split (`Store.split`)
    split: str | Iterable[str] | None
    min_return: float | None
    max_return: float | None
    min_steps: int | None
    #: only episodes committed before this id (a cutoff shared by a job's ranks)
    before_id: int | None


#: the filter keywords, in `Filters` order
FILTERS: tuple[str, ...] = tuple(Filters.__annotations__)


def take_filters(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Removes the filter keywords from `kwargs` (keyword arguments that also hold others,
    e.g. Ray's) and returns them."""
    return {k: kwargs.pop(k) for k in FILTERS if k in kwargs}


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
    def of(cls, filters: Mapping[str, Any] | None = None, /, *, world_size: int = 1, rank: int = 0, num_workers: int = 1,
           worker: int = 0, seed: int = 0, epoch: int = 0, **more: Any) -> "Selection":
        """The selection the filters (keywords of `Filters`, as a mapping or as keywords) mean,
        with a share. An unknown keyword raises `TypeError` naming it: a misspelt filter must
        not select everything."""
        f = {**(filters or {}), **more}
        unknown = sorted(set(f) - set(FILTERS))
        if unknown:
            raise TypeError(f"unknown episode filter(s) {', '.join(map(repr, unknown))}: the filters are {', '.join(FILTERS)}")
        return cls(
            users=as_list(f.get("user")), envs=as_list(f.get("env")), tags=as_list(f.get("tags")),
            outcomes=as_list(f.get("outcome")), splits=as_list(f.get("split")),
            min_return=f.get("min_return"), max_return=f.get("max_return"), min_steps=f.get("min_steps"),
            before_id=f.get("before_id"), world_size=world_size, rank=rank, num_workers=num_workers, worker=worker,
            seed=seed, epoch=epoch,
        )
