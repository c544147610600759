"""`tfunite doctor`: what is installed, which legacy fixes tfunite carries, what will break.

Prints every framework version found, the legacy fixes registered by the bridges (and
whether they are applied in this process; `tu.enable_fixes(framework)` applies them for
plain framework code), the known problems of this environment, each with the command
that fixes it, and the licence of every installed dependency. `--json` gives the same as a JSON document.

    tfunite doctor            # or: python -m tfunite.tools.doctor
    tfunite doctor --json

Versions are read from the installed distributions' metadata, so a broken framework is
still reported; the bridges that carry legacy fixes are imported one by one to register
their fixes, and an import failure is itself reported as a problem.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import os
import platform
import re
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from tfunite.records import Bridge, records

# Libraries doctor reports besides the frameworks of the records: report key -> distribution.
OTHER_PACKAGES: dict[str, str] = {
    "numpy": "numpy",
    "h5py": "h5py",
    "pillow": "pillow",
    "tfunite": "tfunite",
}


def frameworks() -> list[Bridge]:
    """The records of the frameworks, TensorFlow first, one per import name.

    Records are data: reading them imports neither TensorFlow nor a framework, so a
    missing or broken framework is still listed.
    """
    first: dict[str, Bridge] = {}
    for record in sorted(records().values(), key=lambda r: r.import_name != "tensorflow"):
        first.setdefault(record.import_name, record)  # tensorflow: the tf_module record
    return list(first.values())


def packages() -> dict[str, str]:
    """{report key: pip distribution}: the frameworks (keyed by import name), then the rest."""
    return {**{r.import_name: r.distribution for r in frameworks()}, **OTHER_PACKAGES}


def extras() -> dict[str, str]:
    """{report key: the tfunite extra that installs it}, for every framework with an extra."""
    return {r.import_name: r.extra for r in frameworks() if r.extra}


def fix_modules() -> tuple[str, ...]:
    """The modules that register the bridges' legacy fixes (each record's `fixes`)."""
    return tuple(dict.fromkeys(r.fixes for r in records().values() if r.fixes))


@dataclass
class Problem:
    """A known problem of this environment and the command that fixes it."""

    name: str
    severity: str  # "error" (a bridge cannot work), "warning" (works with limits), "info"
    summary: str
    fix: str


def _version(distribution: str) -> str | None:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def versions() -> dict[str, str]:
    """{package: version} of every framework found, plus python; missing ones are omitted."""
    found = {"python": platform.python_version()}
    for key, distribution in packages().items():
        v = _version(distribution)
        if v is not None:
            found[key] = v
    return found


def _major_minor(v: str | None) -> tuple[int, int] | None:
    if not v:
        return None
    try:
        major, minor = v.split(".")[:2]
        return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)
    except ValueError:
        return None


def register_fixes() -> dict[str, str]:
    """Import the modules that register legacy fixes; {module: error} for those that fail."""
    errors = {}
    for module in fix_modules():
        try:
            with contextlib.redirect_stdout(sys.stderr):  # frameworks print on import
                importlib.import_module(module)
        except Exception as e:  # reported, not raised: doctor must always print
            errors[module] = f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
    return errors


def fixes() -> list[dict[str, object]]:
    """`tfunite.fixes.status()`, plus whether each fix is needed in this environment."""
    from tfunite.fixes import FIXES, status

    out = status()
    for entry in out:
        try:
            entry["needed"] = bool(FIXES[str(entry["name"])].needed())
        except Exception as e:  # a broken check is reported, not raised
            entry["needed"] = f"unknown ({type(e).__name__}: {e})"
    return out


def problems(found: dict[str, str] | None = None) -> list[Problem]:
    """Known problems of the environment described by `found` (default: this one)."""
    found = versions() if found is None else found
    out: list[Problem] = []
    tf_v = _major_minor(found.get("tensorflow"))
    keras_v = _major_minor(found.get("keras"))

    if tf_v is None:
        out.append(
            Problem(
                "tensorflow-missing", "error", "TensorFlow is not installed.", "pip install tfunite"
            )
        )
        return out
    for record in frameworks():
        if record.extra and record.import_name not in found:
            out.append(
                Problem(
                    f"{record.import_name}-missing",
                    "info",
                    f"{record.distribution} is not installed: the {record.import_name} "
                    "bridge is unavailable.",
                    record.pip_command,
                )
            )
    if tf_v < (2, 16):
        out.append(
            Problem(
                "tensorflow-old",
                "warning",
                f"tensorflow {found['tensorflow']}: tfunite supports TF >= 2.16; "
                "`keras` is Keras 2 here, so the Keras 3 bridge cannot be used.",
                "pip install 'tensorflow>=2.16' 'keras>=3' tf-keras",
            )
        )
    if keras_v is not None and keras_v >= (3, 0):
        out.append(
            Problem(
                "keras3-tf1-graph",
                "info",
                "Keras 3 models do not run in TF1 graphs/Sessions (tfunite raises "
                "GraphModeError); Keras 3 optimizers do not work in a Session.",
                "for graph mode build the model with tf_keras: pip install 'tfunite[tf-keras]'",
            )
        )
    if tf_v >= (2, 16) and keras_v is not None and keras_v < (3, 0):
        out.append(
            Problem(
                "keras2-on-keras3-tf",
                "error",
                f"keras {found['keras']} is Keras 2 but tensorflow "
                f"{found['tensorflow']} expects Keras 3.",
                "pip install 'keras>=3'",
            )
        )
    if os.environ.get("TF_USE_LEGACY_KERAS", "") not in ("", "0", "false", "False"):
        out.append(
            Problem(
                "tf-use-legacy-keras",
                "warning",
                "TF_USE_LEGACY_KERAS is set: `tf.keras` is tf_keras (Keras 2) in this "
                "process; Keras 3 and tf_keras code can be mixed up.",
                "unset TF_USE_LEGACY_KERAS (tfunite never needs it)",
            )
        )
    tfk_v = _major_minor(found.get("tf_keras"))
    if tfk_v is not None and tfk_v != tf_v:
        out.append(
            Problem(
                "tf-keras-version",
                "error",
                f"tf-keras {found['tf_keras']} does not match tensorflow "
                f"{found['tensorflow']} (they are released in lockstep).",
                f"pip install 'tf-keras~={tf_v[0]}.{tf_v[1]}.0'",
            )
        )
    if "tf_slim" in found and "tf_keras" not in found and tf_v >= (2, 16):
        out.append(
            Problem(
                "slim-needs-tf-keras",
                "error",
                "TF-Slim layers use tf.compat.v1.layers, which need tf_keras on "
                "TF >= 2.16 ('not available with Keras 3').",
                "pip install 'tfunite[tf-keras]'",
            )
        )
    if "tf_slim" in found and "tf_keras" in found and tf_v >= (2, 16):
        if importlib.util.find_spec("tf_keras") and not _has_module("tf_keras.legacy_tf_layers"):
            out.append(
                Problem(
                    "slim-batch-norm-import",
                    "warning",
                    "slim.batch_norm fails when used directly: No module named "
                    "'tf_keras.legacy_tf_layers' (moved to tf_keras.src; tf-slim "
                    "issue 24). tfunite's slim bridge carries a fix, applied when "
                    "the bridge is used.",
                    'for plain Slim code call tu.enable_fixes("slim") before it runs; '
                    "tu.slim(fn, ...) applies the fix itself",
                )
            )
    sonnet_v = _major_minor(found.get("sonnet"))
    if sonnet_v is not None and sonnet_v < (2, 0):
        out.append(
            Problem(
                "sonnet1",
                "error",
                f"dm-sonnet {found['sonnet']} is Sonnet 1, which needs tf.contrib "
                "(TensorFlow 1 only) and cannot be imported. Sonnet 1 checkpoints "
                "still load by name with tu.load.",
                "pip install 'dm-sonnet>=2'",
            )
        )
    if "tflearn" in found:
        if tf_v >= (2, 0):
            out.append(
                Problem(
                    "tflearn-import",
                    "warning",
                    "`import tflearn` alone fails on this TensorFlow (nest.is_sequence "
                    "was renamed) and switches the whole process to TF1 "
                    "(disable_v2_behavior). tfunite's tflearn bridge carries fixes for "
                    "both, applied when the bridge is used.",
                    "build a tu.tflearn(fn, ...) owner before `import tflearn`, or import "
                    "it with tfunite.bridges.tflearn.import_tflearn()",
                )
            )
        pil_v = _major_minor(found.get("pillow"))
        if pil_v is not None and pil_v >= (10, 0):
            out.append(
                Problem(
                    "tflearn-pillow",
                    "info",
                    f"pillow {found['pillow']} removed Image.ANTIALIAS, which "
                    "tflearn's image utilities use (tfunite's tflearn bridge aliases "
                    "it to LANCZOS).",
                    "use tu.tflearn(fn, ...), or pip install 'pillow<10'",
                )
            )
    np_v = _major_minor(found.get("numpy"))
    if np_v is not None and np_v >= (2, 0) and tf_v < (2, 18):
        out.append(
            Problem(
                "numpy2-old-tf",
                "error",
                f"numpy {found['numpy']} with tensorflow {found['tensorflow']}: TF "
                "before 2.18 is built against numpy 1.",
                "pip install 'numpy<2'",
            )
        )
    return out


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _requirement_names(distribution: str) -> list[str]:
    from importlib.metadata import distribution as dist

    names = []
    for req in dist(distribution).requires or []:
        m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
        if m:
            names.append(m.group(1))
    return names


def _license(meta: Any) -> str:
    """A distribution's licence: License-Expression, else a short License field, else
    its `License ::` classifiers."""
    expression = meta.get("License-Expression")
    if expression:
        return str(expression)
    text = (meta.get("License") or "").strip()
    if text and len(text) <= 60 and "\n" not in text:
        return text
    classifiers = [
        c.split(" :: ")[-1] for c in meta.get_all("Classifier") or [] if c.startswith("License ::")
    ]
    if classifiers:
        return ", ".join(classifiers)
    return (text.splitlines()[0][:60] + "...") if text else "unknown"


_COPYLEFT = re.compile(r"\b(A?GPL|LGPL|GNU)", re.IGNORECASE)


def licenses(root: str = "tfunite") -> dict[str, dict[str, Any]]:
    """{distribution: {version, license, copyleft}} of every installed dependency of
    `root`, direct or not (extras included), from the distributions' metadata."""
    from importlib.metadata import PackageNotFoundError, distribution

    found: dict[str, dict[str, Any]] = {}
    todo = [root]
    while todo:
        name = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in found:
            continue
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue
        text = _license(dist.metadata)
        found[key] = {
            "version": dist.version,
            "license": text,
            "copyleft": bool(_COPYLEFT.search(text)),
        }
        todo.extend(_requirement_names(name))
    found.pop(re.sub(r"[-_.]+", "-", root).lower(), None)
    return dict(sorted(found.items()))


def diagnose(import_bridges: bool = True) -> dict[str, Any]:
    """Everything doctor reports, as a JSON-able dict."""
    found = versions()
    bridge_errors = register_fixes() if import_bridges else {}
    found_problems = problems(found)
    for module, error in bridge_errors.items():
        found_problems.append(
            Problem(
                f"import-{module.rsplit('.', 1)[-1]}",
                "error",
                f"{module} cannot be imported: {error}",
                "run `tfunite compat` for details; check the versions above",
            )
        )
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": found,
        "missing": [d for k, d in packages().items() if k not in found],
        "fixes": fixes(),
        "problems": [asdict(p) for p in found_problems],
        "licenses": licenses(),
    }


def format_report(data: dict[str, Any]) -> str:
    lines = [f"tfunite doctor  (python {data['python']}, {data['platform']})", "", "Versions:"]
    for key in ("python", *packages()):
        v = data["versions"].get(key)
        lines.append(f"  {key:<11} {v if v else 'not installed'}")
    lines += [
        "",
        "Legacy fixes (registered by the bridges; applied when a bridge is used, or by",
        '  tu.enable_fixes("slim") etc. before your own plain framework code runs):',
    ]
    if not data["fixes"]:
        lines.append("  none registered")
    for fix in data["fixes"]:
        needed = fix.get("needed")
        state = "applied" if fix["applied"] else "not applied"
        state += {True: ", needed here", False: ", not needed here"}.get(needed, f", {needed}")
        lines.append(f"  {fix['name']} [{', '.join(fix['bridges'])}; {state}]: {fix['summary']}")
    lines += ["", "Known problems in this environment:"]
    if not data["problems"]:
        lines.append("  none")
    for p in data["problems"]:
        lines.append(f"  [{p['severity']}] {p['name']}: {p['summary']}")
        lines.append(f"      fix: {p['fix']}")
    lines += ["", "Licences of the installed dependencies (tfunite is Apache-2.0):"]
    for name, info in data.get("licenses", {}).items():
        mark = "  (copyleft)" if info["copyleft"] else ""
        lines.append(f"  {name:<24} {info['version']:<12} {info['license']}{mark}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tfunite doctor",
        description="Print framework versions, tfunite's legacy fixes and known problems.",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON document")
    parser.add_argument(
        "--no-import",
        action="store_true",
        help="do not import the bridges (fixes then show as not registered)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 if a problem of severity 'error' is found"
    )
    return parser


def main(argv: Sequence[str] | argparse.Namespace | None = None) -> int:
    if isinstance(argv, argparse.Namespace):
        argv = getattr(argv, "args", None) or []
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    data = diagnose(import_bridges=not args.no_import)
    print(json.dumps(data, indent=2) if args.json else format_report(data))
    if args.strict and any(p["severity"] == "error" for p in data["problems"]):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
