"""Reading the golden checkpoints: `verify(bridge)` loads a checkout's tests/golden/<bridge>
with the code installed now and compares every value exactly.

The goldens are tiny checkpoints written by maint/golden.py (in a checkout, not in the
installed package) from each bridge's compat case, every variable filled with
`np.arange(n).reshape(shape) * 0.01 + i` (`i` its index, cast to its dtype). A change of
names between versions of tfunite or of a framework therefore fails loudly. The `golden`
probe of `tfunite compat` and tests/test_golden.py use `verify`; the probe skips, with the
reason, when tfunite runs from an installed copy that has no checkout around it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .cases import case_for
from .helpers import built, deterministic, fill

# The checkout this package was imported from (an editable install), if it is one.
CHECKOUT = Path(__file__).resolve().parents[2]

# format -> path under tests/golden/<bridge>/
FORMAT_PATHS = {
    "tfunite": "tfunite",
    "object": "object/ckpt",
    "keras-h5": "model.weights.h5",
    "saver": "saver/model.ckpt",
}


def golden_dir(checkout: Path | None = None) -> Path | None:
    """tests/golden of the checkout (default: the one this package runs from), or None when
    tfunite runs from an installed copy without a checkout."""
    root = (checkout or CHECKOUT) / "tests" / "golden"
    return root if root.is_dir() else None


def golden_values(variables: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """{name: value} for the manifest's variables (value i = arange * 0.01 + i)."""
    import numpy as np

    return {
        v["name"]: deterministic(v["shape"], np.dtype(v["dtype"]), float(i))
        for i, v in enumerate(variables)
    }


def verify(bridge: str, root: Path | None = None) -> list[str]:
    """Problems loading the goldens of `bridge` under `root` (default: the checkout's
    tests/golden) with today's code; empty when every format loads exactly."""
    import numpy as np
    import tfunite as tu

    root = root or golden_dir()
    if root is None:
        return [
            f"no golden checkpoints for {bridge}: no tests/golden in {CHECKOUT} "
            "(the goldens live in a tfunite checkout; run from one)"
        ]
    directory = root / bridge
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        return [
            f"no golden checkpoints for {bridge}: {manifest_path} is missing "
            f"(write them with `python maint/golden.py --bridge {bridge}` in a checkout)"
        ]
    manifest = json.loads(manifest_path.read_text())
    want = golden_values(manifest["variables"])
    owner, _ = built(case_for(bridge))
    names = list(owner.variables)
    if names != list(want):
        return [
            f"{bridge}: variable names changed since the goldens were written "
            f"(with {manifest['written_with'].get('tensorflow')}): "
            f"golden {list(want)}, today {names}"
        ]
    problems = []
    for fmt, relative in manifest["formats"].items():
        fill(owner, 0.5)
        try:
            tu.load(owner, str(directory / relative), strict=True)
        except Exception as e:
            problems.append(
                f"{bridge} {fmt} ({relative}): {type(e).__name__}: {' '.join(str(e).split())[:400]}"
            )
            continue
        for name, var in owner.variables.items():
            if not np.array_equal(var.numpy(), want[name]):
                problems.append(f"{bridge} {fmt}: {name} is not restored exactly")
    return problems
