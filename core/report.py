"""The one report of a load or a port, and the one set of refusal messages.

A `LoadReport` holds one `Entry` per checkpoint entry and per target variable, each of
one kind, the same vocabulary everywhere (`tu.load`, `Owner.load`, `tu.port`,
`port_custom`):

* ``matched``: loaded one to one (possibly renamed by a rule);
* ``transformed``: loaded through a `Transform`;
* ``dropped``: left out on purpose, with a reason (a rule with a None replacement, a
  `drop=` pattern, or an entry outside the owner's object in an object-based or Keras
  file);
* ``training_state``: optimizer slots, step counters, moving averages left out by
  `tfunite.TRAINING_STATE`;
* ``missing``: a target variable no checkpoint entry feeds;
* ``unexpected``: a checkpoint entry that feeds no variable;
* ``mismatched``: an entry whose shape or dtype (after its transform) differs.

`refusal(report)` is the text of the `LoadError` raised when a plan is not clean.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .rules import Chain, DropIndex, Transform
from .training_state import training_state_reason

KINDS = (
    "matched",
    "transformed",
    "dropped",
    "training_state",
    "missing",
    "unexpected",
    "mismatched",
)


def describe(t: Transform | None) -> str:
    """A short human description of a transform ('' for None)."""
    if t is None:
        return ""
    if isinstance(t, Chain):
        return " then ".join(describe(s) for s in t.steps)
    if isinstance(t, DropIndex):
        return f"drop index {t.index} on axis {t.axis} (background class)"
    return repr(t)


@dataclass
class Entry:
    """One line of a plan: a checkpoint entry, a target variable, or both."""

    source: str | None  # the checkpoint's name (None for a missing variable)
    target: str | None  # the target's name (None for dropped/unexpected entries)
    kind: str  # one of KINDS
    source_shape: tuple[int, ...] | None = None
    target_shape: tuple[int | None, ...] | None = None  # None: a dimension unknown
    dtype: str | None = None  # the checkpoint's dtype (the target's for a missing one)
    rule: str | None = None  # the rule(s) that renamed or dropped the entry
    transform: Transform | None = field(default=None, repr=False)
    reason: str | None = None  # why dropped / what mismatched
    target_dtype: str | None = None

    @property
    def status(self) -> str:
        """The kind (its former name in porting reports)."""
        return self.kind

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "kind": self.kind,
            "source_shape": list(self.source_shape) if self.source_shape is not None else None,
            "target_shape": list(self.target_shape) if self.target_shape is not None else None,
            "dtype": self.dtype,
            "rule": self.rule,
            "transform": describe(self.transform) or None,
            "reason": self.reason,
        }


@dataclass
class LoadReport:
    """What a load matched, and everything it did not (one `Entry` per line).

    `ok` honours `strict`: mismatches always fail; missing variables and unexpected
    entries fail a strict load. `applied` says whether anything was assigned.
    """

    path: str
    kind: str  # the checkpoint format: tf-v1, tf-v2, tf-object, keras-h5, ...
    entries: list[Entry] = field(default_factory=list)
    strict: bool = True
    dry_run: bool = False
    applied: bool = False

    target_noun = "variable"  # what targets are called in messages
    lenient_missing = True  # strict=False tolerates missing variables (ports: it does not)

    def by_kind(self, kind: str) -> list[Entry]:
        return [e for e in self.entries if e.kind == kind]

    by_status = by_kind

    @property
    def matched(self) -> list[Entry]:
        return self.by_kind("matched")

    @property
    def transformed(self) -> list[Entry]:
        return self.by_kind("transformed")

    @property
    def dropped(self) -> list[Entry]:
        return self.by_kind("dropped")

    @property
    def training_state(self) -> list[Entry]:
        return self.by_kind("training_state")

    @property
    def missing(self) -> list[Entry]:
        return self.by_kind("missing")

    @property
    def unexpected(self) -> list[Entry]:
        return self.by_kind("unexpected")

    @property
    def mismatched(self) -> list[Entry]:
        return self.by_kind("mismatched")

    @property
    def loaded(self) -> list[Entry]:
        """Entries assigned (or to be assigned): matched and transformed."""
        return [e for e in self.entries if e.kind in ("matched", "transformed")]

    @property
    def ok(self) -> bool:
        if self.mismatched:
            return False
        if self.missing and (self.strict or not self.lenient_missing):
            return False
        return not (self.strict and self.unexpected)

    def counts(self) -> dict[str, int]:
        return {k: len(self.by_kind(k)) for k in KINDS}

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.kind,
            "strict": self.strict,
            "dry_run": self.dry_run,
            "applied": self.applied,
            "ok": self.ok,
            "counts": self.counts(),
            "entries": [e.to_dict() for e in self.entries],
        }

    def problems(self, limit: int = 8) -> str:
        """Human text of what is wrong (missing, unexpected, mismatched), capped."""
        noun = self.target_noun
        lines = []
        for label, entries, fmt in (
            (
                f"missing (a {noun} no checkpoint entry maps to)",
                self.missing,
                lambda e: f"{e.target} {e.target_shape}",
            ),
            (
                f"unexpected (a checkpoint entry no rule maps to a {noun})",
                self.unexpected,
                lambda e: (
                    f"{e.source} {e.source_shape}"
                    + (f" -> {e.target}" if e.target and e.target != e.source else "")
                ),
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

    def __str__(self) -> str:
        c = self.counts()
        lines = [
            f"Load of {self.path} ({self.kind}): "
            + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in c.items())
            + ("" if self.applied else " (nothing assigned)")
        ]
        for e in self.entries:
            if e.kind == "matched" and not e.rule:
                continue
            if e.kind in ("matched", "transformed"):
                how = ", ".join(
                    x for x in (e.rule and f"rule {e.rule}", describe(e.transform)) if x
                )
                lines.append(f"  {e.kind:<14} {e.source} -> {e.target} ({how})")
            elif e.kind == "missing":
                lines.append(f"  {e.kind:<14} {e.target}")
            elif e.kind == "mismatched":
                lines.append(f"  {e.kind:<14} {e.target} <- {e.source}: {e.reason}")
            else:
                why = e.reason or (e.rule and f"rule {e.rule}")
                if e.kind == "training_state" and why:
                    why = why.removeprefix("training state (").removesuffix(")")
                lines.append(
                    f"  {e.kind:<14} {e.source or e.target}" + (f" ({why})" if why else "")
                )
        return "\n".join(lines)


def _got(e: Entry) -> str:
    shape = e.source_shape
    if e.transform is not None and shape is not None:
        try:
            shape = tuple(e.transform.target_shape(shape))
        except Exception:
            pass
    return f"{shape} {e.dtype}"


def refusal(report: LoadReport, context: str = "", cli: bool = False) -> str:
    """The text of the LoadError for a plan that is not clean (one set of messages for
    `tu.load` and porting; `context` adds e.g. "with recipe slim:vgg_16")."""
    noun = report.target_noun
    strict_flag = "strict=False (CLI: --no-strict)" if cli else "strict=False"
    parts = []
    mismatched, missing, unexpected = report.mismatched, report.missing, report.unexpected
    if mismatched:
        m = mismatched[0]
        parts.append(
            f"{len(mismatched)} shape/dtype mismatch(es), first: {noun} {m.target!r} expects "
            f"{m.target_shape} {m.target_dtype} but checkpoint entry {m.source!r} is {_got(m)}"
        )
    if missing and (report.strict or not report.lenient_missing):
        parts.append(
            f"{len(missing)} {noun}(s) missing from the checkpoint, first: {missing[0].target!r}"
        )
    if report.strict and unexpected:
        parts.append(
            f"{len(unexpected)} unexpected checkpoint entr(y/ies), first: {unexpected[0].source!r}"
        )
    if mismatched:
        fix = (
            "Fix: load a checkpoint of the same architecture, or add a shape transform "
            "(transforms={regex on the checkpoint name: Transform})"
        )
    elif missing and not report.lenient_missing:
        # strict=False only tolerates unexpected entries here: it would not help.
        fix = (
            "Fix: pass the checkpoint of the right network (or scope=...), or add rules "
            "mapping these names"
        )
    elif not missing and all(training_state_reason(e.source or "") for e in unexpected):
        fix = (
            "These entries are all training state (optimizer slots, step counters, moving "
            "averages). Fix: pass rules=tfunite.TRAINING_STATE (with your own rules: "
            "rules=[*tfunite.TRAINING_STATE, *your_rules]) to leave them out; "
            f"{strict_flag} would also hide entries that are not training state"
        )
    else:
        fix = (
            "Fix: add rules mapping these names (rules=[(regex, replacement)] or an "
            "assignment_map; a None replacement drops an entry on purpose), or pass "
            f"{strict_flag} to load only what matches"
        )
    where = f" {context}" if context else ""
    return (
        f"Refused to load {report.path}{where}: "
        + "; ".join(parts)
        + f". Nothing was assigned. {fix}.\n{report.problems()}"
    )
