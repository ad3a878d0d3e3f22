"""skrl: a `skrl.memories.torch.Memory` backed by a store (skrl and torch are optional:
imported only here).

    memory = trajstore.skrl.StoreMemory("runs/dqn", num_envs=2, username="dqn")
    agent = DQN(models=..., memory=memory, ...)          # off-policy agents: DQN, DDQN, SAC, TD3, DDPG
    SequentialTrainer(env=env, agents=agent, cfg=...).train()
    memory.close()                                       # commits the episodes still running

Online, every transition skrl records (`add_samples`, called by an agent's
`record_transition`) lands in the store, one episode per env, ended on `terminated` (or
`truncated`, below) and committed whole. `sample()` serves batches from the committed
episodes through the store's loader, `sequence_length` windows included (each window inside
one episode). Observations are stored once per step (`T + 1` per episode);
`next_observations` are the store's observations at offset +1. Offline, open an existing
store with `record=False` and a selection (`user=`, `tags=`, `min_return=`, ...) and call the
agent's `update` in a loop: nothing is recorded, the selected episodes are sampled.

skrl's off-policy agents hand the memory `terminated` but not `truncated`. So an episode cut
by a time limit is recognised the way Gymnasium's vector envs make it visible: the env's next
observation is not the previous step's `next_observations`. A step is therefore written one
call late (when the next call shows whether its episode went on), and a step whose
`next_observations` is followed by a different observation ends its episode as truncated.
The filler step of Gymnasium 1.x's next-step autoreset (the final observation followed by
the reset observation, its action ignored) is recognised and not recorded. Pass
`truncated=` to `add_samples` yourself to skip the inference.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from .loader import Loader
from .store import EpisodeRecorder, Store

try:
    import torch
    from skrl.memories.torch import Memory
except ImportError as e:  # pragma: no cover - exercised only without the packages
    raise ImportError("trajstore.skrl needs skrl with torch: pip install skrl torch") from e

#: skrl tensor name -> store field. Observations (and states) are observation fields (`T + 1`
#: values); `next_<name>` are served from them at offset +1. Other names are transition fields.
_FIELDS = {"observations": "obs", "states": "state", "actions": "action", "rewards": "reward",
           "terminated": "terminated", "truncated": "truncated"}
_OBSERVATIONS = ("observations", "states")
#: Scalars per step in the store (skrl gives them a trailing axis of 1).
_SCALARS = ("rewards", "terminated", "truncated")

_DTYPES = {torch.float32: "f32", torch.float64: "f64", torch.float16: "f16", torch.int64: "i64", torch.int32: "i32",
           torch.int16: "i16", torch.int8: "i8", torch.uint8: "u8", torch.bool: "bool"}


class _EnvEpisode:
    """The episode one env is recording, and the step not yet written (see module doc)."""

    def __init__(self) -> None:
        self.recorder: EpisodeRecorder | None = None
        self.pending: dict[str, np.ndarray] | None = None  # a step's values, next obs included
        self.final_obs: np.ndarray | None = None  # the last observation of the episode that just ended


class StoreMemory(Memory):
    """A skrl memory whose transitions live in a trajstore store. See the module doc.

    `store`: a path (created when `record=True` and missing) or an open `Store`.
    `memory_size`: skrl's nominal capacity, reported by `len()` bounds nothing: the store keeps
    every episode; sampling draws from every committed episode the selection matches (by
    default those this memory recorded: `user=username`)."""

    def __init__(self, store: str | os.PathLike | Store, *, num_envs: int = 1, memory_size: int = 1,
                 device: str | torch.device | None = None, record: bool = True, username: str = "skrl", env_id: str = "skrl",
                 tags: Sequence[str] = (), metadata: dict[str, Any] | None = None, codec: str = "raw",
                 verify_reads: bool = True, **filters: Any):
        super().__init__(memory_size=memory_size, num_envs=num_envs, device=device)
        if isinstance(store, Store):
            self.store = store
        else:
            self.store = Store.create(store, verify_reads) if record else Store.open(store, read_only=True, verify_reads=verify_reads)
        self.record, self.username, self.env_id, self.codec = record, username, env_id, codec
        self.episode_tags, self.episode_metadata = list(tags), dict(metadata or {})
        self.filters = filters if filters or not record else {"user": username}
        #: skrl tensor name -> (per-env shape, torch dtype), as the agent declared them
        self.specs: dict[str, tuple[tuple[int, ...], torch.dtype]] = {}
        self._envs = [_EnvEpisode() for _ in range(num_envs)]
        self._committed: list[int] = []
        self._loader: Loader | None = None
        self._loader_commits = -1
        self._batches: dict[tuple, Any] = {}

    # -- declaring tensors: specs only, no buffers are allocated

    def create_tensor(self, name: str, *, size: Any, dtype: torch.dtype | None = None, keep_dimensions: bool = False) -> bool:
        if size is None:
            return False
        if keep_dimensions:
            shape = tuple(int(s) for s in size)
        else:
            from skrl.utils.spaces.torch import compute_space_size

            shape = (int(compute_space_size(size, occupied_size=True)),)
        dtype = dtype or torch.get_default_dtype()
        if dtype not in _DTYPES:
            raise ValueError(f"tensor {name!r}: dtype {dtype} has no trajstore dtype ({', '.join(map(str, _DTYPES))})")
        if name in self.specs:
            if self.specs[name] != (shape, dtype):
                raise ValueError(f"tensor {name!r} exists with shape {self.specs[name][0]} and dtype {self.specs[name][1]}, "
                                 f"not {shape} and {dtype}")
            return False
        self.specs[name] = (shape, dtype)
        return True

    def get_tensor_names(self) -> list[str]:
        return sorted(self.specs)

    def get_tensor_by_name(self, name: str) -> torch.Tensor:
        raise NotImplementedError("StoreMemory keeps no tensors: its transitions are in the store (use sample())")

    def set_tensor_by_name(self, name: str, tensor: torch.Tensor) -> None:
        raise NotImplementedError("StoreMemory's recorded transitions are immutable (on-policy agents that write "
                                  "returns or advantages back need skrl's RandomMemory)")

    def share_memory(self) -> None:
        pass

    def __len__(self) -> int:
        """Committed steps the selection holds."""
        return self._current_loader().steps if self._has_data() else 0

    # -- recording

    def _schema(self) -> list[tuple]:
        decls = []
        for name, (shape, dtype) in self.specs.items():
            if name.startswith("next_") and name[5:] in self.specs:
                continue  # served from the observations at offset +1
            field = _FIELDS.get(name, name)
            kind = "observation" if name in _OBSERVATIONS else "transition"
            # Rewards as RecordEpisodes records Gymnasium's (Python floats: f64), so demonstrations
            # and the agent's episodes share one schema; served in the dtype the agent declared.
            stored = "f64" if name == "rewards" and dtype.is_floating_point else _DTYPES[dtype]
            decls.append((field, stored, () if self._scalar(name) else shape, kind, self.codec if kind == "observation" else "raw"))
        for name, default in (("rewards", "f64"), ("terminated", "bool"), ("truncated", "bool")):
            if name not in self.specs:
                decls.append((_FIELDS[name], default, (), "transition", "raw"))
        return decls

    def _scalar(self, name: str) -> bool:
        """Whether the store keeps `name` as one value per step (skrl adds an axis of 1): rewards
        and flags, and a Discrete action (an integer of size 1), as `RecordEpisodes` records
        them, so a memory samples demonstrations recorded either way."""
        shape, dtype = self.specs.get(name, ((), None))
        discrete_action = name == "actions" and shape == (1,) and dtype is not None and not dtype.is_floating_point \
            and dtype != torch.bool
        return name in _SCALARS or discrete_action

    def add_samples(self, **tensors: Any) -> None:
        """Records one transition per env (tensors of shape `(num_envs, size)`); see the
        module doc for how episodes are split."""
        if not self.record:
            raise RuntimeError("StoreMemory(record=False) samples an existing store; it records nothing")
        if not tensors:
            raise ValueError("There are no samples. Provide samples as key-value arguments, where keys are the tensor names")
        arrays = {k: v.detach().cpu().numpy() for k, v in tensors.items() if v is not None and (k in self.specs or k == "truncated")}
        missing = [k for k in ("observations", "next_observations") if k not in arrays]
        if missing:
            raise ValueError(f"StoreMemory.add_samples needs {' and '.join(missing)}: observations are what it records")
        n = arrays["observations"].shape[0] if arrays["observations"].ndim > 1 else 1
        if n != self.num_envs:
            raise ValueError(f"StoreMemory records one transition per env: expected {self.num_envs} rows, got {n}")
        for i, env in enumerate(self._envs):
            self._add(env, {k: (v[i] if v.ndim > 1 or n > 1 else v) for k, v in arrays.items()})

    def _add(self, env: _EnvEpisode, row: dict[str, np.ndarray]) -> None:
        obs = row["observations"]
        if env.pending is not None:
            went_on = np.array_equal(env.pending["next_observations"], obs)
            self._write(env, env.pending, truncated=not went_on)
            env.pending = None
        elif env.recorder is None and env.final_obs is not None and np.array_equal(env.final_obs, obs):
            env.final_obs = None  # Gymnasium's next-step autoreset: the final obs, then the reset obs
            return
        env.final_obs = None
        if env.recorder is None:
            env.recorder = self.store.begin_episode(self.username, self.env_id, self._schema(), tags=self.episode_tags,
                                                    metadata=self.episode_metadata)
            env.recorder.reset(self._observation_values(row, ""))
        terminated = bool(np.asarray(row.get("terminated", False)).any())
        truncated = row.get("truncated")
        if terminated or truncated is not None:
            self._write(env, row, truncated=bool(np.asarray(truncated).any()) if truncated is not None else False)
        else:
            env.pending = row

    def _observation_values(self, row: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
        return {_FIELDS[n]: row[prefix + n] for n in _OBSERVATIONS if n in self.specs and prefix + n in row}

    def _write(self, env: _EnvEpisode, row: dict[str, np.ndarray], *, truncated: bool) -> None:
        """Writes one step; commits the episode when it ended."""
        assert env.recorder is not None
        values: dict[str, Any] = self._observation_values(row, "next_")
        for name, value in row.items():
            if name in _OBSERVATIONS or name.startswith("next_") or name == "truncated":
                continue
            values[_FIELDS.get(name, name)] = value.reshape(()) if self._scalar(name) else value
        terminated = bool(np.asarray(row.get("terminated", False)).any())
        values["terminated"], values["truncated"] = np.bool_(terminated), np.bool_(truncated and not terminated)
        values.setdefault("reward", np.float64(0))
        env.recorder.step(values)
        if terminated or truncated:
            self._committed.append(env.recorder.commit())
            env.recorder, env.final_obs = None, row["next_observations"]

    def close(self) -> list[int]:
        """Writes every env's last step and commits the episodes still running, as truncated
        (training stopped them); returns the ids of every episode this memory committed."""
        for env in self._envs:
            if env.pending is not None:
                self._write(env, env.pending, truncated=True)
                env.pending = None
            elif env.recorder is not None:
                if env.recorder.steps:
                    self._committed.append(env.recorder.commit())
                else:
                    env.recorder.discard()
                env.recorder = None
        return list(self._committed)

    @property
    def episode_ids(self) -> list[int]:
        """Ids of the episodes this memory committed, in commit order."""
        return list(self._committed)

    # -- sampling

    def _has_data(self) -> bool:
        return bool(self._committed) or not self.record

    def _current_loader(self) -> Loader:
        """A loader over every committed episode the selection holds; rebuilt after commits."""
        if self._loader is None or self._loader_commits != len(self._committed):
            self._loader, self._loader_commits, self._batches = Loader(self.store, **self.filters), len(self._committed), {}
        return self._loader

    def _fields(self, names: Sequence[str]) -> tuple[list[str], list[str]]:
        fields, nxt = [], []
        for name in names:
            if name not in self.specs:
                continue
            if name.startswith("next_") and name[5:] in _OBSERVATIONS:
                nxt.append(_FIELDS[name[5:]])
            elif _FIELDS.get(name, name) not in fields:
                fields.append(_FIELDS.get(name, name))
        return fields, sorted(set(nxt))

    def _key(self, name: str) -> str:
        if name.startswith("next_") and name[5:] in _OBSERVATIONS:
            return f"next/{_FIELDS[name[5:]]}"
        return _FIELDS.get(name, name)

    def _batch(self, names: Sequence[str], batch_size: int, sequence_length: int) -> dict[str, np.ndarray]:
        """The next batch of a shuffled pass over the committed steps (windows): a batch holds
        distinct units, like skrl's RandomMemory without replacement; a new pass starts when
        one ends or new episodes are committed."""
        loader = self._current_loader()
        if loader.steps == 0:
            raise ValueError(f"StoreMemory: no committed steps to sample yet (selection {self.filters}); "
                             "start updates after the first episodes end (e.g. the agent's learning_starts)")
        fields, nxt = self._fields(names)
        key = (tuple(fields), tuple(nxt), batch_size, sequence_length)
        for attempt in range(2):
            batches = self._batches.get(key)
            if batches is None:
                window = sequence_length if sequence_length > 1 else None
                batches = iter(loader.batches(fields, batch_size, order="shuffle", window=window, next=nxt))
                self._batches[key] = batches
            batch = next(batches, None)
            if batch is not None and (batch["mask"].all() or attempt):
                return batch
            self._batches.pop(key)  # the pass ended (or ended short): start the next one
        raise ValueError(f"StoreMemory: no window of {sequence_length} steps inside one episode to sample")

    def _tensor(self, name: str, batch: dict[str, np.ndarray]) -> torch.Tensor:
        """skrl's layout: `(rows, size)` (a window's rows consecutive), the declared dtype."""
        shape, dtype = self.specs[name]
        mask = batch["mask"].reshape(-1)
        rows = batch[self._key(name)].reshape(mask.size, -1)
        if not mask.all():
            rows = rows[mask]
        return torch.from_numpy(rows).reshape(-1, *shape).to(device=self.device, dtype=dtype)

    def sample(self, names: list[str], *, batch_size: int, mini_batches: int = 1, sequence_length: int = 1) -> list[list[torch.Tensor | None]]:
        """`batch_size` transitions (or windows of `sequence_length` steps, each inside one
        episode, rows `(batch_size * sequence_length, size)` as skrl lays them out), as tensors
        in the order of `names` (None for names no tensor was created for)."""
        batch = self._batch(names, batch_size, sequence_length)
        tensors = [self._tensor(n, batch) if n in self.specs else None for n in names]
        self.sampling_indexes = None  # the store's units, not indexes of skrl's buffers
        if mini_batches > 1:
            return [list(group) for group in zip(*[[None] * mini_batches if t is None else torch.tensor_split(t, mini_batches)
                                                   for t in tensors])]
        return [tensors]

    def sample_by_index(self, names: list[str], *, indexes: Any, mini_batches: int = 1) -> list[list[torch.Tensor | None]]:
        raise NotImplementedError("StoreMemory samples through the store's loader; it has no buffer indexes")

    def sample_all(self, names: list[str], *, mini_batches: int = 1, sequence_length: int = 1) -> list[list[torch.Tensor | None]]:
        """Every committed step of the selection, in serving order (on-policy agents need
        skrl's RandomMemory: their rollouts are rewritten in place)."""
        loader = self._current_loader()
        fields, nxt = self._fields(names)
        window = sequence_length if sequence_length > 1 else None
        batch = next(iter(loader.batches(fields, max(loader.steps, 1), order="sequential", window=window, next=nxt)))
        tensors = [self._tensor(n, batch) if n in self.specs else None for n in names]
        if mini_batches > 1:
            return [list(group) for group in zip(*[[None] * mini_batches if t is None else torch.tensor_split(t, mini_batches)
                                                   for t in tensors])]
        return [tensors]

    def save(self, directory: str = "", *, format: str = "pt") -> None:
        """Nothing to export: every committed transition already is in the store."""

    def load(self, path: str) -> None:
        raise NotImplementedError("StoreMemory reads its store; open another store to sample other data")
