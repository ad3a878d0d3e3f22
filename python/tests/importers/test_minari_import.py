"""`trajstore import minari`: datasets made here with minari's own `DataCollector` (HDF5 and
Arrow backends), compared value by value with `minari.load_dataset`; seeds, options, infos and
spaces kept; an unknown dataset version refused before anything is created; re-runs."""

import json
import os

import numpy as np
import pytest

import trajstore
from trajstore.cli import run as cli

minari = pytest.importorskip("minari", reason="minari not installed (.ci/run installs it)")
gym = pytest.importorskip("gymnasium")

from trajstore.importers import SourceError  # noqa: E402
from trajstore.importers.minari import import_dataset  # noqa: E402


class StepInfo(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Adds infos worth keeping: the step count and a 2-vector, at reset and every step."""

    def __init__(self, env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)

    def reset(self, **kwargs):
        self.t = 0
        obs, info = self.env.reset(**kwargs)
        return obs, {**info, "t": 0, "pos": np.array([0.0, 0.5])}

    def step(self, action):
        self.t += 1
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, {**info, "t": self.t, "pos": np.array([float(self.t), obs[0]])}


@pytest.fixture(params=["hdf5", "arrow"])
def dataset(request, tmp_path, monkeypatch):
    """A 4-episode CartPole dataset recorded by minari's DataCollector in one backend, with
    reset seeds, reset options and infos."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    env = minari.DataCollector(StepInfo(gym.make("CartPole-v1", max_episode_steps=30)), record_infos=True,
                               data_format=request.param)
    env.action_space.seed(1)
    for n in range(4):
        env.reset(seed=100 + n, options={"low": -0.02 * (n + 1), "high": 0.02 * (n + 1)})
        while True:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                break
    dataset_id = f"cartpole/test-{request.param}-v0"
    env.create_dataset(dataset_id=dataset_id, algorithm_name="random", author="trajstore tests", ref_min_score=0.0,
                       ref_max_score=1.0)
    env.close()
    return dataset_id, str(tmp_path / "minari" / "cartpole" / f"test-{request.param}-v0")


def test_import_matches_minari_load_dataset_value_by_value(dataset, tmp_path):
    dataset_id, path = dataset
    store_dir = tmp_path / "store"
    assert cli(["import", "minari", str(store_dir), path]) == 0
    theirs = minari.load_dataset(dataset_id)
    store = trajstore.Store(store_dir)
    infos = store.episodes()
    assert len(infos) == theirs.total_episodes == 4
    metadata = {m["id"]: m for m in theirs.storage.get_episode_metadata(range(4))}
    for info, episode in zip(infos, theirs.iterate_episodes()):
        ours = store.episode(info.id)
        assert info.metadata["minari/episode_id"] == episode.id
        assert info.steps == len(episode.rewards) and info.env == "CartPole-v1"
        assert np.array_equal(ours["obs"], episode.observations) and ours["obs"].dtype == episode.observations.dtype
        assert np.array_equal(ours["action"], episode.actions)
        assert np.array_equal(ours["reward"], episode.rewards) and ours["reward"].dtype == np.float64
        assert np.array_equal(ours["terminated"], episode.terminations)
        assert np.array_equal(ours["truncated"], episode.truncations)
        for t in range(info.steps + 1):
            assert ours.infos[t]["t"] == episode.infos["t"][t]
            assert ours.infos[t]["pos"] == episode.infos["pos"][t].tolist()
        assert info.seed == metadata[episode.id]["seed"] == 100 + episode.id
        options = metadata[episode.id]["options"]
        assert info.metadata["reset_options/low"] == options["low"] and info.metadata["reset_options/high"] == options["high"]
        # The spaces, as minari serializes them, round-trip to the dataset's own.
        from minari.serialization import deserialize_space

        assert deserialize_space(info.metadata["minari/observation_space"]) == theirs.observation_space
        assert deserialize_space(info.metadata["minari/action_space"]) == theirs.action_space
        assert ours.observation_space == theirs.observation_space and ours.action_space == theirs.action_space
        assert np.array_equal(ours.actions, episode.actions)
        assert info.metadata["minari/dataset_id"] == dataset_id and info.metadata["minari/algorithm_name"] == "random"


def test_a_rerun_skips_every_episode_that_landed(dataset, tmp_path):
    _, path = dataset
    first = import_dataset(tmp_path / "store", path)
    again = import_dataset(tmp_path / "store", path)
    assert len(first.imported) == 4 and again.imported == []
    assert [ep for _, ep in again.skipped] == [ep for _, ep in first.imported]
    assert len(trajstore.Store(tmp_path / "store").episodes()) == 4


def test_an_unknown_dataset_version_fails_before_anything_is_created(dataset, tmp_path, capsys):
    _, path = dataset
    meta_path = os.path.join(path, "data", "metadata.json")
    meta = json.load(open(meta_path))
    meta["minari_version"] = "9.9.9"
    json.dump(meta, open(meta_path, "w"))
    store_dir = tmp_path / "store"
    with pytest.raises(SourceError, match=r"dataset version '9\.9\.9' is not one minari .* reads"):
        import_dataset(store_dir, path)
    assert not store_dir.exists(), "nothing created"
    assert cli(["import", "minari", str(store_dir), path]) == 1
    assert "9.9.9" in capsys.readouterr().err and not store_dir.exists()
    assert cli(["import", "minari", str(store_dir), str(tmp_path / "nowhere")]) == 1
    assert not store_dir.exists()
