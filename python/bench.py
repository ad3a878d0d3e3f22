"""The Python package side by side with a raw-numpy memmap store (the floor) and Minari (the
peer), on the same seeded workloads, in one run; every figure is a ratio against a baseline
measured in the same run.

    python python/bench.py [--small] [--workloads arcade,control] [--no-peer] [--dir DIR] [--dataloader]

Workloads (python/benchmarks/workloads.py): arcade, 40 episodes (~19.7k steps) of 128x128x3
uint8 frames, recorded raw and lz4; control, 200 x 1,000 steps of 17 float32 observations.
`--small` shrinks both (8 x ~60 and 20 x 100 steps) to run in seconds.

Ops, each against the floor (x raw numpy = numpy's time / trajstore's: above 1 is faster than
the floor) and the peer (x peer = Minari's time / trajstore's):
- record, 1 writer: the workload through each side's recorder, durable per episode (what each
  recorder does per episode: python/benchmarks/recorders.py);
- record, 4 processes: the workload split over 4 spawned processes, into one store
  (trajstore), a memmap directory each (numpy), a Minari dataset set each (Minari cannot write
  one from several processes);
- scan: every observation of every episode;
- gather: random batches of 256 given (episode, step) pairs of observations;
- by-user: one user's episodes (a quarter) selected, their observations and actions loaded.
Reads are the best of 3 rounds, sides alternating, after a warm-up pass of each (page cache
filled, first-read checksums verified). The recording overhead table is the cost
per step over a bare env loop, between episode ends (the Python glue), and per episode end
(commit / flush), for each recorder.

    python python/bench.py --stats-store DIR

- stats (only this, with `--stats-store`): `Store.stats` of `obs` and `action` over every
  episode and over one user's, from the index, against numpy computing the same figures
  (count, mean, std, min, max, `np.quantile(..., method="lower")`) over the values read
  from the store, and over the same values already in memory. DIR is a store of small
  episodes, e.g. the one `trajstore bench DIR --mode stats` records (100k episodes).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchmarks import readers, recorders, workloads  # noqa: E402

ROUNDS = 3


def best(fn, rounds: int) -> tuple[float, int]:
    """(best seconds of `rounds` calls, the value of the last call)."""
    times, value = [], 0
    for _ in range(rounds):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return min(times), value


def have_minari() -> bool:
    try:
        import minari  # noqa: F401
    except ImportError:
        return False
    return True


def settle_disk() -> None:
    """Writes back what earlier runs left dirty (and the deletes of their stores), untimed:
    otherwise that writeback lands on whichever side records next."""
    os.sync()


def run_workload(w: workloads.Workload, root: str, peer: bool, rounds: int, procs: bool) -> tuple[list, list]:
    """(rows of the side-by-side table, rows of the recording-overhead table)."""
    everything = range(len(w.lengths))
    kinds = ["trajstore", "numpy"] + (["trajstore-lz4"] if w.name == "arcade" else []) + (["minari"] if peer else [])
    target = {k: f"{root}/{w.name}-{k}" for k in kinds}
    bares = [recorders.bare(w, everything) for _ in range(3)]
    timings: dict[str, list[recorders.Timing]] = {k: [] for k in kinds}
    for _ in range(2):  # two rounds, sides alternating; the second round's stores are kept
        for k in kinds:
            shutil.rmtree(target[k], ignore_errors=True)
            settle_disk()
            timings[k].append(recorders.record(k, w, everything, target[k]))
    overhead = []
    for k in kinds:
        # Each part at its best round: machine noise only ever adds time.
        step_us = (min_per_step(timings[k]) - min_per_step(bares)) * 1e6
        end_ms = (min(t.boundaries for t in timings[k]) - min(t.boundaries for t in bares)) / len(w.lengths) * 1e3
        overhead.append((w.name, k, step_us, end_ms, min(t.total for t in timings[k])))

    rows: list[tuple[str, str, dict[str, float]]] = []
    rows.append((w.name, "record, 1 writer", {k: min(t.total for t in timings[k]) for k in kinds}))
    if procs:
        spans = {k: math.inf for k in kinds}
        for _ in range(2):  # as for one writer: two rounds, sides alternating, the best counts
            for k in kinds:
                scratch = f"{root}/{w.name}-{k}-4p"
                shutil.rmtree(scratch, ignore_errors=True)
                os.makedirs(scratch)
                settle_disk()
                spans[k] = min(spans[k], recorders.record_processes(k, w, scratch))
                shutil.rmtree(scratch, ignore_errors=True)
        rows.append((w.name, "record, 4 processes", spans))

    sides = {"trajstore": readers.TrajstoreSide(w, target["trajstore"]), "numpy": readers.NumpyFloor(w, target["numpy"])}
    if "trajstore-lz4" in kinds:
        sides["trajstore-lz4"] = readers.TrajstoreSide(w, target["trajstore-lz4"], "trajstore-lz4")
    if peer:
        sides["minari"] = readers.MinariPeer(w, target["minari"], "bench")
    batches = readers.pairs(w, 40 if len(w.lengths) > 20 else 8)
    gather_batches = {k: batches if k != "minari" else batches[:4] for k in sides}  # Minari reads whole episodes
    ops = {
        "scan": lambda s: s.scan,
        "gather 256 pairs": lambda s: (lambda: sum(s.gather(e, t) for e, t in gather_batches[s.name])),
        "by-user select + load": lambda s: (lambda: s.by_user(w.users[1])),
    }
    for op, make in ops.items():
        times, values = {}, {}
        for side in sides.values():  # warm: page cache filled, first-read checksums verified
            make(side)()
        for _ in range(rounds):
            for k, side in sides.items():
                t, v = best(make(side), 1)
                times[k] = min(times.get(k, t), t)
                values[k] = v
        if op.startswith("gather"):
            # per batch: Minari gathers fewer batches
            times = {k: t / len(gather_batches[k]) for k, t in times.items()}
            values = {k: v for k, v in values.items() if k != "minari"}
        assert len(set(values.values())) == 1, f"{op}: every side must read the same bytes, got {values}"
        rows.append((w.name, op, times))
        if op == "scan" and "trajstore-lz4" in times:
            lz4_loop(target["trajstore-lz4"], times["trajstore-lz4"], rounds)
    return rows, overhead


def lz4_loop(store_path: str, ours: float, rounds: int) -> None:
    """The lz4 scan against python-lz4 decoding the same blocks in a tight loop (blocks read
    into memory first), each frame touched as the scan touches it: issue 10's reference."""
    try:
        import lz4.block
    except ImportError:
        print("lz4 not installed (pip install lz4): the lz4 tight-loop reference is left out")
        return
    import trajstore

    store = trajstore.Store(store_path, read_only=True)
    snap, blocks = store.snapshot(), []
    for e in store.episodes():
        size = int(np.prod(store.episode(e.id).read("obs", 0).shape))
        for path, offset, nbytes, steps, codec in snap.chunks(e.id, "obs"):
            with open(path, "rb") as f:
                f.seek(offset)
                payload = f.read(nbytes)
            # schema/format.md: u32 block ends, u8 kinds (0: lz4, 1: stored), padded to 8
            ends = np.frombuffer(payload, np.uint32, steps)
            kinds = np.frombuffer(payload, np.uint8, steps, steps * 4)
            base, start = (steps * 5 + 7) // 8 * 8, 0
            for end, kind in zip(ends.tolist(), kinds.tolist()):
                blocks.append((kind, payload[base + start: base + end], size))
                start = end

    def decode():
        return sum(readers.touch(np.frombuffer(lz4.block.decompress(block, uncompressed_size=size) if kind == 0 else block,
                                               np.uint8)) for kind, block, size in blocks)

    loop = best(decode, rounds)[0]
    gb = sum(size for _, _, size in blocks) / 1e9
    print(f"arcade lz4 scan {gb / ours:5.2f} GB/s vs python-lz4 decoding the same blocks in a tight loop "
          f"{gb / loop:5.2f} GB/s (both touch every frame): x lz4 loop {loop / ours:5.2f}", flush=True)


def min_per_step(timings: list) -> float:
    return min(t.in_episode / t.in_episode_steps for t in timings)


def ratio(base: float | None, ours: float | None) -> str:
    return "-" if base is None or ours is None else f"{base / ours:6.2f}"


def print_tables(rows: list, overhead: list) -> None:
    print("\nside by side: x raw numpy = numpy's time / ours, x peer = Minari's time / ours (above 1: faster)")
    print(f"{'workload':9} {'op':24} {'side':14} {'ours s':>9} {'numpy s':>9} {'minari s':>9} {'x raw':>7} {'x peer':>7}")
    for name, op, times in rows:
        for side in ("trajstore", "trajstore-lz4"):
            if side not in times:
                continue
            t = times[side]
            n, m = times.get("numpy"), times.get("minari")
            print(f"{name:9} {op:24} {side:14} {t:9.4f} {n if n is not None else float('nan'):9.4f} "
                  f"{m if m is not None else float('nan'):9.4f} {ratio(n, t):>7} {ratio(m, t):>7}")
    print("\nrecording overhead over a bare env loop: per step between episode ends, per episode end (commit / flush)")
    print(f"{'workload':9} {'recorder':14} {'us/step':>9} {'ms/end':>9} {'total s':>9} {'step x numpy':>13}")
    floor = {name: step for name, k, step, _, _ in overhead if k == "numpy"}
    for name, k, step, end, total in overhead:
        versus = f"{step / floor[name]:13.2f}" if floor[name] > 0 else f"{'(floor <= 0)':>13}"
        print(f"{name:9} {k:14} {step:9.2f} {end:9.2f} {total:9.3f} {versus}")


def main(argv: list[str] | None = None) -> tuple[list, list]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--small", action="store_true", help="small workloads: seconds, for a quick check")
    p.add_argument("--workloads", default="arcade,control")
    p.add_argument("--no-peer", action="store_true", help="leave Minari out even when installed")
    p.add_argument("--no-processes", action="store_true", help="leave the 4-process recording out")
    p.add_argument("--dir", default=".", help="where the scratch stores go (removed at the end)")
    p.add_argument("--dataloader", action="store_true", help="also a torch DataLoader epoch (needs torch)")
    p.add_argument("--stats-store", help="only the stats benchmark, over this store")
    args = p.parse_args(argv)
    if args.stats_store:
        stats(args.stats_store)
        return [], []
    peer = not args.no_peer and have_minari()
    if not args.no_peer and not peer:
        print("minari not installed (pip install \"minari[hdf5]\"): the peer columns are left out")
    rows, overhead = [], []
    # The scratch stores' parent is made when missing (the stores themselves are removed).
    os.makedirs(args.dir, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="trajstore-bench-") as root:
        for name in args.workloads.split(","):
            w = {"arcade": workloads.arcade, "control": workloads.control}[name](args.small)
            print(f"{w.name}: {len(w.lengths)} episodes, {w.steps} steps of {w.obs_shape} {w.obs_dtype}", flush=True)
            r, o = run_workload(w, root, peer, 2 if args.small else ROUNDS, not args.no_processes)
            rows += r
            overhead += o
            if args.dataloader and name == "arcade":
                store_path = f"{root}/arcade-trajstore"
                ids = [e.id for e in trajstore_episodes(store_path)]
                dataloader(store_path, plain_episodes(store_path), ids, w.obs_bytes)
    print_tables(rows, overhead)
    return rows, overhead


def trajstore_episodes(store_path: str) -> list:
    import trajstore

    return trajstore.Store(store_path).episodes()


def plain_episodes(store_path: str) -> list:
    """np.memmap views of each episode's raw observation bytes in the segment files."""
    import trajstore

    store = trajstore.Store(store_path)
    snap = store.snapshot()
    out = []
    for e in store.episodes():
        ((path, offset, nbytes, steps, codec),) = snap.chunks(e.id, "obs")
        out.append(np.memmap(path, dtype=np.uint8, mode="r", offset=offset, shape=(steps, 128, 128, 3)))
    return out


QUANTILES = {"q01": 0.01, "q05": 0.05, "q10": 0.10, "q25": 0.25, "q50": 0.5, "q75": 0.75, "q90": 0.9, "q95": 0.95, "q99": 0.99}


def numpy_stats(a: np.ndarray) -> dict:
    return {"count": np.full(a.shape[1:], len(a)), "mean": a.mean(axis=0), "std": a.std(axis=0), "min": a.min(axis=0),
            "max": a.max(axis=0), "quantiles": {k: np.quantile(a, q, axis=0, method="lower") for k, q in QUANTILES.items()}}


def stats(store_path: str) -> None:
    import trajstore

    store = trajstore.Store(store_path, read_only=True)
    for what, filters in (("every episode", {}), ("one user (u0)", {"user": "u0"})):
        ids = [e.id for e in store.episodes(**filters)]

        def index():
            return store.stats(["obs", "action"], **filters)

        def read():
            snap = store.snapshot()
            return {name: np.concatenate([np.asarray(snap.field(i, name), dtype=np.float64) for i in ids]) for name in ("obs", "action")}

        values = read()

        def compute(v=values):
            return {name: numpy_stats(a) for name, a in v.items()}

        ours, theirs = index(), compute()
        for name in ("obs", "action"):
            np.testing.assert_allclose(ours[name].mean, theirs[name]["mean"], rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(ours[name].std, theirs[name]["std"], rtol=1e-9, atol=1e-9)
            for k in QUANTILES:
                exact = theirs[name]["quantiles"][k]
                assert np.all(np.abs(ours[name].quantiles[k] - exact) <= 0.01 * np.abs(exact) + 1e-12), k
        t_index = best(index, ROUNDS)[0]
        t_read = best(lambda: compute(read()), ROUNDS)[0]
        t_compute = best(compute, ROUNDS)[0]
        n = sum(a.size for a in values.values())
        print(f"stats    {what}: {len(ids)} episodes, {n} values: index {t_index * 1e3:8.1f} ms; numpy over values read from the "
              f"store {t_read * 1e3:8.1f} ms (ratio {t_read / t_index:.0f}x); numpy on values in memory {t_compute * 1e3:8.1f} ms "
              f"(ratio {t_compute / t_index:.1f}x)")


def dataloader(store_path: str, plain_eps: list, ids: list, frame_bytes: int) -> None:
    try:
        import torch
        from torch.utils.data import DataLoader, Dataset
    except ImportError:
        print("dataloader: skipped (torch not installed)")
        return
    from trajstore.torch import StepDataset

    class MemmapSteps(Dataset):
        """The plain baseline: every step of the memmaps, a batch gathered by fancy indexing,
        served as StepDataset serves it (the same items: obs, episode, step as int64)."""

        def __init__(self, episodes, ids):
            self.episodes, self.ids = episodes, ids
            self.index = [(e, t) for e, ep in enumerate(episodes) for t in range(len(ep) - 1)]

        def __len__(self):
            return len(self.index)

        def __getitems__(self, indices):
            out = np.empty((len(indices), *self.episodes[0].shape[1:]), np.uint8)
            episode, step = np.empty(len(indices), np.int64), np.empty(len(indices), np.int64)
            for k, i in enumerate(indices):
                e, t = self.index[i]
                out[k], episode[k], step[k] = self.episodes[e][t], self.ids[e], t
            frames, episode, step = torch.from_numpy(out), torch.from_numpy(episode), torch.from_numpy(step)
            return [{"obs": frames[k], "episode": episode[k], "step": step[k]} for k in range(len(indices))]

    def epoch(ds) -> float:
        loader = DataLoader(ds, batch_size=256, shuffle=True, num_workers=2, generator=torch.Generator().manual_seed(0),
                            persistent_workers=False)
        start = time.perf_counter()
        for batch in loader:
            batch["obs"][:1].sum()
        return time.perf_counter() - start

    steps, plain = StepDataset(store_path, ["obs"], world_size=1, rank=0), MemmapSteps(plain_eps, ids)
    assert len(steps) == len(plain), "the same steps"
    t_store, t_plain = min(epoch(steps) for _ in range(ROUNDS)), min(epoch(plain) for _ in range(ROUNDS))
    gb = len(steps) * frame_bytes / 1e9
    print(f"dataloader {len(steps)} steps, 2 workers, batch 256: StepDataset {gb / t_store:5.2f} GB/s, memmap dataset "
          f"{gb / t_plain:5.2f} GB/s, ratio {t_plain / t_store:.2f}")


if __name__ == "__main__":
    main()
