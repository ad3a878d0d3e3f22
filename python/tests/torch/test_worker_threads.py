"""DataLoader workers size the library's gathering pool to their share of the cores, instead
of each running a machine-wide pool on the same cores."""

import glob
import os

import pytest

torch = pytest.importorskip("torch", reason="torch not installed (.ci/run installs it)")
from torch.utils.data import DataLoader  # noqa: E402

from trajstore.torch import StepDataset  # noqa: E402


def gathering_threads(_items):
    """Runs in the worker, after the batch was gathered: the library's pool threads there."""
    names = []
    for comm in glob.glob("/proc/self/task/*/comm"):
        with open(comm) as f:
            names.append(f.read().strip())
    return os.environ.get("RAYON_NUM_THREADS"), sum(1 for n in names if n.startswith("trajstore-"))


def worker_pools(frames_store, **kwargs):
    ds = StepDataset(frames_store.path, ["obs/frame"], rank=0, world_size=1)
    loader = DataLoader(ds, batch_size=64, num_workers=2, collate_fn=gathering_threads, multiprocessing_context="fork",
                        **kwargs)
    return set(loader)


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads through Linux's /proc")
def test_each_of_two_workers_gathers_on_its_share_of_the_cores(frames_store, monkeypatch):
    monkeypatch.delenv("RAYON_NUM_THREADS", raising=False)
    share = max(1, len(os.sched_getaffinity(0)) // 2)
    assert worker_pools(frames_store) == {(str(share), share)}
    assert "RAYON_NUM_THREADS" not in os.environ, "the parent's environment is left alone"


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads through Linux's /proc")
def test_a_thread_count_the_user_set_is_kept(frames_store, monkeypatch):
    monkeypatch.setenv("RAYON_NUM_THREADS", "3")
    assert worker_pools(frames_store) == {("3", 3)}
