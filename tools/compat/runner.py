"""Running the compat probes: in this process (`run_probe`), as a worker printing one
marked JSON line per probe (`worker`), and one fresh, time-bounded subprocess per bridge
(`run`), so that a probe that crashes or poisons its process costs only itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from .cases import CaseError, case_for
from .helpers import not_installed
from .probes import FEATURES, NOT_PROBED, PROBES, NotApplicable, Skip

STATUSES = ("pass", "fail", "skip", "n/a")
# Features probed first thing in a fresh process of their own, as a TF1 script would run
# them: an earlier eager build must not make them pass (Sonnet's once-only TF2 check).
FRESH = frozenset({"graph", "train_graph"})
MARK = "@@tfunite-probe@@ "  # prefixes the worker's result lines (frameworks print too)
POISONED = 3  # worker exit code: a probe left the process unusable for the next ones


@dataclass
class Result:
    """The outcome of one probe."""

    bridge: str
    feature: str
    status: str  # one of STATUSES
    reason: str = ""  # why it is not a pass (the real error for a fail)
    seconds: float = 0.0


# ---------------------------------------------------------------------------- in-process
def _reason(error: BaseException) -> str:
    text = str(error)
    if "Detected at node" in text:  # a TF op error: keep its message, not its traceback
        lines = [ln.strip() for ln in text.splitlines()]
        node = next((i for i, ln in enumerate(lines) if ln.startswith("Node: ")), None)
        if node is not None:
            text = " ".join(ln for ln in lines[node : node + 2] if ln)
    text = " ".join(text.split())
    if len(text) > 400:
        text = text[:397] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def run_probe(bridge: str, feature: str) -> Result:
    """Run one probe in this process."""
    import importlib.util

    start = time.perf_counter()
    if (bridge, feature) in NOT_PROBED and (bridge, feature) not in PROBES:
        return Result(bridge, feature, "n/a", NOT_PROBED[(bridge, feature)])
    if (bridge, feature) not in PROBES:
        return Result(
            bridge, feature, "fail", f"no probe and no allow-list entry for {bridge} x {feature}"
        )
    try:
        case = case_for(bridge)
    except CaseError as e:
        return Result(bridge, feature, "fail", _reason(e))
    if importlib.util.find_spec(case.record.import_name) is None:
        return Result(bridge, feature, "skip", not_installed(case.record))
    with tempfile.TemporaryDirectory(prefix=f"tfunite-{bridge}-{feature}-") as tmp:
        try:
            PROBES[(bridge, feature)](case, Path(tmp))
            status, reason = "pass", ""
        except NotApplicable as e:
            status, reason = "n/a", str(e)
        except Skip as e:
            status, reason = "skip", str(e)
        except Exception as e:  # the real error is the result
            status, reason = "fail", _reason(e).replace(tmp, "<tmp>").replace(sys.prefix, "<venv>")
            if os.environ.get("TFUNITE_COMPAT_TRACEBACK"):
                traceback.print_exc(file=sys.stderr)
    return Result(bridge, feature, status, reason, round(time.perf_counter() - start, 2))


def _gate(bridge: str) -> str | None:
    """Why the bridge's case cannot run here although its framework imports, or None."""
    try:
        case = case_for(bridge)
    except CaseError:
        return None  # run_probe reports it
    return case.gate() if case.gate is not None else None


def _poisoned() -> str | None:
    """Why this process can no longer run probes cleanly, or None."""
    tf = sys.modules.get("tensorflow")
    if tf is not None and not tf.executing_eagerly():
        return "it left eager execution switched off for the whole process"
    return None


def worker(bridge: str, features: Sequence[str]) -> int:
    """Run the probes of one bridge in this process; print one marked JSON line each.

    Exits with POISONED right after a probe that leaves global state broken (eager
    execution switched off): the runner continues in a fresh process.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "distribute" in features:  # two logical CPUs, before TensorFlow initialises
        from .probes_distribute import prepare

        prepare()
    gate = _gate(bridge)
    for feature in features:
        if gate is not None and (bridge, feature) not in NOT_PROBED:
            result = Result(bridge, feature, "skip", gate)
        else:
            result = run_probe(bridge, feature)
        poison = _poisoned()
        if poison:
            result.status = "fail"
            result.reason = "; ".join(filter(None, [result.reason, poison]))
        print(MARK + json.dumps(asdict(result)), flush=True)
        if poison:
            return POISONED
    return 0


# ---------------------------------------------------------------------------- subprocesses
def _run_bridge(
    bridge: str, features: Sequence[str], timeout: float, python: str = sys.executable
) -> list[Result]:
    """Run one bridge's probes in a fresh subprocess.

    A probe that crashes the worker (or exceeds `timeout` seconds) fails with the reason,
    and the remaining probes continue in a fresh worker, as they do after a probe that
    poisons the process.
    """
    results: dict[str, Result] = {}
    shared = [f for f in features if f not in FRESH]
    for batch in [shared] + [[f] for f in features if f in FRESH]:
        results.update(_run_batch(bridge, batch, timeout, python))
    return [results[f] for f in features]


def _run_batch(
    bridge: str, features: Sequence[str], timeout: float, python: str
) -> dict[str, Result]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONHASHSEED="0")
    results: dict[str, Result] = {}
    remaining = list(features)
    while remaining:
        cmd = [python, "-m", "tfunite.tools.compat", "--worker", bridge, "--feature", *remaining]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
            stdout, stderr, code = proc.stdout, proc.stderr, proc.returncode
            why = f"worker exited with code {code}"
        except subprocess.TimeoutExpired as e:
            stdout = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            stderr = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
            code, why = None, f"worker timed out after {timeout:g}s"
        for line in stdout.splitlines():
            if line.startswith(MARK):
                r = Result(**json.loads(line[len(MARK) :]))
                results[r.feature] = r
        progressed = len(remaining) != len([f for f in remaining if f not in results])
        remaining = [f for f in remaining if f not in results]
        if remaining and (code != POISONED or not progressed):
            tail = " | ".join(ln.strip() for ln in stderr.strip().splitlines()[-3:])
            crashed = remaining.pop(0)  # the probe that was running
            results[crashed] = Result(bridge, crashed, "fail", f"{why} during this probe: {tail}")
    return results


def run(
    bridges: Sequence[str],
    features: Sequence[str] = FEATURES,
    jobs: int = 2,
    timeout: float = 600.0,
) -> list[Result]:
    """Run every probe of `bridges`, one subprocess per bridge, `jobs` at a time."""
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        chunks = list(pool.map(lambda b: _run_bridge(b, features, timeout), bridges))
    return [r for chunk in chunks for r in chunk]
