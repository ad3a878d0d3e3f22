"""What every importer shares: an episode as columns, its atomic commit, the record of what
landed (source, item and content hash in the episode's metadata) and the report.

Spec: schema/import.md."""

from __future__ import annotations

import hashlib
import numbers
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np

from .._arrays import dtype_name
from ..store import Store

#: Episode metadata keys every importer writes (schema/import.md, "Provenance").
SOURCE_KEY = "import/source"
ITEM_KEY = "import/item"
HASH_KEY = "import/sha256"


class SourceError(ValueError):
    """A source file or dataset that cannot be imported: corrupt, unsafe, of an unknown
    version, or inconsistent. The message names it and what is wrong."""


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass
class SourceEpisode:
    """One episode as columns: observations have `T + 1` rows, transitions `T` (`reward`,
    `terminated`, `truncated` among them), `infos` `T + 1` dicts of storable values."""

    item: str
    digest: str
    user: str
    env: str
    observations: dict[str, np.ndarray]
    transitions: dict[str, np.ndarray]
    infos: list[dict[str, Any]]
    seed: int | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        return len(self.transitions["reward"])


@dataclass
class ImportReport:
    """What an import did: episodes imported and skipped (already in the store, same source
    content), and what could not be carried over, each with how many episodes it concerns."""

    source: str
    store: str
    imported: list[tuple[str, int]] = field(default_factory=list)
    skipped: list[tuple[str, int]] = field(default_factory=list)
    not_carried: dict[str, int] = field(default_factory=dict)

    def note(self, what: str) -> None:
        """Records that `what` could not be carried over for one more episode."""
        self.not_carried[what] = self.not_carried.get(what, 0) + 1

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "store": self.store,
            "imported": [{"item": i, "episode": e} for i, e in self.imported],
            "skipped": [{"item": i, "episode": e} for i, e in self.skipped],
            "not_carried_over": [{"what": w, "episodes": n} for w, n in self.not_carried.items()],
        }

    def lines(self) -> list[str]:
        out = [f"{self.source}: {len(self.imported)} episode(s) imported into {self.store}, "
               f"{len(self.skipped)} already there (skipped)"]
        out += [f"  imported {item} as episode {ep}" for item, ep in self.imported]
        out += [f"  skipped {item}: already episode {ep}" for item, ep in self.skipped]
        if self.not_carried:
            out.append("not carried over:")
            out += [f"  {what} ({n} episode(s))" for what, n in self.not_carried.items()]
        return out


def landed(store: Store, source: str) -> dict[str, int]:
    """Content hash -> episode id of every episode an import of `source` committed."""
    found: dict[str, int] = {}
    for info in store.episodes():
        meta = info.metadata or {}
        if meta.get(SOURCE_KEY) == source and isinstance(meta.get(HASH_KEY), str):
            found.setdefault(meta[HASH_KEY], info.id)
    return found


def storable_info(info: Mapping[str, Any] | None, prefix: str = "") -> tuple[dict[str, Any], list[str]]:
    """`info` flattened (`a/b` keys) into values an episode's info stores (bool, int, float,
    str, 1-d int or float lists), and the keys that are not storable."""
    out: dict[str, Any] = {}
    dropped: list[str] = []
    for key, value in (info or {}).items():
        k = f"{prefix}{key}"
        if isinstance(value, Mapping):
            sub, bad = storable_info(value, f"{k}/")
            out.update(sub)
            dropped += bad
            continue
        if isinstance(value, np.generic):
            value = value.item()
        elif isinstance(value, (list, tuple)) and value and all(
                isinstance(v, numbers.Number) and not isinstance(v, bool) for v in value):
            value = np.asarray(value)
        if isinstance(value, np.ndarray):
            if value.ndim == 0:
                value = value.item()
            elif value.ndim == 1 and value.size and value.dtype.kind in "iuf":
                value = value.astype(np.float64 if value.dtype.kind == "f" else np.int64).tolist()
        if isinstance(value, (bool, int, float, str)):
            out[k] = value
        elif isinstance(value, list) and value and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            out[k] = value
        else:
            dropped.append(k)
    return out, dropped


def flatten(tree: Any, prefix: str) -> dict[str, Any]:
    """Nested dicts as `prefix/a/b` keys (the layout `RecordEpisodes` gives Dict spaces)."""
    if isinstance(tree, Mapping):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}/{key}"))
        return out
    return {prefix: tree}


def stack(rows: Iterable[Any], what: str) -> np.ndarray:
    """Values of one field, one per step, as one array; a value of another shape or kind
    than the first is an error naming the field."""
    arrays = [np.asarray(v) for v in rows]
    if not arrays:
        raise SourceError(f"{what}: no values")
    first = arrays[0]
    for t, a in enumerate(arrays):
        if a.shape != first.shape:
            raise SourceError(f"{what}: step {t} has shape {a.shape}, step 0 has {first.shape}")
        if a.dtype.kind == "O":
            raise SourceError(f"{what}: step {t} holds Python objects ({type(a.flat[0]).__name__}), not numbers")
    out = np.stack(arrays)
    if out.dtype.kind == "U" or out.dtype.kind == "S":
        raise SourceError(f"{what}: strings are not a field type")
    return out


def declared_fields(ep: SourceEpisode) -> list[tuple[str, str, tuple[int, ...], str, str]]:
    fields = []
    for kind, columns in (("observation", ep.observations), ("transition", ep.transitions)):
        for name, column in columns.items():
            fields.append((name, dtype_name(column.dtype), tuple(column.shape[1:]), kind, "raw"))
    return fields


def commit_episode(store: Store, ep: SourceEpisode) -> int:
    """Records `ep` and commits it: visible whole when this returns, or not at all (an error
    discards it)."""
    for name, column in ep.observations.items():
        if len(column) != ep.steps + 1:
            raise SourceError(f"{ep.item}: observation {name} has {len(column)} values for {ep.steps} steps")
    recorder = store.begin_episode(ep.user, ep.env, declared_fields(ep), seed=ep.seed, tags=ep.tags,
                                   metadata={**ep.metadata, ITEM_KEY: ep.item, HASH_KEY: ep.digest})
    try:
        recorder.reset({k: v[0] for k, v in ep.observations.items()}, ep.infos[0])
        for t in range(ep.steps):
            values = {k: v[t + 1] for k, v in ep.observations.items()}
            values.update({k: v[t] for k, v in ep.transitions.items()})
            recorder.step(values, ep.infos[t + 1])
        return recorder.commit()
    except BaseException:
        if recorder.active:
            recorder.discard()
        raise
