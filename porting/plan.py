"""Plan a port on core's pipeline: Keras weights (named by `keras_weight_names`) are
the targets of `tfunite.plan.plan`; nothing is read but the checkpoint's index."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tfunite.errors import RuleError
from tfunite.plan import Step, plan
from tfunite.rules import Rule, Rules, Transform, parse_rules

from .report import PortReport
from .trace import keras_names as _layer_names


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
    """What `make_plan` needs of rules: `tfunite.rules.Rules`, `StagedRules`."""

    def apply(self, name: str) -> tuple[str | None, Any]: ...


@dataclass
class Plan:
    """A validated mapping checkpoint -> model, before any tensor is read."""

    report: PortReport
    model: Any
    steps: list[Step]  # (checkpoint name, Keras name, Keras variable, transform)

    @property
    def assignments(self) -> list[tuple[str, Any, Transform | None]]:
        """``(checkpoint name, Keras variable, transform)`` of each step."""
        return [(s.source, s.var, s.transform) for s in self.steps]


def make_plan(
    shapes: Mapping[str, tuple[int, ...]],
    dtypes: Mapping[str, str],
    model: Any,
    rules: Any,
    transforms: Sequence[tuple[str, Transform]] | Mapping[str, Transform] = (),
    drops: Sequence[tuple[str, str]] = (),
    naming: str = "layers",
    report: PortReport | None = None,
) -> Plan:
    """Match every checkpoint entry to a model weight (no tensor is read).

    `rules` is anything `parse_rules` accepts; `transforms` ``{regex: Transform}`` or
    pairs, keyed by checkpoint names; `drops` ``(regex, reason)`` pairs of entries to
    leave out on purpose (before the rules). The report's kinds are core's.
    """
    report = report or PortReport("custom", "?", getattr(model, "name", "model"))
    parsed = parse_rules(rules)
    if drops:
        parsed = parse_rules([Rules([Rule(p, None, reason=r) for p, r in drops]), parsed])
    entries = {name: (tuple(shapes[name]), dtypes.get(name)) for name in sorted(shapes)}
    _, steps = plan(
        entries,
        keras_weight_names(model, naming),
        parsed,
        transforms,
        report.strict,
        report=report,
        path=report.path,
        kind=report.kind,
    )
    return Plan(report, model, steps)
