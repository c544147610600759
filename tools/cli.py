"""The ``tfunite`` command: port, inspect and diff checkpoints; doctor and compat.

    tfunite port CKPT --recipe slim:vgg_16 -o vgg16.keras [--dry-run] [--verify] [--json]
    tfunite convert module:fn [--checkpoint CKPT] --input-size N -o out.keras [--verify]
    tfunite inspect CKPT [--json]
    tfunite diff CKPT_A CKPT_B [--json]
    tfunite recipes
    tfunite export module:factory models/net/1 --input-spec None,6 [--checkpoint DIR] [--format onnx]
    tfunite doctor ... / tfunite compat ...      (see their own --help)

Exit codes: 0 success, 1 failure, 2 usage error (bad arguments, unknown recipe, a
missing subcommand module). ``diff`` follows diff/cmp: 0 same, 1 different, 2 trouble
(an unreadable or truncated checkpoint, bad arguments). Errors go to stderr as one
message, without a traceback; with ``--json``, stdout also gets a JSON object
``{"error": message, "code": exit code}`` (plus the port report when there is one).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
EXIT_DIFFERENT, EXIT_TROUBLE = 1, 2  # `tfunite diff`, as diff(1) and cmp(1)


# What TensorFlow's C++ libraries print to stderr while they load, before any logging
# set-up can filter it (absl's pre-init notice, info lines about oneDNN, CUDA and CPU
# instructions): dropped from the output of the commands that load TensorFlow.
_START_UP_NOISE = re.compile(
    r"(WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|[IW]\d{4} [\d:. ]+\d+ \S+\.cc:\d+\]"
    r"|To enable the following instructions: .* rebuild TensorFlow)"
)
# Commands that load TensorFlow (doctor only without --no-import).
_LOADS_TF = {"port", "inspect", "diff", "recipes", "compat", "doctor"}


def _quiet_tf(command: str | None = None, args: Sequence[str] = ()) -> None:
    """Silence TensorFlow's start-up before it loads: C++ logging below errors off (an
    explicit TF_CPP_MIN_LOG_LEVEL wins), and for a command that loads TensorFlow, the
    import done with stderr captured, keeping only what is not start-up noise (all of
    it if the import fails)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if command not in _LOADS_TF or "--no-import" in args or "tensorflow" in sys.modules:
        return
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    ok = False
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow as tf

            tf.get_logger().setLevel("ERROR")  # the V1-format and deprecation notices
            ok = True
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines = capture.read().decode("utf8", "replace").splitlines(keepends=True)
            kept = [ln for ln in lines if not ok or not _START_UP_NOISE.match(ln)]
            sys.stderr.write("".join(kept))


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


class CliError(Exception):
    """An error reported as one line on stderr with an exit code."""

    def __init__(self, message: str, code: int = EXIT_FAIL):
        super().__init__(message)
        self.code = code


class _ArgumentError(Exception):
    """argparse's usage error, raised instead of exiting so that --json can report it."""

    def __init__(self, parser: argparse.ArgumentParser, message: str):
        super().__init__(message)
        self.parser = parser


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        raise _ArgumentError(self, message)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


# --------------------------------------------------------------------- commands
def cmd_port(args: argparse.Namespace) -> int:
    from tfunite.porting import PortArgumentError, RecipeError, get_recipe, port

    if not args.dry_run and not args.output:
        raise CliError("port: -o/--output is required unless --dry-run is given.", EXIT_USAGE)
    if args.dry_run and args.verify:
        raise CliError(
            "port: --verify compares the loaded model with Slim, and --dry-run loads nothing. "
            "Fix: drop one of them.",
            EXIT_USAGE,
        )
    if args.dry_run and args.output:
        from tfunite.porting.output import check_output

        check_output(args.output)
    size = args.input_size
    try:
        recipe = get_recipe(args.recipe)  # a name, path/to/file.py:NAME or module:NAME
        model, report = port(
            args.checkpoint,
            recipe,
            keep_background=args.keep_background,
            input_shape=(size, size, recipe.channels) if size else None,
            weights=args.weights,
            scope=args.scope,
            strict=not args.no_strict,
            dry_run=args.dry_run,
            verify=args.verify,
            output=args.output if not args.dry_run else None,
            progress=not args.no_progress,
        )
    except (RecipeError, PortArgumentError) as e:
        raise CliError(str(e), EXIT_USAGE) from None
    return _show(report, args)


def _show(report: Any, args: argparse.Namespace) -> int:
    """Print a port or convert report (JSON with --json, else a table); exit code 0."""
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        report.render(_console(), verbose=args.verbose)
    return EXIT_OK


def _literal(text: str) -> tuple[str, Any]:
    import ast

    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value  # a bare string


def cmd_convert(args: argparse.Namespace) -> int:
    from tfunite.porting import ConvertError, PortArgumentError, convert

    if not args.output and not args.verify:
        raise CliError(
            "convert: nothing to do: give -o/--output (the .keras file to write) and/or "
            "--verify (compare with the TF1 graph).",
            EXIT_USAGE,
        )
    size = args.input_size
    if size is not None and len(size) not in (1, 3):
        raise CliError(
            f"convert: --input-size takes N (for N N 3) or H W C, got {len(size)} numbers.",
            EXIT_USAGE,
        )
    shape = None if size is None else ((size[0], size[0], 3) if len(size) == 1 else tuple(size))
    kwargs = dict(args.arg or [])
    if args.num_classes is not None:
        kwargs["num_classes"] = args.num_classes
    scope = kwargs.pop("scope", args.scope)
    if os.getcwd() not in sys.path:  # module:fn of the current folder, as `python -m`
        sys.path.insert(0, os.getcwd())
    try:
        model, report = convert(
            args.function,
            args.checkpoint,
            shape,
            arg_scope=args.arg_scope,
            scope=scope,
            verify=args.verify,
            output=args.output,
            strict=not args.no_strict,
            **kwargs,
        )
    except (ConvertError, PortArgumentError) as e:
        raise CliError(str(e), EXIT_USAGE) from None
    return _show(report, args)


def _open(path: str) -> Any:
    """A checkpoint reader whose data files were checked (CheckpointError otherwise)."""
    from tfunite.porting.checkpoint import open_reader

    return open_reader(path)


def _input_spec(text: str) -> tuple[list[int | None], str]:
    """`None,6` or `None,224,224,3:float32` -> (shape, dtype name)."""
    shape_text, _, dtype = text.partition(":")
    try:
        shape = [None if d.strip() in ("None", "?", "") else int(d) for d in shape_text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a shape like None,6 or None,6:float32, got {text!r}"
        ) from None
    return shape, dtype or "float32"


def cmd_export(args: argparse.Namespace) -> int:
    import tensorflow as tf
    import tfunite as tu

    module_name, _, attr = args.factory.partition(":")
    if not attr:
        raise CliError(
            f"expected FACTORY as module:function (e.g. mypkg.models:make_net), got "
            f"{args.factory!r}",
            EXIT_USAGE,
        )
    sys.path.insert(0, os.getcwd())
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise CliError(f"cannot load the factory {args.factory!r}: {e}", EXIT_USAGE) from None
    finally:
        sys.path.pop(0)
    obj = factory()
    owner = obj if isinstance(obj, tu.Owner) else tu.wrap(obj, name=attr)
    try:
        dtypes = [tf.as_dtype(dtype) for _, dtype in args.input_spec]
    except TypeError as e:
        raise CliError(f"unknown dtype in --input-spec: {e}", EXIT_USAGE) from None
    specs = [tf.TensorSpec(shape, dt) for (shape, _), dt in zip(args.input_spec, dtypes)]
    if not owner.built:
        examples = [
            tf.zeros([1 if d is None else d for d in s.shape.as_list()], s.dtype) for s in specs
        ]
        owner(examples[0] if len(examples) == 1 else examples)
    if args.checkpoint:
        tu.load(owner, args.checkpoint)
    try:
        path = tu.export(owner, args.output, specs, format=args.format, opset=args.opset)
    except ValueError as e:
        raise CliError(str(e)) from None
    except ImportError as e:
        raise CliError(str(e), EXIT_USAGE) from None
    if args.json:
        print(json.dumps({"path": os.fspath(path), "format": args.format, "owner": owner.name}))
    else:
        print(f"exported {owner.name!r} ({len(owner.variables)} variables) to {path}")
    return EXIT_OK


def cmd_inspect(args: argparse.Namespace) -> int:
    from tfunite.porting.checkpoint import checkpoint_shapes

    reader = _open(args.checkpoint)
    try:
        shapes, dtypes = checkpoint_shapes(reader)
        entries = reader.entries
    finally:
        reader.close()
    rows = []
    for name in sorted(shapes):
        dt = entries[name][1]
        n = int(np.prod(shapes[name], dtype=np.int64)) if shapes[name] else 1
        rows.append(
            {
                "name": name,
                "shape": list(shapes[name]),
                "dtype": dtypes[name],
                "elements": n,
                "bytes": n * dt.itemsize if dtypes[name] != "string" else None,
            }
        )
    total = sum(r["bytes"] or 0 for r in rows)
    if args.json:
        print(
            json.dumps(
                {
                    "checkpoint": args.checkpoint,
                    "entries": rows,
                    "total_bytes": total,
                    "count": len(rows),
                },
                indent=2,
            )
        )
        return EXIT_OK
    from rich.table import Table

    table = Table(title=f"{args.checkpoint}: {len(rows)} entries, {_human(total)}")
    for col, just in (
        ("name", "left"),
        ("shape", "left"),
        ("dtype", "left"),
        ("elements", "right"),
        ("bytes", "right"),
    ):
        table.add_column(col, justify=just)
    for r in rows:
        table.add_row(
            r["name"],
            str(tuple(r["shape"])),
            r["dtype"],
            f"{r['elements']:,}",
            _human(r["bytes"]) if r["bytes"] is not None else "-",
        )
    _console().print(table)
    return EXIT_OK


def compare_values(name: str, a: np.ndarray, b: np.ndarray, atol: float) -> dict | None:
    """None if `a` and `b` are equal (floats: within `atol`), else what differs.

    Floats: NaN equals NaN at the same position and an infinity the same infinity;
    any other pair with a NaN or an infinity is a *non-finite mismatch*, whatever
    `atol`. ``max_abs_diff`` is over the positions where both values are finite.
    """
    out = {"name": name, "max_abs_diff": 0.0, "nonfinite_mismatches": 0}
    if a.dtype.kind == "f" and b.dtype.kind == "f":
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        finite = np.isfinite(a64) & np.isfinite(b64)
        same_special = (np.isnan(a64) & np.isnan(b64)) | (~finite & (a64 == b64))
        bad = ~finite & ~same_special
        diff = np.abs(np.subtract(a64, b64, out=np.zeros_like(a64), where=finite))
        out["max_abs_diff"] = float(diff.max()) if diff.size else 0.0
        out["nonfinite_mismatches"] = int(bad.sum())
        if out["nonfinite_mismatches"]:
            idx = np.unravel_index(int(np.argmax(bad)), bad.shape)
            out["first_nonfinite_mismatch"] = {
                "index": [int(i) for i in idx],
                "a": str(float(a64[idx])),
                "b": str(float(b64[idx])),
            }
        elif out["max_abs_diff"] <= atol:
            return None
        return out
    if a.dtype.kind in "iub" and b.dtype.kind in "iub":
        if np.array_equal(a, b):
            return None
        d = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0
        if atol and d <= atol:
            return None
        out["max_abs_diff"] = d
        return out
    if np.array_equal(a, b):
        return None
    out["max_abs_diff"] = None
    return out


def _describe(d: dict) -> str:
    parts = []
    if d["nonfinite_mismatches"]:
        f = d["first_nonfinite_mismatch"]
        parts.append(
            f"{d['nonfinite_mismatches']} NaN/inf mismatch(es), first at {f['index']}: "
            f"A {f['a']}, B {f['b']}"
        )
    if d["max_abs_diff"] is None:
        parts.append("values differ (not numeric)")
    elif d["max_abs_diff"] or not parts:
        label = "max abs difference" + (" of finite values" if parts else "")
        parts.append(f"{label} {d['max_abs_diff']:.6g}")
    return f"  {d['name']}: " + "; ".join(parts)


def cmd_diff(args: argparse.Namespace) -> int:
    from tfunite.errors import TfuniteError

    try:
        with contextlib.ExitStack() as stack:
            ra = _open(args.checkpoint_a)
            stack.callback(ra.close)
            rb = _open(args.checkpoint_b)
            stack.callback(rb.close)
            return _diff(args, ra, rb)
    except (TfuniteError, OSError) as e:
        raise CliError(str(e), EXIT_TROUBLE) from None


def _diff(args: argparse.Namespace, ra: Any, rb: Any) -> int:
    from tfunite.porting.checkpoint import checkpoint_shapes
    from tfunite.porting.progress import _progress

    sa, da = checkpoint_shapes(ra)
    sb, db = checkpoint_shapes(rb)
    only_a = sorted(set(sa) - set(sb))
    only_b = sorted(set(sb) - set(sa))
    common = sorted(set(sa) & set(sb))
    layout = [
        {
            "name": n,
            "a": {"shape": list(sa[n]), "dtype": da[n]},
            "b": {"shape": list(sb[n]), "dtype": db[n]},
        }
        for n in common
        if tuple(sa[n]) != tuple(sb[n]) or da[n] != db[n]
    ]
    bad = {d["name"] for d in layout}
    values = []
    comparable = [n for n in common if n not in bad]
    with _progress(not args.no_progress, len(comparable), "Comparing") as step:
        for n in comparable:
            a, b = np.asarray(ra.read(n)), np.asarray(rb.read(n))
            d = compare_values(n, a, b, args.atol)
            if d is not None:
                values.append(d)
            step()
    same = not (only_a or only_b or layout or values)
    values.sort(
        key=lambda d: (
            -d["nonfinite_mismatches"],
            -(d["max_abs_diff"] if d["max_abs_diff"] is not None else float("inf")),
        )
    )
    result = {
        "a": args.checkpoint_a,
        "b": args.checkpoint_b,
        "only_in_a": only_a,
        "only_in_b": only_b,
        "shape_or_dtype": layout,
        "values": values,
        "compared": len(comparable),
        "identical": same,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        con = _console()
        con.print(
            f"A: {args.checkpoint_a} ({len(sa)} entries)\nB: {args.checkpoint_b} "
            f"({len(sb)} entries)",
            markup=False,
            highlight=False,
        )
        for label, names in (("only in A", only_a), ("only in B", only_b)):
            if names:
                con.print(f"[bold]{len(names)} {label}[/bold]:")
                for n in names:
                    con.print(f"  {n}", markup=False, highlight=False)
        if layout:
            con.print(f"[bold]{len(layout)} with different shape or dtype[/bold]:")
            for d in layout:
                con.print(
                    f"  {d['name']}: A {tuple(d['a']['shape'])} {d['a']['dtype']}, "
                    f"B {tuple(d['b']['shape'])} {d['b']['dtype']}",
                    markup=False,
                )
        if values:
            con.print(f"[bold]{len(values)} with different values[/bold]:")
            for d in values:
                con.print(_describe(d), markup=False)
        con.print(
            "identical"
            if same
            else f"{len(comparable) - len(values)} of "
            f"{len(comparable)} common entries equal (atol {args.atol:g}); the checkpoints "
            "differ"
        )
    return EXIT_OK if same else EXIT_DIFFERENT


def cmd_recipes(args: argparse.Namespace) -> int:
    from tfunite.porting import RECIPES

    rows = [
        {
            "name": r.name,
            "target": r.target,
            "default_size": r.default_size,
            "min_size": r.min_size,
            "max_size": r.max_size,
            "channels": r.channels,
            "any_size": r.any_size,
            "fixed_size": None if r.any_size else r.fixed_size,
        }
        for r in sorted(RECIPES.values(), key=lambda r: r.name)
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            print(f"{r['name']:22s} {r['target']}")
            if r["any_size"]:
                size = f"any input size >= {r['min_size']} (Keras input (None, None, C))"
            else:
                most = r["max_size"] or r["default_size"]
                span = f"{r['min_size']}" + (f"..{most}" if most != r["min_size"] else "")
                size = f"fixed input size ({span}; default {r['default_size']}): {r['fixed_size']}"
            print(f"{'':22s}   {size}")
    return EXIT_OK


def _delegate(module: str, what: str):
    def run(args: argparse.Namespace) -> int:
        try:
            mod = importlib.import_module(f"tfunite.tools.{module}")
        except ModuleNotFoundError as e:
            if e.name not in (f"tfunite.tools.{module}",):
                raise
            raise CliError(
                f"`tfunite {module}` ({what}) is not available in this installation: the module "
                f"tfunite.tools.{module} is missing. Fix: reinstall tfunite (pip install -e .).",
                EXIT_USAGE,
            ) from None
        return int(mod.main(list(args.args)) or 0)

    return run


_DELEGATES = {
    "doctor": "framework versions and legacy fixes",
    "compat": "the compatibility matrix runner",
}


def _console():
    from rich.console import Console

    return Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("tfunite")
    except metadata.PackageNotFoundError:  # run from a source tree without installing
        return "unknown (not installed)"


# ----------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tfunite",
        description="Port and convert TF-Slim networks to Keras 3, export owners, inspect and "
        "compare checkpoints; check the environment.",
        epilog="Exit codes: 0 ok, 1 failure, 2 usage error; diff: 0 same, 1 different, "
        "2 trouble (unreadable checkpoint, bad arguments). With --json a failure also "
        'prints {"error": ..., "code": ...} on stdout.',
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser(
        "port",
        help="port a TF-Slim checkpoint into a Keras 3 .keras file",
        description="Port a TF-Slim checkpoint into a Keras 3 model. The plan "
        "(matched, transformed, dropped, missing, unexpected) is checked before "
        "any weight is loaded; the .keras file is written atomically.",
    )
    p.add_argument("checkpoint", help="checkpoint prefix (V2), file (V1) or directory")
    p.add_argument(
        "--recipe",
        "-r",
        required=True,
        help="e.g. slim:vgg_16 (`tfunite recipes` lists them), or your own Recipe: "
        "path/to/file.py:NAME or package.module:NAME",
    )
    p.add_argument(
        "--weights",
        choices=("raw", "ema"),
        default="raw",
        help="raw: the trained variables (default); ema: their ExponentialMovingAverage "
        "shadows (checkpoints trained with --moving_average_decay)",
    )
    p.add_argument("-o", "--output", help="the .keras file to write")
    p.add_argument("--dry-run", action="store_true", help="print the plan; load and write nothing")
    p.add_argument(
        "--verify",
        action="store_true",
        help="run Slim from the checkpoint and compare logits and endpoints",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--keep-background",
        action="store_true",
        help="keep class 0 of a 1001-class classifier (default: drop it)",
    )
    p.add_argument(
        "--input-size",
        type=_positive_int,
        metavar="N",
        help="square input size (default: any size for nets fully convolutional up to a "
        "global pooling, else the net's Slim default; from the recipe's min_size to its "
        "max_size, see `tfunite recipes`)",
    )
    p.add_argument("--scope", help="the net's top scope in the checkpoint, if not Slim's default")
    p.add_argument(
        "--no-strict",
        action="store_true",
        help="ignore checkpoint entries that map to no Keras weight",
    )
    p.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        help="list every entry (one-to-one renames, dropped entries and training state); "
        "default: counts by reason",
    )
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no status of the phases (read, build, plan, load, verify, save) on stderr; "
        "it is shown only when stderr is a terminal",
    )
    p.set_defaults(func=cmd_port)

    p = sub.add_parser(
        "convert",
        help="convert a TF-Slim or TFLearn network function into a Keras 3 .keras file",
        description="Convert any TF-Slim or TFLearn network function into a Keras 3 "
        "functional model of built-in layers, traced from its TF1 graph, with a "
        "checkpoint's weights (or fresh ones). --verify compares every Keras layer with "
        "the graph tensor it replaces and names the first one beyond tolerance.",
    )
    p.add_argument("function", help="package.module:NAME or path/to/file.py:NAME")
    p.add_argument("--checkpoint", "-c", help="checkpoint of the network (default: fresh weights)")
    p.add_argument(
        "--input-size",
        type=_positive_int,
        nargs="+",
        metavar="N",
        help="N (an N x N x 3 input) or H W C (default: the function's default_image_size)",
    )
    p.add_argument("--arg-scope", help="Slim arg scope function, package.module:NAME")
    p.add_argument("--scope", help="passed to the function as scope=")
    p.add_argument("--num-classes", type=int, help="passed to the function as num_classes=")
    p.add_argument(
        "--arg",
        type=_literal,
        action="append",
        metavar="KEY=VALUE",
        help="another argument of the function (a Python literal, else a string); repeatable",
    )
    p.add_argument("-o", "--output", help="the .keras file to write")
    p.add_argument("--verify", action="store_true", help="compare every layer with the TF1 graph")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--no-strict",
        action="store_true",
        help="ignore checkpoint entries that map to no Keras weight",
    )
    p.add_argument("--verbose", "-v", action="store_true", help="list every layer's difference")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("inspect", help="list a checkpoint's names, shapes, dtypes and sizes")
    p.add_argument("checkpoint")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser(
        "diff",
        help="compare two checkpoints (exit 0 same, 1 different, 2 trouble)",
        description="Compare two checkpoints entry by entry: names, shapes, dtypes and "
        "values. NaN equals NaN at the same position; NaN or inf against any other value "
        "is a difference whatever --atol.",
        epilog="Exit codes, as diff/cmp: 0 same, 1 different, 2 trouble (an unreadable, "
        "truncated or corrupt checkpoint; bad arguments).",
    )
    p.add_argument("checkpoint_a")
    p.add_argument("checkpoint_b")
    p.add_argument(
        "--atol",
        type=float,
        default=0.0,
        help="finite value differences up to this are equal (default: exact)",
    )
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser(
        "export",
        help="export an owner as a SavedModel (TF Serving) or ONNX model",
        description="Build the owner that FACTORY (module:function, returning an owner or "
        "a model tu.wrap accepts) makes, load --checkpoint into it, and export its "
        "inference (serving_default signature). Nothing is written on error.",
    )
    p.add_argument("factory", help="module:function returning an owner, e.g. mypkg.nets:make")
    p.add_argument("output", help="a new version folder (models/net/1), or a .onnx file")
    p.add_argument(
        "--input-spec",
        type=_input_spec,
        action="append",
        required=True,
        metavar="SHAPE[:DTYPE]",
        help="one per input, e.g. None,6 or None,224,224,3:float32 (None = any size)",
    )
    p.add_argument("--checkpoint", help="a tu.save directory (or any checkpoint) to load first")
    p.add_argument("--format", choices=["saved_model", "onnx"], default="saved_model")
    p.add_argument("--opset", type=_positive_int, help="ONNX opset (tf2onnx's default)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("recipes", help="list the porting recipes")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_recipes)

    for name, what in _DELEGATES.items():
        p = sub.add_parser(
            name, help=what, add_help=False, description=f"{what} (options: tfunite {name} --help)"
        )
        p.add_argument("args", nargs=argparse.REMAINDER)
        p.set_defaults(func=_delegate(name, what))
    return parser


def _fail(prog: str, message: str, code: int, as_json: bool, report: Any = None) -> int:
    """Report a failure: one message on stderr; with --json also a JSON object on stdout."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    if as_json:
        payload = dict(report.to_dict()) if hasattr(report, "to_dict") else {}
        payload.update(error=message, code=code)
        print(json.dumps(payload, indent=2, default=str))
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tfunite`` console script; returns the exit code."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("doctor", "compat"):
        # Their options belong to their own parsers (argparse.REMAINDER drops a leading
        # "--option" inside a subparser), so they are passed through untouched.
        args = argparse.Namespace(
            command=argv[0], args=argv[1:], func=_delegate(argv[0], _DELEGATES[argv[0]])
        )
    else:
        try:
            args = parser.parse_args(argv)
        except _ArgumentError as e:
            e.parser.print_usage(sys.stderr)
            return _fail(e.parser.prog, str(e), EXIT_USAGE, "--json" in argv)
    _quiet_tf(args.command, getattr(args, "args", None) or argv)
    from tfunite.errors import TfuniteError

    as_json = bool(getattr(args, "json", False))
    # diff: any trouble is exit 2, as diff(1) and cmp(1); elsewhere a failure is 1.
    fail = EXIT_TROUBLE if args.command == "diff" else EXIT_FAIL
    prog = f"tfunite {args.command}"
    try:
        return args.func(args)
    except CliError as e:
        return _fail(prog, str(e), e.code, as_json)
    except (TfuniteError, OSError) as e:
        return _fail(prog, str(e), fail, as_json, getattr(e, "report", None))
    except KeyboardInterrupt:
        return _fail(prog, "interrupted", 130, as_json)


if __name__ == "__main__":
    sys.exit(main())
