"""Version matrix: run the compatibility probe in one venv per TensorFlow line.

A maintainer script, run from a checkout (`python maint/matrix.py`, `python -m
maint.matrix` or `make matrix`; not installed with tfunite). For every constraint file
`maint/constraints/tf-<line>.txt` (exact pins of TensorFlow, its matching keras and
tf-keras, and the current tf-slim, dm-sonnet, tflearn), this builds a venv under
`.matrix/tf-<line>/` (git-ignored), installs the pins and tfunite (`pip install -e <repo>
--no-deps`), runs `python -m tfunite.tools.compat --json` in it, and writes
`compat_matrix.md`: features x versions, the exact version of every framework, the date,
pass counts per column and the reason for every failure in footnotes. The matrix is
generated only; never edit it by hand.

    python maint/matrix.py                 # build missing venvs, probe, write the matrix
    python maint/matrix.py --line 2.21     # one line (others are kept from .matrix/results)
    python maint/matrix.py --here          # re-probe only this environment's line, with
                                           # this interpreter (no venv); other columns are
                                           # kept from .matrix/results or the committed matrix
    python maint/matrix.py --render        # rewrite the matrix from stored results only
    python maint/matrix.py --lock 2.16     # pin every resolved package of a built venv

The format of the file (`render_matrix`, `parse_matrix`) lives in the installed package,
tfunite.tools.compat.table, because `tfunite compat --check` reads it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from tfunite.tools.compat.runner import STATUSES
from tfunite.tools.compat.table import (
    PROVENANCE_ROWS,
    REGENERATE,
    parse_matrix,
    render_matrix,
    source_commit,
)

REPO = Path(__file__).resolve().parent.parent
CONSTRAINTS = Path(__file__).resolve().parent / "constraints"
MATRIX_DIR = REPO / ".matrix"
OUTPUT = REPO / "compat_matrix.md"
LOCK_MARK = f"# --- resolved set, written by `{REGENERATE} --lock` ---"

render = render_matrix  # the matrix from probe reports (tfunite.tools.compat.table)


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
    """Create (or reuse) the venv of one line; rebuilt when its constraint file changed.

    A reused venv gets tfunite's editable install again: the install maps tfunite's
    subpackages as pyproject.toml lists them when it runs, so a subpackage added since
    would not import there."""
    constraints = CONSTRAINTS / f"tf-{line}.txt"
    target = venv_dir(line)
    stamp = target / ".tfunite-constraints"
    _matrix_dir()
    pip = [str(_python(line)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    if not force and stamp.is_file() and stamp.read_text() == _digest(constraints):
        subprocess.run([*pip, "--no-deps", "-e", str(REPO)], check=True)
        return target
    if target.exists():
        shutil.rmtree(target)
    python = base_python or getattr(sys, "_base_executable", None) or sys.executable
    _log(f"building {target} from {constraints.name} ...")
    subprocess.run([python, "-m", "venv", str(target)], check=True)
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
    _store(line, data)
    return data


def _matrix_dir() -> Path:
    """.matrix/, created git-ignored (it holds venvs and raw results)."""
    MATRIX_DIR.mkdir(exist_ok=True)
    ignore = MATRIX_DIR / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    return MATRIX_DIR


def _store(line: str, data: dict[str, Any]) -> None:
    results = _matrix_dir() / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / f"tf-{line}.json").write_text(json.dumps(data, indent=2) + "\n")


def stored(line: str) -> dict[str, Any] | None:
    """The stored report of a line (.matrix/results/tf-<line>.json), or None."""
    path = MATRIX_DIR / "results" / f"tf-{line}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def pins(line: str) -> dict[str, str]:
    """{distribution: version} pinned in the head of a line's constraint file (what the
    line is about, not the resolved set appended by --lock)."""
    head = (CONSTRAINTS / f"tf-{line}.txt").read_text().split(LOCK_MARK)[0]
    found = {}
    for ln in head.splitlines():
        if ln and not ln.startswith("#") and "==" in ln:
            name, _, pinned = ln.partition("==")
            found[name.strip()] = pinned.strip()
    return found


def here_line(known: Sequence[str]) -> str:
    """The line of this interpreter's environment; RuntimeError unless every pin of that
    line's constraint file is what is installed here."""
    try:
        tf_version = version("tensorflow")
    except PackageNotFoundError:
        raise RuntimeError("tensorflow is not installed in this interpreter") from None
    line = ".".join(tf_version.split(".")[:2])
    if line not in known:
        raise RuntimeError(
            f"this environment has tensorflow {tf_version}; constraint files exist for "
            f"{', '.join(known)}: probe its line in a venv with --line"
        )
    drift = []
    for name, pinned in pins(line).items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = "not installed"
        if installed != pinned:
            drift.append(f"{name}: pinned {pinned}, here {installed}")
    if drift:
        raise RuntimeError(
            f"this environment is not the tf-{line} line of {CONSTRAINTS.name}/tf-{line}.txt "
            f"({'; '.join(drift)}); install the pins or probe the line with --line {line}"
        )
    return line


def probe_here(line: str, jobs: int = 2) -> dict[str, Any]:
    """Run the compat probe with this interpreter (its environment is the line's); returns
    its JSON report (also stored)."""
    from tfunite.tools.compat import registered_bridges, report, run

    _log(f"probing tf-{line} with {sys.executable} ...")
    data = report(run(registered_bridges(), jobs=jobs))
    data["line"] = line
    _store(line, data)
    return data


def from_matrix(path: Path) -> dict[str, dict[str, Any]]:
    """{line: report} rebuilt from a written matrix (statuses, reasons, versions, date and
    commit of each column), for the lines that have no stored results."""
    matrix = parse_matrix(path.read_text())
    probed, commit = PROVENANCE_ROWS
    runs = {}
    for column in matrix["columns"]:
        versions = dict(matrix["versions"][column])
        date, source = versions.pop(probed, "-"), versions.pop(commit, None)
        results = [
            {
                "bridge": bridge,
                "feature": feature,
                "status": status,
                "reason": matrix["reasons"][column].get((bridge, feature), ""),
                "seconds": 0.0,
            }
            for (bridge, feature), status in matrix["cells"][column].items()
        ]
        runs[column.removeprefix("tf-")] = {
            "line": column.removeprefix("tf-"),
            "date": date,
            "tfunite_commit": source,
            "environment": versions,
            "counts": {s: sum(r["status"] == s for r in results) for s in STATUSES},
            "results": results,
        }
    return runs


# ---------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    """The parser of maint/matrix.py."""
    parser = argparse.ArgumentParser(
        prog="python maint/matrix.py",
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
        "--here",
        action="store_true",
        help="only re-probe this environment's line, with this interpreter (no venv; its "
        "installed versions must be the line's pins); other columns come from stored "
        "results, else from the matrix being rewritten",
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
    """Build, probe and write the matrix; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    known = lines()
    if not known:
        parser.error(f"no constraint files tf-*.txt in {CONSTRAINTS}")
    for line in (args.line or []) + (args.lock or []):
        if line not in known:
            parser.error(f"unknown line {line!r}; constraint files exist for {', '.join(known)}")
    if args.here and (args.line or args.render):
        parser.error("--here probes this environment's line only: not with --line or --render")
    if args.lock:
        for line in args.lock:
            print(f"locked {lock(line)}")
        return 0
    committed: dict[str, dict[str, Any]] = {}
    if args.here:
        try:
            selected = [here_line(known)]
            probe_here(selected[0], jobs=args.jobs)
        except RuntimeError as e:
            print(f"error: --here: {e}", file=sys.stderr)
            return 1
        if args.output.is_file():
            committed = from_matrix(args.output)
    else:
        selected = [] if args.render else (args.line or known)
    for line in [] if args.here else selected:
        try:
            build(line, base_python=args.python, force=args.rebuild)
            probe(line, jobs=args.jobs)
        except (subprocess.CalledProcessError, RuntimeError, subprocess.TimeoutExpired) as e:
            print(f"error: tf-{line}: {e}", file=sys.stderr)
            return 1
    runs = [run for line in known if (run := stored(line) or committed.get(line)) is not None]
    here = source_commit()
    for run in runs:
        if run["line"] not in selected and run.get("tfunite_commit") != here:
            _log(
                f"tf-{run['line']}: results are of commit {run.get('tfunite_commit')}, "
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
