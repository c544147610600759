"""Type-check tfunite's core/, bridges/ and interop/ with mypy, as the installed package sees them.

setuptools maps the folders onto the package (`tfunite` is core/, `tfunite.bridges` is
bridges/) and mypy cannot follow an editable install's import hook, so this script lays
the package out in build/typecheck/ as symlinks to the real files, runs mypy on it with
the settings of pyproject.toml ([tool.mypy]) and prints paths relative to the checkout.

    python maint/typecheck.py          # exit code: mypy's (0 = clean)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYOUT = {
    "tfunite": ROOT / "core",
    "tfunite/bridges": ROOT / "bridges",
    "tfunite/interop": ROOT / "interop",
}


def lay_out(target: Path) -> dict[str, str]:
    """Symlink each checked file into `target`; {laid-out path: checkout path}."""
    shutil.rmtree(target, ignore_errors=True)
    paths = {}
    for package, folder in LAYOUT.items():
        (target / package).mkdir(parents=True, exist_ok=True)
        for source in sorted(folder.glob("*.py")):
            link = target / package / source.name
            os.symlink(source, link)
            paths[str(link.relative_to(target))] = str(source.relative_to(ROOT))
    return paths


def main() -> int:
    target = ROOT / "build" / "typecheck"
    paths = lay_out(target)
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "tfunite"],
        cwd=target,
        capture_output=True,
        text=True,
    )
    out = proc.stdout + proc.stderr
    for laid, real in sorted(paths.items(), key=lambda kv: -len(kv[0])):
        out = out.replace(laid, real)
    print(out, end="")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
