"""Run every benchmark in bench/ (`bench_*.py`) and print a summary table.

Each script runs in its own subprocess (one at a time: they time things), its output
is shown as it comes, and the `#RESULT {json}` lines it prints (see common.py) become
rows of the summary. A script that prints no such line still gets a row with its exit
status. Options after the script's own are passed to every benchmark (`--quick`,
`--strict`).

Exit status: 1 if a benchmark crashed (exit status other than 0, or 1 under --strict
for a missed target) or, with --strict, if any target was missed; 0 otherwise.

    python bench/run_all.py [--strict] [--quick] [-k SUBSTRING]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import RESULT_PREFIX

HERE = Path(__file__).resolve().parent


def run(script: Path, extra: list[str]) -> tuple[int, float, list[dict]]:
    """Run one benchmark, echoing its output; (exit status, seconds, results)."""
    print(f"\n=== {script.name} {' '.join(extra)}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(script), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=HERE.parent,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    results = []
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(RESULT_PREFIX):
            try:
                results.append(json.loads(line[len(RESULT_PREFIX) :]))
            except json.JSONDecodeError:
                print(f"(unparsable result line: {line.rstrip()})")
            continue
        print(line, end="", flush=True)
    return proc.wait(), time.perf_counter() - t0, results


def fmt(x: float, unit: str) -> str:
    return f"{x:.3f}x" if unit == "x" else f"{x:.3g} {unit}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    p.add_argument("-k", default="", help="only benchmarks whose file name contains this")
    args = p.parse_args(argv)
    extra = [flag for flag, on in (("--quick", args.quick), ("--strict", args.strict)) if on]

    scripts = sorted(s for s in HERE.glob("bench_*.py") if args.k in s.name)
    if not scripts:
        print(f"no bench_*.py matching {args.k!r} in {HERE}")
        return 1
    rows: list[tuple[str, str, str, str, str]] = []
    crashed = missed = False
    for script in scripts:
        status, seconds, results = run(script, extra)
        failed_target = any(not r["passed"] for r in results)
        missed |= failed_target
        # Under --strict a missed target exits 1 by design; anything else non-zero is a crash.
        if status != 0 and not (args.strict and status == 1 and failed_target):
            crashed = True
            rows.append((script.name, f"(exit status {status})", "", "", "ERROR"))
        if not results and status == 0:
            rows.append((script.name, "(no #RESULT lines)", "", "", "ran"))
        for r in results:
            rows.append(
                (
                    script.name,
                    r["name"],
                    fmt(r["value"], r["unit"]),
                    f"{r['op']} {fmt(r['limit'], r['unit'])}",
                    "PASS" if r["passed"] else "FAIL",
                )
            )
        print(f"--- {script.name}: exit {status} in {seconds:.0f} s", flush=True)

    header = ("benchmark", "target", "measured", "limit", "result")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print("\n=== summary")
    print(line.format(*header))
    print(line.format(*("-" * w for w in widths)))
    for row in rows:
        print(line.format(*row))
    if crashed:
        return 1
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
