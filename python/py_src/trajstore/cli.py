"""The `trajstore` command (console script and `python -m trajstore`): the Rust binary's own
command line, compiled into the extension module, so `pip install` brings `trajstore init`,
`info`, `verify`, `serve`, ... with no second build."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from typing import Sequence

from ._trajstore import run_cli


#: names the executable that runs this CLI, for commands that start it again as recorder
#: processes (`bench --mode concurrent`): this process is the interpreter, not the CLI
SELF_COMMAND_VAR = "TRAJSTORE_SELF_COMMAND"


def run(args: Sequence[str | os.PathLike]) -> int:
    """Runs `trajstore ARGS...` in this process and returns its exit status (output goes to
    this process's stdout and stderr). `import` runs the Python importers; everything else, the
    Rust command line."""
    if args and os.fspath(args[0]) == "import":
        from .importers.cli import main as import_main

        try:
            return import_main([os.fspath(a) for a in args[1:]])
        except SystemExit as e:  # argparse: --help (0) or a usage error (2)
            return e.code if isinstance(e.code, int) else 2
    script = shutil.which("trajstore", path=os.path.dirname(sys.executable))
    if script is not None:
        os.environ.setdefault(SELF_COMMAND_VAR, script)
    return run_cli(["trajstore", *(os.fspath(a) for a in args)])


def main() -> None:
    # The native command holds the process until done: Python's SIGINT handler would only set
    # a flag nobody checks (`serve` runs until killed), so Ctrl-C gets its default action back,
    # as for the Rust binary. Only here, in a process that is the command.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.stdout.flush()
    sys.exit(run(sys.argv[1:]))
