"""Golden checkpoints: tiny checked-in checkpoints that today's code must load exactly.

`python -m tfunite.tools.golden` builds the small model of every bridge (the cases of
tools/compat.py), fills each variable with deterministic values
(`np.arange(n).reshape(shape) * 0.01 + i`, `i` the variable's index, cast to its dtype)
and writes, under `tests/golden/<bridge>/`:

- `tfunite/`   what `tu.save` writes (a TF name-based V2 bundle);
- the framework's own formats: `object/` (`tf.train.Checkpoint`, Keras / Sonnet /
  tf.Module), `model.weights.h5` (Keras 3), `saver/` (a TF1 `Saver`, Slim / TFLearn);
- `manifest.json`: the variable names in owner order, shapes, dtypes, the formats and the
  versions they were written with.

`verify(bridge)` (used by tests/test_golden.py and the `golden` probe of
tools/compat.py) builds the same model with the code installed now, checks its names are
the manifest's, loads every format strictly and compares each value exactly. A naming
change between versions of tfunite or of a framework therefore fails loudly.

    python -m tfunite.tools.golden                 # (re)write every bridge's goldens
    python -m tfunite.tools.golden --bridge keras  # one bridge
    python -m tfunite.tools.golden --verify        # check them instead of writing
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

GOLDEN_DIR = Path(__file__).resolve().parent.parent / "tests" / "golden"

# bridge -> the native formats written next to tu.save's checkpoint
NATIVE_FORMATS: dict[str, tuple[str, ...]] = {
    "keras": ("object", "keras-h5"),
    "tf_keras": ("object", "keras-h5"),
    "sonnet": ("object",),
    "tf_module": ("object",),
    "slim": ("saver",),
    "tflearn": ("saver",),
}
FORMAT_PATHS = {
    "tfunite": "tfunite",
    "object": "object/ckpt",
    "keras-h5": "model.weights.h5",
    "saver": "saver/model.ckpt",
}


def golden_values(variables: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """{name: value} for the manifest's variables (value i = arange * 0.01 + i)."""
    import numpy as np
    from tfunite.tools.compat import deterministic

    return {
        v["name"]: deterministic(v["shape"], np.dtype(v["dtype"]), float(i))
        for i, v in enumerate(variables)
    }


def _describe(owner: Any) -> list[dict[str, Any]]:
    return [
        {"name": name, "shape": var.shape.as_list(), "dtype": var.dtype.as_numpy_dtype.__name__}
        for name, var in owner.variables.items()
    ]


def write(bridge: str, root: Path = GOLDEN_DIR) -> Path:
    """Write the golden checkpoints of one bridge; returns its directory."""
    import tensorflow as tf
    import tfunite as tu
    from tfunite.tools import compat
    from tfunite.tools.doctor import versions

    case = compat.CASES[bridge]
    out = root / bridge
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    owner, native = compat.built(case)
    variables = _describe(owner)
    want = golden_values(variables)
    compat.assign(owner, want)
    tu.save(owner, str(out / FORMAT_PATHS["tfunite"]))
    formats = ["tfunite"]
    for fmt in NATIVE_FORMATS[bridge]:
        path = out / FORMAT_PATHS[fmt]
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "object":
            key = "model" if bridge in ("keras", "tf_keras") else "module"
            tf.train.Checkpoint(**{key: native}).write(str(path))
        elif fmt == "keras-h5":
            native.save_weights(str(path))
        elif fmt == "saver":
            _write_saver(case, want, str(path))
        formats.append(fmt)
    manifest = {
        "bridge": bridge,
        "values": "np.arange(n).reshape(shape) * 0.01 + i, i = index below, cast to dtype",
        "variables": variables,
        "formats": {fmt: FORMAT_PATHS[fmt] for fmt in formats},
        "written_with": versions(),
    }
    (out / "manifest.json").write_text(_dumps(manifest))
    return out


def _dumps(manifest: dict[str, Any]) -> str:
    """JSON with one line per variable (readable diffs when names change)."""
    text = json.dumps({k: v for k, v in manifest.items() if k != "variables"}, indent=1)
    rows = ",\n".join("  " + json.dumps(v) for v in manifest["variables"])
    return text[:-2] + ',\n "variables": [\n' + rows + "\n ]\n}\n"


def _write_saver(case: Any, want: dict[str, Any], prefix: str) -> None:
    """A TF1 Saver checkpoint of the plain framework code, values assigned by name."""
    import tensorflow as tf
    from tfunite.tools.compat import graph_session

    with graph_session() as session:
        case.build()  # through the bridge first: it applies its legacy fixes
        case.tf1(tf.constant(case.example()))
        session.run(tf.compat.v1.global_variables_initializer())
        by_name = {v.op.name: v for v in tf.compat.v1.global_variables()}
        missing = sorted(set(want) - set(by_name))
        if missing:
            raise RuntimeError(
                f"the TF1 graph has no variables {missing} (it has {sorted(by_name)})"
            )
        session.run([by_name[name].assign(value) for name, value in want.items()])
        tf.compat.v1.train.Saver(var_list=list(by_name.values())).save(
            session, prefix, write_meta_graph=False, write_state=False
        )


def verify(bridge: str, root: Path = GOLDEN_DIR) -> list[str]:
    """Problems loading the goldens of `bridge` with today's code (empty: all exact)."""
    import numpy as np
    import tfunite as tu
    from tfunite.tools import compat

    directory = root / bridge
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        return [
            f"no golden checkpoints for {bridge}: {manifest_path} is missing "
            f"(write them with `python -m tfunite.tools.golden --bridge {bridge}`)"
        ]
    manifest = json.loads(manifest_path.read_text())
    want = golden_values(manifest["variables"])
    owner, _ = compat.built(compat.CASES[bridge])
    names = list(owner.variables)
    if names != list(want):
        return [
            f"{bridge}: variable names changed since the goldens were written "
            f"(with {manifest['written_with'].get('tensorflow')}): "
            f"golden {list(want)}, today {names}"
        ]
    problems = []
    for fmt, relative in manifest["formats"].items():
        compat.fill(owner, 0.5)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tfunite.tools.golden",
        description="Write (or verify) the golden checkpoints of every bridge in tests/golden.",
    )
    parser.add_argument(
        "--bridge",
        action="append",
        choices=sorted(NATIVE_FORMATS),
        help="only this bridge (repeatable)",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="load the goldens with today's code instead of writing them",
    )
    parser.add_argument("--root", type=Path, default=GOLDEN_DIR, help="default: %(default)s")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    status = 0
    for bridge in args.bridge or list(NATIVE_FORMATS):
        try:
            if args.verify:
                problems = verify(bridge, args.root)
                for p in problems:
                    print(f"FAIL {p}", file=sys.stderr)
                print(f"{bridge}: {'ok' if not problems else f'{len(problems)} problem(s)'}")
                status |= bool(problems)
            else:
                out = write(bridge, args.root)
                size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
                print(f"{bridge}: wrote {out} ({size / 1024:.1f} KB)")
        except Exception as e:
            print(f"error: {bridge}: {type(e).__name__}: {e}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
