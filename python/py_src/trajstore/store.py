"""The store: record episodes, query them by user / env / outcome, read fields as numpy."""

from __future__ import annotations

import datetime
import operator
import os
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence, overload

import numpy as np

from . import _spaces
from ._arrays import normalize_info
from ._selection import Filters, Selection, as_list
from ._stats import StoreStats
from ._trajstore import PendingCommit
from ._trajstore import Store as _NativeStore
from ._trajstore import compact as _compact

if TYPE_CHECKING:
    from typing_extensions import Unpack

#: (name, dtype, shape, kind, codec): one declared field of a step
FieldDecl = tuple[str, str, tuple[int, ...], str, str]


@dataclass(frozen=True)
class EpisodeInfo:
    """A committed episode's metadata (read from the index; no field data touched)."""

    id: int
    user: str
    env: str
    schema_id: int
    steps: int
    total_return: float
    outcome: str
    seed: int | None
    tags: list[str]
    metadata: dict[str, Any]
    started_at_us: int
    ended_at_us: int
    committed_at_us: int
    raw_bytes: int
    stored_bytes: int


def _episode_info(row: dict[str, Any]) -> EpisodeInfo:
    """`EpisodeInfo(**row)` for a row the core made (every field, checked types) without the
    generated `__init__`'s per-field frozen `__setattr__` calls: a third of the cost."""
    info = object.__new__(EpisodeInfo)
    info.__dict__.update(row)
    return info


class EpisodeList(Sequence[EpisodeInfo]):
    """The episodes a query selected (`Store.episodes()`), in commit order: a sequence of
    `EpisodeInfo` read from the index's compact catalog of one snapshot.

    Nothing per episode is built until it is read: `len()`, `ids`, `steps` and
    `column(name)` (a numpy array, or a list for text columns) cost no Python object per
    episode; an `EpisodeInfo` is made when an item is read or iterated (its metadata map read
    then, from the same snapshot). A slice is a list; `list(episodes)` copies them all."""

    #: rows materialised per native call while iterating
    _BLOCK = 512

    def __init__(self, native: Any):
        self._native = native
        self._len = len(native)

    def __len__(self) -> int:
        return self._len

    @overload
    def __getitem__(self, index: int) -> EpisodeInfo: ...
    @overload
    def __getitem__(self, index: slice) -> list[EpisodeInfo]: ...
    def __getitem__(self, index: int | slice) -> EpisodeInfo | list[EpisodeInfo]:
        if isinstance(index, slice):
            start, stop, step = index.indices(self._len)
            if step == 1:
                return self._infos(start, stop) if start < stop else []
            return [self[i] for i in range(start, stop, step)]
        i = operator.index(index)
        if i < 0:
            i += self._len
        if not 0 <= i < self._len:
            raise IndexError(f"episode position {index} out of range for {self._len} episodes")
        return self._infos(i, i + 1)[0]

    def __iter__(self) -> Iterator[EpisodeInfo]:
        for start in range(0, self._len, self._BLOCK):
            yield from self._infos(start, min(start + self._BLOCK, self._len))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, (EpisodeList, list, tuple)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        if self._len <= 4:
            return f"EpisodeList({list(self)!r})"
        return f"EpisodeList({self._len} episodes, ids {self.ids[0]}..{self.ids[-1]})"

    def _infos(self, start: int, stop: int) -> list[EpisodeInfo]:
        return [_episode_info(row) for row in self._native.rows(start, stop)]

    def column(self, name: str) -> Any:
        """One `EpisodeInfo` attribute of every episode, without making the EpisodeInfos: a
        read-only numpy array for `id`, `schema_id`, `steps`, `total_return`, the `*_at_us`
        times and the byte counts; a list for `user`, `env`, `outcome`, `seed`, `tags`."""
        col = self._native.column(name)
        return col if isinstance(col, list) else np.asarray(col)

    @property
    def ids(self) -> np.ndarray:
        """Episode ids (uint64), in commit order."""
        return self.column("id")

    @property
    def steps(self) -> np.ndarray:
        """Transitions of each episode (uint32)."""
        return self.column("steps")


class Episode:
    """One episode's fields as numpy arrays.

    Every field is a read-only array: raw fields are views of the store's memory map (no
    copy) that stay valid after the store is closed; lz4 fields are decoded once. Arrays load
    on first use; copy one to modify it.
    """

    def __init__(self, snapshot: Any, info: EpisodeInfo):
        self._snapshot = snapshot
        self._id = info.id
        self._info: EpisodeInfo | None = info
        self._fields: list | None = None
        self._cache: dict[str, np.ndarray] = {}

    @classmethod
    def _of_id(cls, snapshot: Any, episode_id: int) -> "Episode":
        """Episode `episode_id` of `snapshot`, its metadata read when first asked for: a scan
        that only reads fields (`Loader.episodes()`) builds no `EpisodeInfo` per episode, a
        third of its cost per episode on small ones."""
        episode = cls.__new__(cls)
        episode._snapshot, episode._id, episode._info = snapshot, episode_id, None
        episode._fields, episode._cache = None, {}
        return episode

    @property
    def info(self) -> EpisodeInfo:
        """The episode's metadata (read from the index)."""
        if self._info is None:
            self._info = _episode_info(self._snapshot.episode(self._id))
        return self._info

    @property
    def _schema(self) -> list:
        """The episode's field declarations, fetched on first use (reading a field by name
        needs none)."""
        if self._fields is None:
            self._fields = self._snapshot.schema(self.info.schema_id)
        return self._fields

    @property
    def id(self) -> int:
        return self._id

    @property
    def field_names(self) -> list[str]:
        return [f[0] for f in self._schema]

    def __getitem__(self, name: str) -> np.ndarray:
        array = self._cache.get(name)
        if array is None:
            array = self._cache[name] = np.asarray(self._snapshot.field(self._id, name))
        return array

    def read(self, name: str, steps: int | slice | range | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """Values of field `name`: every one (`steps=None`), one step (an int: an array of the
        field's shape) or a contiguous range (a slice or range with step 1), without
        decoding the rest of an lz4 field (each step is compressed on its own).

        `out`: a writable C-contiguous array of the field's dtype and shape with at least as
        many rows as values read, reused from call to call: the values are copied (raw) or
        decoded (lz4) straight into it and its first rows are returned (a view). Without
        `out`, a raw field's values are a read-only view of the memory map (no copy) and an
        lz4 field's are decoded into a new array."""
        if steps is None:
            start, stop = 0, None
        elif isinstance(steps, (slice, range)):
            if steps.step not in (None, 1):
                raise ValueError(f"read {name!r}: steps must be contiguous (step 1), got {steps!r}")
            start, stop = steps.start or 0, steps.stop
        else:
            start, stop = int(steps), int(steps) + 1
        if out is None and self._codec(name) == "raw":
            values = self[name][start:stop]
        else:
            values = np.asarray(self._snapshot.read(self._id, name, start, stop, out))
        return values[0] if isinstance(steps, (int, np.integer)) else values

    def _codec(self, name: str) -> str | None:
        return next((f[4] for f in self._schema if f[0] == name), None)

    def __contains__(self, name: str) -> bool:
        return name in self.field_names

    @property
    def fields(self) -> dict[str, np.ndarray]:
        """Every field, by name (`T + 1` observations, `T` transition values)."""
        return {name: self[name] for name in self.field_names}

    @property
    def infos(self) -> list[dict[str, Any]]:
        """The `info` dict of each observation step (`T + 1`)."""
        return self._snapshot.infos(self._id)

    def _space(self, key: str):
        return _spaces.recorded(self._snapshot, self.info.schema_id, self.info.metadata, key)

    @property
    def observations(self) -> Any:
        """Observations in the structure of the recorded observation space (`T + 1` along the
        first axis of every leaf), or the `obs...` fields by name when no space was stored."""
        space = self._space(_spaces.OBSERVATION_SPACE_KEY)
        if space is None:
            return {n: self[n] for n in self.field_names if n == "obs" or n.startswith("obs/")}
        return _spaces.unflatten(space, {n: self[n] for n, *_ in _spaces.leaves(space, "obs")}, "obs")

    @property
    def actions(self) -> Any:
        space = self._space(_spaces.ACTION_SPACE_KEY)
        if space is None:
            return self["action"]
        return _spaces.unflatten(space, {n: self[n] for n, *_ in _spaces.leaves(space, "action")}, "action")

    @property
    def rewards(self) -> np.ndarray:
        return self["reward"]

    @property
    def observation_space(self):
        """The recorded observation space, rebuilt (needs gymnasium)."""
        space = self._space(_spaces.OBSERVATION_SPACE_KEY)
        return None if space is None else _spaces.space_from_json(space)

    @property
    def action_space(self):
        space = self._space(_spaces.ACTION_SPACE_KEY)
        return None if space is None else _spaces.space_from_json(space)

    def preview(self, field: str | None = None, every: int = 1, out: str | os.PathLike | None = None, kind: str = "sheet") -> Any:
        """A contact sheet of an image field (default: the first image observation): frames
        labelled with their step over reward and action plots, as an HxWx4 uint8 array; or,
        with `out`, the sheet (`.png`) or an animation (`.gif`, or `kind="gif"`) written there."""
        from ._trajstore import preview_encode, preview_sheet

        if out is None and kind == "sheet":
            pixels, height, width = preview_sheet(self._snapshot, self._id, field, every)
            return np.frombuffer(pixels, dtype=np.uint8).reshape(height, width, 4)
        path = None if out is None else os.fspath(out)
        encoding = "gif" if kind == "gif" or (path or "").lower().endswith(".gif") else "png"
        data = preview_encode(self._snapshot, self._id, field, every, encoding)
        if path is None:
            return data
        with open(path, "wb") as f:
            f.write(data)
        return path

    def __repr__(self) -> str:
        i = self.info
        return f"Episode(id={i.id}, user={i.user!r}, env={i.env!r}, steps={i.steps}, return={i.total_return:g}, outcome={i.outcome!r})"


def _info(info: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """An info mapping as the native recorder takes it: a dict (it converts plain values
    itself and hands anything else to `normalize_info`)."""
    if not info:
        return None
    return info if isinstance(info, dict) else dict(info)


class EpisodeRecorder:
    """Records one episode: `reset(obs)` once, `step(values)` per transition, then `commit()`
    (durable and visible, whole) or `discard()`. Values are dicts of field name -> value (an
    array, a numpy scalar or a Python number), handed to the core as they are: it reads
    arrays of the field's dtype in place, converts the rest, and checks every value."""

    def __init__(self, native: Any):
        self._native = native

    @property
    def fields(self) -> list[FieldDecl]:
        """The episode's schema as stored: (name, dtype, shape, kind, codec) of every field,
        `reward`, `terminated` and `truncated` included when they were not declared."""
        return [(n, d, tuple(s), k, c) for n, d, s, k, c in self._native.fields()]

    def reset(self, observation: Mapping[str, Any], info: Mapping[str, Any] | None = None) -> None:
        self._native.reset(observation if isinstance(observation, dict) else dict(observation), _info(info))

    def step(self, values: Mapping[str, Any], info: Mapping[str, Any] | None = None) -> None:
        self._native.step(values if isinstance(values, dict) else dict(values), _info(info))

    def step_in_order(self, values: tuple, info: Mapping[str, Any] | None = None) -> None:
        """`step` with one value per field, in the order of `fields` (no names to match:
        the recording wrapper's path)."""
        self._native.step_in_order(values, _info(info))

    def commit(self) -> int:
        return self._native.commit()

    def commit_in_background(self) -> PendingCommit:
        """Starts the commit and returns at once, so the next episode can record while this
        one's syncs are in flight (episodes in flight share one index transaction). The
        returned `PendingCommit`'s `wait()` gives the id once the episode is durable and
        visible, or raises what `commit()` would have. At most 8 commits are in flight per
        process and store; past that this waits for one to finish."""
        return self._native.commit_in_background()

    def discard(self) -> None:
        self._native.discard()

    @property
    def steps(self) -> int:
        return self._native.steps

    @property
    def active(self) -> bool:
        return self._native.active


class Store:
    """A trajstore directory. Safe to share between threads; several processes may open the
    same directory at once. Queries see every episode committed before the call.

    Reads are checked: the first read of each chunk in the process verifies its checksum, and
    damaged data raises `trajstore.CorruptionError` naming user, episode, field and steps
    instead of reaching training. `verify_reads=False` skips the check (trusted media)."""

    def __init__(self, path: str | os.PathLike, read_only: bool = False, create: bool = False, verify_reads: bool = True):
        # Opening never creates by default: a typo in a path must fail loudly, not train on
        # an empty store. Creating is explicit (`create=True`, `Store.create`, `trajstore init`).
        self._native = _NativeStore.open(os.fspath(path), read_only=read_only, create=create, verify_reads=verify_reads)
        #: (index header read before it was taken, process id, weak reference): the snapshot
        #: `episode()` reuses while no commit happened (`_latest_snapshot`)
        self._latest: tuple[bytes, int, weakref.ref] | None = None

    @classmethod
    def open(cls, path: str | os.PathLike, read_only: bool = False, verify_reads: bool = True) -> "Store":
        """Opens an existing store (`read_only` for training jobs that never record); raises
        `StoreOpenError` when `path` holds none."""
        return cls(path, read_only=read_only, create=False, verify_reads=verify_reads)

    @classmethod
    def create(cls, path: str | os.PathLike, verify_reads: bool = True) -> "Store":
        """Opens the store at `path`, creating it (and missing parent directories) when there
        is none; an existing store is opened as it is."""
        return cls(path, create=True, verify_reads=verify_reads)

    @property
    def verify_reads(self) -> bool:
        """Whether first reads of chunks are checked."""
        return self._native.verify_reads

    @property
    def path(self) -> str:
        return os.fspath(self._native.path)

    def snapshot(self) -> Any:
        """A consistent view; later commits are not visible in it."""
        return self._native.snapshot()

    def users(self) -> list[dict[str, Any]]:
        """Every user with episode / step / byte counts."""
        return self.snapshot().users()

    def episodes(self, **filters: Unpack[Filters]) -> EpisodeList:
        """Episodes matching every filter given (`user`, `env`, `tags`, `outcome`, `split`,
        `min_return`, `max_return`, `min_steps`, `before_id`: `trajstore.Filters`), in commit
        order, as a sequence of `EpisodeInfo` (an `EpisodeList`: columns without a Python
        object per episode, items made when read). Reads the index only."""
        return EpisodeList(self.snapshot().catalog(Selection.of(filters)))

    def episodes_table(self, **filters: Unpack[Filters]) -> Any:
        """Episodes matching every filter given (those of `episodes()`) as an Arrow table (a
        row per episode, index only; columns in schema/export.md), read without a copy through
        the Arrow PyCapsule interface: `pyarrow.table(t)`, `polars.DataFrame(t)`,
        `duckdb.sql("SELECT ... FROM t")`."""
        return self.snapshot().episodes_table(Selection.of(filters))

    def steps_table(self, episodes: Iterable[int], fields: Sequence[str] | None = None) -> Any:
        """The steps of `episodes` (ids) as an Arrow table, `T + 1` rows per episode (the last
        holds the final observation, transition fields null there; schema/export.md): `fields`
        in column order, or every field. Raw observation fields are views of the memory map."""
        return self.snapshot().steps_table([int(e) for e in episodes], None if fields is None else list(fields))

    def stats(self, field: str | Iterable[str] | None = None, compute_missing: bool = False, **filters: Unpack[Filters]) -> StoreStats:
        """Per-element statistics (count, mean, std, min, max, non-finite count, quantiles
        q01..q99 as numpy arrays of the field's shape) of every field of at most 64 elements
        per value, or of `field`, over the episodes the filters select (the filters of
        `episodes()`). Combined from statistics kept at commit: no frame is read. Episodes
        recorded without statistics are listed in `.missing`, or computed from their frames
        with `compute_missing=True`."""
        query = Selection.of(filters)
        fields = [field] if isinstance(field, str) else list(field or [])
        return StoreStats._of(self.snapshot().stats(query, fields, compute_missing))

    def episode(self, episode_id: int) -> Episode:
        """One committed episode, as of the call (like a new snapshot; see `_latest_snapshot`);
        an unknown id raises `NotFoundError` here. Its metadata (`Episode.info`) is read when
        first asked for: loading fields by id costs no metadata dict."""
        snap = self._latest_snapshot()
        snap.require_episode(episode_id)
        return Episode._of_id(snap, int(episode_id))

    def _latest_snapshot(self) -> Any:
        """A snapshot that sees every commit made before the call: the one handed out last,
        while the index header (read before it was taken) is unchanged, since every commit by
        any process rewrites a commit slot of that header; else a new one. Held weakly: a
        snapshot pins the index pages it reads, so it lives only while episodes use it."""
        header = self._native.index_header()
        latest = self._latest
        if latest is not None and latest[0] == header and latest[1] == os.getpid():
            snap = latest[2]()
            if snap is not None:
                return snap
        snap = self._native.snapshot()
        self._latest = (header, os.getpid(), weakref.ref(snap))
        return snap

    def begin_episode(
        self,
        user: str,
        env: str,
        fields: Sequence[FieldDecl],
        seed: int | None = None,
        tags: Sequence[str] = (),
        metadata: Mapping[str, Any] | None = None,
        schema_metadata: Mapping[str, Any] | None = None,
    ) -> EpisodeRecorder:
        """Starts recording. `fields`: (name, dtype, shape, "observation"|"transition",
        "raw"|"lz4"); `reward` (f32), `terminated` and `truncated` are added when absent.
        `schema_metadata`: key/values that describe the fields rather than the episode (the
        spaces they were flattened from), stored once per schema in the index (read back
        with `snapshot().schema_metadata(info.schema_id)`; an episode whose value differs
        from the stored one keeps its own)."""
        declared = [(n, d, list(s), k, c) for n, d, s, k, c in fields]
        return EpisodeRecorder(self._native.begin_episode(user, env, declared, seed, list(tags), normalize_info(metadata),
                                                          normalize_info(schema_metadata)))

    def verify(self) -> dict[str, Any]:
        """Checks every checksum; `ok` is False and `problems` names what is wrong otherwise."""
        return self.snapshot().verify()

    def delete(self, ids: int | Iterable[int] | None = None, *, dry_run: bool = False, by: str | None = None,
               **filters: Unpack[Filters]) -> list[int]:
        """Deletes episodes in one index transaction and returns their ids: `ids` (all that match
        the filters, when filters are given too) or the episodes the filters select (`user=`,
        `env=`, `tags=`, `outcome=`, `split=`, `min_return=`, ...). A selector is required;
        an unknown or already deleted id raises `NotFoundError` naming it, before anything
        changes. They leave every query, loader and replay; `restore` brings them back until
        compaction. `dry_run=True`: the ids that would go, nothing changed."""
        done = self._native.delete(_ids(ids), Selection.of(filters), dry_run=dry_run, by=by)
        return list(done["changed"])

    def restore(self, ids: int | Iterable[int] | None = None, *, all: bool = False, dry_run: bool = False, by: str | None = None) -> list[int]:
        """Restores deleted episodes (`ids`, or every one with `all=True`); returns their ids."""
        if (ids is None) == (not all):
            raise ValueError("restore: name the deleted episodes (ids=...) or pass all=True")
        done = self._native.restore(None if all else _ids(ids), dry_run=dry_run, by=by)
        return list(done["changed"])

    def deleted(self) -> list[dict[str, Any]]:
        """Deleted episodes awaiting compaction: episode dicts with `deleted_at_us` and
        `deleted_by`."""
        return self._native.deleted()

    def relabel(
        self,
        ids: int | Iterable[int] | None = None,
        *,
        set_user: str | None = None,
        set_outcome: str | None = None,
        add_tags: str | Iterable[str] = (),
        remove_tags: str | Iterable[str] = (),
        set_meta: Mapping[str, Any] | None = None,
        unset_meta: str | Iterable[str] = (),
        dry_run: bool = False,
        by: str | None = None,
        **filters: Unpack[Filters],
    ) -> list[int]:
        """Changes the user, outcome label, tags or metadata of the selected episodes (as
        `delete` selects them), index only, in one transaction; returns the ids that changed.
        Each change is kept in the episode's `history`."""
        done = self._native.relabel(
            _ids(ids), Selection.of(filters), set_user=set_user, set_outcome=set_outcome,
            add_tags=as_list(add_tags), remove_tags=as_list(remove_tags), set_meta=normalize_info(set_meta),
            unset_meta=as_list(unset_meta), dry_run=dry_run, by=by,
        )
        return list(done["changed"])

    def history(self, episode_id: int) -> list[dict[str, Any]]:
        """An episode's curation history, oldest first: `{"at_us", "by", "changes"}`."""
        return self._native.history(episode_id)

    def split(self, fractions: Mapping[str, float], seed: int, by: str = "episode") -> dict[int, str]:
        """Sets the store's split (`{"train": 0.9, "val": 0.1}`, summing to 1): only the spec is
        stored, an episode's split is a pure function of it and the episode's id (`by="user"`:
        its user), so later episodes never move old ones. Returns each episode's split."""
        self._native.set_split(list(fractions.items()), seed, by)
        return self._native.split_labels()

    def merge_from(self, *sources: str | os.PathLike) -> dict[str, Any]:
        """Merges whole stores into this one without decoding a frame (`trajstore merge`):
        segments hard-linked (copied across file systems), schemas deduplicated, every episode
        under a new id. Returns `{"schemas_added": n, "sources": [{"path", "episodes": {old:
        new}, "segments_linked", "segments_copied", "bytes"}]}`; each merged episode's
        metadata keeps `merged_from/store` and `merged_from/episode`. A source that is this
        store, of a newer format or damaged raises before anything is linked."""
        return self._native.merge_from([os.fspath(s) for s in sources])

    def compact(self, dry_run: bool = False, retention: float | datetime.timedelta | None = datetime.timedelta(days=7)) -> dict[str, Any]:
        """Reclaims the bytes of aborted or crashed recordings and of episodes deleted at
        least `retention` ago (a timedelta or seconds; `None` keeps every deleted episode
        restorable), as `trajstore compact` does (same default: 7 days); safe while others
        record and read. Replaced files stay in `segments/retired/` while any store handle is
        open (this one included) and are deleted by the last one to close. The report's
        `purged` lists the deleted episodes that can no longer be restored."""
        seconds = retention.total_seconds() if isinstance(retention, datetime.timedelta) else retention
        return _compact(self.path, dry_run=dry_run, retention_seconds=seconds)

    def save_missing_stats(self) -> dict[str, Any]:
        """Computes, from their frames, the statistics of every live episode recorded without
        them (an older store, statistics off) and stores them, so `stats()` needs no frames
        for them again. Returns `{"saved": [ids], "failed": {id: why}}`: an episode whose
        frames cannot be read (a corrupt chunk) is left without statistics and named."""
        saved, failed = self._native.save_missing_stats()
        return {"saved": saved, "failed": dict(failed)}

    def __repr__(self) -> str:
        if not self.verify_reads:
            return f"trajstore.Store({self.path!r}, verify_reads=False)"
        return f"trajstore.Store({self.path!r})"


def _ids(ids: int | Iterable[int] | None) -> list[int]:
    if ids is None:
        return []
    return [ids] if isinstance(ids, int) else [int(i) for i in ids]
