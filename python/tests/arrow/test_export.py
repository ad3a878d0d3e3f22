"""`trajstore export`: Parquet (the Rust writer) and Lance (pylance, from the wheel's command),
read back with pyarrow and pylance and compared value by value with the store."""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from trajstore.cli import run

from arrow_store import FIELDS, stored_rows

pa = pytest.importorskip("pyarrow", reason="pyarrow is not installed (.ci/run installs it, pinned)")
import pyarrow.dataset as ds  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402


def export(store, out, *args):
    done = subprocess.run([sys.executable, "-m", "trajstore", "export", str(store.path), str(out), *args],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done


def compare_steps(store, table, episode_ids, fields):
    """Every row of `table` (the steps of `episode_ids`, in order) equals the store's value."""
    by_episode = table.group_by("episode").aggregate([("step", "count")])
    assert sorted(by_episode.column("episode").to_pylist()) == sorted(episode_ids)
    start = 0
    for episode in episode_ids:
        want = stored_rows(store, episode, fields)
        n = len(want["step"])
        got = table.slice(start, n)
        start += n
        assert got.column("episode").to_pylist() == want["episode"]
        assert got.column("step").to_pylist() == want["step"]
        for name in fields:
            dtype, shape = next((d, s) for n_, d, s, *_ in FIELDS + [("reward", "f32", ())] if n_ == name)
            for t, (value, stored) in enumerate(zip(got.column(name).to_pylist(), want[name])):
                if stored is None:
                    assert value is None
                elif dtype == "u8" and len(shape) >= 2:
                    assert value == stored.tobytes(), f"episode {episode} {name} row {t}"
                else:
                    np.testing.assert_array_equal(np.asarray(value, dtype=stored.dtype).reshape(stored.shape), stored)
    assert start == table.num_rows


def test_parquet_export_reads_back_equal_to_the_store(mixed_store, tmp_path):
    out = tmp_path / "out"
    done = export(mixed_store, out, "--user", "alice", "--json")
    manifest = json.loads(done.stdout)
    alice = [e.id for e in mixed_store.episodes(user="alice")]
    assert manifest == json.loads((out / "manifest.json").read_text())
    assert manifest["episodes"] == len(alice) and manifest["max_episode_id"] == max(alice)
    assert manifest["store"]["path"] == os.path.realpath(mixed_store.path)
    assert manifest["store"]["cutoff"] == mixed_store.snapshot().cutoff()
    assert manifest["selection"]["users"] == ["alice"]
    episodes = pq.read_table(out / "episodes")
    assert episodes.column("id").to_pylist() == alice
    steps = ds.dataset(out / "steps", format="parquet").to_table()
    assert steps.num_rows == manifest["step_rows"] == sum(e.steps + 1 for e in mixed_store.episodes(user="alice"))
    names = [f[0] for f in FIELDS] + ["reward"]
    compare_steps(mixed_store, steps, alice, names)


def test_parquet_export_of_chosen_fields_in_order(mixed_store, tmp_path):
    out = tmp_path / "out"
    export(mixed_store, out, "--fields", "action,obs/gray", "--env", "Breakout-v5", "--compression", "lz4")
    steps = pq.read_table(out / "steps")
    assert steps.column_names == ["episode", "step", "action", "obs/gray"]
    ids = [e.id for e in mixed_store.episodes(env="Breakout-v5")]
    compare_steps(mixed_store, steps, ids, ["action", "obs/gray"])


def test_exporting_one_snapshot_twice_gives_the_same_bytes(mixed_store, tmp_path):
    def digest(root):
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}

    export(mixed_store, tmp_path / "a")
    export(mixed_store, tmp_path / "b")
    a, b = digest(tmp_path / "a"), digest(tmp_path / "b")
    assert a == b and "steps/part-00000.parquet" in a and "manifest.json" in a


def test_an_existing_output_is_refused_and_kept(mixed_store, tmp_path, capfd):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine").write_text("keep")
    assert run(["export", mixed_store.path, out]) == 2
    assert "already exists" in capfd.readouterr().err
    assert (out / "mine").read_text() == "keep"


def test_lance_export_reads_back_equal_to_the_store(mixed_store, tmp_path):
    lance = pytest.importorskip("lance", reason="pylance is not installed (.ci/run installs it, pinned)")
    out = tmp_path / "out"
    manifest = json.loads(export(mixed_store, out, "--format", "lance", "--json").stdout)
    assert manifest["table_format"] == "lance"
    assert [f["path"] for f in manifest["tables"]["steps"]["files"]] == ["steps.lance"]
    episodes = lance.dataset(str(out / "episodes.lance")).to_table()
    ids = [e.id for e in mixed_store.episodes()]
    assert episodes.column("id").to_pylist() == ids
    steps = lance.dataset(str(out / "steps.lance")).to_table()
    assert steps.num_rows == manifest["step_rows"]
    compare_steps(mixed_store, steps, ids, [f[0] for f in FIELDS] + ["reward"])
    # The same rows as the Parquet export of the same snapshot.
    export(mixed_store, tmp_path / "pq")
    assert steps.equals(pq.read_table(tmp_path / "pq" / "steps").cast(steps.schema))
