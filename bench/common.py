"""Shared helpers for the tfunite benchmarks (stdlib only, no TensorFlow import).

Every benchmark compares tfunite against a native baseline measured in the same run,
states its targets, prints one PASS/FAIL line per target and exits 0; `--strict` makes
a missed target exit 1. Each target line is followed by a `#RESULT {json}` line that
`bench/run_all.py` collects into its summary table. A benchmark added by anyone can use
`Target` and `finish` from here to take part in the summary.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

RESULT_PREFIX = "#RESULT "


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark shares."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    return p


@dataclass
class Target:
    """One performance goal: `value op limit` (op is '<=' or '>=')."""

    bench: str
    name: str
    value: float
    limit: float
    op: str = "<="
    unit: str = "x"
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.value <= self.limit if self.op == "<=" else self.value >= self.limit

    def report(self) -> bool:
        """Print the human line and the machine line; return whether the target is met."""
        verdict = "PASS" if self.passed else "FAIL"
        unit = "" if self.unit == "x" else f" {self.unit}"
        value = f"{self.value:.3f}{'x' if self.unit == 'x' else ''}{unit}"
        line = f"[{verdict}] {self.bench}: {self.name} = {value} (target {self.op} {self.limit:g}{unit})"
        if self.detail:
            line += f"  {self.detail}"
        print(line)
        print(RESULT_PREFIX + json.dumps({**asdict(self), "passed": self.passed}))
        return self.passed


def finish(targets: Sequence[Target], strict: bool) -> int:
    """Report every target; the exit code (1 only with --strict and a missed target)."""
    ok = all([t.report() for t in targets])
    print(
        f"{'all targets met' if ok else 'TARGET MISSED'} ({sum(t.passed for t in targets)}"
        f"/{len(targets)})"
    )
    return 0 if ok or not strict else 1


def interleaved(
    runs: dict[str, Callable[[], float]], repeats: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Time each named run `repeats` times, interleaved (ABAB..., order alternating each
    round) to cancel drift; each callable returns its own measured duration in seconds.
    `warmup` untimed rounds come first."""
    names = list(runs)
    for _ in range(warmup):
        for name in names:
            runs[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(repeats):
        for name in names if i % 2 == 0 else names[::-1]:
            times[name].append(runs[name]())
    return times


def timed(fn: Callable[[], object]) -> Callable[[], float]:
    """A callable returning the wall time of one `fn()` call."""

    def run() -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    return run


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def paired_ratio(candidate: Sequence[float], baseline: Sequence[float]) -> float:
    """Median of the per-round ratios candidate/baseline (robust to slow drift)."""
    return statistics.median(c / b for c, b in zip(candidate, baseline))


def ratios(candidate: Sequence[float], baseline: Sequence[float]) -> str:
    """The three usual estimators of candidate/baseline, for the printout."""
    return (
        f"median of paired ratios {paired_ratio(candidate, baseline):.3f}, ratio of medians "
        f"{median(candidate) / median(baseline):.3f}, ratio of minimums "
        f"{min(candidate) / min(baseline):.3f}"
    )


def spread(xs: Sequence[float]) -> str:
    """'median [min..max]' in milliseconds."""
    return f"{median(xs) * 1e3:.1f} ms [{min(xs) * 1e3:.1f}..{max(xs) * 1e3:.1f}]"


def run_phase(program: str, phase: str, *args: str) -> dict:
    """Run `program` (python -c) in a fresh process with `phase` and `args`; the JSON
    object it prints on its last stdout line. Exits with its stderr's tail if it fails."""
    res = subprocess.run(
        [sys.executable, "-c", program, phase, *args], capture_output=True, text=True, check=False
    )
    if res.returncode:
        sys.exit(f"phase {phase} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def machine() -> str:
    """One line describing where the numbers were measured."""
    return f"python {sys.version.split()[0]}, {os.cpu_count()} CPU(s), {sys.platform}"


def compare_steps(native: Any, tfunite: Any, x: Any, y: Any, steps: int, repeats: int) -> float:
    """Time two `tf.function` training steps ``step(x, y) -> loss`` against each other.

    Prints the op counts of both traced graphs (identical graphs mean a measured
    difference is noise), then `repeats` interleaved rounds of `steps` steps per side,
    per-step spreads and ratio estimators; returns the median of paired ratios
    tfunite/native.
    """
    ops = {}
    for side, step in (("native", native), ("tfunite", tfunite)):
        graph = step.get_concrete_function(x, y).graph
        ops[side] = Counter(op.type for op in graph.get_operations())
    only = {
        side: ops[side] - ops[other]
        for side, other in (("native", "tfunite"), ("tfunite", "native"))
    }

    def loop(step: Any) -> Callable[[], None]:
        def run() -> None:
            for _ in range(steps):
                loss = step(x, y)
            loss.numpy()  # wait for the last step

        return run

    times = interleaved(
        {"native": timed(loop(native)), "tfunite": timed(loop(tfunite))}, repeats, warmup=2
    )
    per_step = {k: [t / steps for t in v] for k, v in times.items()}
    print(f"  {repeats} interleaved rounds x {steps} steps; {machine()}")
    print(f"  native  per step: {spread(per_step['native'])}")
    print(f"  tfunite per step: {spread(per_step['tfunite'])}")
    print(f"  {ratios(times['tfunite'], times['native'])}")
    print(
        f"  graph ops: native {sum(ops['native'].values())}, tfunite "
        f"{sum(ops['tfunite'].values())}; only in native: {dict(only['native']) or 'none'}; "
        f"only in tfunite: {dict(only['tfunite']) or 'none'}"
    )
    return paired_ratio(times["tfunite"], times["native"])
