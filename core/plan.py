"""The one checkpoint pipeline: plan -> validate -> assign.

`plan` matches a checkpoint's entries ``{name: (shape, dtype)}`` onto targets
``{name: variable}`` (anything with ``.shape`` and ``.dtype``: a `tf.Variable`, a
`keras.Variable`) through rules and transforms, without reading a tensor, and returns
a `LoadReport` plus the steps of a clean plan. `check_data` checks the data files and
checksums of what the steps will read; `assign_all` then reads, transforms and
assigns one tensor at a time through a pluggable ``assign(var, value, step)``.
`tu.load`, `Owner.load`, `tu.port`, `port_custom` and `export` all go through here.

Nothing here imports `tfunite.owner`: owners are seen through `OwnerLike`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeGuard

import numpy as np

from .errors import CheckpointError, RuleError
from .readers import Reader
from .report import Entry, LoadReport, describe
from .rules import (
    Rule,
    RuleChain,
    RuleSpec,
    Transform,
    TransformSpec,
    parse_rules,
    parse_transforms,
)
from .training_state import TRAINING_STATE


class VarLike(Protocol):
    """What a plan needs of a target: a shape and a dtype."""

    @property
    def shape(self) -> Any: ...

    @property
    def dtype(self) -> Any: ...


class OwnerLike(Protocol):
    """What the pipeline needs of an `Owner` (duck-typed: core/owner.py is not imported)."""

    name: str

    @property
    def framework(self) -> str: ...  # read-only: a class attribute of each Owner subclass

    @property
    def variables(self) -> Mapping[str, Any]: ...

    def leaves(self, prefix: str = "") -> Iterator[tuple[str, Any]]: ...

    def _aliases(self, fmt: str) -> dict[str, str | None] | None: ...


def is_owner(x: Any) -> TypeGuard[OwnerLike]:
    """Whether `x` is an owner (has `leaves` and `variables`) rather than a mapping."""
    return hasattr(x, "leaves") and hasattr(x, "variables")


def shape_of(var: Any) -> tuple[int | None, ...]:
    shape = var.shape
    return tuple(shape.as_list()) if hasattr(shape, "as_list") else tuple(int(d) for d in shape)


def dtype_name(dtype: Any) -> str | None:
    """One spelling of a dtype for numpy, TF and Keras dtypes ("float32", "string")."""
    if dtype is None:
        return None
    if isinstance(dtype, str):
        return dtype.replace("tf.", "")
    base = getattr(dtype, "base_dtype", None)
    if base is not None:
        return base.name
    d = np.dtype(dtype)
    return "string" if d.kind in "OSU" else d.name


@dataclass
class Step:
    """One assignment of a clean plan: read `source`, transform it, assign it to `var`."""

    source: str
    target: str
    var: Any
    transform: Transform | None = None


def _last(rule: Rule | RuleChain | None) -> Rule | None:
    return rule.rules[-1] if isinstance(rule, RuleChain) else rule


def plan(
    entries: Mapping[str, tuple[Sequence[int], Any]],
    targets: Mapping[str, Any],
    rules: RuleSpec = None,
    transforms: TransformSpec = None,
    strict: bool = True,
    *,
    names: Mapping[str, str] | None = None,
    outside: Iterable[str] = (),
    absent: Iterable[str] = (),
    report: LoadReport | None = None,
    path: str = "?",
    kind: str = "?",
) -> tuple[LoadReport, list[Step]]:
    """Match checkpoint `entries` onto `targets` without reading a tensor.

    Args:
        entries: ``{checkpoint name: (shape, dtype)}`` (a reader's `entries`).
        targets: ``{target name: variable}``.
        rules: rename rules from checkpoint names to target names (`parse_rules`).
        transforms: ``{regex: Transform}`` or pairs, keyed by the checkpoint-side name.
        strict: recorded on the report (its `ok` honours it).
        names: ``{name the rules see: checkpoint entry}`` (object-based and Keras files,
            see aliases.py); default: each entry's own name.
        outside: entries outside the owner's object: reported as training state (if
            `TRAINING_STATE` recognises them) or dropped, never unexpected.
        absent: target names the checkpoint format does not store: not missing.
        report: a report to fill (a port passes its `PortReport`).
        path, kind: the checkpoint, for the report and messages.

    Returns:
        ``(report, steps)``: the report lists every entry and target with its kind;
        the steps are the assignments of the matched and transformed entries.
    """
    parsed = parse_rules(rules)
    compiled = parse_transforms(transforms)
    if report is None:
        report = LoadReport(path=path, kind=kind)
    report.strict = strict
    noun = report.target_noun
    names = names if names is not None else {name: name for name in entries}
    absent = set(absent)
    steps: list[Step] = []
    claimed: dict[str, str] = {}
    feeds: dict[str, str] = {}
    for entry in outside:
        shape, dtype = entries[entry]
        _, state_rule = TRAINING_STATE.apply(entry)
        report.entries.append(
            Entry(
                entry,
                None,
                "training_state" if state_rule else "dropped",
                tuple(shape),
                dtype=dtype_name(dtype),
                reason=state_rule.reason
                if state_rule
                else f"outside the owner's object in this {kind} file",
            )
        )
    for name, entry in names.items():
        shape, dtype = tuple(entries[entry][0]), dtype_name(entries[entry][1])
        target, rule = parsed.apply(name)
        if target is None:
            last = _last(rule)
            report.entries.append(
                Entry(
                    entry,
                    None,
                    "training_state" if last and last.training_state else "dropped",
                    shape,
                    dtype=dtype,
                    rule=str(rule),
                    reason=(last.reason if last and last.reason else f"dropped by rule {rule}"),
                )
            )
            continue
        if target not in targets:
            report.entries.append(
                Entry(
                    entry,
                    target if rule else None,
                    "unexpected",
                    shape,
                    dtype=dtype,
                    rule=str(rule) if rule else None,
                )
            )
            continue
        if target in claimed:
            raise RuleError(
                f"Rules map two checkpoint entries onto {noun} {target!r}: "
                f"{claimed[target]!r} and {entry!r} (checkpoint {report.path}). Expected at "
                "most one entry per target. Fix: make the rules more specific, or drop one "
                "entry with a (regex, None) rule."
            )
        claimed[target] = entry
        if entry in feeds:
            raise CheckpointError(
                f"Checkpoint entry {entry!r} of {report.path} would feed two variables, "
                f"{feeds[entry]!r} and {target!r}: two owners found their object at the same "
                "place in the file. Expected each entry to load at most one variable. Fix: "
                "load each owner from a checkpoint of its own, or write the checkpoint with "
                "the same keys as the tu.Parameters (tf.train.Checkpoint(teacher=..., "
                "student=...))."
            )
        feeds[entry] = target
        var = targets[target]
        transform = next((t for rx, t in compiled if rx.fullmatch(name)), None)
        want, want_dtype = shape_of(var), dtype_name(var.dtype)
        bad = None
        try:
            got = tuple(transform.target_shape(shape)) if transform else shape
        except Exception as e:  # a transform that cannot apply to this shape
            got, bad = None, f"transform {describe(transform)} cannot apply to {shape}: {e}"
        if bad is None and got != want:
            bad = (
                f"checkpoint shape {shape}"
                + (f" (after {describe(transform)}: {got})" if transform else "")
                + f", {noun} expects {want}"
            )
        elif bad is None and dtype != want_dtype:
            bad = f"checkpoint dtype {dtype}, {noun} dtype {want_dtype}"
        report.entries.append(
            Entry(
                entry,
                target,
                "mismatched" if bad else ("transformed" if transform else "matched"),
                shape,
                want,
                dtype,
                rule=str(rule) if rule else None,
                transform=transform,
                reason=bad,
                target_dtype=want_dtype,
            )
        )
        if not bad:
            steps.append(Step(entry, target, var, transform))
    for target, var in targets.items():
        if target in claimed:
            continue
        if target in absent:
            report.entries.append(
                Entry(
                    None,
                    target,
                    "dropped",
                    target_shape=shape_of(var),
                    reason=f"not stored in {kind} files",
                )
            )
            continue
        report.entries.append(
            Entry(
                None,
                target,
                "missing",
                target_shape=shape_of(var),
                dtype=dtype_name(var.dtype),
                target_dtype=dtype_name(var.dtype),
            )
        )
    return report, steps


def check_data(reader: Reader, steps: Sequence[Step], deferred: bool = False) -> None:
    """Check the data files, then every checksum of what `steps` will read, before the
    first assignment (raises CheckpointError naming the file). ``deferred``: `assign_all`
    follows, which reads every value before it assigns any: checksums a read checks
    anyway are left to it (one read of the data, not two)."""
    reader.verify()
    reader.check([step.source for step in steps], deferred=deferred)


Assign = Callable[[Any, Any, Step], None]


def assign_all(
    reader: Reader,
    steps: Sequence[Step],
    assign: Assign,
    *,
    fast: bool = False,
    what: str = "variables",
    advance: Callable[[], None] | None = None,
) -> None:
    """Read -> transform every step's value, then assign them all.

    Call `check_data` first. `fast` lets a TF reader read an untransformed tensor
    straight into a tf.Tensor (eager loads into tf.Variables). Every value is read
    before the first assignment, so a file truncated or rewritten after `check_data`
    (a read that fails, or a checksum that no longer matches) leaves every variable as
    it was; the price is holding the new values of the whole model until they are
    assigned (an eager assign then takes each tensor over without a copy).
    """
    read_tensor = getattr(reader, "read_tensor", None) if fast else None
    checked_tensor = getattr(reader, "checked_tensor", None) if fast else None
    values: list[Any] = []
    for step in steps:
        try:
            raw = step.transform is None
            value = checked_tensor(step.source) if raw and checked_tensor else None
            if value is None:
                value = reader.checked(step.source)
            if value is None and read_tensor is not None and raw:
                value = read_tensor(step.source)
            elif value is None:
                value = reader.read(step.source)
            if step.transform is not None:
                value = step.transform.forward(value)
        except CheckpointError as e:
            if "Nothing was loaded" in str(e):  # corrupt data, found as it was read
                raise
            # Checked before: the file changed during the load. Nothing is assigned yet.
            raise CheckpointError(
                f"{e} Nothing was assigned: the {what} are as they were."
            ) from None
        values.append(value)
        reader.release(step.source)
        if advance is not None:
            advance()
    for step, value in zip(steps, values):
        assign(step.var, value, step)
    values.clear()
