"""Version matrix: run the compatibility probe in one venv per TensorFlow line.

For every constraint file `tools/constraints/tf-<line>.txt` (exact pins of TensorFlow,
its matching keras and tf-keras, and the current tf-slim, dm-sonnet, tflearn), this
builds a venv under `.matrix/tf-<line>/` (git-ignored), installs the pins and tfunite
(`pip install -e <repo> --no-deps`), runs `python -m tfunite.tools.compat --json` in it,
and writes `compat_matrix.md`: features x versions, the exact version of every
framework, the date, pass counts per column and the reason for every failure in
footnotes. The matrix is generated only; never edit it by hand.

    python -m tfunite.tools.matrix                 # build missing venvs, probe, write the matrix
    python -m tfunite.tools.matrix --line 2.21     # one line (others are kept from .matrix/results)
    python -m tfunite.tools.matrix --render        # rewrite the matrix from stored results only
    python -m tfunite.tools.matrix --lock 2.16     # pin every resolved package of a built venv

`parse_matrix` reads the file back (used by `tfunite compat --check`).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tfunite.tools.compat import FEATURE_DOCS, FEATURES, PROVENANCE_ROWS

REPO = Path(__file__).resolve().parent.parent
CONSTRAINTS = Path(__file__).resolve().parent / "constraints"
MATRIX_DIR = REPO / ".matrix"
OUTPUT = REPO / "compat_matrix.md"
LOCK_MARK = "# --- resolved set, written by `python -m tfunite.tools.matrix --lock` ---"

# rows of the versions table, in order (keys of tfunite.tools.doctor.versions())
VERSION_ROWS = (
    "python",
    "tensorflow",
    "keras",
    "tf_keras",
    "tf_slim",
    "sonnet",
    "tflearn",
    "numpy",
    "h5py",
    "pillow",
)
STATUS_CELL = {"pass": "pass", "fail": "**fail**", "skip": "skip", "n/a": "n/a"}


# ---------------------------------------------------------------------------- venvs
def lines() -> list[str]:
    """The TensorFlow lines that have a constraint file, oldest first."""
    found = [p.stem.removeprefix("tf-") for p in CONSTRAINTS.glob("tf-*.txt")]
    return sorted(found, key=lambda v: tuple(int(x) for x in v.split(".")))


def venv_dir(line: str) -> Path:
    return MATRIX_DIR / f"tf-{line}"


def _python(line: str) -> Path:
    return venv_dir(line) / "bin" / "python"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _log(message: str) -> None:
    print(f"[matrix] {message}", file=sys.stderr, flush=True)


def build(line: str, base_python: str | None = None, force: bool = False) -> Path:
    """Create (or reuse) the venv of one line; rebuilt when its constraint file changed."""
    constraints = CONSTRAINTS / f"tf-{line}.txt"
    target = venv_dir(line)
    stamp = target / ".tfunite-constraints"
    MATRIX_DIR.mkdir(exist_ok=True)
    ignore = MATRIX_DIR / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    if not force and stamp.is_file() and stamp.read_text() == _digest(constraints):
        return target
    if target.exists():
        shutil.rmtree(target)
    python = base_python or getattr(sys, "_base_executable", None) or sys.executable
    _log(f"building {target} from {constraints.name} ...")
    subprocess.run([python, "-m", "venv", str(target)], check=True)
    pip = [str(_python(line)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(constraints)], check=True)
    subprocess.run([*pip, "--no-deps", "-e", str(REPO)], check=True)
    stamp.write_text(_digest(constraints))
    return target


def lock(line: str) -> Path:
    """Append the venv's full resolved set (`pip freeze`) to its constraint file."""
    constraints = CONSTRAINTS / f"tf-{line}.txt"
    frozen = subprocess.run(
        [str(_python(line)), "-m", "pip", "freeze", "--exclude-editable"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    head = constraints.read_text().split(LOCK_MARK)[0].rstrip("\n")
    pinned = {
        re.split(r"[=<>!~ ]", ln, maxsplit=1)[0].lower().replace("_", "-")
        for ln in head.splitlines()
        if ln and not ln.startswith("#")
    }
    extra = [
        ln
        for ln in frozen.splitlines()
        if ln and "==" in ln and ln.split("==")[0].lower().replace("_", "-") not in pinned
    ]
    constraints.write_text(head + "\n" + LOCK_MARK + "\n" + "\n".join(sorted(extra)) + "\n")
    stamp = venv_dir(line) / ".tfunite-constraints"
    stamp.write_text(_digest(constraints))  # the venv already matches the locked file
    return constraints


# ---------------------------------------------------------------------------- probing
def probe(line: str, jobs: int = 2, timeout: float = 900.0) -> dict[str, Any]:
    """Run the compat probe in the line's venv; returns its JSON report (also stored)."""
    _log(f"probing tf-{line} ...")
    proc = subprocess.run(
        [str(_python(line)), "-m", "tfunite.tools.compat", "--json", "--jobs", str(jobs)],
        capture_output=True,
        text=True,
        timeout=timeout * 6,
        cwd=str(REPO),
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"the probe failed to run in tf-{line} (exit {proc.returncode}):\n"
            + proc.stderr[-2000:]
        )
    data = json.loads(proc.stdout)
    data["line"] = line
    results = MATRIX_DIR / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / f"tf-{line}.json").write_text(json.dumps(data, indent=2) + "\n")
    return data


def stored(line: str) -> dict[str, Any] | None:
    path = MATRIX_DIR / "results" / f"tf-{line}.json"
    return json.loads(path.read_text()) if path.is_file() else None


# ---------------------------------------------------------------------------- rendering
def render(runs: Sequence[dict[str, Any]], date: str | None = None) -> str:
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
        f"Generated on {date} (UTC) by `python -m tfunite.tools.matrix` from real runs of "
        "`python -m tfunite.tools.compat --json`, one venv per TensorFlow line built from "
        "`tools/constraints/tf-<line>.txt`. Do not edit by hand: regenerate it.",
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
    for package in VERSION_ROWS:
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
        "Regenerate: `python -m tfunite.tools.matrix` (or `make matrix`). Check the "
        "current environment's column: `python -m tfunite.tools.compat --check "
        "compat_matrix.md`.",
        "",
    ]
    return "\n".join(out)


_FOOTNOTE = re.compile(r"\s*\[\d+\]\s*$")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def parse_matrix(text: str) -> dict[str, Any]:
    """Read compat_matrix.md back: columns, versions per column, status per cell."""
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
    table = [ln for ln in by_title["Results"].splitlines() if ln.startswith("|")]
    cells: dict[str, dict[tuple[str, str], str]] = {c: {} for c in columns}
    for row in table[2:]:
        bridge, feature, *vals = _cells(row)
        if bridge.startswith("**"):
            continue  # the totals row
        for column, value in zip(columns, vals, strict=True):
            if value != "-":
                cells[column][(bridge, feature)] = _FOOTNOTE.sub("", value).strip("*")
    return {"columns": columns, "versions": versions, "cells": cells}


# ---------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tfunite.tools.matrix",
        description="Build one venv per TensorFlow line, run the compat probe in each and "
        "write compat_matrix.md.",
    )
    parser.add_argument(
        "--line",
        action="append",
        metavar="X.Y",
        help="only (re)probe this line (repeatable); other columns come from "
        "stored results in .matrix/results",
    )
    parser.add_argument(
        "--render", action="store_true", help="only rewrite the matrix from stored results"
    )
    parser.add_argument("--rebuild", action="store_true", help="rebuild the venvs from scratch")
    parser.add_argument(
        "--lock",
        metavar="X.Y",
        action="append",
        help="append the resolved set of a built venv to its constraint file",
    )
    parser.add_argument("--python", help="base interpreter for the venvs (default: this one's)")
    parser.add_argument("--jobs", type=int, default=2, help="bridges probed in parallel")
    parser.add_argument(
        "--output",
        type=Path,
        default=OUTPUT,
        help="where to write the matrix (default: %(default)s)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    known = lines()
    if not known:
        parser.error(f"no constraint files tf-*.txt in {CONSTRAINTS}")
    for line in (args.line or []) + (args.lock or []):
        if line not in known:
            parser.error(f"unknown line {line!r}; constraint files exist for {', '.join(known)}")
    if args.lock:
        for line in args.lock:
            print(f"locked {lock(line)}")
        return 0
    selected = [] if args.render else (args.line or known)
    for line in selected:
        try:
            build(line, base_python=args.python, force=args.rebuild)
            probe(line, jobs=args.jobs)
        except (subprocess.CalledProcessError, RuntimeError, subprocess.TimeoutExpired) as e:
            print(f"error: tf-{line}: {e}", file=sys.stderr)
            return 1
    runs = [run for line in known if (run := stored(line)) is not None]
    from tfunite.tools.compat import source_commit

    here = source_commit()
    for run in runs:
        if run["line"] not in selected and run.get("tfunite_commit") != here:
            _log(
                f"tf-{run['line']}: stored results are of commit {run.get('tfunite_commit')}, "
                f"the code here is {here}; re-probe it with --line {run['line']}"
            )
    if not runs:
        print(
            "error: no stored results in .matrix/results; run without --render first",
            file=sys.stderr,
        )
        return 1
    args.output.write_text(render(runs))
    for run in runs:
        c = run["counts"]
        print(
            f"tf-{run['line']}: {c['pass']} pass, {c['fail']} fail, {c['skip']} skip, "
            f"{c['n/a']} n/a"
        )
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
