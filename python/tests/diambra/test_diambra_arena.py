"""DIAMBRA Arena 2.x from PyPI, on its own mocked engine (no Docker, no ROMs): recording with
its `RecordingSettings` and reading back through `DiambraDataLoader`'s interface."""

import unittest.mock

import numpy as np
import pytest

import trajstore

arena = pytest.importorskip("diambra.arena", reason="diambra-arena not installed (.ci/run installs it)")
from diambra.arena.utils.engine_mock import load_mocker  # noqa: E402

import trajstore.diambra  # noqa: E402


class _Patcher:
    """The `mocker` load_mocker expects (pytest-mock's), from unittest.mock."""

    def __init__(self):
        self.patches = []

    def patch(self, target, new):
        self.patches.append(unittest.mock.patch(target, new))
        self.patches[-1].start()


@pytest.fixture
def mocked_engine():
    patcher = _Patcher()
    load_mocker(patcher)
    yield
    for p in patcher.patches:
        p.stop()


def play(env, seed):
    obs, _ = env.reset(seed=seed)
    actions, steps = [], 0
    while True:
        action = env.action_space.sample()
        actions.append(action)
        obs, _, terminated, truncated, _ = env.step(action)
        steps += 1
        if terminated or truncated:
            return steps, actions


def test_arena_2_recording_settings_record_and_the_data_loader_reads_back(mocked_engine, store_path):
    settings = arena.EnvironmentSettings(step_ratio=6, frame_shape=(64, 64, 1))
    recording = arena.RecordingSettings(dataset_path=str(store_path), username="player1")
    env = trajstore.diambra.make("doapp", settings, episode_recording_settings=recording, log_level=40)
    env.action_space.seed(0)
    steps, actions = play(env, seed=3)
    env.close()

    (info,) = trajstore.Store(store_path).episodes(user="player1")
    assert info.steps == steps and info.seed == 3
    # The mock declares int16 health and returns int64: stored as declared, values exact.
    assert trajstore.Store(store_path).episode(info.id)["obs/P1/health"].dtype == np.int16

    loader = trajstore.diambra.DiambraDataLoader(str(store_path))
    assert loader.reset() == 0
    served = []
    while True:
        obs, action, reward, terminated, truncated, step_info = loader.step()
        served.append(action)
        assert obs["frame"].shape == (64, 64, 1) and set(obs["P1"]) == {"character", "health", "side", "wins"}
        if terminated or truncated:
            break
    assert len(served) == steps and all(np.array_equal(a, b) for a, b in zip(served, actions))
    assert loader.reset() == 1, "the second pass over the only episode is loop 1"
    with pytest.raises(trajstore.EndOfData):
        trajstore.diambra.DiambraDataLoader(str(store_path), user="nobody")


def test_record_episodes_takes_arena_settings_objects(mocked_engine, store_path):
    env = arena.make("doapp", arena.EnvironmentSettings(step_ratio=6, frame_shape=(32, 32, 1)), log_level=40)
    recording = arena.RecordingSettings(dataset_path=str(store_path), username="p2")
    env = trajstore.RecordEpisodes(env, traj_rec_settings=recording)
    play(env, seed=1)
    assert [e.user for e in trajstore.Store(store_path).episodes()] == ["p2"]
    with pytest.raises(TypeError, match="recording settings 5: expected a mapping or an object with any of dataset_path"):
        trajstore.RecordEpisodes(env, episode_recording_settings=5)
