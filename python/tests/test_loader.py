"""Training reads from Python: partition, batches, windows, resume, replay, P2 view, example."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

import trajstore
from trajstore.datasets import StepIndex, distributed_rank_and_world_size

FIELDS = [("obs", "f32", (3,), "observation", "raw"), ("action", "i64", (), "transition", "raw")]


def record(store, user, steps, seed, metadata=None, fields=FIELDS, extra=None):
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(steps + 1, 3)).astype(np.float32)
    r = store.begin_episode(user, "Test-v0", fields, seed=seed, metadata=metadata)
    r.reset({"obs": obs[0], **(extra(0) if extra else {})})
    for t in range(1, steps + 1):
        values = {"obs": obs[t], "action": t, "reward": float(t), "terminated": t == steps, "truncated": False}
        r.step({**values, **(extra(t) if extra else {})}, {"t": t})
    return r.commit(), obs


@pytest.fixture
def store(store_path):
    s = trajstore.Store.create(store_path)
    for i in range(12):
        record(s, f"user{i % 3}", steps=5 + 7 * i, seed=i)
    return s


def test_ranks_partition_disjointly_covering_all_episodes_balanced(store):
    shares = [trajstore.Loader(store, world_size=3, rank=r, seed=7) for r in range(3)]
    ids = [i for s in shares for i in s.episode_ids]
    assert sorted(ids) == [e.id for e in store.episodes()]
    steps = [s.steps for s in shares]
    longest = max(e.steps for e in store.episodes())
    assert max(steps) - min(steps) <= longest
    assert shares[0].imbalance == pytest.approx(max(steps) / min(steps))
    again = trajstore.Loader(store.path, world_size=3, rank=1, seed=7)
    assert again.episode_ids == shares[1].episode_ids, "recomputed identically"
    assert shares[1].next_epoch().episode_ids != shares[1].episode_ids or len(shares[1].episode_ids) < 2
    with pytest.raises(trajstore.TrajstoreError, match="rank"):
        trajstore.Loader(store, world_size=2, rank=2)


def test_batches_are_seeded_and_shuffle_serves_every_step_once(store):
    loader = trajstore.Loader(store, user="user1", seed=3)
    first = [b["step"].tolist() for b in loader.batches(["obs", "action"], 16)]
    second = [b["step"].tolist() for b in trajstore.Loader(store, user="user1", seed=3).batches(["obs", "action"], 16)]
    assert first == second
    seen = set()
    for b in loader.batches(["obs", "action"], 16, next=["obs"]):
        for e, t, a, o, n in zip(b["episode"], b["step"], b["action"], b["obs"], b["next/obs"]):
            ep = store.episode(int(e))
            assert a == ep["action"][t] and np.array_equal(o, ep["obs"][t]) and np.array_equal(n, ep["obs"][t + 1])
            seen.add((int(e), int(t)))
    assert len(seen) == loader.steps


def test_windows_and_frame_offsets(store):
    loader = trajstore.Loader(store, seed=1)
    for b in loader.batches(["obs"], 4, window=6, pad=True, order="sequential"):
        assert b["obs"].shape == (len(b["episode"]), 6, 3)
        for row_e, row_t, row_mask in zip(b["episode"], b["step"], b["mask"]):
            assert (row_e == row_e[0]).all(), "windows never cross episodes"
            steps = store.episode(int(row_e[0])).info.steps
            assert row_mask.tolist() == [t < steps for t in row_t]
    b = next(loader.batches(["obs"], 8, offsets={"obs": [-2, -1, 0]}, order="sequential"))
    ep = store.episode(int(b["episode"][0]))
    assert b["obs"].shape == (8, 3, 3)
    t = int(b["step"][0])
    want = [ep["obs"][max(t + k, 0)] for k in (-2, -1, 0)]
    assert np.array_equal(b["obs"][0], np.stack(want))
    assert b["valid/obs"][0].tolist() == [t - 2 >= 0, t - 1 >= 0, True]


def test_batch_arrays_are_writable_owned_by_the_caller_and_share_row_axes(store):
    loader = trajstore.Loader(store, seed=2)
    row_wise = ["episode", "step", "mask", "obs", "valid/obs", "action", "valid/action", "next/obs", "valid/next/obs"]
    for window, rows in [(None, (2,)), (1, (2, 1)), (3, (2, 3))]:
        b = next(loader.batches(["obs", "action"], 2, window=window, next=["obs"], order="sequential"))
        assert sorted(b) == sorted(row_wise)
        for key in row_wise:
            assert b[key].shape[: len(rows)] == rows, (window, key, b[key].shape)
            assert b[key].flags.writeable and b[key].flags.c_contiguous, (window, key)
        assert b["obs"].shape == (*rows, 3) and b["valid/obs"].shape == rows and b["action"].shape == rows
        assert b["mask"].dtype == np.bool_ and b["episode"].dtype == np.uint64 and b["step"].dtype == np.uint32
        ep = store.episode(int(b["episode"].flat[0]))
        first = b["obs"].reshape(-1, 3)[0].copy()
        b["obs"][...] = 0
        assert np.array_equal(ep["obs"][int(b["step"].flat[0])], first), "writing a batch never touches the store"
        other = next(loader.batches(["obs"], 2, window=window, order="sequential"))
        assert not np.shares_memory(other["obs"], b["obs"]), "each batch owns its arrays"
    stacked = next(loader.batches(["obs"], 2, window=1, offsets={"obs": [-1, 0]}))
    assert stacked["obs"].shape == (2, 1, 2, 3) and stacked["valid/obs"].shape == (2, 1, 2)


def test_bad_batch_arguments_are_input_errors(store):
    loader = trajstore.Loader(store)
    with pytest.raises(trajstore.InputError, match=r'order "random": expected sequential, shuffle or replacement'):
        loader.batches(["obs"], order="random")
    with pytest.raises(trajstore.InputError, match=r'edge "wrap": expected clamp or zero'):
        loader.batches(["obs"], edge="wrap")
    with pytest.raises(trajstore.InputError, match="total_cpus=2 and world_size=3 disagree"):
        trajstore.ImitationLearning(store, total_cpus=2, world_size=3)


def test_resumed_loader_reports_the_cursor_share(store):
    loader = trajstore.Loader(store, world_size=3, rank=2, seed=9, epoch=4)
    resumed = trajstore.Loader.resume(store, loader.cursor())
    assert resumed.selection == loader.selection
    assert (resumed.selection.rank, resumed.selection.world_size, resumed.selection.seed, resumed.selection.epoch) == (2, 3, 9, 4)
    assert resumed.episode_ids == loader.episode_ids
    assert resumed.next_epoch().selection.epoch == 5


def test_resume_mid_epoch_serves_exactly_the_rest(store):
    loader = trajstore.Loader(store, seed=5)
    all_rows = [b["step"].tolist() + b["episode"].tolist() for b in loader.batches(["action"], 10)]
    batches = loader.batches(["action"], 10)
    for _ in range(3):
        next(batches)
    position = batches.position
    resumed = trajstore.Loader.resume(store, loader.cursor()).batches(["action"], 10)
    resumed.seek(position)
    assert [b["step"].tolist() + b["episode"].tolist() for b in resumed] == all_rows[3:]


def test_imitation_learning_replays_exactly_what_was_recorded_then_ends(store):
    env = trajstore.ImitationLearning(store.path, total_cpus=2, rank=1, seed=0)
    assert env.episode_ids, "rank 1 has a share"
    for expected in env.episode_ids:
        obs, info = env.reset()
        ep = store.episode(expected)
        assert info["episode_id"] == expected and info["seat"] == "P1"
        assert np.array_equal(obs["obs"], ep["obs"][0])
        assert obs["obs"].flags.writeable and not np.shares_memory(obs["obs"], ep["obs"]), "replayed arrays are the caller's"
        for t in range(ep.info.steps):
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample() if env.action_space else 0)
            assert np.array_equal(obs["obs"], ep["obs"][t + 1])
            assert reward == ep["reward"][t] and info["action"] == ep["action"][t] and info["t"] == t + 1
            assert terminated == (t + 1 == ep.info.steps) and not truncated
        with pytest.raises(trajstore.InputError):
            env.step(0)
    with pytest.raises(trajstore.EndOfData):
        env.reset()
    assert env.exhausted
    cycling = trajstore.ImitationLearning(store.path, cycle=True)
    for _ in range(len(store.episodes()) + 2):
        cycling.reset()


def test_two_player_episodes_get_a_p2_view_unless_ignore_p2(store_path):
    s = trajstore.Store.create(store_path)
    fields = FIELDS + [("obs/p1_health", "i32", (), "observation", "raw"), ("obs/p2_health", "i32", (), "observation", "raw")]
    meta = {"agents": "P1,P2", "p2_swap": "obs/p1_health=obs/p2_health"}
    health = lambda t: {"obs/p1_health": np.int32(100 - t), "obs/p2_health": np.int32(50 + t)}  # noqa: E731
    record(s, "u", 3, 0, metadata=meta, fields=fields, extra=health)
    record(s, "u", 3, 1, metadata={**meta, "ignore_p2": True}, fields=fields, extra=health)
    env = trajstore.ImitationLearning(store_path)
    seats = []
    while True:
        try:
            obs, info = env.reset()
        except trajstore.EndOfData:
            break
        seats.append((info["episode_id"], info["seat"]))
        _, reward, *_ = env.step(None)
        if info["seat"] == "P2":
            assert (obs["obs/p1_health"], obs["obs/p2_health"]) == (50, 100)
            assert reward == -1.0
        else:
            assert (obs["obs/p1_health"], obs["obs/p2_health"]) == (100, 50)
            assert reward == 1.0
    assert sorted(seats) == [(1, "P1"), (1, "P2"), (2, "P1")]


def test_step_index_and_rank_from_torchrun_variables(store, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert distributed_rank_and_world_size() == (1, 2)
    index = StepIndex(trajstore.Loader(store, rank=1, world_size=2), ["obs", "action"], ["obs"])
    assert len(index) == trajstore.Loader(store, rank=1, world_size=2).steps
    item = index[len(index) - 1]
    ep = store.episode(item["episode"])
    assert item["step"] == ep.info.steps - 1 and np.array_equal(item["next/obs"], ep["obs"][-1])
    with pytest.raises(IndexError):
        index[len(index)]
    rows = index.rows([len(index) - 1, 0, 7])
    assert rows["obs"].shape == (3, 3) and rows["next/obs"].shape == (3, 3) and rows["action"].shape == (3,)
    for j, i in enumerate([len(index) - 1, 0, 7]):
        item = index[i]
        ep = store.episode(item["episode"])
        assert (rows["episode"][j], rows["step"][j]) == (item["episode"], item["step"])
        assert np.array_equal(rows["obs"][j], ep["obs"][item["step"]]) and rows["action"][j] == ep["action"][item["step"]]


def test_cartpole_behaviour_cloning_example_reaches_475(tmp_path):
    example = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "cartpole_bc.py")
    out = subprocess.run([sys.executable, example, "--store", str(tmp_path / "cp"), "--episodes", "16", "--epochs", "4"],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    mean = float(re.search(r"mean return ([0-9.]+) \(min", out).group(1))
    assert mean >= 475, out
    assert "expert-0" in out and "expert-1" in out and "verify: ok" in out


def test_dropped_batches_are_gathered_into_again_and_kept_ones_never_change(store):
    """A batch array the caller dropped gives its memory to a later batch (no fresh,
    zero-filled buffer per batch): every batch still holds exactly its own values, and one
    the caller keeps is never written again."""
    loader = trajstore.Loader(store, seed=5)
    expected = [{k: v.copy() for k, v in b.items()} for b in loader.batches(["obs"], 8)]
    batches = loader.batches(["obs"], 8)
    kept = next(batches)
    addresses = []
    for i, batch in enumerate(batches, start=1):
        for key, value in expected[i].items():
            assert np.array_equal(batch[key], value), (i, key)
        addresses.append(batch["obs"].__array_interface__["data"][0])
        del batch
    for key, value in expected[0].items():
        assert np.array_equal(kept[key], value), key
    assert kept["obs"].__array_interface__["data"][0] not in addresses
    assert len(addresses) == len(expected) - 1
