"""`trajstore import diambra`: real `.diambra` files written by DIAMBRA Arena's own
`EpisodeRecorder` (its mocked engine: no Docker, no ROMs), compared value by value with
DIAMBRA's own `DiambraDataLoader` on the same files; malicious and corrupt files; re-runs."""

import bz2
import glob
import os
import pickle
import threading
import unittest.mock

import numpy as np
import pytest

import trajstore
from trajstore.cli import run as cli

arena = pytest.importorskip("diambra.arena", reason="diambra-arena not installed (.ci/run installs it)")
from diambra.arena.utils.diambra_data_loader import DiambraDataLoader  # noqa: E402
from diambra.arena.utils.engine_mock import load_mocker  # noqa: E402

from trajstore.importers import SourceError  # noqa: E402
from trajstore.importers.diambra import import_files, read_file  # noqa: E402


class _Patcher:
    def __init__(self):
        self.patches = []

    def patch(self, target, new):
        self.patches.append(unittest.mock.patch(target, new))
        self.patches[-1].start()


def record_files(out_dir, episodes, username="player1", frame_shape=(64, 64, 1)):
    """`episodes` .diambra files recorded by Arena's own EpisodeRecorder, renamed ep-N (Arena
    names them by the second, so two episodes in one second would share a name)."""
    patcher = _Patcher()
    load_mocker(patcher)
    try:
        settings = arena.EnvironmentSettings(step_ratio=6, frame_shape=frame_shape)
        recording = arena.RecordingSettings(dataset_path=str(out_dir), username=username)
        env = arena.make("doapp", settings, episode_recording_settings=recording, log_level=40)
        env.action_space.seed(0)
        paths = []
        for n in range(episodes):
            env.reset(seed=n)
            while True:
                _, _, terminated, truncated, _ = env.step(env.action_space.sample())
                if terminated or truncated:
                    break
            for t in threading.enumerate():  # the recorder's pickle writer thread
                if t is not threading.current_thread() and not t.daemon:
                    t.join()
            newest = max(glob.glob(os.path.join(out_dir, "*.diambra")), key=os.path.getmtime)
            paths.append(os.path.join(out_dir, f"ep-{n}.diambra"))
            os.rename(newest, paths[-1])
        env.close()
        return paths
    finally:
        for p in patcher.patches:
            p.stop()


@pytest.fixture(scope="module")
def diambra_files(tmp_path_factory):
    out = tmp_path_factory.mktemp("diambra")
    return record_files(out, 2)


def served_by_diambra(path):
    """Every step of one file as DIAMBRA's own DiambraDataLoader serves it."""
    single = os.path.join(os.path.dirname(path), "single-" + os.path.basename(path))
    os.makedirs(single, exist_ok=True)
    link = os.path.join(single, os.path.basename(path))
    if not os.path.exists(link):
        os.symlink(path, link)
    loader = DiambraDataLoader(single, log_level=40)
    loader.reset()
    return [loader.step() for _ in range(len(loader.episode_data))]


def flat(tree, prefix="obs"):
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            out.update(flat(v, f"{prefix}/{k}"))
        return out
    return {prefix: tree}


def test_import_matches_diambras_own_reader_value_by_value(diambra_files, tmp_path):
    store_dir = tmp_path / "store"
    assert cli(["import", "diambra", str(store_dir), *diambra_files]) == 0
    store = trajstore.Store(store_dir)
    infos = store.episodes()
    assert [i.metadata["import/item"] for i in infos] == ["ep-0.diambra", "ep-1.diambra"]
    for path, info in zip(diambra_files, infos):
        theirs = served_by_diambra(path)
        episode = store.episode(info.id)
        assert info.user == "player1" and info.env == "doapp" and info.steps == len(theirs)
        assert info.metadata["import/source"] == "diambra" and len(info.metadata["import/sha256"]) == 64
        assert "game_id: \"doapp\"" in info.metadata["diambra/env_settings"]
        for t, (obs, action, reward, terminated, truncated, step_info) in enumerate(theirs):
            for name, value in flat(obs).items():
                ours = episode[name][t]
                value = np.asarray(value)
                assert np.array_equal(ours, value.reshape(ours.shape)), (name, t)
                assert ours.size == value.size
            assert np.array_equal(episode["action"][t], action)
            assert episode["reward"][t] == reward and episode["reward"].dtype == np.float64
            assert bool(episode["terminated"][t]) == terminated and bool(episode["truncated"][t]) == truncated
            # Infos: the step's info belongs to the observation after it (Gymnasium's pairing).
            expected = {k: v for k, v in step_info.items() if k != "settings"}
            assert episode.infos[t + 1] == expected
        assert episode["obs/frame"].shape == (info.steps + 1, 64, 64, 1), "the env's (h, w, c) frames"
        assert np.array_equal(episode["obs/P1/health"][-1], episode["obs/P1/health"][-2]), "final observation repeated"
        assert info.metadata["import/final_observation"] == "repeated"


def test_a_rerun_skips_what_landed_and_reports_what_was_not_carried_over(diambra_files, tmp_path, capsys):
    store_dir = tmp_path / "store"
    first = import_files(store_dir, diambra_files[:1])
    assert [item for item, _ in first.imported] == ["ep-0.diambra"]
    assert any("final observation" in what for what in first.not_carried)
    assert any("reset info" in what for what in first.not_carried)
    again = import_files(store_dir, diambra_files)
    assert again.skipped == [("ep-0.diambra", first.imported[0][1])]
    assert [item for item, _ in again.imported] == ["ep-1.diambra"]
    assert len(trajstore.Store(store_dir).episodes()) == 2
    capsys.readouterr()
    assert cli(["import", "diambra", str(store_dir), *diambra_files, "--json"]) == 0
    import json
    report = json.loads(capsys.readouterr().out)
    assert report["imported"] == [] and len(report["skipped"]) == 2


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_malicious_pickle_fails_naming_the_file_and_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.diambra"
    with bz2.open(evil, "wb") as f:
        pickle.dump({"episode_summary": {}, "data": [Exploit()]}, f)
    with pytest.raises(SourceError, match=r"evil\.diambra.*(posix|os)\.system is not allowed"):
        read_file(evil)
    assert not (tmp_path / "pwned").exists(), "nothing of the file ran"
    store_dir = tmp_path / "store"
    assert cli(["import", "diambra", str(store_dir), str(evil)]) == 1
    assert not (tmp_path / "pwned").exists()
    assert trajstore.Store(store_dir).episodes() == [], "nothing half-written"


def test_a_corrupt_file_is_a_clear_error_naming_it_and_leaves_nothing(diambra_files, tmp_path, capsys):
    good = open(diambra_files[0], "rb").read()
    truncated = tmp_path / "truncated.diambra"
    truncated.write_bytes(good[: len(good) // 2])
    garbage = tmp_path / "garbage.diambra"
    garbage.write_bytes(b"not bz2 at all")
    not_episode = tmp_path / "list.diambra"
    with bz2.open(not_episode, "wb") as f:
        pickle.dump([1, 2, 3], f)
    for bad in (truncated, garbage, not_episode):
        with pytest.raises(SourceError, match=bad.name):
            read_file(bad)
        store_dir = tmp_path / f"store-{bad.stem}"
        capsys.readouterr()
        assert cli(["import", "diambra", str(store_dir), diambra_files[0], str(bad)]) == 1
        assert bad.name in capsys.readouterr().err
        # The good file before it landed whole; nothing of the bad one is visible.
        (only,) = trajstore.Store(store_dir).episodes()
        assert only.metadata["import/item"] == "ep-0.diambra"
    assert cli(["import", "diambra", str(tmp_path / "s"), str(tmp_path / "missing.diambra")]) == 1
    assert not (tmp_path / "s").exists(), "a missing file fails before the store is created"
