"""`RecordEpisodes`: a Gymnasium wrapper that streams every step into a store."""

from __future__ import annotations

import collections
import os
from typing import Any, Mapping, Sequence

import gymnasium

from . import _spaces
from ._trajstore import PendingCommit
from .store import EpisodeRecorder, Store

#: metadata key marking an episode whose P2 view a replay must skip (DIAMBRA's ignore_p2)
IGNORE_P2_KEY = "ignore_p2"
#: metadata prefix of the options an episode was reset with (`reset_options/difficulty`, ...)
RESET_OPTIONS_KEY = "reset_options"
#: the `reset(options=...)` key whose dict relabels episodes (`username`, `tags`, `metadata`);
#: the wrapper takes it out, the env never sees it
LABELS_OPTION = "trajstore"


def recording_settings(settings: Any) -> dict[str, Any]:
    """DIAMBRA recording settings as a dict: 1.x's `traj_rec_settings` mapping, or any object
    with such attributes (2.x's `RecordingSettings` dataclass: `dataset_path`, `username`)."""
    if settings is None:
        return {}
    if isinstance(settings, Mapping):
        return dict(settings)
    known = ("dataset_path", "file_path", "username", "ignore_p2")
    found = {k: getattr(settings, k) for k in known if getattr(settings, k, None) is not None}
    if not found:
        raise TypeError(f"recording settings {settings!r}: expected a mapping or an object with any of {', '.join(known)}")
    return found


class RecordEpisodes(gymnasium.Wrapper):
    """Records every episode of `env` into the store at `path` under `username`.

    Each episode is committed, durable and whole, when it terminates or is truncated. An
    episode cut short by `reset()` or `close()` is discarded, or committed (its outcome is
    then "interrupted") with `commit_interrupted=True`.

    With `background_commit=True` the env loop does not wait for the disk: an episode's
    commit runs while the next one plays, and `committed` gets its id once it returned (in
    episode order). `flush()` waits for every commit in flight; `close()` flushes. A commit
    that failed raises its error from the `step`, `reset`, `flush` or `close` that finds it;
    a process killed meanwhile may lose the episodes still in flight, never earlier ones.

    DIAMBRA users pass their settings as they are: Arena 2.x's `RecordingSettings(dataset_path,
    username)` object as `episode_recording_settings=` (or positionally as `path`), or 1.x's
    `traj_rec_settings` dict (`username`, `file_path`, `ignore_p2`); `trajstore.diambra.make`
    is `diambra.arena.make` recording here. Works inside `gymnasium.vector.AsyncVectorEnv` and from many
    processes at once: all of them can record into one store.

    `codec` is "raw" (zero-copy reads) or "lz4", for every observation field, or a dict of
    field name -> codec.

    Labels can change per episode: `set_labels(username=, tags=, metadata=)`, or
    `reset(options={"trajstore": {"username": ..., "tags": [...], "metadata": {...}}})` (that
    key is taken out of the options the env sees), label the episodes from the next reset on.
    Each episode records its reset seed and its other reset options (metadata
    `reset_options/<key>`).

    Two-player envs: declare the agents in `metadata` so a replay serves a P2 view
    (schema/replay.md), e.g. `metadata={"agents": "P1,P2", "p2_swap": "obs/P1=obs/P2,action/0=action/1"}`;
    `ignore_p2=True` marks episodes whose P2 view must be skipped.
    """

    def __init__(
        self,
        env: gymnasium.Env,
        path: str | os.PathLike | Store | None = None,
        username: str | None = None,
        ignore_p2: bool = False,
        *,
        env_id: str | None = None,
        codec: str | Mapping[str, str] = "raw",
        tags: Sequence[str] = (),
        metadata: Mapping[str, Any] | None = None,
        commit_interrupted: bool = False,
        background_commit: bool = False,
        traj_rec_settings: Any = None,
        file_path: str | os.PathLike | None = None,
        episode_recording_settings: Any = None,
    ):
        super().__init__(env)
        if path is not None and not isinstance(path, (str, os.PathLike, Store)):
            path, episode_recording_settings = None, path  # a settings object given positionally
        settings = {**recording_settings(traj_rec_settings), **recording_settings(episode_recording_settings)}
        username = username or settings.get("username")
        path = path or file_path or settings.get("dataset_path") or settings.get("file_path")
        ignore_p2 = bool(settings.get("ignore_p2", ignore_p2))
        if path is None:
            raise TypeError("RecordEpisodes needs a store path (path=, file_path=, a RecordingSettings' dataset_path or "
                            "traj_rec_settings['file_path'])")
        if not username:
            raise TypeError("RecordEpisodes needs a username (username=, a RecordingSettings' username or "
                            "traj_rec_settings['username'])")
        self.store = path if isinstance(path, Store) else Store.create(path)
        self.username = username
        self.env_id = env_id or (env.spec.id if env.spec is not None else type(env.unwrapped).__name__)
        self.commit_interrupted = commit_interrupted
        self.tags = list(tags)
        self._obs_space = _spaces.space_to_json(env.observation_space)
        self._act_space = _spaces.space_to_json(env.action_space)

        def codec_of(name: str) -> str:
            return codec.get(name, "raw") if isinstance(codec, Mapping) else codec

        self._fields = [(n, d, s, "observation", codec_of(n)) for n, d, s in _spaces.leaves(self._obs_space, "obs")]
        self._fields += [(n, d, s, "transition", "raw") for n, d, s in _spaces.leaves(self._act_space, "action")]
        self._fields += [("reward", "f64", (), "transition", "raw")]
        self._flat_obs = _spaces.flattener(self._obs_space)
        self._flat_act = _spaces.flattener(self._act_space)
        self._episode_metadata = {**dict(metadata or {}), IGNORE_P2_KEY: ignore_p2}
        # The spaces describe the fields, not an episode: stored once per schema in the index.
        self._schema_metadata = {
            _spaces.OBSERVATION_SPACE_KEY: _spaces.dumps(self._obs_space),
            _spaces.ACTION_SPACE_KEY: _spaces.dumps(self._act_space),
        }
        # The core checks the fields and labels (a bad p2_swap included) when an episode
        # begins: begin one now, so a mistake fails here, not after episodes were played.
        probe = self.store.begin_episode(self.username, self.env_id, self._fields, tags=self.tags, metadata=self._episode_metadata,
                                         schema_metadata=self._schema_metadata)
        stored = [f[0] for f in probe.fields]
        probe.discard()
        # `step` hands values over in this order: the declared fields, then the two flags
        # the core appends (schema.rs, `SchemaBuilder::build`).
        assert stored == [f[0] for f in self._fields] + ["terminated", "truncated"], stored
        self._recorder: EpisodeRecorder | None = None
        #: ids of the episodes this wrapper committed, in order
        self.committed: list[int] = []
        self.background_commit = background_commit
        self._in_flight: collections.deque[PendingCommit] = collections.deque()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._finish_interrupted()
        self._collect(wait=False)
        options = dict(options) if options is not None else None
        if options is not None and LABELS_OPTION in options:
            self.set_labels(**options.pop(LABELS_OPTION))
        obs, info = self.env.reset(seed=seed, options=options)
        metadata = {**self._episode_metadata, RESET_OPTIONS_KEY: options} if options else self._episode_metadata
        self._recorder = self.store.begin_episode(self.username, self.env_id, self._fields, seed=seed, tags=self.tags, metadata=metadata,
                                                  schema_metadata=self._schema_metadata)
        self._recorder.reset(_spaces.flatten(self._obs_space, obs, "obs"), info)
        return obs, info

    def set_labels(self, username: str | None = None, tags: Sequence[str] | None = None,
                   metadata: Mapping[str, Any] | None = None) -> None:
        """Labels the episodes that start from the next `reset()` on: a new `username`, `tags`
        (replacing the current ones) or `metadata` (merged into the current keys)."""
        if username is not None:
            if not username:
                raise TypeError("set_labels: username must not be empty")
            self.username = username
        if tags is not None:
            self.tags = [tags] if isinstance(tags, str) else list(tags)
        if metadata is not None:
            merged = {**self._episode_metadata, **dict(metadata)}
            # Checked by the core now, as at construction: not after the next episode was played.
            self.store.begin_episode(self.username, self.env_id, self._fields, tags=self.tags, metadata=merged).discard()
            self._episode_metadata = merged

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self._recorder is not None:
            # One native call: the values in schema order (observation leaves, action leaves,
            # reward, then the terminated and truncated fields the core appends), converted and
            # checked by the core.
            self._recorder.step_in_order((*self._flat_obs(obs), *self._flat_act(action), reward, terminated, truncated), info)
            if terminated or truncated:
                recorder, self._recorder = self._recorder, None
                self._commit(recorder)
        return obs, reward, terminated, truncated, info

    def _commit(self, recorder: EpisodeRecorder) -> None:
        if not self.background_commit:
            self.committed.append(recorder.commit())
            return
        self._in_flight.append(recorder.commit_in_background())
        self._collect(wait=False)

    def _collect(self, wait: bool) -> None:
        """Moves the ids of returned background commits to `committed`, in episode order
        (with `wait`, of every commit in flight); raises the first failure once the others
        are collected."""
        failure: BaseException | None = None
        while self._in_flight and (wait or self._in_flight[0].done):
            pending = self._in_flight.popleft()
            try:
                self.committed.append(pending.wait())
            except Exception as e:  # noqa: BLE001 - raised below, after the rest are collected
                failure = failure or e
        if failure is not None:
            raise failure

    def flush(self) -> None:
        """Waits until every episode handed to a background commit is durable (its id is then
        in `committed`); raises the first commit that failed."""
        self._collect(wait=True)

    def _finish_interrupted(self) -> None:
        recorder, self._recorder = self._recorder, None
        if recorder is None:
            return
        if self.commit_interrupted and recorder.steps > 0:
            self._commit(recorder)
        else:
            recorder.discard()

    def close(self):
        try:
            self._finish_interrupted()
            self.flush()
        finally:
            super().close()
