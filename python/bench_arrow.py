"""Arrow-side benchmarks, each against a baseline measured in the same run.

    python python/bench_arrow.py [--episodes 24] [--frame 84x84x3] [--no-ray]

- export: `trajstore export --format parquet` of a synthetic store (read every field from the
  store, build the steps and episodes tables, write snappy Parquet, fsync) against pyarrow
  writing the same table (already in memory) to Parquet with the same compression and
  dictionary settings (`pyarrow.parquet.write_table`, then fsync);
- ray: one pass over every row of `trajstore.ray.read_trajstore` against Ray's own
  `ray.data.read_parquet` of the exported steps table, with the same number of read tasks
  and the same local Ray (2 CPUs), both consumed as pyarrow batches.
Rounds alternate between the two sides; the best round of each counts.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pyarrow as pa
import pyarrow.parquet as pq

import trajstore

ROUNDS = 3


def fsync_tree(root: str) -> None:
    for dirpath, _, files in os.walk(root):
        for f in files:
            fd = os.open(os.path.join(dirpath, f), os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)


def bench_export(store_path: str, work: str) -> tuple[float, float, int]:
    snapshot = trajstore.Store(store_path, read_only=True).snapshot()
    ids = [e["id"] for e in snapshot.episodes(trajstore.Selection())]
    table = pa.table(snapshot.steps_table(ids))
    nbytes = table.nbytes
    ours, theirs = [], []
    for r in range(ROUNDS):
        out = os.path.join(work, f"export-{r}")
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "trajstore", "export", store_path, out], check=True, capture_output=True)
        ours.append(time.perf_counter() - t)
        shutil.rmtree(out)
        path = os.path.join(work, f"pyarrow-{r}.parquet")
        t = time.perf_counter()
        pq.write_table(table, path, compression="snappy", use_dictionary=False)
        fsync_tree(work)
        theirs.append(time.perf_counter() - t)
        os.remove(path)
    return min(ours), min(theirs), nbytes


def bench_ray(store_path: str, work: str, blocks: int) -> tuple[float, float, int]:
    import ray

    from trajstore.ray import read_trajstore

    out = os.path.join(work, "export")
    subprocess.run([sys.executable, "-m", "trajstore", "export", store_path, out], check=True, capture_output=True)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False

    def consume(dataset) -> tuple[float, int]:
        t = time.perf_counter()
        rows = 0
        for batch in dataset.iter_batches(batch_format="pyarrow", batch_size=1024):
            rows += batch.num_rows
        return time.perf_counter() - t, rows

    ours, theirs, rows = [], [], 0
    try:
        for _ in range(ROUNDS):
            seconds, rows = consume(read_trajstore(store_path, override_num_blocks=blocks))
            ours.append(seconds)
            seconds, their_rows = consume(ray.data.read_parquet(os.path.join(out, "steps"), override_num_blocks=blocks))
            assert their_rows == rows
            theirs.append(seconds)
    finally:
        ray.shutdown()
    return min(ours), min(theirs), rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--episodes", type=int, default=24)
    ap.add_argument("--frame", default="84x84x3")
    ap.add_argument("--blocks", type=int, default=4)
    ap.add_argument("--no-ray", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        store_path = os.path.join(work, "store")
        subprocess.run([sys.executable, "-m", "trajstore", "synth", store_path, "--user", "bench", "--episodes", str(args.episodes),
                        "--frame", args.frame, "--min-steps", "200", "--max-steps", "400"], check=True, capture_output=True)
        ours, theirs, nbytes = bench_export(store_path, work)
        mib = nbytes / (1 << 20)
        print(f"export: trajstore export {mib / ours:.0f} MiB/s, pyarrow write_table of the same table {mib / theirs:.0f} MiB/s "
              f"({mib:.0f} MiB): ratio {theirs / ours:.2f}x (time pyarrow / time trajstore; trajstore also reads the store)")
        if not args.no_ray:
            ours, theirs, rows = bench_ray(store_path, work, args.blocks)
            print(f"ray: read_trajstore {rows / ours:.0f} rows/s, read_parquet of the export {rows / theirs:.0f} rows/s "
                  f"({rows} rows): ratio {theirs / ours:.2f}x (time read_parquet / time read_trajstore)")


if __name__ == "__main__":
    main()
