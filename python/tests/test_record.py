"""Recording through RecordEpisodes: every space type round-trips, vector envs lose nothing."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

import trajstore


class SpaceEnv(gym.Env):
    """Samples observations from any space; ends after `length` steps."""

    def __init__(self, observation_space, action_space, length=5):
        self.observation_space = observation_space
        self.action_space = action_space
        self.length = length
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.observation_space.seed(seed)
        self.t = 0
        return self.observation_space.sample(), {"t": 0}

    def step(self, action):
        assert self.action_space.contains(action)
        self.t += 1
        return self.observation_space.sample(), float(self.t), self.t == self.length, False, {"t": self.t, "nested": {"x": 1.5}}


SPACES = {
    "box": spaces.Box(-1.0, 1.0, shape=(3, 2), dtype=np.float32),
    "box_u8_image": spaces.Box(0, 255, shape=(8, 8, 3), dtype=np.uint8),
    "discrete": spaces.Discrete(5, start=2),
    "multidiscrete": spaces.MultiDiscrete([3, 4, 5]),
    "multibinary": spaces.MultiBinary(6),
    "dict": spaces.Dict({"frame": spaces.Box(0, 255, (4, 4, 1), np.uint8), "ram": spaces.Dict({"health": spaces.Box(0, 100, (2,), np.int32)})}),
    "tuple": spaces.Tuple((spaces.Discrete(3), spaces.Box(-2, 2, (2,), np.float64))),
}


def leaves_equal(a, b):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(leaves_equal(a[k], b[k]) for k in a)
    if isinstance(a, tuple):
        return len(a) == len(b) and all(leaves_equal(x, y) for x, y in zip(a, b))
    return np.array_equal(np.asarray(a), np.asarray(b))


def stack(samples):
    first = samples[0]
    if isinstance(first, dict):
        return {k: stack([s[k] for s in samples]) for k in first}
    if isinstance(first, tuple):
        return tuple(stack([s[i] for s in samples]) for i in range(len(first)))
    return np.stack([np.asarray(s) for s in samples])


@pytest.mark.parametrize("obs_name", list(SPACES))
@pytest.mark.parametrize("act_name", ["discrete", "multidiscrete", "box", "tuple"])
def test_every_space_round_trips(store_path, obs_name, act_name):
    env = SpaceEnv(SPACES[obs_name], SPACES[act_name])
    rec = trajstore.RecordEpisodes(env, store_path, username="u", env_id="Space-v0")
    obs_seen, act_seen = [], []
    obs, _ = rec.reset(seed=3)
    obs_seen.append(obs)
    env.action_space.seed(1)
    done = False
    while not done:
        action = env.action_space.sample()
        act_seen.append(action)
        obs, _, term, trunc, _ = rec.step(action)
        obs_seen.append(obs)
        done = term or trunc
    rec.close()
    store = trajstore.Store.create(store_path)
    (info,) = store.episodes(user="u")
    assert info.steps == 5 and info.outcome == "terminated" and info.total_return == 15.0
    episode = store.episode(info.id)
    assert episode.observation_space == SPACES[obs_name]
    assert episode.action_space == SPACES[act_name]
    assert leaves_equal(episode.observations, stack(obs_seen))
    assert leaves_equal(episode.actions, stack(act_seen))
    assert episode.infos[0] == {"t": 0}
    assert episode.infos[2] == {"t": 2, "nested/x": 1.5}


def test_interrupted_episodes_are_discarded_or_committed_when_asked(store_path):
    env = SpaceEnv(SPACES["box"], SPACES["discrete"], length=100)
    rec = trajstore.RecordEpisodes(env, store_path, username="u")
    rec.reset(seed=0)
    rec.step(2)
    rec.reset(seed=1)  # cuts the first episode short: discarded by default
    rec.step(3)
    rec.close()
    assert trajstore.Store.create(store_path).episodes() == []
    keep = trajstore.RecordEpisodes(env, store_path, username="u", commit_interrupted=True)
    keep.reset(seed=0)
    keep.step(2)
    keep.step(2)
    keep.close()
    (info,) = trajstore.Store.create(store_path).episodes()
    assert (info.steps, info.outcome) == (2, "interrupted")


def test_diambra_settings_are_accepted(store_path):
    settings = {"username": "diambra-user", "file_path": str(store_path), "ignore_p2": True}
    rec = trajstore.RecordEpisodes(SpaceEnv(SPACES["dict"], SPACES["multidiscrete"]), traj_rec_settings=settings)
    rec.reset(seed=0)
    for _ in range(5):
        rec.step(rec.action_space.sample())
    (info,) = trajstore.Store.create(store_path).episodes(user="diambra-user")
    assert info.metadata["ignore_p2"] is True


def make_cartpole(path, username):
    def thunk():
        return trajstore.RecordEpisodes(gym.make("CartPole-v1"), path, username=username)

    return thunk


def test_async_vector_env_with_4_subprocesses_loses_nothing(store_path):
    trajstore.Store.create(store_path)
    envs = gym.vector.AsyncVectorEnv([make_cartpole(str(store_path), f"worker{i % 2}") for i in range(4)])
    envs.reset(seed=0)
    finished = 0
    steps = 0
    while finished < 12:
        _, _, term, trunc, _ = envs.step(envs.action_space.sample())
        finished += int(np.sum(term | trunc))
        steps += 1
    envs.close()  # interrupted episodes are discarded
    store = trajstore.Store.create(store_path)
    episodes = store.episodes()
    assert len(episodes) == finished
    assert {e.user for e in episodes} == {"worker0", "worker1"}
    assert len({e.id for e in episodes}) == finished
    for e in episodes:
        ep = store.episode(e.id)
        assert ep["obs"].shape == (e.steps + 1, 4)
        assert ep.rewards.sum() == e.total_return == e.steps
    assert store.verify()["ok"]


def test_values_of_another_dtype_are_cast_when_exact_and_refused_naming_the_value_when_not(store_path):
    store = trajstore.Store.create(store_path)
    fields = [("obs/health", "i16", (2,), "observation", "raw"), ("obs/pos", "f32", (), "observation", "raw"),
              ("action", "u8", (), "transition", "raw")]
    r = store.begin_episode("u", "Cast-v0", fields)
    r.reset({"obs/health": np.array([100, 7], dtype=np.int64), "obs/pos": np.float64(0.5)})
    r.step({"obs/health": np.array([99, 7], dtype=np.int64), "obs/pos": np.float64(0.25), "action": np.int64(3),
            "reward": np.float64(1.0), "terminated": np.bool_(True), "truncated": False})
    episode = store.episode(r.commit())
    assert episode["obs/health"].dtype == np.int16 and episode["obs/health"].tolist() == [[100, 7], [99, 7]]
    assert episode["obs/pos"].tolist() == [0.5, 0.25] and episode["action"].tolist() == [3]

    r = store.begin_episode("u", "Cast-v0", fields)
    with pytest.raises(trajstore.InputError, match=r'field "obs/health": declared dtype i16 \(int16\), given int64: value 70000 at index \(1,\)'):
        r.reset({"obs/health": np.array([1, 70000]), "obs/pos": np.float32(0)})
    with pytest.raises(trajstore.InputError, match=r'field "obs/pos": declared dtype f32 \(float32\), given float64: value 0.1 is not'):
        r.reset({"obs/health": np.array([1, 2], dtype=np.int16), "obs/pos": np.float64(0.1)})
    with pytest.raises(trajstore.InputError, match=r'field "action": declared dtype u8 \(uint8\), given int64: value -1'):
        r.reset({"obs/health": np.array([1, 2], dtype=np.int16), "obs/pos": np.float32(0)})
        r.step({"obs/health": np.array([1, 2], dtype=np.int16), "obs/pos": np.float32(0), "action": np.int64(-1),
                "reward": 0.0, "terminated": False, "truncated": False})
    r.discard()
    assert len(store.episodes()) == 1, "a refused value records nothing"


class OptionsEnv(SpaceEnv):
    """Refuses reset options it does not know, as many envs do."""

    def reset(self, *, seed=None, options=None):
        assert set(options or {}) <= {"difficulty"}, f"the env was given {options}"
        return super().reset(seed=seed)


def test_labels_change_per_episode_and_reset_seeds_and_options_are_recorded(store_path):
    env = trajstore.RecordEpisodes(OptionsEnv(spaces.Discrete(3), spaces.Discrete(2), length=2), store_path, username="alice",
                                   tags=["warmup"], metadata={"level": 1})

    def episode(**reset):
        env.reset(**reset)
        while not env.step(0)[2]:
            pass

    episode(seed=7)
    env.set_labels(username="bob", tags=["expert"], metadata={"level": 2})
    episode(seed=8, options={"difficulty": 3})
    episode(options={"trajstore": {"username": "carol", "tags": "novice", "metadata": {"coach": "dan"}}, "difficulty": 1})
    first, second, third = trajstore.Store(store_path).episodes()
    assert (first.user, first.tags, first.seed, first.metadata["level"]) == ("alice", ["warmup"], 7, 1)
    assert "reset_options/difficulty" not in first.metadata
    assert (second.user, second.tags, second.seed, second.metadata["level"]) == ("bob", ["expert"], 8, 2)
    assert second.metadata["reset_options/difficulty"] == 3
    assert (third.user, third.tags, third.seed) == ("carol", ["novice"], None)
    assert (third.metadata["coach"], third.metadata["level"], third.metadata["reset_options/difficulty"]) == ("dan", 2, 1)
    assert not any(k.startswith("reset_options/trajstore") for k in third.metadata)
    with pytest.raises(TypeError, match="username must not be empty"):
        env.set_labels(username="")


def test_p2_swap_of_subtrees_is_checked_when_the_recorder_is_built(store_path):
    player = spaces.Dict({"health": spaces.Box(0, 100, (1,), np.int16), "side": spaces.Discrete(2)})
    obs_space = spaces.Dict({"P1": player, "P2": player, "frame": spaces.Box(0, 255, (4, 4, 1), np.uint8)})
    env = SpaceEnv(obs_space, spaces.Tuple((spaces.Discrete(3), spaces.Discrete(3))), length=2)
    with pytest.raises(trajstore.InputError, match=r'"p2_swap" names "obs/P3", which is neither a field nor a subtree'):
        trajstore.RecordEpisodes(env, store_path, username="u", metadata={"agents": "P1,P2", "p2_swap": "obs/P1=obs/P3"})
    recorder = trajstore.RecordEpisodes(env, store_path, username="u",
                                        metadata={"agents": "P1,P2", "p2_swap": "obs/P1=obs/P2,action/0=action/1"})
    with pytest.raises(trajstore.InputError, match="differ in dtype, shape or kind"):
        recorder.set_labels(metadata={"p2_swap": "obs/P1/health=obs/frame"})
    recorder.reset(seed=0)
    while not recorder.step((0, 2))[2]:
        pass
    replay = trajstore.ImitationLearning(store_path)
    seats = []
    for _ in range(2):
        obs, info = replay.reset()
        seats.append((info["seat"], obs["P1"]["health"].tolist(), obs["P2"]["health"].tolist()))
    assert seats[0][0] == "P1" and seats[1][0] == "P2"
    assert seats[1][1:] == (seats[0][2], seats[0][1]), "the P2 view swaps the whole subtrees"


@pytest.mark.parametrize("name", ["dict_action", "tuple_action"])
def test_structured_actions_replay_in_the_spaces_own_structure(store_path, name):
    action_space = {
        "dict_action": spaces.Dict({"move": spaces.Discrete(9), "attack": spaces.MultiBinary(4)}),
        "tuple_action": spaces.Tuple((spaces.Discrete(3), spaces.Box(-1, 1, (2,), np.float32))),
    }[name]
    action_space.seed(1)
    env = trajstore.RecordEpisodes(SpaceEnv(spaces.Discrete(4), action_space, length=3), store_path, username="u")
    env.reset(seed=0)
    played = [action_space.sample() for _ in range(3)]
    for action in played:
        env.step(action)
    replay = trajstore.ImitationLearning(store_path)
    replay.reset()
    for action in played:
        recorded = replay.step(None)[4]["action"]
        assert type(recorded) is type(action)
        if isinstance(action, dict):
            assert recorded.keys() == action.keys() and all(np.array_equal(recorded[k], action[k]) for k in action)
        else:
            assert all(np.array_equal(r, a) for r, a in zip(recorded, action))


def test_the_wrapper_keeps_the_envs_own_gymnasium_metadata(store_path):
    inner = SpaceEnv(spaces.Discrete(2), spaces.Discrete(2))
    inner.metadata = {"render_modes": ["rgb_array"], "render_fps": 30}
    env = trajstore.RecordEpisodes(inner, store_path, username="u", metadata={"level": 3})
    assert env.metadata == inner.metadata, "episode labels must not shadow gymnasium's env.metadata"


def test_spaces_are_stored_once_per_schema_and_per_episode_spaces_are_still_honoured(store_path):
    from trajstore import _spaces

    obs_space = SPACES["dict"]
    rec = trajstore.RecordEpisodes(SpaceEnv(obs_space, SPACES["tuple"]), store_path, username="u", env_id="Space-v0")
    for seed in range(3):
        rec.reset(seed=seed)
        done = False
        while not done:
            _, _, term, trunc, _ = rec.step(rec.action_space.sample())
            done = term or trunc
    # Same fields, other bounds: the schema is shared, so these spaces stay with their episodes.
    wider = spaces.Dict({"frame": spaces.Box(0, 9, (4, 4, 1), np.uint8), "ram": spaces.Dict({"health": spaces.Box(0, 7, (2,), np.int32)})})
    other = trajstore.RecordEpisodes(SpaceEnv(wider, SPACES["tuple"]), rec.store, username="v", env_id="Space-v0")
    other.reset(seed=9)
    for _ in range(5):
        other.step(other.action_space.sample())
    store = trajstore.Store(store_path)
    keys = {_spaces.OBSERVATION_SPACE_KEY, _spaces.ACTION_SPACE_KEY}
    mine, theirs = store.episodes(user="u"), store.episodes(user="v")
    assert len(mine) == 3 and len({e.schema_id for e in [*mine, *theirs]}) == 1
    assert all(keys.isdisjoint(e.metadata) for e in mine), "no episode carries the spaces"
    assert set(store.snapshot().schema_metadata(mine[0].schema_id)) == keys
    assert theirs[0].metadata[_spaces.OBSERVATION_SPACE_KEY] == _spaces.dumps(_spaces.space_to_json(wider))
    assert _spaces.ACTION_SPACE_KEY not in theirs[0].metadata, "the same action space is not copied"
    for info in mine:
        assert store.episode(info.id).observation_space == obs_space
        assert store.episode(info.id).action_space == SPACES["tuple"]
    assert store.episode(theirs[0].id).observation_space == wider
    # An episode recorded the old way, its spaces in its own metadata, reads as before.
    r = store.begin_episode("w", "Space-v0", rec._fields, metadata={_spaces.OBSERVATION_SPACE_KEY: _spaces.dumps(_spaces.space_to_json(wider))})
    sample = wider.sample()
    flat = _spaces.flatten(_spaces.space_to_json(wider), sample, "obs")
    r.reset(flat)
    r.step_in_order((*flat.values(), 0, np.zeros(2), 1.0, True, False))
    old = store.episode(r.commit())
    assert old.observation_space == wider and old.action_space == SPACES["tuple"]
    assert leaves_equal(old.observations, stack([sample, sample]))


def test_background_commits_record_every_episode_in_order_and_close_waits(store_path):
    env = SpaceEnv(SPACES["box"], SPACES["discrete"], length=3)
    rec = trajstore.RecordEpisodes(env, store_path, username="u", background_commit=True)
    for seed in range(12):
        rec.reset(seed=seed)
        for _ in range(3):
            rec.step(2)
    rec.close()  # waits for the commits still in flight
    assert len(rec.committed) == 12
    store = trajstore.Store.open(store_path, read_only=True)
    by_id = {e.id: e for e in store.episodes()}
    assert sorted(by_id) == sorted(rec.committed)
    # `committed` is in episode order: the seeds come back in the order they were played.
    assert [by_id[i].seed for i in rec.committed] == list(range(12))
    assert all(by_id[i].steps == 3 for i in rec.committed)
    assert store.verify()["ok"]


def test_a_pending_commit_gives_its_id_to_every_wait(store_path):
    store = trajstore.Store.create(store_path)
    fields = [("obs", "f32", (2,), "observation", "raw"), ("action", "i64", (), "transition", "raw")]
    rec = store.begin_episode("u", "Test-v0", fields)
    rec.reset({"obs": np.zeros(2, np.float32)})
    rec.step({"obs": np.ones(2, np.float32), "action": 1, "reward": 1.0, "terminated": True, "truncated": False})
    pending = rec.commit_in_background()
    assert isinstance(pending, trajstore.PendingCommit)
    first = pending.wait()
    assert pending.done and pending.wait() == first
    assert [e.id for e in store.episodes()] == [first]
    with pytest.raises(trajstore.InputError, match="already committed"):
        rec.commit_in_background()
    empty = store.begin_episode("u", "Test-v0", fields)
    with pytest.raises(trajstore.RecordError, match="empty episode"):
        empty.commit_in_background()
