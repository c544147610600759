"""`tfunite compat` (or `python -m tfunite.tools.compat`): the command line of the probes."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .probes import FEATURES, registered_bridges
from .runner import run, worker
from .table import REGENERATE, check, format_table, report


def build_parser() -> argparse.ArgumentParser:
    """The parser of `tfunite compat`."""
    parser = argparse.ArgumentParser(
        prog="tfunite compat",
        description="Probe every bridge x feature in this environment and print what works.",
    )
    parser.add_argument(
        "--bridge",
        action="append",
        metavar="B",
        help="probe only this bridge (repeatable); default: every registered bridge",
    )
    parser.add_argument(
        "--feature",
        nargs="+",
        choices=FEATURES,
        metavar="F",
        help=f"probe only these features (of: {', '.join(FEATURES)})",
    )
    parser.add_argument(
        "--json", action="store_true", help="print a JSON report instead of a table"
    )
    parser.add_argument(
        "--check",
        metavar="MATRIX",
        help="compare this environment's column of MATRIX (compat_matrix.md) "
        "with a fresh run; exit 1 with the differences if it is stale",
    )
    parser.add_argument(
        "--column",
        help="with --check: the matrix column to compare "
        "(default: the one with this tensorflow version)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 if any probe fails")
    parser.add_argument(
        "--jobs",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="bridges probed in parallel (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="seconds allowed per bridge subprocess (default: %(default)s)",
    )
    parser.add_argument("--worker", metavar="B", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | argparse.Namespace | None = None) -> int:
    """Run `tfunite compat`; returns the exit code."""
    parser = build_parser()
    if isinstance(argv, argparse.Namespace):
        argv = getattr(argv, "args", None) or []
    args = parser.parse_args(argv)
    features = tuple(args.feature or FEATURES)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.worker:
        return worker(args.worker, features)
    known = registered_bridges()
    bridges = args.bridge or known
    unknown = [b for b in bridges if b not in known]
    if unknown:
        parser.error(f"unknown bridge(s) {', '.join(unknown)}; registered: {', '.join(known)}")
    if args.check and not Path(args.check).is_file():
        parser.error(f"--check: no such file {args.check!r}")
    results = run(bridges, features, jobs=args.jobs, timeout=args.timeout)
    if args.check:
        diffs = check(args.check, results, args.column)
        if diffs:
            print(f"{args.check} is stale for this environment:", file=sys.stderr)
            for d in diffs:
                print(f"  - {d}", file=sys.stderr)
            print(
                f"Fix: regenerate it with `{REGENERATE}` (or `make matrix`) in a checkout.",
                file=sys.stderr,
            )
            return 1
        print(f"{args.check} matches this environment ({len(results)} probes).")
        return 0
    if args.json:
        print(json.dumps(report(results), indent=2))
    else:
        print(format_table(results))
    if args.strict and any(r.status == "fail" for r in results):
        return 1
    return 0
