"""A real 2-process `torchrun` job (gloo, CPU) over the torch datasets: every rank runs the
same number of batches (or the job would hang at a collective), ranks serve disjoint
episodes that together are all of them, and set_epoch changes the order."""

import json
import os
import subprocess
import sys
from pathlib import Path

WORKER = Path(__file__).with_name("ddp_worker.py")


def run_ranks(store, tmp_path):
    out = tmp_path / "rank{}.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # Each rank writes its own file: the worker formats `{}` with its rank.
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(WORKER), str(store), str(out)],
                   check=True, timeout=300, env=env)
    return [json.loads(Path(str(out).format(r)).read_text()) for r in range(2)]


def test_torchrun_ranks_run_equal_batches_over_disjoint_episodes(frames_store, tmp_path):
    ranks = run_ranks(frames_store.path, tmp_path)
    all_ids = {e.id for e in frames_store.episodes()}
    assert ranks[0]["len"] == ranks[1]["len"]
    for epoch in range(2):
        a, b = ranks[0]["epochs"][epoch], ranks[1]["epochs"][epoch]
        assert a["step_batches"] == b["step_batches"] and a["window_batches"] == b["window_batches"]
        for key in ("step_episodes", "window_episodes"):
            assert set(a[key]).isdisjoint(b[key]) and set(a[key]) | set(b[key]) == all_ids
    assert ranks[0]["epochs"][0]["step_episodes"] != ranks[0]["epochs"][1]["step_episodes"]
