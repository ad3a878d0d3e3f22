"""The type stubs of the native module (`_trajstore.pyi`) match the built module: every class,
function, argument name, default and constant, checked by mypy's stubtest."""

import os
import subprocess
import sys

import pytest

pytest.importorskip("mypy.stubtest", reason="mypy is not installed (.ci/run installs it, pinned)")


def test_native_stubs_match_the_built_module(tmp_path):
    # A fresh cache directory: stubtest must read this build's stubs, never a stale cache.
    out = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "trajstore._trajstore"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "MYPY_CACHE_DIR": str(tmp_path / "mypy-cache")},
    )
    assert out.returncode == 0, f"stubs and module disagree:\n{out.stdout}\n{out.stderr}"
