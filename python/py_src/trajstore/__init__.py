"""trajstore: a transactional dataset store for reinforcement-learning trajectories.

Record with `RecordEpisodes(env, path, username=...)` (a Gymnasium wrapper), query with
`Store(path).episodes(user=...)`, read fields as numpy arrays (raw fields are zero-copy views
of the store's memory map), and train with `ImitationLearning` or `trajstore.torch`.
"""

from ._trajstore import (
    FORMAT_VERSION,
    CorruptionError,
    EndOfData,
    InputError,
    NotFoundError,
    PendingCommit,
    RecordError,
    StorageError,
    StoreOpenError,
    TrajstoreError,
)
from ._selection import Filters, Selection
from .loader import Batches, Loader, split_key
from ._stats import FieldStats, StoreStats
from .store import Episode, EpisodeInfo, EpisodeList, EpisodeRecorder, Store

__all__ = [
    "FORMAT_VERSION",
    "Batches",
    "ImitationLearning",
    "Loader",
    "split_key",
    "Selection",
    "Filters",
    "CorruptionError",
    "EndOfData",
    "Episode",
    "EpisodeInfo",
    "EpisodeList",
    "EpisodeRecorder",
    "FieldStats",
    "InputError",
    "NotFoundError",
    "PendingCommit",
    "RecordError",
    "RecordEpisodes",
    "StorageError",
    "Store",
    "StoreOpenError",
    "StoreStats",
    "TrajstoreError",
]


def __getattr__(name: str):
    # gymnasium is optional: the wrapper is imported on first use.
    if name == "RecordEpisodes":
        from .gym import RecordEpisodes

        return RecordEpisodes
    if name == "ImitationLearning":
        from .imitation import ImitationLearning

        return ImitationLearning
    raise AttributeError(f"module 'trajstore' has no attribute {name!r}")
