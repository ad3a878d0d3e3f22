"""`trajstore import diambra DIR FILES...` and `trajstore import minari DIR DATASET_PATH`: the
importers' command line, run by the package's `trajstore` command (the Rust binary alone has
no Python libraries to read these formats with)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from .._trajstore import TrajstoreError
from ._common import ImportReport, SourceError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trajstore import", description="Import episodes recorded by other tools "
                                "(schema/import.md): one atomic commit per episode; a re-run skips what already landed.")
    sub = p.add_subparsers(dest="source", required=True)
    d = sub.add_parser("diambra", help="DIAMBRA Arena .diambra files (EpisodeRecorder)")
    d.add_argument("dir", help="the store (created when missing)")
    d.add_argument("files", nargs="+", help=".diambra files")
    m = sub.add_parser("minari", help="a Minari dataset (HDF5 or Arrow backend)")
    m.add_argument("dir", help="the store (created when missing)")
    m.add_argument("dataset_path", help="the dataset's directory (holding data/metadata.json)")
    m.add_argument("--user", default="minari", help="user name of the imported episodes (default: minari)")
    for s in (d, m):
        s.add_argument("--json", action="store_true", help="print the report as one JSON object")
    return p


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(list(argv))
    try:
        report: ImportReport
        if args.source == "diambra":
            from .diambra import import_files

            report = import_files(args.dir, args.files)
        else:
            from .minari import import_dataset

            report = import_dataset(args.dir, args.dataset_path, user=args.user)
    except (SourceError, TrajstoreError, ImportError, OSError) as e:
        print(f"trajstore: error: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report.to_json()))
    else:
        print("\n".join(report.lines()))
    return 0
