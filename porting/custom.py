"""Port a custom TF-Slim model onto your own Keras model, with your own rules.

This is the path for networks that are not in `tf_slim.nets`: you write the Keras model,
rename rules and, where a tensor's layout differs, per-variable transforms. Rules are
ordered ``(regex, replacement)`` pairs, TF's ``assignment_map`` dict
``{"old_scope/": "new_scope/"}``, or a list mixing both, applied in stages (see
`parse_rules`). tfunite prints the plan before it writes anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tfunite.rules import RuleSpec, TransformSpec, parse_rules
from tfunite.training_state import moving_average_transforms

from .checkpoint import checkpoint_shapes, open_reader
from .load import execute
from .output import check_output, save_atomic
from .plan import make_plan
from .progress import Phases
from .recipe_port import refuse_unclean
from .report import PortReport
from .weights import check_shadows, check_weights, ema_stage


def port_custom(
    checkpoint: str,
    model: Any,
    rules: RuleSpec,
    transforms: TransformSpec = (),
    *,
    drop: Sequence[str] = (),
    strict: bool = True,
    dry_run: bool = False,
    print_plan: bool = True,
    output: str | None = None,
    progress: bool = False,
    weights: str = "raw",
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
            mixing both, applied in stages (`parse_rules`). Add `tfunite.TRAINING_STATE`
            (``[tu.TRAINING_STATE, {"net/": ""}, ...]`` or ``[*tu.TRAINING_STATE,
            *pairs]``) to leave optimizer slots, global_step and moving
            averages out as kind ``training_state``.
        transforms: ``{regex: Transform}`` or pairs, keyed by checkpoint names (before
            the rules rename them; the first full match wins), as in `tu.load`.
        drop: regexes of checkpoint entries to leave out on purpose.
        strict: refuse entries that map to no weight (missing weights always refuse).
        dry_run: make and print the plan only.
        print_plan: print the plan (rich) before loading.
        output: also write the model to this `.keras` path, atomically.
        progress: show the load and save phases on stderr (on a terminal).
        weights: ``"raw"`` or ``"ema"``: load each variable from its
            ``<var>/ExponentialMovingAverage`` shadow (as `port`; a rule stage applied
            before yours, so your rules and transforms use the variables' names).

    Returns:
        The `PortReport`. Raises `LoadError` (nothing loaded) if the plan is not clean,
        `CheckpointError` (nothing loaded) if the checkpoint is unreadable or truncated.
    """
    check_weights(weights)
    parsed = parse_rules(rules)
    if output is not None:
        output = check_output(output)
    reader = open_reader(checkpoint)  # checks the data files before anything is assigned
    try:
        shapes, dtypes = checkpoint_shapes(reader)
        report = PortReport(
            "custom",
            checkpoint,
            getattr(model, "name", "model"),
            dry_run=dry_run,
            strict=strict,
            kind=reader.kind,
        )
        report.input_shape = tuple(model.input_shape[1:]) if hasattr(model, "input_shape") else None
        if weights == "ema":
            parsed = parse_rules([ema_stage(shapes, checkpoint), parsed])
            transforms = moving_average_transforms(transforms)
        plan = make_plan(
            shapes,
            dtypes,
            model,
            parsed,
            transforms,
            [(p, "dropped on request") for p in drop],
            "layers",
            report,
        )
        if print_plan:
            report.render(verbose=True)
        refuse_unclean(report, "with your rules")
        if weights == "ema":
            report.weights = "ema"
            report.raw_statistics = check_shadows(report, shapes)
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
