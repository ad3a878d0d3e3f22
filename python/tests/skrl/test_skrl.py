"""skrl (real): a store-backed Memory under a DQN agent, online on 2 vector envs and offline."""

import gymnasium as gym
import numpy as np
import pytest

import trajstore

torch = pytest.importorskip("torch", reason="torch not installed (.ci/run installs it)")
pytest.importorskip("skrl", reason="skrl not installed (.ci/run installs it)")
from skrl.agents.torch.dqn import DQN, DQN_CFG  # noqa: E402
from skrl.envs.wrappers.torch import wrap_env  # noqa: E402
from skrl.models.torch import DeterministicMixin, Model  # noqa: E402
from skrl.trainers.torch import SequentialTrainer  # noqa: E402

from trajstore.skrl import StoreMemory  # noqa: E402


class QNetwork(DeterministicMixin, Model):
    def __init__(self, observation_space, action_space, device):
        Model.__init__(self, observation_space=observation_space, action_space=action_space, device=device)
        DeterministicMixin.__init__(self)
        self.net = torch.nn.Sequential(torch.nn.Linear(self.num_observations, 32), torch.nn.ReLU(),
                                       torch.nn.Linear(32, action_space.n))

    def compute(self, inputs, role=""):
        return self.net(inputs["observations"]), {}


def dqn(memory, observation_space, action_space, **cfg):
    models = {name: QNetwork(observation_space, action_space, "cpu") for name in ("q_network", "target_q_network")}
    config = DQN_CFG(**{"batch_size": 32, "learning_starts": 50, **cfg})
    config.experiment.write_interval = 0
    config.experiment.checkpoint_interval = 0
    return DQN(models=models, memory=memory, observation_space=observation_space, action_space=action_space, device="cpu",
               cfg=config)


class SpyMemory(StoreMemory):
    """Keeps every row skrl hands the memory, to compare the store with."""

    rows: list

    def add_samples(self, **tensors):
        self.rows = getattr(self, "rows", [])
        self.rows.append({k: v.clone() for k, v in tensors.items() if v is not None})
        super().add_samples(**tensors)


def test_dqn_trains_on_two_vector_envs_and_every_episode_lands_in_the_store(store_path):
    torch.manual_seed(0)
    env = wrap_env(gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync"), wrapper="gymnasium")
    memory = SpyMemory(store_path, num_envs=2, username="dqn")
    agent = dqn(memory, env.observation_space, env.action_space)
    before = [p.detach().clone() for p in agent.q_network.parameters()]
    SequentialTrainer(env=env, agents=agent, cfg={"timesteps": 400, "headless": True, "disable_progressbar": True, "close_environment_at_exit": False}).train()
    after = list(agent.q_network.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after)), "updates changed the Q-network"
    ids = memory.close()

    store = trajstore.Store(store_path)
    infos = store.episodes(user="dqn")
    assert [i.id for i in infos] == ids and len(ids) >= 10
    # Every recorded step is one of skrl's transitions; per env, in order, nothing lost:
    # 400 timesteps x 2 envs, less Gymnasium's autoreset filler steps (one per ended episode
    # but the last of each env, whose filler may not have come yet).
    ended = sum(1 for i in infos if i.outcome != "truncated")
    assert 800 - ended <= sum(i.steps for i in infos) <= 800 - ended + 2
    transitions = {(tuple(r["observations"][e].tolist()), tuple(r["next_observations"][e].tolist()), int(r["actions"][e]),
                    bool(r["terminated"][e])) for r in memory.rows for e in range(2)}
    for info in infos:
        ep = store.episode(info.id)
        obs, act, term = ep["obs"], ep["action"], ep["terminated"]
        assert len(obs) == info.steps + 1
        for t in range(info.steps):
            assert (tuple(obs[t].tolist()), tuple(obs[t + 1].tolist()), int(act[t]), bool(term[t])) in transitions
        assert not term[:-1].any(), "an episode ends at its first terminated step"


def test_episodes_split_on_terminated_on_a_broken_chain_and_skip_the_autoreset_filler(store_path):
    memory = StoreMemory(store_path, num_envs=1)
    memory.create_tensor("observations", size=2, dtype=torch.float32)
    memory.create_tensor("next_observations", size=2, dtype=torch.float32)
    memory.create_tensor("actions", size=1, dtype=torch.int64)
    memory.create_tensor("rewards", size=1, dtype=torch.float32)
    memory.create_tensor("terminated", size=1, dtype=torch.bool)

    def add(o, o2, a, term=False):
        memory.add_samples(observations=torch.tensor([o], dtype=torch.float32), next_observations=torch.tensor([o2], dtype=torch.float32),
                           actions=torch.tensor([[a]]), rewards=torch.tensor([[float(a)]]), terminated=torch.tensor([[term]]))

    add([0, 0], [0, 1], 1)
    add([0, 1], [0, 2], 2, term=True)          # episode 1 ends: terminated
    add([0, 2], [5, 0], 0)                     # gymnasium's next-step autoreset filler: not recorded
    add([5, 0], [5, 1], 3)
    add([5, 1], [5, 2], 4)                     # then the env shows another observation: truncated
    add([9, 0], [9, 1], 5)
    ids = memory.close()                       # the running episode: committed as truncated
    store = trajstore.Store(store_path)
    eps = [store.episode(i) for i in ids]
    assert [e.info.steps for e in eps] == [2, 2, 1]
    assert eps[0]["obs"].tolist() == [[0, 0], [0, 1], [0, 2]] and eps[0]["action"].tolist() == [1, 2]
    assert eps[0]["terminated"].tolist() == [False, True] and eps[0]["truncated"].tolist() == [False, False]
    assert eps[1]["obs"].tolist() == [[5, 0], [5, 1], [5, 2]] and eps[1]["truncated"].tolist() == [False, True]
    assert eps[1]["reward"].tolist() == [3.0, 4.0]
    assert eps[2]["obs"].tolist() == [[9, 0], [9, 1]] and eps[2]["truncated"].tolist() == [True]

    # Batches: observations, next observations at offset +1, in skrl's (rows, size) layout.
    obs, nxt, act, rew, term = memory.sample(["observations", "next_observations", "actions", "rewards", "terminated"],
                                             batch_size=5)[0]
    assert obs.shape == (5, 2) and act.shape == (5, 1) and rew.shape == (5, 1) and term.dtype == torch.bool
    recorded = {(tuple(e["obs"][t].tolist()), tuple(e["obs"][t + 1].tolist()), int(e["action"][t])) for e in eps
                for t in range(e.info.steps)}
    assert {(tuple(o.tolist()), tuple(n.tolist()), int(a)) for o, n, a in zip(obs, nxt, act)} == recorded, "each once"
    assert torch.equal(rew[:, 0], act[:, 0].float())

    # Windows of 2 steps stay inside one episode: rows k and k+1 chain.
    (obs, nxt), = memory.sample(["observations", "next_observations"], batch_size=2, sequence_length=2)
    assert obs.shape == (4, 2)
    for w in range(2):
        assert torch.equal(nxt[2 * w], obs[2 * w + 1])


def test_offline_dqn_updates_from_an_existing_store_and_records_nothing(store_path):
    env = gym.make("CartPole-v1")
    recorder = trajstore.RecordEpisodes(env, store_path, username="expert")
    for seed in range(4):
        obs, _ = recorder.reset(seed=seed)
        done = False
        while not done:
            obs, _, terminated, truncated, _ = recorder.step(int(obs[2] + obs[3] > 0))
            done = terminated or truncated
    memory = StoreMemory(store_path, record=False, user="expert")
    agent = dqn(memory, env.observation_space, env.action_space, learning_starts=0)
    agent.init()
    assert len(memory) == sum(i.steps for i in trajstore.Store(store_path).episodes())
    before = [p.detach().clone() for p in agent.q_network.parameters()]
    agent.enable_models_training_mode(True)
    for t in range(200):
        agent.update(timestep=t, timesteps=200)
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.q_network.parameters()))
    # The trained network serves Q-values for the recorded states.
    ep = trajstore.Store(store_path).episode(trajstore.Store(store_path).episodes()[0].id)
    with torch.no_grad():
        q = agent.q_network.act({"observations": torch.from_numpy(ep["obs"][:-1].copy())}, role="q_network")[0]
    assert q.shape == (ep.info.steps, 2)
    with pytest.raises(RuntimeError, match="record=False"):
        memory.add_samples(observations=torch.zeros(1, 4), next_observations=torch.zeros(1, 4))
