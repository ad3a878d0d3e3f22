"""Both datasets pickle (path and selection, never the open store) and serve every step of
the share exactly once with 0 and 2 DataLoader workers under fork, spawn and forkserver."""

import pickle

import pytest
import torch
from torch.utils.data import DataLoader

import trajstore
from trajstore.torch import StepDataset, WindowDataset

READ = ["obs", "action"]


def every_step(store):
    return {(e.id, t) for e in store.episodes() for t in range(e.steps)}


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
@pytest.mark.parametrize("workers", [0, 2])
def test_datasets_serve_every_step_once_under_each_start_method(frames_store, method, workers):
    context = {"num_workers": workers, "multiprocessing_context": method} if workers else {}
    steps = StepDataset(frames_store.path, READ, next=["obs"], world_size=1, rank=0)
    assert len(steps) == trajstore.Loader(frames_store).steps
    served = []
    for batch in DataLoader(steps, batch_size=64, shuffle=True, **context):
        assert batch["episode"].dtype == batch["step"].dtype == torch.int64
        served += zip(batch["episode"].tolist(), batch["step"].tolist())
    assert sorted(served) == sorted(every_step(frames_store))

    windows = WindowDataset(frames_store.path, READ, batch_size=32, world_size=1, rank=0, order="sequential")
    served = []
    for batch in DataLoader(windows, batch_size=None, **context):
        assert batch["episode"].dtype == batch["step"].dtype == torch.int64
        served += zip(batch["episode"][batch["mask"]].tolist(), batch["step"][batch["mask"]].tolist())
    assert sorted(served) == sorted(every_step(frames_store))


def test_datasets_pickle_without_the_open_store_and_serve_the_same_items(frames_store):
    steps = StepDataset(frames_store.path, READ, seed=3)
    copy = pickle.loads(pickle.dumps(steps))
    assert len(copy) == len(steps)
    assert all(torch.equal(a, b) for a, b in zip(copy[5].values(), steps[5].values()))
    windows = pickle.loads(pickle.dumps(WindowDataset(frames_store.path, READ, batch_size=16, window=4)))
    assert len(windows) == len(list(windows))


def test_set_epoch_reshuffles_the_episodes_across_ranks(frames_store):
    def shares(epoch):
        out = []
        for rank in range(2):
            ds = StepDataset(frames_store.path, READ, rank=rank, world_size=2, seed=1)
            ds.set_epoch(epoch)
            out.append({int(ds[i]["episode"]) for i in range(len(ds))})
        return out

    first, again, later = shares(0), shares(0), shares(1)
    assert first == again and first[0].isdisjoint(first[1])
    assert any(shares(e) != first for e in range(1, 6)), "set_epoch never changed the assignment"
    assert later[0] | later[1] == first[0] | first[1]


def test_every_rank_serves_the_same_count_padded_or_dropped(frames_store):
    padded = [StepDataset(frames_store.path, READ, rank=r, world_size=3) for r in range(3)]
    dropped = [StepDataset(frames_store.path, READ, rank=r, world_size=3, even="drop") for r in range(3)]
    own = [trajstore.Loader(frames_store, rank=r, world_size=3).steps for r in range(3)]
    assert {len(d) for d in padded} == {max(own)} and {len(d) for d in dropped} == {min(own)}
    small = own.index(min(own))
    # Padding repeats the rank's own first steps, so it never reads another rank's episodes.
    assert int(padded[small][min(own)]["episode"]) == int(padded[small][0]["episode"])
    windows = [len(WindowDataset(frames_store.path, READ, batch_size=16, rank=r, world_size=3)) for r in range(3)]
    assert len(set(windows)) == 1


def test_a_rank_without_episodes_is_an_error_naming_it(frames_store):
    empty = next(r for r in range(10) if trajstore.Loader(frames_store, rank=r, world_size=10).steps == 0)
    with pytest.raises(ValueError, match=rf"rank {empty} of 10 has no steps to serve: the selection holds 8 episode"):
        StepDataset(frames_store.path, READ, rank=empty, world_size=10)
    with pytest.raises(ValueError, match=rf"rank {empty} of 10 has no steps"):
        WindowDataset(frames_store.path, READ, rank=empty, world_size=10)
    with pytest.raises(ValueError, match=r"even='sometimes'"):
        StepDataset(frames_store.path, READ, even="sometimes")
