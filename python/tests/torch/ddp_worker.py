"""One rank of a real DDP job (run by test_torchrun.py under `torchrun --nproc_per_node=2`,
gloo on CPU): two epochs over StepDataset and WindowDataset, an all_reduce per batch (as a
DDP backward does: a rank with fewer batches would hang it), and what this rank saw, as JSON."""

import json
import sys
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from trajstore.torch import StepDataset, WindowDataset


def epoch_of(loader):
    batches, episodes = 0, []
    for batch in loader:
        dist.all_reduce(torch.ones(1))
        batches += 1
        episodes += batch["episode"][batch.get("mask", torch.ones_like(batch["episode"], dtype=torch.bool))].tolist()
    return batches, episodes


def main(store, out):
    dist.init_process_group("gloo", timeout=timedelta(seconds=60))
    steps = StepDataset(store, ["obs", "action"], seed=5, even="pad")
    windows = WindowDataset(store, ["obs", "action"], batch_size=16, window=4, seed=5)
    report = {"rank": dist.get_rank(), "len": len(steps), "epochs": []}
    for epoch in range(2):
        steps.set_epoch(epoch)
        windows.set_epoch(epoch)
        step_batches, step_episodes = epoch_of(DataLoader(steps, batch_size=32, num_workers=2))
        window_batches, window_episodes = epoch_of(DataLoader(windows, batch_size=None, num_workers=2))
        report["epochs"].append({"step_batches": step_batches, "step_episodes": step_episodes,
                                 "window_batches": window_batches, "window_episodes": window_episodes})
    with open(out.format(dist.get_rank()), "w") as f:
        json.dump(report, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
