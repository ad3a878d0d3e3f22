"""`trajstore import diambra DIR FILES...`: episodes recorded by DIAMBRA Arena's own
`EpisodeRecorder` (`.diambra` files: a bz2-compressed pickle per episode) into a store.

The pickle is read by a restricted unpickler that resolves only numpy's array and scalar
reconstructors and stands in for DIAMBRA's protobuf settings message with a plain holder of its
bytes: a file naming any other global (a malicious pickle's `os.system`, say) fails with an
error naming the file and the global, and nothing of it runs. Spec: schema/import.md."""

from __future__ import annotations

import base64
import bz2
import io
import os
import pickle
from typing import Any, Sequence

import numpy as np

from ..store import Store
from ._common import SOURCE_KEY, ImportReport, SourceEpisode, SourceError, commit_episode, flatten, landed, sha256_of, stack, storable_info

SOURCE = "diambra"

#: The numpy globals a pickled array, dtype or scalar needs (numpy 2 and numpy 1 names).
_NUMPY_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"), ("numpy.core.multiarray", "scalar"),
}
#: The module of DIAMBRA's protobuf messages (the episode summary's `env_settings`).
_PROTO_MODULE = "diambra.engine.interface_pb2"


class ProtoMessage:
    """Stands in for a pickled protobuf message: keeps its type name and serialized bytes, runs
    nothing (protobuf messages pickle as `Type()` then `__setstate__({"serialized": bytes})`)."""

    type_name = ""

    def __init__(self) -> None:
        self.serialized = b""

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, dict) and isinstance(state.get("serialized"), bytes)):
            raise pickle.UnpicklingError(f"{self.type_name}: unexpected pickled state {type(state).__name__}")
        self.serialized = state["serialized"]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProtoMessage) and (self.type_name, self.serialized) == (other.type_name, other.serialized)

    def text(self) -> str | None:
        """The message in protobuf text format, when diambra-engine is installed to parse it."""
        try:
            from diambra.engine import interface_pb2
        except ImportError:
            return None
        return str(getattr(interface_pb2, self.type_name).FromString(self.serialized))


_proto_types: dict[str, type[ProtoMessage]] = {}


def _proto_type(name: str) -> type[ProtoMessage]:
    if name not in _proto_types:
        _proto_types[name] = type(name, (ProtoMessage,), {"type_name": name})
    return _proto_types[name]


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals a `.diambra` file needs (module docs)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _NUMPY_GLOBALS:
            core = getattr(np, "_core", None) or np.core
            return np.ndarray if name == "ndarray" else np.dtype if name == "dtype" else getattr(core.multiarray, name)
        if module == _PROTO_MODULE and name.isidentifier():
            return _proto_type(name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a .diambra file (only numpy arrays "
                                     f"and DIAMBRA's settings message are)")


def read_file(path: str | os.PathLike) -> dict[str, Any]:
    """The episode dict of a `.diambra` file (`episode_summary`, `data`), loaded safely; an
    unreadable, corrupt or unsafe file raises `SourceError` naming it."""
    name = os.fspath(path)
    try:
        with bz2.open(name, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, ValueError) as e:
        raise SourceError(f"{name}: not a readable .diambra file (bz2): {e}") from e
    try:
        episode = RestrictedUnpickler(io.BytesIO(raw)).load()
    except Exception as e:  # noqa: BLE001 - any failure of a corrupt pickle: say which file
        raise SourceError(f"{name}: not a valid .diambra episode (pickle): {e}") from e
    if not (isinstance(episode, dict) and isinstance(episode.get("data"), list)
            and isinstance(episode.get("episode_summary"), dict)):
        raise SourceError(f"{name}: not a .diambra episode: expected a dict with 'episode_summary' and a 'data' list")
    if not episode["data"]:
        raise SourceError(f"{name}: the episode has no steps")
    for t, step in enumerate(episode["data"]):
        missing = {"obs", "action", "reward", "terminated", "truncated", "info"} - set(step if isinstance(step, dict) else ())
        if missing:
            raise SourceError(f"{name}: step {t} lacks {', '.join(sorted(missing))}")
    return episode


def _decode_frame(buffer: Any, name: str, t: int) -> np.ndarray:
    try:
        import cv2
    except ImportError as e:
        raise ImportError("importing DIAMBRA frames (JPEG) needs OpenCV: pip install opencv-python "
                          "(diambra-arena brings it)") from e
    frame = cv2.imdecode(np.frombuffer(np.asarray(buffer, dtype=np.uint8).tobytes(), dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if frame is None:
        raise SourceError(f"{name}: the frame of step {t} is not a decodable JPEG")
    return frame


def _frame_shape(settings: ProtoMessage | None) -> tuple[int, ...] | None:
    """(h, w, c) of the env's frames, from the settings message, when diambra-engine parses it."""
    if settings is None:
        return None
    try:
        from diambra.engine import interface_pb2
    except ImportError:
        return None
    fs = getattr(interface_pb2, settings.type_name).FromString(settings.serialized).frame_shape
    return (fs.h, fs.w, fs.c) if fs.h and fs.w and fs.c else None


def to_episode(path: str | os.PathLike, report: ImportReport, digest: str | None = None) -> SourceEpisode:
    """The file as a `SourceEpisode`: observations `obs/...` (frames decoded exactly as
    `DiambraDataLoader` decodes them, in the env's (h, w, c) shape), `action/...`, `reward`,
    `terminated`, `truncated`; infos; the summary and settings as metadata."""
    name = os.fspath(path)
    episode = read_file(name)
    summary, data = episode["episode_summary"], episode["data"]
    settings = summary.get("env_settings")
    settings = settings if isinstance(settings, ProtoMessage) else None
    shape = _frame_shape(settings)

    obs_rows = []
    for t, step in enumerate(data):
        obs = dict(step["obs"]) if isinstance(step["obs"], dict) else {"": step["obs"]}
        if "frame" in obs:
            frame = _decode_frame(obs["frame"], name, t)
            obs["frame"] = frame.reshape(shape) if shape is not None and frame.size == int(np.prod(shape)) else frame
        obs_rows.append(flatten(obs, "obs"))
    keys = list(obs_rows[0])
    if any(list(row) != keys for row in obs_rows):
        raise SourceError(f"{name}: observations do not all have the same keys")
    # DIAMBRA files hold the observation before each step, not the one after the last: the
    # final observation repeats the last recorded one (schema/import.md).
    observations = {k: stack([row[k] for row in obs_rows] + [obs_rows[-1][k]], f"{name}: {k}") for k in keys}
    report.note("the final observation (DIAMBRA files do not record it): observation T repeats observation T-1")

    action_rows = [flatten(step["action"], "action") for step in data]
    transitions = {k: stack([row[k] for row in action_rows], f"{name}: {k}") for k in action_rows[0]}
    transitions["reward"] = stack([float(step["reward"]) for step in data], f"{name}: reward").astype(np.float64)
    transitions["terminated"] = stack([bool(step["terminated"]) for step in data], f"{name}: terminated")
    transitions["truncated"] = stack([bool(step["truncated"]) for step in data], f"{name}: truncated")

    infos: list[dict[str, Any]] = [{}]  # the reset info is not recorded
    report.note("the reset info (DIAMBRA files do not record it)")
    dropped: set[str] = set()
    for step in data:
        info = dict(step["info"]) if isinstance(step["info"], dict) else {}
        step_settings = info.pop("settings", None)
        if isinstance(step_settings, ProtoMessage) and step_settings != settings:
            info["settings_pb"] = base64.b64encode(step_settings.serialized).decode()
        stored, bad = storable_info(info)
        dropped.update(bad)
        infos.append(stored)
    for key in sorted(dropped):
        report.note(f"info {key!r}: not a storable value")

    metadata: dict[str, Any] = {SOURCE_KEY: SOURCE, "import/final_observation": "repeated",
                                "diambra/summary_steps": int(summary.get("steps", len(data)))}
    if settings is not None:
        metadata["diambra/env_settings_pb"] = base64.b64encode(settings.serialized).decode()
        text = settings.text()
        if text is not None:
            metadata["diambra/env_settings"] = text
    game = _game_id(settings)
    user = summary.get("username")
    return SourceEpisode(
        item=os.path.basename(name), digest=digest or sha256_of(name), user=str(user) if user else "diambra",
        env=game or "diambra", observations=observations, transitions=transitions, infos=infos, metadata=metadata,
    )


def _game_id(settings: ProtoMessage | None) -> str | None:
    if settings is None:
        return None
    try:
        from diambra.engine import interface_pb2
    except ImportError:
        return None
    return getattr(interface_pb2, settings.type_name).FromString(settings.serialized).game_id or None


def import_files(store_path: str | os.PathLike, files: Sequence[str | os.PathLike]) -> ImportReport:
    """Imports `.diambra` files into the store at `store_path` (created when missing), one
    atomic commit per file; a file whose content already landed there is skipped."""
    missing = [os.fspath(f) for f in files if not os.path.isfile(f)]
    if missing:
        raise SourceError(f"no such file: {', '.join(missing)}")
    store = Store.create(store_path)
    report = ImportReport(SOURCE, store.path)
    done = landed(store, SOURCE)
    for f in files:
        digest = sha256_of(f)
        if digest in done:
            report.skipped.append((os.path.basename(f), done[digest]))
            continue
        episode = to_episode(f, report, digest)
        done[digest] = commit_episode(store, episode)
        report.imported.append((episode.item, done[digest]))
    return report
