"""Port a TF-Slim checkpoint into a Keras 3 model: plan, load, verify, save; and back.

`port` reads only the checkpoint's index to make a *plan* (which checkpoint entry goes
to which Keras weight, through which rule and transform, and what is dropped, missing
or unexpected), refuses the port before touching any weight if the plan is not clean,
then streams one tensor at a time into the model. `verify` runs the Slim network from
the same checkpoint in a private TF1 graph and compares outputs. `export` writes a
Keras model back to a Slim-named checkpoint.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import tensorflow as tf
from tfunite.checkpoint import Reader, open_checkpoint
from tfunite.errors import CheckpointError, LoadError, RuleError, TfuniteError
from tfunite.rules import DropIndex, Rules, Transform

from .recipes import RECIPES, TRAINING_STATE, BuildSpec, Recipe, RecipeError, get_recipe
from .trace import keras_names as _layer_names

DEFAULT_RTOL = 1e-5  # max |keras - slim| / max |slim| on logits, float32


class OutputError(TfuniteError, OSError):
    """The output file cannot be written (nothing was written)."""


class PortArgumentError(TfuniteError, ValueError):
    """An argument of `port` is invalid (an input size too small for the net, or two
    arguments that contradict each other); nothing was read or written."""


class VerificationError(TfuniteError):
    """The ported model's outputs differ from Slim's by more than the tolerance."""

    def __init__(self, message: str, report: PortReport | None = None):
        super().__init__(message)
        self.report = report


# ------------------------------------------------------------------- transforms
@dataclass(frozen=True)
class Chain(Transform):
    """Several transforms applied in order (inverse: reversed, each inverted)."""

    steps: tuple[Transform, ...]

    def forward(self, array):
        for s in self.steps:
            array = s.forward(array)
        return array

    def inverse(self, array):
        for s in reversed(self.steps):
            array = s.inverse(array)
        return array

    def target_shape(self, shape):
        for s in self.steps:
            shape = s.target_shape(shape)
        return tuple(shape)


def describe(t: Transform | None) -> str:
    """A short human description of a transform."""
    if t is None:
        return ""
    if isinstance(t, Chain):
        return " then ".join(describe(s) for s in t.steps)
    if isinstance(t, DropIndex):
        return f"drop index {t.index} on axis {t.axis} (background class)"
    return repr(t)


# ---------------------------------------------------------------------- report
@dataclass
class Entry:
    """One line of a plan."""

    source: str | None  # checkpoint name
    target: str | None  # Keras-side name
    status: str  # matched|transformed|dropped|missing|unexpected|mismatched
    source_shape: tuple[int, ...] | None = None
    target_shape: tuple[int, ...] | None = None
    dtype: str | None = None
    rule: str | None = None
    transform: Transform | None = field(default=None, repr=False)
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "status": self.status,
            "source_shape": list(self.source_shape) if self.source_shape is not None else None,
            "target_shape": list(self.target_shape) if self.target_shape is not None else None,
            "dtype": self.dtype,
            "rule": self.rule,
            "transform": describe(self.transform) or None,
            "reason": self.reason,
        }


@dataclass
class PortReport:
    """What a port did (or, for a dry run, would do)."""

    recipe: str
    checkpoint: str
    target: str
    num_classes: int | None = None
    background: str = "none"  # none | dropped | kept
    input_shape: tuple[int, ...] | None = None
    entries: list[Entry] = field(default_factory=list)
    verification: dict[str, Any] | None = None
    output: str | None = None
    dry_run: bool = False

    def by_status(self, status: str) -> list[Entry]:
        return [e for e in self.entries if e.status == status]

    @property
    def matched(self) -> list[Entry]:
        return self.by_status("matched")

    @property
    def transformed(self) -> list[Entry]:
        return self.by_status("transformed")

    @property
    def dropped(self) -> list[Entry]:
        return self.by_status("dropped")

    @property
    def missing(self) -> list[Entry]:
        return self.by_status("missing")

    @property
    def unexpected(self) -> list[Entry]:
        return self.by_status("unexpected")

    @property
    def mismatched(self) -> list[Entry]:
        return self.by_status("mismatched")

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def counts(self) -> dict[str, int]:
        keys = ("matched", "transformed", "dropped", "missing", "unexpected", "mismatched")
        return {k: len(self.by_status(k)) for k in keys}

    def to_dict(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "checkpoint": self.checkpoint,
            "target": self.target,
            "num_classes": self.num_classes,
            "background": self.background,
            "input_shape": list(self.input_shape) if self.input_shape else None,
            "dry_run": self.dry_run,
            "output": self.output,
            "counts": self.counts(),
            "ok": self.ok,
            "entries": [e.to_dict() for e in self.entries],
            "verification": self.verification,
        }

    def problems(self, limit: int = 8) -> str:
        """Human text of what is wrong (missing, unexpected, mismatched), capped."""
        lines = []
        for label, entries, fmt in (
            (
                "missing (a Keras weight no checkpoint entry maps to)",
                self.missing,
                lambda e: f"{e.target} {e.target_shape}",
            ),
            (
                "unexpected (a checkpoint entry no rule maps to a Keras weight)",
                self.unexpected,
                lambda e: f"{e.source} {e.source_shape}" + (f" -> {e.target}" if e.target else ""),
            ),
            (
                "wrong shape or dtype",
                self.mismatched,
                lambda e: f"{e.source} -> {e.target}: {e.reason}",
            ),
        ):
            if entries:
                lines.append(f"  {len(entries)} {label}:")
                lines += [f"    {fmt(e)}" for e in entries[:limit]]
                if len(entries) > limit:
                    lines.append(f"    ... and {len(entries) - limit} more")
        return "\n".join(lines)

    def render(self, console: Any = None, verbose: bool = False) -> None:
        """Print the plan/report with rich."""
        import sys

        from rich.console import Console
        from rich.table import Table

        console = console or Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
        head = "Plan" if self.dry_run else "Port report"
        console.print(
            f"[bold]{head}[/bold]: {self.checkpoint} -> {self.target} (recipe {self.recipe})"
        )
        console.print(
            f"  classes: {self.num_classes}  background class: {self.background}  "
            f"input shape: {self.input_shape}"
        )
        c = self.counts()
        console.print("  " + "  ".join(f"{k}: {v}" for k, v in c.items()))
        table = Table(show_lines=False)
        for col in ("status", "checkpoint name", "shape", "keras name", "how"):
            table.add_column(col)
        for e in self.entries:
            if e.status == "matched" and not verbose:
                continue
            how = describe(e.transform) or e.reason or ""
            table.add_row(
                e.status, e.source or "-", str(e.source_shape or ""), e.target or "-", how
            )
        if table.row_count:
            console.print(table)
        if not verbose and c["matched"]:
            console.print(f"  ({c['matched']} entries renamed one to one; --verbose lists them)")
        if self.verification:
            v = self.verification
            console.print(
                f"[bold]Verification[/bold] on {v['batch']} random inputs of shape "
                f"{tuple(v['input_shape'])} (tolerance {v['rtol']:g} relative):"
            )
            for name, d in v["outputs"].items():
                console.print(
                    f"  {name:40s} max abs {d['max_abs']:.3g}  max rel {d['max_rel']:.3g}"
                )
            console.print("  [green]OK[/green]" if v["ok"] else "  [red]FAILED[/red]")
        if self.output:
            console.print(f"Wrote {self.output}")


# ------------------------------------------------------------------- checkpoint
def open_reader(checkpoint: str | os.PathLike) -> Reader:
    """Open `checkpoint` with tfunite's reader and check that its data files are complete.

    Raises `CheckpointError` naming the path if it is not a checkpoint, or if its data
    files are missing or truncated, before any tensor is read.
    """
    reader = open_checkpoint(checkpoint)
    try:
        reader.verify()
    except BaseException:
        reader.close()
        raise
    return reader


def _dtype_name(dtype: np.dtype) -> str:
    return "string" if dtype.kind in "OSU" else dtype.name


def checkpoint_shapes(
    checkpoint: str | os.PathLike | Reader,
) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """``({name: shape}, {name: dtype name})`` of a checkpoint's entries (index only).

    `checkpoint` is a path (opened and checked with `open_reader`) or an open `Reader`.
    """
    if isinstance(checkpoint, Reader):
        reader = checkpoint
    else:
        reader = open_reader(checkpoint)
        reader.close()
    shapes = {k: tuple(int(d) for d in shape) for k, (shape, _) in reader.entries.items()}
    dtypes = {k: _dtype_name(dtype) for k, (_, dtype) in reader.entries.items()}
    return shapes, dtypes


def _matches(pattern: str, names: Sequence[str]) -> list[str]:
    rx = re.compile(pattern)
    return [n for n in names if rx.fullmatch(n)]


def looks_like(shapes: Mapping[str, Sequence[int]]) -> list[str]:
    """Registered recipes whose tell-tale keys (and shapes) a checkpoint matches."""
    names = list(shapes)
    found = []
    for recipe in RECIPES.values():
        sig = recipe.signature
        if not sig:
            continue
        ok = all(any(re.search(r"(^|/)" + p, n) for n in names) for p in sig["required"])
        ok = ok and not any(
            any(re.search(r"(^|/)" + p, n) for n in names) for p in sig["forbidden"]
        )
        for key, shape in sig.get("shapes", {}).items():
            hits = [n for n in names if n.endswith("/" + key)]
            ok = ok and bool(hits) and all(tuple(shapes[h]) == tuple(shape) for h in hits)
        if ok:
            found.append(recipe.name)
    return found


def _check_identity(
    recipe: Recipe, shapes: Mapping[str, Sequence[int]], scope: str, checkpoint: str
) -> None:
    if not recipe.signature:
        return
    candidates = looks_like(shapes)
    in_scope = any(n.startswith(scope + "/") for n in shapes)
    if recipe.name in candidates and in_scope:
        return
    tops = sorted({n.split("/", 1)[0] for n in shapes if "/" in n})
    if recipe.name in candidates:
        raise LoadError(
            f"Checkpoint {checkpoint!r} looks like {recipe.name} but has no variables under "
            f"the scope {scope!r} (top scopes found: {tops}). Fix: pass scope={tops[0]!r} "
            f"(CLI: --scope {tops[0]})."
        )
    like = (
        f"it looks like {', '.join(candidates)} (from tell-tale keys)"
        if candidates
        else f"it matches no registered recipe (top scopes: {tops[:5]})"
    )
    fix = (
        f"Fix: use recipe={candidates[0]!r} (CLI: --recipe {candidates[0]})"
        if candidates
        else "Fix: check the file, or port it with your own rules (see "
        "tfunite/porting/README.md, 'Custom models')"
    )
    raise LoadError(f"Checkpoint {checkpoint!r} is not a {recipe.name} checkpoint: {like}. {fix}.")


# ---------------------------------------------------------------------- planning
def keras_weight_names(model: Any, naming: str = "layers") -> dict[str, Any]:
    """tfunite's Keras-side names of `model`'s weights (see recipes module docstring)."""
    if naming == "layers":
        return _layer_names(model)
    if naming != "ordinal":
        raise RuleError(f"Unknown naming {naming!r}; expected 'layers' or 'ordinal'.")
    auto = re.compile(r"^(conv2d|batch_normalization|dense)(?:_(\d+))?$")
    groups: dict[str, list[tuple[int, Any]]] = {}
    for layer in model.layers:
        m = auto.match(layer.name)
        if m:
            groups.setdefault(m.group(1), []).append((int(m.group(2) or 0), layer))
    rename = {}
    for base, items in groups.items():
        for rank, (_, layer) in enumerate(sorted(items, key=lambda x: x[0])):
            rename[layer.name] = f"{base}_{rank}"
    out = {}
    for layer in model.layers:
        lname = rename.get(layer.name, layer.name.replace(".", "/"))
        for w in layer.weights:
            out[f"{lname}/{w.name}"] = w
    return out


class RuleMapper(Protocol):
    """What `make_plan` needs of rules: `tfunite.rules.Rules`, `custom.StagedRules`."""

    def apply(self, name: str) -> tuple[str | None, Any]: ...


@dataclass
class Plan:
    """A validated mapping checkpoint -> model, before any tensor is read."""

    report: PortReport
    model: Any
    assignments: list[tuple[str, Any, Transform | None]]  # (ckpt name, keras var, transform)


def make_plan(
    shapes: Mapping[str, tuple[int, ...]],
    dtypes: Mapping[str, str],
    model: Any,
    rules: RuleMapper,
    transforms: Sequence[tuple[str, Transform]] = (),
    drops: Sequence[tuple[str, str]] = (),
    naming: str = "layers",
    report: PortReport | None = None,
) -> Plan:
    """Match every checkpoint entry to a model weight (no tensor is read)."""
    report = report or PortReport("custom", "?", getattr(model, "name", "model"))
    targets = keras_weight_names(model, naming)
    compiled_t = [(re.compile(p), t) for p, t in transforms]
    compiled_d = [(re.compile(p), r) for p, r in drops]
    claimed: dict[str, str] = {}
    assignments = []
    for name in sorted(shapes):
        shape, dtype = tuple(shapes[name]), dtypes.get(name)
        reason = next((r for rx, r in compiled_d if rx.fullmatch(name)), None)
        if reason is not None:
            report.entries.append(Entry(name, None, "dropped", shape, None, dtype, reason=reason))
            continue
        target, rule = rules.apply(name)
        if rule is not None and target is None:
            report.entries.append(
                Entry(
                    name,
                    None,
                    "dropped",
                    shape,
                    None,
                    dtype,
                    rule=str(rule),
                    reason=f"dropped by rule {rule}",
                )
            )
            continue
        if target not in targets:
            report.entries.append(
                Entry(
                    name,
                    target if rule else None,
                    "unexpected",
                    shape,
                    None,
                    dtype,
                    rule=str(rule) if rule else None,
                )
            )
            continue
        if target in claimed:
            raise RuleError(
                f"Rules map two checkpoint entries onto the Keras weight {target!r}: "
                f"{claimed[target]!r} and {name!r}. Fix: make the rules one-to-one."
            )
        claimed[target] = name
        var = targets[target]
        transform = next((t for rx, t in compiled_t if rx.fullmatch(name)), None)
        want = tuple(var.shape)
        try:
            got = transform.target_shape(shape) if transform else shape
        except Exception as e:  # a transform that cannot apply to this shape
            got, bad = None, f"transform {describe(transform)} cannot apply to {shape}: {e}"
        else:
            bad = None
        var_dtype = str(getattr(var, "dtype", "float32")).replace("tf.", "")
        if bad is None and got != want:
            bad = (
                f"checkpoint shape {shape}"
                + (f" (after {describe(transform)}: {got})" if transform else "")
                + f", Keras weight expects {want}"
            )
        elif bad is None and dtype is not None and dtype != var_dtype:
            bad = f"checkpoint dtype {dtype}, Keras weight dtype {var_dtype}"
        status = "mismatched" if bad else ("transformed" if transform else "matched")
        report.entries.append(
            Entry(
                name,
                target,
                status,
                shape,
                want,
                dtype,
                rule=str(rule) if rule else None,
                transform=transform,
                reason=bad,
            )
        )
        if not bad:
            assignments.append((name, var, transform))
    for target, var in targets.items():
        if target not in claimed:
            report.entries.append(
                Entry(None, target, "missing", None, tuple(var.shape), str(var.dtype))
            )
    return Plan(report, model, assignments)


def execute(
    plan: Plan, checkpoint: str | os.PathLike | Reader, progress: bool | Phases = False
) -> None:
    """Read each planned tensor, transform it and assign it (the plan must be clean).

    Nothing is assigned unless the plan covers every model weight and the checkpoint's
    data files are complete. `progress` is a bool (a bar on stderr, on a terminal) or
    the `Phases` display of a whole port.
    """
    items = plan.assignments
    _check_covers_model(plan)
    reader = checkpoint if isinstance(checkpoint, Reader) else open_reader(checkpoint)
    done: list[str] = []
    try:
        with _as_phases(progress) as phases:
            advance = phases.phase("Loading weights", total=len(items))
            for name, var, transform in items:
                try:
                    value = reader.read(name)
                except CheckpointError as e:
                    # Index and file sizes were valid, so this is corruption inside the
                    # data (TF's per-tensor checksum): say what was already assigned.
                    if not done:
                        raise
                    shown = ", ".join(done[:5]) + (", ..." if len(done) > 5 else "")
                    raise CheckpointError(
                        f"{e} {len(done)} of {len(items)} weights of model "
                        f"{getattr(plan.model, 'name', '?')!r} had already been assigned "
                        f"(from {shown}); reload the model from a good checkpoint before using it."
                    ) from None
                if transform is not None:
                    value = transform.forward(value)
                _set(var, value, name)
                done.append(name)
                advance()
    finally:
        if reader is not checkpoint:
            reader.close()


class DeferredBuild:
    """Build a Keras 3 model whose variables hold no value yet, then create each one
    straight from its checkpoint tensor.

    Keras defers a variable's initialization when it is created inside a
    ``keras.StatelessScope`` (what its JAX backend does for every model). A port uses that
    so the weights are not first filled with zeros and then overwritten: `execute`
    creates each planned variable from the tensor read for it (one copy instead of a fill
    and an assignment), and `finish` initializes what no checkpoint entry feeds (a
    Dropout layer's seed state) with its own initializer. Where this Keras lacks the
    deferred path, the build is an ordinary one and `execute` assigns as usual.
    """

    def __init__(self) -> None:
        self.pending: list[Any] = []
        self._scope: Any = None
        self._before: set[int] = set()

    @staticmethod
    def _registry() -> Any:
        try:
            import keras
            from keras.src.backend.common import global_state
            from keras.src.backend.common.variables import Variable
        except ImportError:
            return None
        if not (hasattr(keras, "StatelessScope") and hasattr(Variable, "_deferred_initialize")):
            return None
        return global_state

    def __enter__(self) -> DeferredBuild:
        state = self._registry()
        if state is None or state.get_global_attribute("stateless_scope") is not None:
            return self  # no deferred path, or already inside someone else's scope
        import keras

        self._before = {id(v) for v in state.get_global_attribute("uninitialized_variables", [])}
        self._scope = keras.StatelessScope(initialize_variables=False)
        self._scope.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._scope is None:
            return
        self._scope.__exit__(*exc)
        state = self._registry()
        registry = state.get_global_attribute("uninitialized_variables", [])
        self.pending = [v for v in registry if id(v) not in self._before]
        # the variables are ours to initialize: Keras' registry must not do it again
        mine = {id(v) for v in self.pending}
        state.set_global_attribute(
            "uninitialized_variables", [v for v in registry if id(v) not in mine]
        )

    def finish(self) -> None:
        """Initialize, with their own initializers, the variables `execute` left empty."""
        for var in self.pending:
            if getattr(var, "_value", None) is None:
                var._deferred_initialize()
        self.pending = []


def _set(var: Any, value: np.ndarray, name: str) -> None:
    """Assign `value` to `var`, or create a deferred Keras variable from it."""
    if getattr(var, "_value", True) is not None or not hasattr(var, "_deferred_initialize"):
        var.assign(value)
        return
    if tuple(value.shape) != tuple(var.shape):  # the plan checked the transformed shape
        raise LoadError(
            f"Checkpoint entry {name!r} gives shape {tuple(value.shape)} for Keras weight "
            f"{var.path!r}, which expects {tuple(var.shape)}. Fix: check the transform."
        )
    var._initializer = lambda shape, dtype=None: value
    var._deferred_initialize()


def _check_covers_model(plan: Plan) -> None:
    """Refuse (before any assignment) a plan that leaves a model weight unassigned: it
    would silently keep the zeros of a fast build (or its initializer's values)."""
    weights = getattr(plan.model, "weights", None)
    if weights is None:
        return
    assigned = {id(var) for _, var, _ in plan.assignments}
    left = [getattr(w, "path", None) or w.name for w in weights if id(w) not in assigned]
    if left:
        shown = ", ".join(left[:8]) + (f" and {len(left) - 8} more" if len(left) > 8 else "")
        raise LoadError(
            f"The plan assigns no checkpoint entry to {len(left)} weight(s) of model "
            f"{getattr(plan.model, 'name', '?')!r}: {shown}. Nothing was loaded. Fix: add rules "
            "mapping checkpoint entries onto these weights.",
            plan.report,
        )


# ---------------------------------------------------------------------- progress
def _noop() -> None:
    pass


class Phases:
    """The status of a long operation's phases on stderr (rich), one line at a time.

    ``with Phases(enabled) as phases: advance = phases.phase("Loading weights", total=n)``
    shows a spinner, the phase, a bar (a pulse without `total`), ``done/total`` and the
    elapsed time of the phase. It draws only when `enabled` and stderr is an
    interactive terminal (so logs and pipes get no escape codes); the display is
    removed when the block ends.
    """

    def __init__(self, enabled: bool):
        self._bar: Any = None
        self._task: Any = None
        if not enabled:
            return
        console = _stderr_console()
        if not console.is_interactive:
            return
        from rich.progress import (
            BarColumn,
            Progress,
            ProgressColumn,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.text import Text

        class _Count(ProgressColumn):
            def render(self, task: Any) -> Text:
                if task.total is None:
                    return Text("")
                return Text(f"{int(task.completed)}/{int(task.total)}", style="progress.download")

        self._bar = Progress(
            SpinnerColumn(),
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            _Count(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )

    @property
    def active(self) -> bool:
        """Whether anything is drawn."""
        return self._bar is not None

    def __enter__(self) -> Phases:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()

    def phase(self, label: str, total: int | None = None) -> Callable[[], None]:
        """Start the next phase (the previous one is done); returns ``advance()``."""
        if self._bar is None:
            return _noop
        if self._task is not None:
            self._bar.update(self._task, visible=False)
        task = self._task = self._bar.add_task(label, total=total)
        self._bar.refresh()
        return lambda: self._bar.advance(task)


@contextlib.contextmanager
def _as_phases(progress: bool | Phases):
    """`progress` itself if it is a running `Phases`, else a new one for this block."""
    if isinstance(progress, Phases):
        yield progress
        return
    with Phases(bool(progress)) as phases:
        yield phases


@contextlib.contextmanager
def _progress(enabled: bool, total: int, label: str):
    """A single-phase progress bar on stderr: yields ``advance()``."""
    with Phases(enabled) as phases:
        yield phases.phase(label, total=total)


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


# ------------------------------------------------------------------------ output
def check_output(path: str) -> str:
    """Refuse early an output path that cannot be written; returns the absolute path."""
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    if os.path.isdir(path):
        raise OutputError(
            f"Output path {path!r} is a directory. Fix: give a file name ending in .keras."
        )
    if not path.endswith(".keras"):
        raise OutputError(
            f"Output path {path!r} must end in '.keras' (Keras 3 saves whole models only in "
            f"that format). Fix: use {os.path.splitext(path)[0] + '.keras'!r}."
        )
    if not os.path.isdir(folder):
        raise OutputError(
            f"Cannot write {path!r}: the directory {folder!r} does not exist. "
            "Fix: create it first or choose another path."
        )
    if not os.access(folder, os.W_OK):
        raise OutputError(
            f"Cannot write {path!r}: the directory {folder!r} is not writable. "
            "Fix: choose a writable directory."
        )
    return path


def _umask() -> int:
    """The process umask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def save_atomic(model: Any, path: str) -> str:
    """Save `model` to `path` via a temporary file in the same folder and a rename."""
    path = check_output(path)
    folder, base = os.path.split(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp.keras", dir=folder)
    os.close(fd)
    try:
        model.save(tmp)
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(e, OSError):
            raise OutputError(f"Writing {path!r} failed: {e}. Nothing was written.") from e
        raise
    return path


# ---------------------------------------------------------------------- port
def _num_classes(recipe: Recipe, shapes: Mapping[str, tuple[int, ...]], scope: str) -> int | None:
    for pattern in recipe.logits:
        for name in _matches(recipe.expand(pattern, scope), list(shapes)):
            if name.endswith("biases") or name.endswith("weights"):
                return int(shapes[name][-1])
    return None


def _input_shape(recipe: Recipe, input_shape: Sequence[int] | None) -> tuple[int, ...]:
    """The Keras model's input shape: checked against the recipe's smallest and largest."""
    size, least = recipe.default_size, recipe.min_size
    if input_shape is None:
        return (size, size, 3)
    try:
        shape = tuple(int(s) for s in input_shape)
    except (TypeError, ValueError):
        shape = ()
    if len(shape) != 3 or min(shape) <= 0:
        raise PortArgumentError(
            f"input_shape={tuple(input_shape) if shape else input_shape!r} is not an image "
            f"shape: expected (height, width, channels), three positive integers. Fix: pass "
            f"e.g. input_shape=({size}, {size}, 3) (CLI: --input-size {size})."
        )
    if min(shape[:2]) < least:
        raise PortArgumentError(
            f"Input shape {shape} is too small for {recipe.name}: its Slim net needs at "
            f"least {least}x{least} (default {size}x{size}). Fix: pass input_shape=({least}, "
            f"{least}, {shape[2]}) or larger (CLI: --input-size {least})."
        )
    most = recipe.max_size
    if most is not None and max(shape[:2]) > most:
        raise PortArgumentError(
            f"Input shape {shape} is too large for {recipe.name}: its classifier is fully "
            f"connected over a feature map of one size, so it takes {least}x{least} to "
            f"{most}x{most} (default {size}x{size}). Fix: pass input_shape=({size}, {size}, "
            f"{shape[2]}) (CLI: --input-size {size})."
        )
    return shape


def port(
    checkpoint: str,
    recipe: str | Recipe,
    *,
    keep_background: bool = False,
    input_shape: Sequence[int] | None = None,
    scope: str | None = None,
    strict: bool = True,
    dry_run: bool = False,
    verify: bool = False,
    rtol: float = DEFAULT_RTOL,
    output: str | None = None,
    progress: bool = False,
    batch: int = 2,
    seed: int = 0,
) -> tuple[Any, PortReport]:
    """Port a TF-Slim checkpoint into a Keras 3 model.

    Args:
        checkpoint: checkpoint prefix (V2), file (V1) or directory.
        recipe: a registered recipe name (``"slim:vgg_16"``) or a `Recipe`.
        keep_background: keep class 0 of a 1001-class classifier (default: drop it,
            so the Keras model has the 1000 ImageNet classes of keras.applications).
        input_shape: ``(height, width, channels)``; default Slim's default image size;
            at least the recipe's ``min_size`` in height and width.
        scope: the network's top scope in the checkpoint, if not the Slim default.
        strict: refuse the port if a checkpoint entry maps to no weight (missing
            weights and wrong shapes are always refused).
        dry_run: only make the plan: returns ``(None, report)``; reads no tensor.
        verify: run the Slim net from the checkpoint and compare outputs; raises
            `VerificationError` beyond `rtol` (max abs difference / max abs Slim logit).
        output: write the model to this ``.keras`` path (atomically).
        progress: show the phases (read, build, plan, load, verify, save) on stderr,
            when stderr is a terminal.
        batch, seed: the verification inputs.

    Returns:
        ``(model, report)``.

    Raises:
        RecipeError: unknown recipe. PortArgumentError: input shape too small, or
        ``dry_run`` with ``verify``. LoadError: wrong net, missing or mismatched tensors.
        CheckpointError: unreadable, truncated or corrupt checkpoint (checked before any
        weight is assigned). OutputError: output not writable.
    """
    recipe = get_recipe(recipe)
    if dry_run and verify:
        raise PortArgumentError(
            "port(dry_run=True, verify=True): verification compares the loaded model with "
            "Slim, and a dry run loads nothing. Fix: drop one of them (CLI: --dry-run or "
            "--verify)."
        )
    scope = scope or recipe.scope
    shape = _input_shape(recipe, input_shape)
    if output is not None:
        output = check_output(output)
    with Phases(progress) as phases:
        phases.phase("Reading the checkpoint index")
        reader = open_reader(checkpoint)
        try:
            return _port(
                reader,
                checkpoint,
                recipe,
                phases,
                keep_background,
                shape,
                scope,
                strict,
                dry_run,
                verify,
                rtol,
                output,
                batch,
                seed,
            )
        finally:
            reader.close()


def _port(
    reader,
    checkpoint,
    recipe,
    phases,
    keep_background,
    shape,
    scope,
    strict,
    dry_run,
    verify,
    rtol,
    output,
    batch,
    seed,
) -> tuple[Any, PortReport]:
    shapes, dtypes = checkpoint_shapes(reader)
    _check_identity(recipe, shapes, scope, checkpoint)
    n_ckpt = _num_classes(recipe, shapes, scope)
    if n_ckpt is None:
        names = [recipe.expand(p, scope) for p in recipe.logits]
        raise LoadError(
            f"Checkpoint {checkpoint!r} has no classifier for {recipe.name}: no entry matches "
            f"{names}. Fix: check the scope (scope=...) or port a checkpoint with logits."
        )
    drop_bg = n_ckpt == 1001 and not keep_background
    n_keras = n_ckpt - 1 if drop_bg else n_ckpt
    report = PortReport(
        recipe.name,
        checkpoint,
        recipe.target,
        num_classes=n_keras,
        background="dropped" if drop_bg else ("kept" if n_ckpt == 1001 else "none"),
        input_shape=shape,
        dry_run=dry_run,
    )
    spec = BuildSpec(n_keras, shape, scope, recipe.net_name)
    phases.phase(f"Building the Keras model of {recipe.name}")
    try:
        with DeferredBuild() as deferred:
            model = recipe.build(spec)
    except ValueError as e:
        raise LoadError(
            f"Cannot build the Keras model of {recipe.name} for input shape {shape} and "
            f"{n_keras} classes: {e}. Fix: use an input of at least {recipe.min_size}x"
            f"{recipe.min_size} (default {recipe.default_size})."
        ) from None
    phases.phase("Planning (names, shapes, dtypes)")
    transforms = [(recipe.expand(p, scope), t) for p, t in recipe.transforms]
    if drop_bg:
        bg = DropIndex(axis=-1, index=0)
        for pattern in recipe.logits:
            pat = recipe.expand(pattern, scope)
            for name in _matches(pat, list(shapes)):
                base = next((t for p, t in transforms if re.fullmatch(p, name)), None)
                transforms.insert(0, (re.escape(name), Chain((base, bg)) if base else bg))
    drops = [(recipe.expand(p, scope), r) for p, r in (*recipe.drops, *TRAINING_STATE)]
    rules = Rules([(recipe.expand(p, scope), r) for p, r in recipe.rules])
    plan = make_plan(shapes, dtypes, model, rules, transforms, drops, recipe.naming, report)
    _refuse_unclean(plan.report, strict, checkpoint, recipe.name)
    if dry_run:
        return None, report
    execute(plan, reader, progress=phases)
    deferred.finish()
    if verify:
        phases.phase("Verifying against Slim (TF1 graph)")
        report.verification = verify_port(
            model, reader, recipe, report, scope=scope, batch=batch, seed=seed, rtol=rtol
        )
        if not report.verification["ok"]:
            worst = max(d["max_rel"] for d in report.verification["outputs"].values())
            raise VerificationError(
                f"Verification of {recipe.name} failed: the Keras model's outputs differ from "
                f"Slim's by {worst:.3g} relative (tolerance {rtol:g}). Nothing was written. "
                "Fix: report this with `tfunite port ... --verify --json`.",
                report,
            )
    if output is not None:
        phases.phase(f"Saving {output}")
        report.output = save_atomic(model, output)
    return model, report


def _refuse_unclean(report: PortReport, strict: bool, checkpoint: str, recipe: str) -> None:
    fatal = bool(report.missing or report.mismatched or (strict and report.unexpected))
    if not fatal:
        return
    if report.missing or report.mismatched:
        # strict=False only tolerates unexpected entries: it would not help here.
        fix = (
            "Fix: pass the checkpoint of the right network (or scope=...), or add rules "
            "mapping these names."
        )
    else:
        fix = (
            "Fix: add rules mapping these entries (or dropping them with a None "
            "replacement), or use strict=False (CLI: --no-strict) to ignore them."
        )
    raise LoadError(
        f"Cannot port {checkpoint!r} with {recipe}: the checkpoint does not fit the model; "
        f"nothing was loaded or written.\n{report.problems()}\n{fix}",
        report,
    )


# ----------------------------------------------------------------------- verify
def _slim_net(recipe: Recipe, what: str) -> None:
    """Refuse clearly a recipe whose Slim network cannot be built (verify, export)."""
    from . import _slim

    known = ", ".join(sorted(_slim.SLIM_NETS))
    contract = (
        "your Slim network function, called as net(inputs, num_classes=..., "
        "is_training=False, scope=...) and returning (logits, end_points)"
    )
    if recipe.net is None:
        raise RecipeError(
            f"Cannot {what} with recipe {recipe.name!r}: it has no Slim network (Recipe.net "
            f"is None), and {what} runs Slim's own network. Fix: set Recipe(net=...) to a "
            f"tf_slim.nets name ({known}) or to {contract}."
        )
    if isinstance(recipe.net, str) and recipe.net not in _slim.SLIM_NETS:
        raise RecipeError(
            f"Cannot {what} with recipe {recipe.name!r}: its net {recipe.net!r} is not a "
            f"network of tf_slim.nets (known: {known}), and {what} runs Slim's own network. "
            f"Fix: set Recipe(net=...) to {contract} (and arg_scope=... if it needs one)."
        )


def verify_port(
    model: Any,
    checkpoint: str | os.PathLike | Reader,
    recipe: str | Recipe,
    report: PortReport | None = None,
    *,
    scope: str | None = None,
    batch: int = 2,
    seed: int = 0,
    rtol: float = DEFAULT_RTOL,
) -> dict[str, Any]:
    """Run Slim (TF1 graph + Session) and `model` on the same inputs; compare outputs.

    A 1001-class checkpoint compared with a 1000-output model is one ported with the
    background class dropped: Slim's class 0 is left out of the comparison. `report`,
    if given, must agree with that.
    """
    from . import _slim, trace

    recipe = get_recipe(recipe)
    _slim_net(recipe, "verify")
    scope = scope or recipe.scope
    shape = tuple(model.input_shape[1:])
    reader = checkpoint if isinstance(checkpoint, Reader) else open_reader(checkpoint)
    try:
        shapes, _ = checkpoint_shapes(reader)
        n_model = int(model.output_shape[-1])
        n_ckpt = _num_classes(recipe, shapes, scope) or n_model
        drop_bg = n_ckpt == 1001 and n_model == 1000
        if n_model != n_ckpt and not drop_bg:
            raise VerificationError(
                f"Cannot verify model {getattr(model, 'name', '?')!r} against "
                f"{reader.path}: the model has {n_model} outputs, the checkpoint's "
                f"classifier {n_ckpt} classes. Expected the same count (or 1000 for a "
                "1001-class checkpoint ported without its background class). Fix: verify "
                "the model against the checkpoint it was ported from.",
                report,
            )
        if report is not None and report.background != "none":
            if (report.background == "dropped") != drop_bg:
                raise VerificationError(
                    f"Cannot verify: the report says the background class was "
                    f"{report.background}, but the model has {n_model} outputs for a "
                    f"{n_ckpt}-class checkpoint. Fix: pass the report of this model's port.",
                    report,
                )
        sg = _slim.build_graph(
            recipe.net,
            shape,
            n_ckpt,
            scope=scope,
            net_kwargs=recipe.net_kwargs,
            arg_scope=recipe.arg_scope,
        )
        images = np.random.default_rng(seed).normal(0.0, 1.0, (batch, *shape)).astype(np.float32)
        fetch = {"logits": sg.logits}
        layers = {}
        for key, layer in recipe.endpoints:
            key = key.replace("{scope}", scope)
            if key not in sg.end_points:
                continue
            fetch[key] = sg.end_points[key]
            layers[key] = layer or trace.layer_for_tensor(sg.end_points[key], scope)
        slim_out = _slim.run_graph(sg, reader, images, fetch)
    finally:
        if reader is not checkpoint:
            reader.close()
    import keras

    # model.inputs/outputs, not model.input/output: those are undefined on a Sequential
    (inputs,) = model.inputs
    sub = keras.Model(
        inputs, [model.outputs[0]] + [model.get_layer(n).output for n in layers.values()]
    )
    keras_out = [np.asarray(o) for o in sub(images, training=False)]
    ref_logits = slim_out["logits"].reshape(batch, -1)
    if drop_bg:
        ref_logits = ref_logits[:, 1:]
    pairs = {"logits": (ref_logits, keras_out[0])}
    for (key, _), out in zip(layers.items(), keras_out[1:]):
        pairs[key] = (slim_out[key], out)
    outputs = {}
    for key, (ref, got) in pairs.items():
        ref = ref.reshape(batch, -1).astype(np.float64)
        got = got.reshape(batch, -1).astype(np.float64)
        diff = float(np.max(np.abs(ref - got)))
        outputs[key] = {
            "max_abs": diff,
            "max_rel": diff / max(float(np.max(np.abs(ref))), 1e-30),
            "shape": list(ref.shape),
        }
    return {
        "batch": batch,
        "input_shape": list(shape),
        "rtol": rtol,
        "definition": "max |keras - slim| / max |slim|",
        "outputs": outputs,
        "ok": outputs["logits"]["max_rel"] <= rtol,
    }


# ----------------------------------------------------------------------- export
def export(
    model: Any,
    recipe: str | Recipe,
    path: str,
    *,
    scope: str | None = None,
    background: bool = False,
    background_fill: float = 0.0,
) -> dict[str, tuple[int, ...]]:
    """Write a Keras model ported with `recipe` back to a Slim-named V2 checkpoint.

    The names and shapes are those the Slim net creates (built in a private graph), so
    `slim.assign_from_checkpoint_fn` and `tf.compat.v1.train.Saver` load the result.
    Entries the recipe drops on purpose (Inception V3's AuxLogits) are not written.

    Args:
        model: a model built by `recipe` (e.g. returned by `port`).
        recipe: the recipe the model was ported with.
        path: checkpoint prefix to write (``.index`` and ``.data-*`` files).
        scope: the Slim top scope to write (default: the recipe's).
        background: write a 1001-class classifier, putting `background_fill` back at
            class 0 (for a model ported with the background class dropped).

    Returns:
        The written names and shapes.
    """
    from . import _slim

    recipe = get_recipe(recipe)
    _slim_net(recipe, "export")
    scope = scope or recipe.scope
    n = int(model.output_shape[-1]) + (1 if background else 0)
    shape = tuple(model.input_shape[1:])
    sg = _slim.build_graph(
        recipe.net, shape, n, scope=scope, net_kwargs=recipe.net_kwargs, arg_scope=recipe.arg_scope
    )
    slim_shapes = sg.variable_shapes()
    rules = Rules([(recipe.expand(p, scope), r) for p, r in recipe.rules])
    transforms = [(re.compile(recipe.expand(p, scope)), t) for p, t in recipe.transforms]
    logits = [re.compile(recipe.expand(p, scope)) for p in recipe.logits]
    targets = keras_weight_names(model, recipe.naming)
    values: dict[str, np.ndarray] = {}
    for name, want in slim_shapes.items():
        target, _ = rules.apply(name)
        if target not in targets:
            raise LoadError(
                f"Cannot export {recipe.name}: Slim variable {name!r} maps to {target!r}, which "
                f"is not a weight of model {model.name!r}. Fix: export a model built by this "
                "recipe (tfunite.porting.port)."
            )
        value = np.asarray(
            targets[target].numpy() if hasattr(targets[target], "numpy") else targets[target]
        )
        t = next((t for rx, t in transforms if rx.fullmatch(name)), None)
        if background and any(rx.fullmatch(name) for rx in logits):
            bg = DropIndex(axis=-1, index=0, fill=background_fill)
            t = Chain((t, bg)) if t else bg
        if t is not None:
            value = t.inverse(value)
        if tuple(value.shape) != tuple(want):
            raise LoadError(
                f"Cannot export {name!r}: Keras weight {target!r} gives shape {value.shape}, "
                f"Slim expects {tuple(want)}. Fix: export with the recipe the model was "
                "ported with (and background=True for a dropped background class)."
            )
        values[name] = value
    write_checkpoint(values, path)
    return {k: tuple(v.shape) for k, v in values.items()}


def write_checkpoint(values: Mapping[str, np.ndarray], path: str) -> str:
    """Write a name-based V2 checkpoint as atomically as a pair of files allows.

    TF writes the bundle under a temporary prefix in the same folder; then the data
    file(s) are renamed into place and the index last, so a reader never finds the new
    index without its data. Shards of an older checkpoint at `path` that the new one
    does not have are removed after the index is in place. If writing fails, the
    temporary files are removed and `OutputError` is raised.
    """
    path = os.path.abspath(os.fspath(path))
    folder, base = os.path.split(path)
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise OutputError(
            f"Cannot write checkpoint {path!r}: the directory {folder!r} does not exist or "
            "is not writable. Fix: create it or choose another path."
        )
    tmp_base = f".{base}.tmp-{os.getpid()}"
    tmp = os.path.join(folder, tmp_base)
    names = sorted(values)

    moved: list[str] = []

    def temporary_files() -> list[str]:
        return sorted(f for f in os.listdir(folder) if f.startswith(tmp_base + "."))

    try:
        with tf.device("/cpu:0"):
            tf.raw_ops.SaveV2(
                prefix=tmp,
                tensor_names=names,
                shape_and_slices=[""] * len(names),
                tensors=[tf.constant(values[n]) for n in names],
            )
        produced = [f for f in temporary_files() if os.path.isfile(os.path.join(folder, f))]
        data = [f for f in produced if f[len(tmp_base) :].startswith(".data-")]
        index = [f for f in produced if f == tmp_base + ".index"]
        for f in data + index:  # the index last: it is what makes the bundle visible
            os.replace(os.path.join(folder, f), os.path.join(folder, base + f[len(tmp_base) :]))
            moved.append(base + f[len(tmp_base) :])
    except BaseException as e:
        for f in temporary_files():
            with contextlib.suppress(OSError):
                if os.path.isfile(os.path.join(folder, f)):
                    os.remove(os.path.join(folder, f))
        if isinstance(e, (tf.errors.OpError, OSError)):
            text = (getattr(e, "message", None) or str(e)).strip()
            text = re.sub(r"\{\{[^}]*\}\}\s*|\s*\[Op:\w+\]", "", text)  # TF's op wrapper
            first = text.splitlines()[0] if text else type(e).__name__
            done = (
                f"Only {moved} were renamed into place: the checkpoint at {path!r} is "
                "inconsistent; delete it"
                if moved
                else "Nothing was written (the temporary files were removed)"
            )
            raise OutputError(
                f"Writing checkpoint {path!r} failed: {first}. {done}. Fix: check free disk "
                "space and that the folder is writable, then export again."
            ) from None
        raise
    written = {base + f[len(tmp_base) :] for f in data}
    for old in glob.glob(glob.escape(path) + ".data-*-of-*"):
        if os.path.basename(old) not in written:
            with contextlib.suppress(OSError):
                os.remove(old)
    return path
