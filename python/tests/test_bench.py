"""python/bench.py --small runs end to end (~15 s here): every op, both workloads, each side
reading the same bytes (the harness asserts it), ratios printed against the same run."""

import importlib.util
import pathlib

BENCH = pathlib.Path(__file__).resolve().parents[1] / "bench.py"


def test_small_side_by_side_run_reports_every_op_against_the_numpy_floor(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("trajstore_bench", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    # A --dir that does not exist yet is made (a traceback before).
    scratch = tmp_path / "scratch"
    rows, overhead = bench.main(["--small", "--no-peer", "--dir", str(scratch)])
    ops = {(name, op) for name, op, _ in rows}
    for name in ("arcade", "control"):
        for op in ("record, 1 writer", "record, 4 processes", "scan", "gather 256 pairs", "by-user select + load"):
            assert (name, op) in ops, f"{name}: {op} missing"
    for name, op, times in rows:
        assert times["trajstore"] > 0 and times["numpy"] > 0, (name, op, times)
        assert (name == "arcade") == ("trajstore-lz4" in times), (name, op, times)
    assert {(name, k) for name, k, *_ in overhead} >= {("arcade", "trajstore"), ("control", "numpy")}
    out = capsys.readouterr().out
    assert "x raw" in out and "us/step" in out
    assert "x lz4 loop" in out or "lz4 not installed" in out, "the lz4 scan's tight-loop reference"
    assert list(scratch.iterdir()) == [], "scratch stores are removed"
