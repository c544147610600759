"""Rename rules and shape transforms, as data.

Rules map checkpoint names onto owner names. Accepted forms:

* an ordered list of ``(regex, replacement)`` pairs; the first regex that matches
  (``re.fullmatch``) renames the entry; a replacement of ``None`` drops the entry on
  purpose (it is reported as dropped, never as unexpected);
* TF's ``assignment_map`` grammar, as used by ``tf.compat.v1.train.init_from_checkpoint``:
  ``{"old_scope/": "new_scope/"}`` renames a scope, ``{"old/w": "new/w"}`` one name,
  and ``{"/": "scope/"}`` puts the whole checkpoint under ``scope/``.

Transforms change a tensor between its checkpoint and owner form. Each is a small
class with ``forward`` (checkpoint -> owner) and ``inverse`` (owner -> checkpoint), and
a ``target_shape`` so that a plan can be validated before any tensor is read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Union

import numpy as np

from .errors import RuleError

RuleSpec = Union[Mapping[str, str], Sequence[tuple[str, str | None]], "Rules", None]


@dataclass(frozen=True)
class Rule:
    pattern: str
    replacement: str | None

    def __str__(self) -> str:
        target = "<drop>" if self.replacement is None else repr(self.replacement)
        return f"{self.pattern!r} -> {target}"


class Rules:
    """An ordered list of rename rules; the first full match wins."""

    def __init__(self, rules: Iterable[tuple[str, str | None]] = ()):
        self.rules: list[Rule] = []
        self._compiled: list[re.Pattern[str]] = []
        for item in rules:
            try:
                pattern, replacement = item
            except (TypeError, ValueError):
                raise RuleError(
                    f"Invalid rule {item!r}: expected a (regex, replacement) pair. "
                    "Fix: write rules as [(r'^old/(.*)', r'new/\\1'), ...]."
                ) from None
            try:
                compiled = re.compile(pattern)
            except re.error as e:
                raise RuleError(
                    f"Invalid rule regex {pattern!r}: {e}. Fix: escape literal characters "
                    "(re.escape) or correct the pattern; rules are Python regular expressions "
                    "matched against whole checkpoint names."
                ) from None
            self.rules.append(Rule(pattern, replacement))
            self._compiled.append(compiled)

    @classmethod
    def from_assignment_map(cls, mapping: Mapping[str, str]) -> Rules:
        rules = []
        for old, new in mapping.items():
            if old == "/" or old == "":
                rules.append((r"(.*)", new.replace("\\", "\\\\") + r"\1"))
            elif old.endswith("/"):
                if not new.endswith("/") and new != "":
                    raise RuleError(
                        f"assignment_map entry {old!r}: {new!r}: a scope (ending in '/') "
                        "must map onto a scope. Fix: end the target with '/'."
                    )
                rules.append((re.escape(old) + r"(.*)", new.replace("\\", "\\\\") + r"\1"))
            else:
                rules.append((re.escape(old), new.replace("\\", "\\\\")))
        return cls(rules)

    @classmethod
    def parse(cls, spec: RuleSpec) -> Rules:
        if spec is None:
            return cls()
        if isinstance(spec, Rules):
            return spec
        if isinstance(spec, Mapping):
            return cls.from_assignment_map(spec)
        return cls(spec)

    def apply(self, name: str) -> tuple[str | None, Rule | None]:
        """(new name or None if dropped, the rule that applied or None)."""
        for rule, compiled in zip(self.rules, self._compiled):
            if compiled.fullmatch(name):
                if rule.replacement is None:
                    return None, rule
                return compiled.sub(rule.replacement, name, count=1), rule
        return name, None

    def __bool__(self) -> bool:
        return bool(self.rules)

    def __repr__(self) -> str:
        return "Rules([" + ", ".join(str(r) for r in self.rules) + "])"


# ---------------------------------------------------------------------- transforms
class Transform:
    """A tensor change between checkpoint form (forward input) and owner form."""

    def forward(self, array: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def inverse(self, array: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def target_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The owner-side shape for a checkpoint-side `shape` (without reading data)."""
        return tuple(self.forward(np.zeros(shape, np.int8)).shape)


@dataclass(frozen=True)
class Reshape(Transform):
    shape: tuple[int, ...]
    source_shape: tuple[int, ...] | None = None

    def forward(self, array):
        return array.reshape(self.shape)

    def inverse(self, array):
        if self.source_shape is None:
            raise RuleError("Reshape.inverse needs source_shape. Fix: Reshape(shape, source_shape).")
        return array.reshape(self.source_shape)

    def target_shape(self, shape):
        return tuple(np.empty(shape, np.int8).reshape(self.shape).shape)


@dataclass(frozen=True)
class Transpose(Transform):
    perm: tuple[int, ...]

    def forward(self, array):
        return np.transpose(array, self.perm)

    def inverse(self, array):
        return np.transpose(array, np.argsort(self.perm))

    def target_shape(self, shape):
        return tuple(shape[i] for i in self.perm)


@dataclass(frozen=True)
class Squeeze(Transform):
    axes: tuple[int, ...]

    def forward(self, array):
        return np.squeeze(array, axis=self.axes)

    def inverse(self, array):
        return np.expand_dims(array, axis=self.axes)

    def target_shape(self, shape):
        axes = {a % len(shape) for a in self.axes}
        return tuple(d for i, d in enumerate(shape) if i not in axes)


@dataclass(frozen=True)
class DropIndex(Transform):
    """Drop one entry along an axis (the background class 0 of a 1001-class net).

    The inverse puts back `fill` at that index, so Keras -> Slim gives a 1001-class
    tensor again; a round trip Slim -> Keras -> Slim is exact only for the kept entries.
    """

    axis: int = -1
    index: int = 0
    fill: float = 0.0

    def forward(self, array):
        return np.delete(array, self.index, axis=self.axis)

    def inverse(self, array):
        return np.insert(array, self.index, self.fill, axis=self.axis)

    def target_shape(self, shape):
        shape = list(shape)
        shape[self.axis] -= 1
        return tuple(shape)


@dataclass(frozen=True)
class FlipChannels(Transform):
    """Reverse the order along `axis` (RGB <-> BGR input channels of a first conv)."""

    axis: int = 2

    def forward(self, array):
        return np.flip(array, axis=self.axis).copy()

    def inverse(self, array):
        return np.flip(array, axis=self.axis).copy()

    def target_shape(self, shape):
        return tuple(shape)
