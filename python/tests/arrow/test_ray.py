"""`trajstore.ray.read_trajstore`: a Ray Data dataset through Ray's `Datasource` API, one read
task per group of whole episodes, filters applied to the index, rows equal to the store's."""

import threading

import numpy as np
import pytest

from arrow_store import stored_rows

ray = pytest.importorskip("ray", reason="ray is not installed (.ci/run installs ray[data], pinned)")
pytest.importorskip("ray.data", reason="ray[data] is not installed")
pa = pytest.importorskip("pyarrow")

from trajstore.ray import TrajstoreDatasource, read_trajstore, step_balanced_groups  # noqa: E402
from trajstore import Selection  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


def rows_by_key(rows):
    return {(int(r["episode"]), int(r["step"])): r for r in rows}


def test_groups_are_whole_episodes_balanced_by_steps():
    episodes = [(i, rows) for i, rows in enumerate([10, 10, 40, 10, 10, 10, 10])]
    groups = step_balanced_groups(episodes, 3)
    assert [e for g in groups for e in g] == episodes, "every episode once, in order"
    assert len(groups) == 3
    sizes = [sum(r for _, r in g) for g in groups]
    assert max(sizes) <= 50 and min(sizes) >= 20, sizes
    assert step_balanced_groups(episodes[:2], 5) == [[episodes[0]], [episodes[1]]]
    assert step_balanced_groups([], 4) == [[]]


def test_read_tasks_hold_whole_episodes_of_the_selection(mixed_store):
    source = TrajstoreDatasource(mixed_store.path, ["action"], Selection.of(user="bob"))
    tasks = source.get_read_tasks(2)
    assert len(tasks) == 2
    bob = mixed_store.episodes(user="bob")
    assert sum(t.metadata.num_rows for t in tasks) == sum(e.steps + 1 for e in bob)
    seen = []
    for task in tasks:
        for block in task():
            seen.extend(dict.fromkeys(block.column("episode").to_pylist()))
    assert seen == [e.id for e in bob], "each episode read whole by one task, filters applied"


def test_dataset_rows_equal_the_store(mixed_store, local_ray):
    fields = ["obs/frame", "obs/pose", "action", "reward"]
    dataset = read_trajstore(mixed_store.path, fields=fields, env="Pong-v5")
    rows = rows_by_key(dataset.take_all())
    pong = mixed_store.episodes(env="Pong-v5")
    assert len(rows) == sum(e.steps + 1 for e in pong)
    for e in pong:
        want = stored_rows(mixed_store, e.id, fields)
        for t in want["step"]:
            row = rows[(e.id, t)]
            assert row["obs/frame"] == want["obs/frame"][t].tobytes()
            np.testing.assert_array_equal(np.asarray(row["obs/pose"], dtype=np.float16).reshape(2, 3), want["obs/pose"][t])
            if t < e.steps:
                assert row["action"] == want["action"][t] and np.float32(row["reward"]) == want["reward"][t]
            else:
                assert row["action"] is None or np.isnan(row["action"]), "no action on the last row"


def test_streaming_split_to_two_consumers_sees_every_row_once(mixed_store, local_ray):
    dataset = read_trajstore(mixed_store.path, fields=["action"], override_num_blocks=4)
    consumers = dataset.streaming_split(2)
    seen: list[list[tuple[int, int]]] = [[], []]

    def consume(i):
        for batch in consumers[i].iter_batches(batch_format="pyarrow", batch_size=16):
            seen[i].extend(zip(batch.column("episode").to_pylist(), batch.column("step").to_pylist()))

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    want = sorted((e.id, s) for e in mixed_store.episodes() for s in range(e.steps + 1))
    assert sorted(seen[0] + seen[1]) == want, "every row once across both consumers"
    assert seen[0] and seen[1], "both consumers got rows"
