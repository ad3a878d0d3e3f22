"""The wheel's command line: `trajstore` (console script) and `python -m trajstore` run the
Rust binary's CLI, so the `trajstore init DIR` that errors name is a command pip users have."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

import trajstore
from trajstore.cli import run


def test_init_named_by_the_open_error_creates_the_store_it_names(tmp_path):
    missing = tmp_path / "demos"
    with pytest.raises(trajstore.StoreOpenError) as refused:
        trajstore.Store(missing)
    command = str(refused.value).split("`")[1]
    assert command == f"trajstore init {missing}"
    done = subprocess.run([sys.executable, "-m", "trajstore", *command.split()[1:]], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert trajstore.Store(missing).episodes() == []


def test_console_script_is_the_same_cli(frames_store):
    script = shutil.which("trajstore", path=os.path.dirname(sys.executable))
    assert script, "the wheel installs a `trajstore` console script next to the interpreter"
    done = subprocess.run([script, "info", str(frames_store.path), "--json"], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout)["episodes"] == 8
    verify = subprocess.run([script, "verify", str(frames_store.path)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_run_returns_exit_statuses_without_exiting(tmp_path, capfd):
    assert run(["init", tmp_path / "s"]) == 0
    assert run(["no-such-command"]) == 2
    assert "unrecognized subcommand 'no-such-command'" in capfd.readouterr().err
    assert run(["info", tmp_path / "nothing-here"]) == 2
    assert "not a trajstore store" in capfd.readouterr().err


def test_ctrl_c_stops_serve(frames_store):
    serve = subprocess.Popen([sys.executable, "-m", "trajstore", "serve", str(frames_store.path), "--port", "0"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(2)
        assert serve.poll() is None, serve.stderr.read() if serve.stderr else ""
        serve.send_signal(signal.SIGINT)
        assert serve.wait(timeout=10) == -signal.SIGINT
    finally:
        serve.kill()
