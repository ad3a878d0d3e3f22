"""The type stubs of the native module (`_trajstore.pyi`) match the built module (every class,
function, argument name, default and constant, checked by mypy's stubtest), and the Python
layer type-checks against them (mypy), so a stub that lies fails here, not in a user's IDE."""

import os
import subprocess
import sys

import pytest

pytest.importorskip("mypy.stubtest", reason="mypy is not installed (.ci/run installs it, pinned)")

PY_SRC = os.path.join(os.path.dirname(__file__), "..", "py_src")


def mypy(cache, *args):
    # mypy's cache (keyed by file contents) in pytest's: a minute the first time, seconds after.
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, timeout=300,
        env={**os.environ, "MYPY_CACHE_DIR": str(cache.mkdir("mypy"))},
    )


def test_native_stubs_match_the_built_module(pytestconfig):
    out = mypy(pytestconfig.cache, "mypy.stubtest", "trajstore._trajstore")
    assert out.returncode == 0, f"stubs and module disagree:\n{out.stdout}\n{out.stderr}"


def test_the_python_layer_type_checks_against_the_stubs(pytestconfig):
    # torch is optional (and installed after these tests in .ci/run): not required here.
    out = mypy(pytestconfig.cache, "mypy", "--ignore-missing-imports", os.path.abspath(os.path.join(PY_SRC, "trajstore")))
    assert out.returncode == 0, f"mypy found type errors:\n{out.stdout}\n{out.stderr}"
