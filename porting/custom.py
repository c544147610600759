"""Port a custom TF-Slim model onto your own Keras model, with your own rules.

This is the path for networks that are not in `tf_slim.nets`: you write the Keras model,
rename rules and, where a tensor's layout differs, per-variable transforms. Rules are
ordered ``(regex, replacement)`` pairs, TF's ``assignment_map`` dict
``{"old_scope/": "new_scope/"}``, or a list mixing both, applied in stages (see
`parse_rules`). tfunite prints the plan before it writes anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tfunite.errors import RuleError
from tfunite.rules import Rule, Rules, RuleSpec, Transform

from .engine import (
    Phases,
    PortReport,
    _refuse_unclean,
    check_output,
    checkpoint_shapes,
    execute,
    make_plan,
    open_reader,
    save_atomic,
)

# What port_custom accepts as rules: everything `Rules.parse` does, or a list mixing
# assignment_map dicts and (regex, replacement) pairs.
CustomRuleSpec = RuleSpec | Sequence[Mapping[str, str] | tuple[str, str | None]]


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

    def __init__(self, stages: Sequence[Rules]):
        self.stages = list(stages)

    def apply(self, name: str) -> tuple[str | None, Rule | RuleChain | None]:
        """(new name or None if dropped, the rule(s) that applied or None)."""
        applied: list[Rule] = []
        current: str | None = name
        for stage in self.stages:
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


def parse_rules(spec: CustomRuleSpec) -> Rules | StagedRules:
    """Rules from anything `port_custom` accepts.

    * ``[(regex, replacement), ...]``: one stage, the first full match wins;
    * ``{"old_scope/": "new_scope/", "old/w": "new/w"}``: TF's assignment_map;
    * a list mixing both, e.g. ``[{"net/": "features/"}, (r"(.*)/weights", r"\\1/kernel"),
      (r"(.*)/biases", r"\\1/bias")]``: each dict is a stage, each run of consecutive
      pairs is a stage, and the stages apply in order (see `StagedRules`).
    """
    if isinstance(spec, (list, tuple)) and any(isinstance(item, Mapping) for item in spec):
        stages: list[Rules] = []
        pairs: list[Any] = []
        for item in spec:
            if isinstance(item, Mapping):
                if pairs:
                    stages.append(Rules(pairs))
                    pairs = []
                stages.append(Rules.from_assignment_map(item))
            elif isinstance(item, (list, tuple)) and len(item) == 2:
                pairs.append(tuple(item))
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


def port_custom(
    checkpoint: str,
    model: Any,
    rules: CustomRuleSpec,
    transforms: Sequence[tuple[str, Transform]] | Mapping[str, Transform] = (),
    *,
    drop: Sequence[str] = (),
    strict: bool = True,
    dry_run: bool = False,
    print_plan: bool = True,
    output: str | None = None,
    progress: bool = False,
) -> PortReport:
    """Load a custom Slim checkpoint into your Keras 3 `model` through your rules.

    Keras-side names are ``<layer name>/<weight name>``, with ``.`` in a layer name read
    as ``/`` (Keras forbids ``/`` in layer names); `tfunite.porting.keras_weight_names`
    lists them. Example::

        model = keras.Sequential([keras.Input((28, 28, 1)),
                                  keras.layers.Conv2D(32, 3, name="conv1"),
                                  keras.layers.Flatten(),
                                  keras.layers.Dense(10, name="logits")])
        report = port_custom(
            "my_slim_model.ckpt", model,
            rules=[{"net/": ""},                      # scope map, then leaf renames
                   (r"(.*)/weights", r"\\1/kernel"), (r"(.*)/biases", r"\\1/bias")],
            transforms={r"net/logits/weights": tfunite.Reshape((5408, 10), (26, 26, 32, 10))},
            dry_run=True)          # prints the plan, loads nothing
        report = port_custom("my_slim_model.ckpt", model, rules=..., output="model.keras")

    Args:
        checkpoint: the Slim checkpoint (prefix, V1 file or directory).
        model: your Keras 3 model, built (it has its weights).
        rules: ``[(regex, replacement), ...]`` (first full match wins; a replacement of
            None drops the entry), an assignment_map ``{"old/": "new/"}``, or a list
            mixing both, applied in stages (`parse_rules`).
        transforms: ``{regex: Transform}`` or pairs, on checkpoint names (first match).
        drop: regexes of checkpoint entries to leave out on purpose.
        strict: refuse entries that map to no weight (missing weights always refuse).
        dry_run: make and print the plan only.
        print_plan: print the plan (rich) before loading.
        output: also write the model to this `.keras` path, atomically.
        progress: show the load and save phases on stderr (on a terminal).

    Returns:
        The `PortReport`. Raises `LoadError` (nothing loaded) if the plan is not clean,
        `CheckpointError` (nothing loaded) if the checkpoint is unreadable or truncated.
    """
    parsed = parse_rules(rules)
    if output is not None:
        output = check_output(output)
    pairs = list(transforms.items()) if isinstance(transforms, Mapping) else list(transforms)
    reader = open_reader(checkpoint)  # checks the data files before anything is assigned
    try:
        shapes, dtypes = checkpoint_shapes(reader)
        report = PortReport("custom", checkpoint, getattr(model, "name", "model"), dry_run=dry_run)
        report.input_shape = tuple(model.input_shape[1:]) if hasattr(model, "input_shape") else None
        plan = make_plan(
            shapes,
            dtypes,
            model,
            parsed,
            pairs,
            [(p, "dropped on request") for p in drop],
            "layers",
            report,
        )
        if print_plan:
            plan.report.render(verbose=True)
        _refuse_unclean(plan.report, strict, checkpoint, "your rules")
        if dry_run:
            return report
        with Phases(progress) as phases:
            execute(plan, reader, progress=phases)
            if output is not None:
                phases.phase(f"Saving {output}")
                report.output = save_atomic(model, output)
        return report
    finally:
        reader.close()
