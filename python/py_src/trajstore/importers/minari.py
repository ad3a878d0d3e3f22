"""`trajstore import minari DIR DATASET_PATH`: a Minari dataset (HDF5 or Arrow backend) into a
store, read through minari's own storage reader, one atomic commit per episode.

Kept: observations and actions in their spaces' layout (`obs/<key>`, `action/<key>` for Dict
and Tuple spaces), rewards (f64), terminations, truncations, per-step infos, each episode's
reset seed and options (`reset_options/<key>`, as `RecordEpisodes` records them), the spaces
(serialized by minari, in the episode metadata) and the dataset's metadata. A dataset whose
version minari does not support is refused before anything is created. Spec: schema/import.md."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
from typing import Any, Iterator, Mapping

import numpy as np

from .. import _spaces
from .._trajstore import InputError
from ..store import Store
from ._common import SOURCE_KEY, ImportReport, SourceEpisode, SourceError, commit_episode, landed, storable_info

SOURCE = "minari"

#: Minari's storage backends this importer reads (through minari).
KNOWN_FORMATS = ("hdf5", "arrow")


def _minari() -> Any:
    try:
        import minari
    except ImportError as e:
        raise ImportError("importing Minari datasets needs minari: pip install 'minari[hdf5,arrow]'") from e
    return minari


def data_path(dataset_path: str | os.PathLike) -> pathlib.Path:
    """The directory holding the dataset's `metadata.json`: `dataset_path` itself or its
    `data/` (the layout `minari` writes under its datasets root)."""
    p = pathlib.Path(dataset_path)
    for candidate in (p, p / "data"):
        if (candidate / "metadata.json").is_file():
            return candidate
    raise SourceError(f"{p}: not a Minari dataset (no metadata.json in it or in its data/ directory)")


def check_version(path: pathlib.Path) -> dict[str, Any]:
    """The dataset's raw metadata, once its version and storage format are known to be
    readable; otherwise `SourceError` naming them and what is supported."""
    minari = _minari()
    try:
        metadata = json.loads((path / "metadata.json").read_text())
    except (OSError, ValueError) as e:
        raise SourceError(f"{path}/metadata.json: not readable as JSON: {e}") from e
    version = metadata.get("minari_version")
    supported = sorted(minari.supported_dataset_versions)
    if version not in minari.supported_dataset_versions:
        raise SourceError(f"{path}: dataset version {version!r} is not one minari {minari.__version__} reads "
                          f"({', '.join(supported)}); upgrade minari (and trajstore) to import it")
    data_format = metadata.get("data_format", "hdf5")
    if data_format not in KNOWN_FORMATS:
        raise SourceError(f"{path}: storage format {data_format!r} is not one this importer knows ({', '.join(KNOWN_FORMATS)})")
    return metadata


def _columns(value: Any, prefix: str, what: str, report: ImportReport) -> dict[str, np.ndarray]:
    """A space's values over an episode (minari's decoded layout: dicts and tuples of arrays
    with the step axis first) as flat columns."""
    if isinstance(value, Mapping):
        out: dict[str, np.ndarray] = {}
        for key, sub in value.items():
            out.update(_columns(sub, f"{prefix}/{key}", what, report))
        return out
    if isinstance(value, (tuple, list)) and not isinstance(value, np.ndarray) and value and not np.isscalar(value[0]):
        out = {}
        for i, sub in enumerate(value):
            out.update(_columns(sub, f"{prefix}/{i}", what, report))
        return out
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        report.note(f"{prefix}: values of dtype {arr.dtype} (only numbers and booleans are fields)")
        return {}
    return {prefix: np.ascontiguousarray(arr)}


def _info_rows(infos: Any, steps: int) -> tuple[list[dict[str, Any]], list[str]]:
    """Per-observation info dicts (`T + 1`) from minari's dict of stacked info arrays."""
    rows: list[dict[str, Any]] = [{} for _ in range(steps + 1)]
    dropped: list[str] = []

    def walk(tree: Any, prefix: str) -> None:
        if isinstance(tree, Mapping):
            for key, sub in tree.items():
                walk(sub, f"{prefix}{key}/" if isinstance(sub, Mapping) else f"{prefix}{key}")
            return
        arr = np.asarray(tree)
        if arr.ndim == 0 or len(arr) != steps + 1:
            dropped.append(prefix)
            return
        for t in range(steps + 1):
            stored, bad = storable_info({prefix: arr[t]})
            rows[t].update(stored)
            if bad:
                dropped.extend(bad)

    walk(infos or {}, "")
    return rows, sorted(set(dropped))


def _digest(columns: Mapping[str, np.ndarray], extra: Any) -> str:
    h = hashlib.sha256()
    for name in sorted(columns):
        arr = np.ascontiguousarray(columns[name])
        h.update(f"{name}|{arr.dtype.str}|{arr.shape}|".encode())
        h.update(arr.tobytes())
    h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return h.hexdigest()


def episodes(dataset_path: str | os.PathLike, report: ImportReport, user: str = "minari") -> Iterator[SourceEpisode]:
    """The dataset's episodes as `SourceEpisode`s, read by minari's storage reader."""
    minari = _minari()
    path = data_path(dataset_path)
    raw = check_version(path)
    storage = minari.dataset.minari_storage.MinariStorage.read(path)
    dataset_id = str(raw.get("dataset_id", path.parent.name))
    env_id = None
    if isinstance(raw.get("env_spec"), str):
        try:
            env_id = json.loads(raw["env_spec"]).get("id")
        except ValueError:
            pass
    common: dict[str, Any] = {SOURCE_KEY: SOURCE, "minari/dataset_id": dataset_id}
    for key, value in raw.items():
        if key == "dataset_id":
            continue
        if isinstance(value, (str, bool, int, float)):
            common[f"minari/{key}"] = value
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            common[f"minari/{key}"] = ", ".join(value)
    if "observation_space" not in raw or "action_space" not in raw:
        from minari.serialization import serialize_space

        common.setdefault("minari/observation_space", serialize_space(storage.observation_space))
        common.setdefault("minari/action_space", serialize_space(storage.action_space))
    # Also in trajstore's own form, so `Episode.observations` / `.actions` rebuild the spaces'
    # structure as for episodes `RecordEpisodes` recorded.
    for key, space in ((_spaces.OBSERVATION_SPACE_KEY, storage.observation_space),
                       (_spaces.ACTION_SPACE_KEY, storage.action_space)):
        try:
            common[key] = _spaces.dumps(_spaces.space_to_json(space))
        except InputError:
            report.note(f"{key}: {type(space).__name__} spaces have no trajstore form (kept in minari's serialization)")
    ids = range(storage.total_episodes)
    for data, meta in zip(storage.get_episodes(ids), storage.get_episode_metadata(ids)):
        steps = len(data["rewards"])
        observations = _columns(data["observations"], "obs", "observation", report)
        transitions = _columns(data["actions"], "action", "action", report)
        transitions["reward"] = np.asarray(data["rewards"], dtype=np.float64)
        transitions["terminated"] = np.asarray(data["terminations"], dtype=bool)
        transitions["truncated"] = np.asarray(data["truncations"], dtype=bool)
        infos, dropped = _info_rows(data.get("infos"), steps)
        for key in dropped:
            report.note(f"info {key!r}: not a storable value, or not one per observation")
        seed = meta.get("seed")
        options = meta.get("options") or {}
        stored_options, bad = storable_info(options, "reset_options/")
        for key in bad:
            report.note(f"reset option {key!r}: not a storable value")
        metadata = {**common, **stored_options, "minari/episode_id": int(data["id"])}
        yield SourceEpisode(
            item=f"{dataset_id}/episode_{data['id']}",
            digest=_digest({**observations, **transitions}, [dataset_id, seed, options, infos]),
            user=user, env=env_id or dataset_id, observations=observations, transitions=transitions,
            infos=infos, seed=None if seed is None else int(seed), metadata=metadata,
        )


def import_dataset(store_path: str | os.PathLike, dataset_path: str | os.PathLike, user: str = "minari") -> ImportReport:
    """Imports a Minari dataset into the store at `store_path` (created when missing, only once
    the dataset's version is known to be readable); an episode whose content already landed
    there is skipped."""
    check_version(data_path(dataset_path))
    store = Store.create(store_path)
    report = ImportReport(SOURCE, store.path)
    done = landed(store, SOURCE)
    for episode in episodes(dataset_path, report, user):
        if episode.digest in done:
            report.skipped.append((episode.item, done[episode.digest]))
            continue
        done[episode.digest] = commit_episode(store, episode)
        report.imported.append((episode.item, done[episode.digest]))
    return report
