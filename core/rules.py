"""Rename rules and shape transforms, as data.

Rules map checkpoint names onto owner names. Accepted forms:

* an ordered list of ``(regex, replacement)`` pairs; the first regex that matches
  (``re.fullmatch``) renames the entry; a replacement of ``None`` drops the entry on
  purpose (it is reported as dropped, never as unexpected);
* TF's ``assignment_map`` grammar, as used by ``tf.compat.v1.train.init_from_checkpoint``:
  ``{"old_scope/": "new_scope/"}`` renames a scope, ``{"old/w": "new/w"}`` one name,
  and ``{"/": "scope/"}`` puts the whole checkpoint under ``scope/``;
* a list mixing both, applied in stages (`parse_rules`): a scope map, then leaf renames.

Transforms change a tensor between its checkpoint and owner form; they are keyed by
the checkpoint-side name (the name rules see, before renaming), everywhere: `tu.load`,
`Owner.load`, `port_custom` and recipes (`parse_transforms`). Each is a small
class with ``forward`` (checkpoint -> owner) and ``inverse`` (owner -> checkpoint), and
a ``target_shape`` so that a plan can be validated before any tensor is read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Union, cast

import numpy as np

from .errors import RuleError

# Rules as accepted everywhere: an assignment_map dict, (regex, replacement) pairs, a list
# mixing both (applied in stages, see `parse_rules`), or ready-made Rules.
RulePair = tuple[str, str | None]
RuleSpec = Union[
    Mapping[str, str],
    Sequence[Union[RulePair, "Rule", Mapping[str, str], "Rules", "StagedRules"]],
    "Rules",
    "StagedRules",
    None,
]


@dataclass(frozen=True)
class Rule:
    """One rename rule: a regex on whole names and its replacement (None drops).

    `reason` says why a dropping rule drops (shown in reports); a rule with
    `training_state=True` marks what it drops as kind ``training_state`` (see
    `tfunite.TRAINING_STATE`) instead of ``dropped``.
    """

    pattern: str
    replacement: str | None
    reason: str | None = None
    training_state: bool = False

    def __str__(self) -> str:
        target = "<drop>" if self.replacement is None else repr(self.replacement)
        return f"{self.pattern!r} -> {target}"


_SPECIAL = frozenset(".^$*+?{}[]|()\\")


def _literal(pattern: str) -> str | None:
    """The one name regex `pattern` fully matches if it is a literal (plain characters
    and escaped punctuation, as `re.escape` writes), else None."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            if i + 1 == len(pattern) or pattern[i + 1].isalnum() or pattern[i + 1] == "_":
                return None  # a class (\d), an anchor (\A), a back reference, a code
            out.append(pattern[i + 1])
            i += 2
        elif c in _SPECIAL:
            return None
        else:
            out.append(c)
            i += 1
    return "".join(out)


class Rules:
    """An ordered list of rename rules; the first full match wins."""

    def __init__(self, rules: Iterable[RulePair | Rule] = ()) -> None:
        self.rules: list[Rule] = []
        # Per rule its compiled regex, or None for a literal rule (a pattern matching one
        # name, a replacement without escapes): those are looked up in `_literal` (name ->
        # index of the first such rule), so that a thousand-name map is not a thousand
        # regexes to compile and try.
        self._compiled: list[re.Pattern[str] | None] = []
        self._regex: list[int] = []
        self._literal: dict[str, int] = {}
        for item in rules:
            if isinstance(item, Rule):
                self._add(item, None)
                continue
            if isinstance(item, Mapping):  # would unpack its two keys as a pair
                raise RuleError(
                    f"Invalid rule {item!r} inside a list of (regex, replacement) pairs. Fix: "
                    "pass the rules through parse_rules (tu.load and port_custom do), which "
                    "applies a list mixing assignment_map dicts and pairs in stages."
                )
            try:
                pattern, replacement = item
            except (TypeError, ValueError):
                raise RuleError(
                    f"Invalid rule {item!r}: expected a (regex, replacement) pair. "
                    "Fix: write rules as [(r'^old/(.*)', r'new/\\1'), ...]."
                ) from None
            self._add(Rule(pattern, replacement), pattern)

    def _add(self, rule: Rule, given: str | None) -> None:
        """Append `rule`; `given`: its pattern as the user wrote it (errors quote it)."""
        index = len(self.rules)
        literal = _literal(rule.pattern)
        if literal is not None and (rule.replacement is None or "\\" not in rule.replacement):
            self.rules.append(rule)
            self._compiled.append(None)
            self._literal.setdefault(literal, index)
            return
        try:
            compiled = re.compile(rule.pattern)
        except re.error as e:
            if given is None:
                raise
            raise RuleError(
                f"Invalid rule regex {given!r}: {e}. Fix: escape literal characters "
                "(re.escape) or correct the pattern; rules are Python regular expressions "
                "matched against whole checkpoint names."
            ) from None
        self.rules.append(rule)
        self._compiled.append(compiled)
        self._regex.append(index)

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
    def parse(cls, spec: RuleSpec) -> Rules | StagedRules:
        if spec is None:
            return cls()
        if isinstance(spec, (Rules, StagedRules)):
            return spec
        if isinstance(spec, Mapping):
            return cls.from_assignment_map(spec)
        # A list of pairs (or Rule objects); a dict or a Rules inside it is parse_rules'
        # business and Rules() reports it.
        return cls(cast("Sequence[RulePair | Rule]", spec))

    def apply(self, name: str) -> tuple[str | None, Rule | None]:
        """(new name or None if dropped, the rule that applied or None)."""
        first = self._literal.get(name)
        for index in self._regex:
            if first is not None and index > first:
                break
            rule, compiled = self.rules[index], self._compiled[index]
            assert compiled is not None  # _regex lists the compiled rules only
            if compiled.fullmatch(name):
                if rule.replacement is None:
                    return None, rule
                return compiled.sub(rule.replacement, name, count=1), rule
        if first is not None:
            rule = self.rules[first]
            return rule.replacement, rule
        return name, None

    def __bool__(self) -> bool:
        return bool(self.rules)

    def __iter__(self) -> Iterator[Rule]:
        """The rules in order, so that ``[*tu.TRAINING_STATE, *mine]`` combines sets."""
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def __repr__(self) -> str:
        return "Rules([" + ", ".join(str(r) for r in self.rules) + "])"


@dataclass(frozen=True)
class RuleChain:
    """The rules that renamed one entry, one per stage, in the order they applied."""

    rules: tuple[Rule, ...]

    def __str__(self) -> str:
        return " then ".join(str(r) for r in self.rules)


class StagedRules:
    """Rule stages applied one after the other.

    Each stage is a `Rules` (the first full match within it wins); a name no rule of a
    stage matches goes on unchanged; the next stage sees the name the previous one
    produced; a ``None`` replacement in any stage drops the entry. So a scope map and
    leaf renames compose: ``net/conv1/weights`` -> ``features/conv1/weights`` ->
    ``features/conv1/kernel``.
    """

    def __init__(self, stages: Sequence[Rules]) -> None:
        self.stages = list(stages)

    def apply(self, name: str) -> tuple[str | None, Rule | RuleChain | None]:
        """(new name or None if dropped, the rule(s) that applied or None)."""
        applied: list[Rule] = []
        current: str | None = name
        for stage in self.stages:
            assert current is not None  # the loop breaks as soon as an entry is dropped
            new, rule = stage.apply(current)
            if rule is None:
                continue
            applied.append(rule)
            current = new
            if current is None:
                break
        if not applied:
            return name, None
        return current, applied[0] if len(applied) == 1 else RuleChain(tuple(applied))

    def __bool__(self) -> bool:
        return any(self.stages)

    def __repr__(self) -> str:
        return "StagedRules([" + ", ".join(repr(s) for s in self.stages) + "])"


def parse_rules(spec: RuleSpec) -> Rules | StagedRules:
    """Rules from anything `tu.load`, `port_custom` and friends accept.

    * ``[(regex, replacement), ...]``: one stage, the first full match wins;
    * ``{"old_scope/": "new_scope/", "old/w": "new/w"}``: TF's assignment_map;
    * a list mixing both, e.g. ``[{"net/": "features/"}, (r"(.*)/weights", r"\\1/kernel"),
      (r"(.*)/biases", r"\\1/bias")]``: each dict is a stage, each run of consecutive
      pairs is a stage, and the stages apply in order (see `StagedRules`);
    * ready-made `Rules` (`tfunite.TRAINING_STATE`) inside such a list are a stage too;
      their `Rule` objects may also be mixed with pairs: ``[*tu.TRAINING_STATE, *mine]``.
    """
    if isinstance(spec, (list, tuple)) and any(
        isinstance(item, (Mapping, Rules, StagedRules)) for item in spec
    ):
        stages: list[Rules] = []
        pairs: list[RulePair | Rule] = []
        for item in spec:
            if isinstance(item, (Mapping, Rules, StagedRules)):
                if pairs:
                    stages.append(Rules(pairs))
                    pairs = []
                if isinstance(item, StagedRules):
                    stages.extend(item.stages)
                else:
                    stages.append(
                        item if isinstance(item, Rules) else Rules.from_assignment_map(item)
                    )
            elif isinstance(item, Rule):
                pairs.append(item)
            elif isinstance(item, (list, tuple)) and len(item) == 2:
                pairs.append((item[0], item[1]))
            else:
                raise RuleError(
                    f"Invalid rule {item!r} in a rule list: expected an assignment_map dict "
                    "({'old_scope/': 'new_scope/'}) or a (regex, replacement) pair. Fix: "
                    "write e.g. [{'net/': 'features/'}, (r'(.*)/weights', r'\\1/kernel')]."
                )
        if pairs:
            stages.append(Rules(pairs))
        return StagedRules(stages)
    return Rules.parse(spec)


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

    def forward(self, array: np.ndarray) -> np.ndarray:
        return array.reshape(self.shape)

    def inverse(self, array: np.ndarray) -> np.ndarray:
        if self.source_shape is None:
            raise RuleError(
                "Reshape.inverse needs source_shape. Fix: Reshape(shape, source_shape)."
            )
        return array.reshape(self.source_shape)

    def target_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(np.empty(shape, np.int8).reshape(self.shape).shape)


@dataclass(frozen=True)
class Transpose(Transform):
    perm: tuple[int, ...]

    def forward(self, array: np.ndarray) -> np.ndarray:
        return np.transpose(array, self.perm)

    def inverse(self, array: np.ndarray) -> np.ndarray:
        return np.transpose(array, np.argsort(self.perm))

    def target_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(shape[i] for i in self.perm)


@dataclass(frozen=True)
class Squeeze(Transform):
    axes: tuple[int, ...]

    def forward(self, array: np.ndarray) -> np.ndarray:
        return np.squeeze(array, axis=self.axes)

    def inverse(self, array: np.ndarray) -> np.ndarray:
        return np.expand_dims(array, axis=self.axes)

    def target_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
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

    def forward(self, array: np.ndarray) -> np.ndarray:
        return np.delete(array, self.index, axis=self.axis)

    def inverse(self, array: np.ndarray) -> np.ndarray:
        return np.insert(array, self.index, self.fill, axis=self.axis)

    def target_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        dims = list(shape)
        dims[self.axis] -= 1
        return tuple(dims)


@dataclass(frozen=True)
class FlipChannels(Transform):
    """Reverse the order along `axis` (RGB <-> BGR input channels of a first conv)."""

    axis: int = 2

    def forward(self, array: np.ndarray) -> np.ndarray:
        return np.flip(array, axis=self.axis).copy()

    def inverse(self, array: np.ndarray) -> np.ndarray:
        return np.flip(array, axis=self.axis).copy()

    def target_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(shape)


@dataclass(frozen=True)
class Chain(Transform):
    """Several transforms applied in order (inverse: reversed, each inverted)."""

    steps: tuple[Transform, ...]

    def forward(self, array: np.ndarray) -> np.ndarray:
        for s in self.steps:
            array = s.forward(array)
        return array

    def inverse(self, array: np.ndarray) -> np.ndarray:
        for s in reversed(self.steps):
            array = s.inverse(array)
        return array

    def target_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        for s in self.steps:
            shape = s.target_shape(shape)
        return tuple(shape)


# Transforms as accepted everywhere: {regex: Transform} or [(regex, Transform), ...].
TransformSpec = Mapping[str, Transform] | Sequence[tuple[str, Transform]] | None


def parse_transforms(spec: TransformSpec) -> list[tuple[re.Pattern[str], Transform]]:
    """Compiled ``(regex, Transform)`` pairs from a dict or a list of pairs.

    Transforms are keyed by the **checkpoint-side name**, the one rules are applied to
    (before any rule renames it): a name-based checkpoint's own entry names (equal to
    the owner's names for a `tu.save` checkpoint, Slim names for a Slim checkpoint).
    The first regex that fully matches a name picks its transform.
    """
    if spec is None:
        return []
    pairs = list(spec.items()) if isinstance(spec, Mapping) else list(spec)
    out = []
    for item in pairs:
        try:
            pattern, transform = item
        except (TypeError, ValueError):
            raise RuleError(
                f"Invalid transform {item!r}: expected a (regex, Transform) pair. Fix: pass "
                "transforms={r'name': tu.Transpose((1, 0))} or [(r'name', transform), ...]."
            ) from None
        if not isinstance(transform, Transform):
            raise RuleError(
                f"Invalid transform for {pattern!r}: {transform!r} is not a tfunite.Transform. "
                "Fix: use tu.Reshape, tu.Transpose, tu.Squeeze, tu.DropIndex, "
                "tu.FlipChannels or a Transform subclass."
            )
        try:
            out.append((re.compile(pattern), transform))
        except re.error as e:
            raise RuleError(
                f"Invalid transform regex {pattern!r}: {e}. Fix: escape literal characters "
                "(re.escape) or correct the pattern."
            ) from None
    return out
