"""Golden checkpoints: write the tiny checked-in checkpoints that today's code must load.

A maintainer script, run from a checkout (`python maint/golden.py` or
`python -m maint.golden`; not installed with tfunite). For every registered bridge it
builds the bridge's compat case (the record's `compat_case`), fills each variable with
deterministic values (`np.arange(n).reshape(shape) * 0.01 + i`, `i` the variable's index,
cast to its dtype) and writes, under `tests/golden/<bridge>/`:

- `tfunite/`   what `tu.save` writes (a TF name-based V2 bundle);
- the framework's own formats, the record's `golden_formats`: `object/`
  (`tf.train.Checkpoint`, Keras / Sonnet / tf.Module), `model.weights.h5` (Keras), `saver/`
  (a TF1 `Saver` of the plain framework code, Slim / TFLearn);
- `manifest.json`: the variable names in owner order, shapes, dtypes, the formats and the
  versions they were written with.

`verify(bridge)` (tfunite.tools.compat.goldens, used by tests/test_golden.py and the
`golden` probe of `tfunite compat`) builds the same model with the code installed now,
checks its names are the manifest's, loads every format strictly and compares each value
exactly.

    python maint/golden.py                 # (re)write every bridge's goldens
    python maint/golden.py --bridge keras  # one bridge
    python maint/golden.py --verify        # check them instead of writing
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

from tfunite.tools.compat.cases import Case, case_for
from tfunite.tools.compat.goldens import FORMAT_PATHS, golden_values, verify
from tfunite.tools.compat.helpers import assign, built, graph_session, object_key
from tfunite.tools.compat.probes import registered_bridges

REPO = Path(__file__).resolve().parent.parent
GOLDEN_DIR = REPO / "tests" / "golden"

__all__ = ["FORMAT_PATHS", "GOLDEN_DIR", "formats", "golden_values", "main", "verify", "write"]


def formats(bridge: str) -> tuple[str, ...]:
    """The native formats written for `bridge` beside tu.save's: its record's golden_formats."""
    return case_for(bridge).record.golden_formats


def _describe(owner: Any) -> list[dict[str, Any]]:
    return [
        {"name": name, "shape": var.shape.as_list(), "dtype": var.dtype.as_numpy_dtype.__name__}
        for name, var in owner.variables.items()
    ]


def write(bridge: str, root: Path = GOLDEN_DIR) -> Path:
    """Write the golden checkpoints of one bridge; returns its directory."""
    import tensorflow as tf
    import tfunite as tu
    from tfunite.tools.doctor import versions

    case = case_for(bridge)
    out = root / bridge
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    owner, native = built(case)
    variables = _describe(owner)
    want = golden_values(variables)
    assign(owner, want)
    tu.save(owner, str(out / FORMAT_PATHS["tfunite"]))
    written = ["tfunite"]
    for fmt in case.record.golden_formats:
        if fmt not in FORMAT_PATHS:
            raise ValueError(
                f"the {bridge} record's golden_formats has {fmt!r}; golden writes "
                f"{', '.join(f for f in FORMAT_PATHS if f != 'tfunite')}"
            )
        path = out / FORMAT_PATHS[fmt]
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "object":
            tf.train.Checkpoint(**{object_key(native): native}).write(str(path))
        elif fmt == "keras-h5":
            native.save_weights(str(path))
        elif fmt == "saver":
            _write_saver(case, want, str(path))
        written.append(fmt)
    manifest = {
        "bridge": bridge,
        "values": "np.arange(n).reshape(shape) * 0.01 + i, i = index below, cast to dtype",
        "variables": variables,
        "formats": {fmt: FORMAT_PATHS[fmt] for fmt in written},
        "written_with": versions(),
    }
    (out / "manifest.json").write_text(_dumps(manifest))
    return out


def _dumps(manifest: dict[str, Any]) -> str:
    """JSON with one line per variable (readable diffs when names change)."""
    text = json.dumps({k: v for k, v in manifest.items() if k != "variables"}, indent=1)
    rows = ",\n".join("  " + json.dumps(v) for v in manifest["variables"])
    return text[:-2] + ',\n "variables": [\n' + rows + "\n ]\n}\n"


def _write_saver(case: Case, want: dict[str, Any], prefix: str) -> None:
    """A TF1 Saver checkpoint of the plain framework code, values assigned by name."""
    import tensorflow as tf

    if case.tf1 is None:
        raise ValueError(
            f"the {case.bridge} record's golden_formats has 'saver' but its case has no tf1 code"
        )
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


def build_parser() -> argparse.ArgumentParser:
    """The parser of maint/golden.py."""
    parser = argparse.ArgumentParser(
        prog="python maint/golden.py",
        description="Write (or verify) the golden checkpoints of every bridge in tests/golden.",
    )
    parser.add_argument(
        "--bridge",
        action="append",
        choices=registered_bridges(),
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
    """Write or verify the goldens; returns the exit code."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    status = 0
    for bridge in args.bridge or registered_bridges():
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
