"""The ``tfunite`` command: port, inspect and diff checkpoints; doctor and compat.

    tfunite port CKPT --recipe slim:vgg_16 -o vgg16.keras [--dry-run] [--verify] [--json]
    tfunite inspect CKPT [--json]
    tfunite diff CKPT_A CKPT_B [--json]
    tfunite recipes
    tfunite doctor ... / tfunite compat ...      (see their own --help)

Exit codes: 0 success (for ``diff``: identical), 1 failure (for ``diff``: different),
2 usage error (bad arguments, unknown recipe, a missing subcommand module). Errors go
to stderr as one message, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def _quiet_tf() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


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


# --------------------------------------------------------------------- commands
def cmd_port(args: argparse.Namespace) -> int:
    from tfunite.porting import RecipeError, port

    if not args.dry_run and not args.output:
        raise CliError("port: -o/--output is required unless --dry-run is given.", EXIT_USAGE)
    size = args.input_size
    try:
        model, report = port(
            args.checkpoint,
            args.recipe,
            keep_background=args.keep_background,
            input_shape=(size, size, 3) if size else None,
            scope=args.scope,
            strict=not args.no_strict,
            dry_run=args.dry_run,
            verify=args.verify,
            output=args.output if not args.dry_run else None,
            progress=not args.no_progress,
        )
    except RecipeError as e:
        raise CliError(str(e), EXIT_USAGE) from None
    except Exception as e:
        report = getattr(e, "report", None)
        if args.json and report is not None:
            print(json.dumps({**report.to_dict(), "error": str(e)}, indent=2))
        raise
    if args.dry_run and args.output:
        from tfunite.porting.engine import check_output

        check_output(args.output)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        report.render(_console(), verbose=args.verbose)
    return EXIT_OK


def _read_all(path: str, progress: bool) -> tuple[Any, dict, dict]:
    from tfunite.porting.engine import checkpoint_shapes, open_reader

    reader = open_reader(path)  # checks the data files are complete
    shapes, dtypes = checkpoint_shapes(reader)
    return reader, shapes, dtypes


def cmd_inspect(args: argparse.Namespace) -> int:
    import numpy as np

    _, shapes, dtypes = _read_all(args.checkpoint, False)
    rows = []
    for name in sorted(shapes):
        dt = np.dtype(dtypes[name]) if dtypes[name] not in ("string", "resource") else None
        n = int(np.prod(shapes[name])) if shapes[name] else 1
        rows.append(
            {
                "name": name,
                "shape": list(shapes[name]),
                "dtype": dtypes[name],
                "size": n,
                "bytes": n * dt.itemsize if dt is not None else None,
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
        ("size", "right"),
        ("bytes", "right"),
    ):
        table.add_column(col, justify=just)
    for r in rows:
        table.add_row(
            r["name"],
            str(tuple(r["shape"])),
            r["dtype"],
            f"{r['size']:,}",
            _human(r["bytes"]) if r["bytes"] is not None else "-",
        )
    _console().print(table)
    return EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    import numpy as np

    ra, sa, da = _read_all(args.checkpoint_a, False)
    rb, sb, db = _read_all(args.checkpoint_b, False)
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
    from tfunite.porting.engine import _progress

    comparable = [n for n in common if n not in bad]
    with _progress(not args.json and not args.no_progress, len(comparable), "Comparing") as step:
        for n in comparable:
            a, b = ra.read(n), rb.read(n)
            if isinstance(a, np.ndarray) and a.dtype.kind in "fiub":
                d = (
                    float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
                    if a.size
                    else 0.0
                )
            else:
                d = 0.0 if np.array_equal(a, b) else float("inf")
            if d > args.atol:
                values.append({"name": n, "max_abs_diff": d})
            step()
    same = not (only_a or only_b or layout or values)
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
            f"({len(sb)} entries)"
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
            con.print(f"[bold]{len(values)} with different values[/bold] (max abs difference):")
            for d in sorted(values, key=lambda d: -d["max_abs_diff"]):
                con.print(f"  {d['name']}: {d['max_abs_diff']:.6g}", markup=False)
        con.print(
            "identical"
            if same
            else f"{len(comparable) - len(values)} of "
            f"{len(comparable)} common entries equal (atol {args.atol:g})"
        )
    return EXIT_OK if same else EXIT_FAIL


def cmd_recipes(args: argparse.Namespace) -> int:
    from tfunite.porting import RECIPES

    rows = [
        {"name": r.name, "target": r.target, "default_size": r.default_size, "min_size": r.min_size}
        for r in sorted(RECIPES.values(), key=lambda r: r.name)
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            print(f"{r['name']:22s} {r['target']}")
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
    parser = argparse.ArgumentParser(
        prog="tfunite",
        description="Port, inspect and compare TensorFlow checkpoints; check the environment.",
        epilog="Exit codes: 0 ok, 1 failure (diff: checkpoints differ), 2 usage error.",
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
        "--recipe", "-r", required=True, help="e.g. slim:vgg_16 (`tfunite recipes` lists them)"
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
        type=int,
        metavar="N",
        help="square input size (default: the net's Slim default)",
    )
    p.add_argument("--scope", help="the net's top scope in the checkpoint, if not Slim's default")
    p.add_argument(
        "--no-strict",
        action="store_true",
        help="ignore checkpoint entries that map to no Keras weight",
    )
    p.add_argument("--verbose", "-v", action="store_true", help="list one-to-one renames too")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_port)

    p = sub.add_parser("inspect", help="list a checkpoint's names, shapes, dtypes and sizes")
    p.add_argument("checkpoint")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("diff", help="compare two checkpoints (exit 1 if they differ)")
    p.add_argument("checkpoint_a")
    p.add_argument("checkpoint_b")
    p.add_argument(
        "--atol",
        type=float,
        default=0.0,
        help="value differences up to this are equal (default: exact)",
    )
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_diff)

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
        args = parser.parse_args(argv)
    _quiet_tf()
    from tfunite.errors import TfuniteError

    try:
        return args.func(args)
    except CliError as e:
        print(f"tfunite {args.command}: error: {e}", file=sys.stderr)
        return e.code
    except (TfuniteError, OSError) as e:
        print(f"tfunite {args.command}: error: {e}", file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        print("tfunite: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
