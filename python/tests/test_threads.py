"""Python objects shared by threads: no deadlock between the GIL and the bindings' locks.

A binding that holds a Rust lock while it releases the GIL (or builds Python objects) can
deadlock with a thread that holds the GIL and waits for that lock: the whole interpreter
freezes. Each scenario runs in a subprocess with a faulthandler watchdog, so a regression
fails with the threads' tracebacks instead of hanging the test run.
"""

import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import trajstore

FIELDS = [
    ("obs", "f32", (3,), "observation", "raw"),
    ("obs/lz", "f32", (256,), "observation", "lz4"),
    ("action", "i64", (), "transition", "raw"),
]
#: seconds each scenario keeps its threads busy
BUSY = 1.5
#: the watchdog: a scenario still running after this long is hung
HUNG = int(os.environ.get("TRAJSTORE_TEST_HUNG", 60))


def record(store, user, steps, seed):
    rng = np.random.default_rng(seed)
    r = store.begin_episode(user, "Test-v0", FIELDS, seed=seed)
    obs = lambda: {"obs": rng.normal(size=3).astype(np.float32), "obs/lz": np.full(256, seed, np.float32)}  # noqa: E731
    r.reset(obs())
    for t in range(1, steps + 1):
        r.step({**obs(), "action": t, "reward": 1.0, "terminated": t == steps, "truncated": False}, {"t": t})
    return r.commit()


def make_store(path, episodes=8):
    store = trajstore.Store.create(path)
    for i in range(episodes):
        record(store, f"user{i % 2}", steps=20 + 5 * i, seed=i)
    return store


def busy_together(*fns, seconds=BUSY, tolerate=()):
    """Runs each function in a loop on its own thread for `seconds`; re-raises the first error
    (other than `tolerate`d ones). Returns how many calls each made."""
    stop = threading.Event()
    errors, counts = [], [0] * len(fns)

    def loop(i, fn):
        try:
            while not stop.is_set():
                try:
                    fn()
                except tolerate:
                    pass
                counts[i] += 1
        except BaseException as e:  # noqa: BLE001 - reported to the main thread
            errors.append(e)
            stop.set()

    threads = [threading.Thread(target=loop, args=(i, fn), daemon=True) for i, fn in enumerate(fns)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    assert all(counts), f"a thread made no call: {counts}"
    return counts


def two_threads_error(e):
    return isinstance(e, trajstore.TrajstoreError) and "two threads at once" in str(e)


# ---- scenarios: each runs in a fresh interpreter (see `run`) -------------------------------


def scenario_snapshot(path):
    store = trajstore.Store.open(path)
    snap = store.snapshot()
    ids = [e.id for e in store.episodes()]
    lz = snap.field(ids[0], "obs/lz")

    def read_fields():
        for i in ids:
            values = np.asarray(snap.field(i, "obs/lz"))  # lz4: decoded, GIL released
            assert values.dtype == np.float32 and len(values) > 0
            snap.field(i, "obs")
            snap.infos(i)

    def index():
        snap.cutoff()
        snap.users()
        snap.episodes(trajstore.Selection.of())
        snap.schema(snap.episode(ids[0])["schema_id"])

    busy_together(read_fields, index, lambda: snap.verify()["ok"] or sys.exit("verify failed"))
    assert bytes(snap.field(ids[0], "obs/lz")) == bytes(lz)


def scenario_store(path):
    store = trajstore.Store.open(path)
    ids = [e.id for e in store.episodes()]
    episode = store.episode(ids[-1])

    def episodes():
        for i in ids:
            store.episode(i)["obs/lz"]

    def shared_snapshot():
        # Fresh Episode objects on the one snapshot `episode` holds: every field is read anew.
        again = trajstore.Episode(episode._snapshot, episode.info)
        assert again["obs/lz"].shape == (episode.info.steps + 1, 256)
        again.infos

    def queries():
        store.episodes(user="user1", min_steps=2)
        store.users()
        episode._snapshot.cutoff()

    busy_together(episodes, shared_snapshot, queries, lambda: store.verify())


def scenario_loader_batches(path):
    store = trajstore.Store.open(path, read_only=True)
    loader = trajstore.Loader(store, seed=3)
    rounds = 0
    deadline = time.monotonic() + BUSY
    while time.monotonic() < deadline or rounds < 3:
        batches = loader.batches(["obs", "obs/lz", "action"], 8, next=["obs"])
        served, done = [], threading.Event()

        def draw():
            for batch in batches:
                served.extend(zip(batch["episode"].tolist(), batch["step"].tolist()))
            done.set()

        def look():
            while not done.is_set():
                len(batches)
                batches.position
                loader.cursor()
                loader.episode_ids

        threads = [threading.Thread(target=f, daemon=True) for f in (draw, draw, look)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(served) == len(set(served)) == loader.steps, "every step once, across both threads"
        rounds += 1


def scenario_recorder(path):
    store = trajstore.Store.create(path)
    # One recorder shared: its owner steps while another thread reads its state.
    recorder = store.begin_episode("shared", "Test-v0", FIELDS)
    recorder.reset({"obs": np.zeros(3, np.float32), "obs/lz": np.zeros(256, np.float32)})
    values = {"obs": np.ones(3, np.float32), "obs/lz": np.ones(256, np.float32), "action": 1, "reward": 1.0,
              "terminated": False, "truncated": False}
    busy_together(lambda: recorder.step(values), lambda: (recorder.steps, recorder.active),
                  lambda: recorder.step(values), tolerate=(trajstore.TrajstoreError,))
    # Two threads commit it at once: one gets the id, the other an error, nobody hangs.
    results = []

    def commit():
        try:
            results.append(recorder.commit())
        except trajstore.TrajstoreError as e:
            results.append(e)

    threads = [threading.Thread(target=commit) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [r for r in results if isinstance(r, int)]
    assert len(ids) == 1, results
    assert recorder.active is False
    # Many recorders on many threads: group commits with the GIL released, all distinct.
    committed = []
    threads = [threading.Thread(target=lambda k=k: committed.extend(record(store, f"t{k}", 3, k) for _ in range(10)))
               for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(committed)) == 40
    assert store.snapshot().episode(ids[0])["user"] == "shared"


def scenario_imitation(path):
    env = trajstore.ImitationLearning(path, cycle=True)
    misuse = []

    def play():
        env.reset()
        terminated = truncated = False
        while not (terminated or truncated):
            _, _, terminated, truncated, info = env.step(None)
            assert "action" in info

    def look():
        try:
            env.cursor()
            env.episode_ids
            env.imbalance
        except trajstore.TrajstoreError as e:
            assert two_threads_error(e), e
            misuse.append(e)

    busy_together(play, look)
    # Two threads stepping one env is a misuse: an error or a serialized step, never a hang.
    env.reset()

    def step():
        try:
            env.step(None)
        except trajstore.TrajstoreError as e:
            assert two_threads_error(e) or "call reset()" in str(e), e
            try:
                env.reset()
            except trajstore.TrajstoreError as again:
                assert two_threads_error(again), again

    busy_together(step, step, seconds=0.5)


# ---- the tests -----------------------------------------------------------------------------


def run(scenario, path):
    """Runs `scenario(path)` in a fresh interpreter under a faulthandler watchdog."""
    code = textwrap.dedent(f"""
        import faulthandler, sys
        faulthandler.dump_traceback_later({HUNG}, exit=True)
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        import test_threads
        test_threads.{scenario}({str(path)!r})
        print("scenario done")
    """)
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=HUNG + 30)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{scenario} hung: {e.stderr}")
    assert out.returncode == 0 and "scenario done" in out.stdout, (
        f"{scenario} failed or hung (exit {out.returncode}):\n{out.stdout}\n{out.stderr}")


@pytest.fixture
def store(store_path):
    return make_store(store_path)


@pytest.mark.parametrize("scenario", ["scenario_snapshot", "scenario_store", "scenario_loader_batches",
                                      "scenario_recorder", "scenario_imitation"])
def test_objects_shared_by_threads_never_deadlock(store, scenario):
    run(scenario, store.path)
