"""What a compat run prints and how the matrix is written and read back: the JSON report,
the plain-text table, compat_matrix.md (`render_matrix` / `parse_matrix`) and `check`,
which compares the matrix's column for this environment with a fresh run.
"""

from __future__ import annotations

import datetime as _dt
import re
import subprocess
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .probes import FEATURE_DOCS, FEATURES
from .runner import STATUSES, Result

# rows of the matrix's versions table that say where a column comes from, not a package
PROVENANCE_ROWS = ("probed (UTC)", "tfunite commit")
# keys of the environment (tfunite.tools.doctor.versions()) not shown as a version row:
# the commit row says which tfunite ran
NOT_VERSION_ROWS = ("tfunite",)
STATUS_CELL = {"pass": "pass", "fail": "**fail**", "skip": "skip", "n/a": "n/a"}
REGENERATE = "python maint/matrix.py"  # in a checkout; `make matrix` runs it


# ---------------------------------------------------------------------------- a run
def report(results: Sequence[Result]) -> dict[str, Any]:
    """The JSON document of a run: environment, date, results, counts."""
    from tfunite.tools.doctor import versions

    counts = {s: sum(r.status == s for r in results) for s in STATUSES}
    return {
        "tool": "tfunite compat",
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "tfunite_commit": source_commit(),
        "environment": versions(),
        "counts": counts,
        "results": [asdict(r) for r in results],
    }


def source_commit() -> str | None:
    """The git commit of the tfunite code that ran (`+dirty` with local changes), or None
    outside a git checkout."""
    root = Path(__file__).resolve().parents[2]

    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(
                ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    commit = git("rev-parse", "--short=12", "HEAD")
    if commit is None:
        return None
    # compat_matrix.md itself is rewritten while the matrix is made: not a code change
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!compat_matrix.md")
    return commit + ("+dirty" if changed else "")


def format_table(results: Sequence[Result]) -> str:
    """A plain-text table: one row per bridge x feature, the reason for anything not a pass."""
    rows = [("bridge", "feature", "status", "seconds", "reason")]
    rows += [(r.bridge, r.feature, r.status, f"{r.seconds:.1f}", r.reason) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for row in rows:
        lines.append(
            "  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths, strict=True))
            + "  "
            + row[4]
        )
    counts = ", ".join(f"{sum(r.status == s for r in results)} {s}" for s in STATUSES)
    lines.append(f"\n{len(results)} probes: {counts}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- the matrix
def _version_rows(runs: Sequence[dict[str, Any]]) -> list[str]:
    """The packages of the runs' environments, in the order the reports list them."""
    rows: list[str] = []
    for run in runs:
        rows += [k for k in run["environment"] if k not in rows and k not in NOT_VERSION_ROWS]
    return rows


def render_matrix(runs: Sequence[dict[str, Any]], date: str | None = None) -> str:
    """compat_matrix.md from probe reports (one per column, oldest line first)."""
    date = date or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d")
    columns = [f"tf-{run['line']}" for run in runs]
    notes: dict[str, int] = {}

    def note(reason: str) -> int:
        return notes.setdefault(reason, len(notes) + 1)

    rows: list[tuple[str, str]] = []
    cells: dict[tuple[str, str, str], str] = {}
    for column, run in zip(columns, runs, strict=True):
        for r in run["results"]:
            key = (r["bridge"], r["feature"])
            if key not in rows:
                rows.append(key)
            cell = STATUS_CELL[r["status"]]
            if r["reason"]:
                cell += f" [{note(r['reason'])}]"
            cells[(column, *key)] = cell

    out = [
        "# tfunite compatibility matrix",
        "",
        f"Generated on {date} (UTC) by `{REGENERATE}` from real runs of "
        "`python -m tfunite.tools.compat --json`, one venv per TensorFlow line built from "
        "`maint/constraints/tf-<line>.txt`. Do not edit by hand: regenerate it.",
        "",
        "Statuses: **pass**: the probe's assertion held (outputs finite and equal across "
        "modes at rtol=atol=1e-6, loss decreasing, exact load round trips); **fail**: it did "
        "not, or the code raised (reason in the notes); **skip**: the framework cannot be "
        "installed or used on this line; **n/a**: the feature does not exist for the bridge "
        "by design (the note says why).",
        "",
        "## Versions",
        "",
        "| package | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for package in _version_rows(runs):
        out.append(
            f"| {package} | "
            + " | ".join(run["environment"].get(package, "-") for run in runs)
            + " |"
        )
    probed, commit = PROVENANCE_ROWS
    out.append(
        f"| {probed} | "
        + " | ".join(run.get("date", "-").replace("T", " ")[:16] for run in runs)
        + " |"
    )
    out.append(
        f"| {commit} | " + " | ".join(run.get("tfunite_commit") or "-" for run in runs) + " |"
    )
    out += ["", "## Features", "", "| feature | what the probe checks |", "|---|---|"]
    out += [f"| {f} | {FEATURE_DOCS[f]} |" for f in FEATURES]
    out += [
        "",
        "## Results",
        "",
        "| bridge | feature | " + " | ".join(columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for bridge, feature in rows:
        out.append(
            f"| {bridge} | {feature} | "
            + " | ".join(cells.get((c, bridge, feature), "-") for c in columns)
            + " |"
        )
    totals = []
    for run in runs:
        n = len(run["results"])
        passed = sum(r["status"] == "pass" for r in run["results"])
        na = sum(r["status"] == "n/a" for r in run["results"])
        totals.append(f"{passed}/{n - na}")
    out.append("| **pass** | (of applicable) | " + " | ".join(totals) + " |")
    out += ["", "## Notes", ""]
    out += [f"{number}. {reason}".replace("|", "\\|") for reason, number in notes.items()]
    out += [
        "",
        f"Regenerate: `{REGENERATE}` (or `make matrix`) in a checkout. Check the "
        "current environment's column: `python -m tfunite.tools.compat --check "
        "compat_matrix.md`.",
        "",
    ]
    return "\n".join(out)


_FOOTNOTE = re.compile(r"\s*\[(\d+)\]\s*$")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def parse_matrix(text: str) -> dict[str, Any]:
    """Read compat_matrix.md back: columns, versions per column, status per cell and the
    reason of every cell that has a note."""
    sections = re.split(r"^## ", text, flags=re.M)
    by_title = {s.split("\n", 1)[0].strip(): s for s in sections[1:]}
    if "Versions" not in by_title or "Results" not in by_title:
        raise ValueError("not a tfunite compat matrix: no '## Versions' and '## Results' sections")
    table = [ln for ln in by_title["Versions"].splitlines() if ln.startswith("|")]
    columns = _cells(table[0])[1:]
    versions: dict[str, dict[str, str]] = {c: {} for c in columns}
    for row in table[2:]:
        package, *vals = _cells(row)
        for column, value in zip(columns, vals, strict=True):
            if value != "-":
                versions[column][package] = value
    notes = {}
    for ln in by_title.get("Notes", "").splitlines():
        number, dot, reason = ln.partition(". ")
        if dot and number.isdigit():
            notes[number] = reason.replace("\\|", "|")
    table = [ln for ln in by_title["Results"].splitlines() if ln.startswith("|")]
    cells: dict[str, dict[tuple[str, str], str]] = {c: {} for c in columns}
    reasons: dict[str, dict[tuple[str, str], str]] = {c: {} for c in columns}
    for row in table[2:]:
        bridge, feature, *vals = _cells(row)
        if bridge.startswith("**"):
            continue  # the totals row
        for column, value in zip(columns, vals, strict=True):
            if value != "-":
                cells[column][(bridge, feature)] = _FOOTNOTE.sub("", value).strip("*")
                footnote = _FOOTNOTE.search(value)
                if footnote and footnote.group(1) in notes:
                    reasons[column][(bridge, feature)] = notes[footnote.group(1)]
    return {"columns": columns, "versions": versions, "cells": cells, "reasons": reasons}


def check(matrix_path: str, results: Sequence[Result], column: str | None = None) -> list[str]:
    """Differences between the matrix's column for this environment and a fresh run."""
    from tfunite.tools import doctor

    matrix = parse_matrix(Path(matrix_path).read_text())
    env = doctor.versions()
    if column is None:
        tf_version = env.get("tensorflow")
        matches = [c for c, v in matrix["versions"].items() if v.get("tensorflow") == tf_version]
        if not matches:
            return [
                f"no column of {matrix_path} has tensorflow {tf_version} "
                f"(columns: {', '.join(matrix['columns'])}); regenerate the matrix"
            ]
        column = matches[0]
    if column not in matrix["columns"]:
        return [f"{matrix_path} has no column {column!r} (columns: {', '.join(matrix['columns'])})"]
    diffs = []
    for package, want in matrix["versions"][column].items():
        if package in PROVENANCE_ROWS:
            continue
        have = env.get(package)
        if package == "python" and have is not None:  # a patch release changes no probe
            want, have = ".".join(want.split(".")[:2]), ".".join(have.split(".")[:2])
        if have is not None and have != want:
            diffs.append(f"version {package}: matrix {want}, here {have}")
    cells = matrix["cells"][column]
    for r in results:
        want = cells.get((r.bridge, r.feature))
        if want is None:
            diffs.append(f"{r.bridge} x {r.feature}: not in the matrix, here {r.status}")
        elif want != r.status:
            why = f" ({r.reason})" if r.reason else ""
            diffs.append(f"{r.bridge} x {r.feature}: matrix {want}, here {r.status}{why}")
    ran = {(r.bridge, r.feature) for r in results}
    bridges, features = {r.bridge for r in results}, {r.feature for r in results}
    for (bridge, feature), want in sorted(cells.items()):
        if (bridge, feature) not in ran and bridge in bridges and feature in features:
            diffs.append(f"{bridge} x {feature}: in the matrix ({want}), not probed here")
    return diffs
