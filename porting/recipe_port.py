"""`port`: a registered recipe's whole port of a Slim checkpoint into Keras 3: read
the index, check it is the recipe's network, build the model, plan on core's pipeline,
load, verify against Slim, save."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tfunite.errors import LoadError
from tfunite.readers import Reader
from tfunite.report import refusal
from tfunite.rules import Chain, DropIndex, Rules, RuleSpec, parse_rules
from tfunite.training_state import TRAINING_STATE, moving_average_transforms

from ._gc import gc_paused
from .checkpoint import _check_identity, _matches, checkpoint_shapes, num_classes, open_reader
from .errors import PortArgumentError, VerificationError
from .load import DeferredBuild, execute
from .output import check_output, save_atomic
from .plan import make_plan
from .progress import Phases
from .recipes import BuildSpec, Recipe, get_recipe
from .report import PortReport
from .verify import DEFAULT_RTOL, verify_port
from .weights import check_shadows, check_weights, ema_stage


def image_shape(input_shape: Sequence[int]) -> tuple[int, int, int] | None:
    """`input_shape` as (height, width, channels) of positive ints, or None if it is not one."""
    try:
        shape = tuple(int(s) for s in input_shape)
    except (TypeError, ValueError):
        return None
    if len(shape) != 3 or min(shape) <= 0:
        return None
    return shape[0], shape[1], shape[2]


def _input_shape(
    recipe: Recipe, input_shape: Sequence[int] | None
) -> tuple[int | None, int | None, int]:
    """The Keras model's input shape: checked against the recipe's smallest and largest."""
    size, least = recipe.default_size, recipe.min_size
    if input_shape is None:  # any size (at least min_size) for fully convolutional nets
        return (None, None, recipe.channels) if recipe.any_size else (size, size, recipe.channels)
    shape = image_shape(input_shape)
    if shape is None:
        try:
            shown: Any = tuple(input_shape)
        except TypeError:
            shown = input_shape
        raise PortArgumentError(
            f"input_shape={shown!r} is not an image "
            f"shape: expected (height, width, channels), three positive integers. Fix: pass "
            f"e.g. input_shape=({size}, {size}, {recipe.channels}) (CLI: --input-size {size})."
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
    return (shape[0], shape[1], shape[2])


@gc_paused()
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
    rules: RuleSpec = None,
    weights: str = "raw",
) -> tuple[Any, PortReport]:
    """Port a TF-Slim checkpoint into a Keras 3 model.

    Args:
        checkpoint: checkpoint prefix (V2), file (V1) or directory.
        recipe: a registered recipe name (``"slim:vgg_16"``) or a `Recipe`.
        keep_background: keep class 0 of a 1001-class classifier (default: drop it,
            so the Keras model has the 1000 ImageNet classes of keras.applications).
        input_shape: ``(height, width, channels)``, at least the recipe's ``min_size``
            in height and width. Default: ``(None, None, channels)`` (any size) for nets
            fully convolutional up to a global pooling (the recipe's ``any_size``:
            ResNet v1/v2, Inception V3), else Slim's default image size.
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
        rules: extra rules applied to checkpoint names before the recipe's: entries to
            leave out on purpose. None (the default) is `tfunite.TRAINING_STATE`
            (optimizer slots, global_step, moving averages, reported as kind
            ``training_state``); ``()`` applies none.
        weights: ``"raw"`` (the trained variables) or ``"ema"``: the
            ExponentialMovingAverage shadows ``<var>/ExponentialMovingAverage`` that
            ``tf.train.ExponentialMovingAverage`` (Slim: ``--moving_average_decay``)
            writes, the raw variables being left out as training state. A weight
            without a shadow refuses the port, naming it (batch-norm statistics are
            loaded raw when no statistic has a shadow); see `tfunite.porting.weights`.

    Returns:
        ``(model, report)``.

    Raises:
        RecipeError: unknown recipe. PortArgumentError: input shape too small, or
        ``dry_run`` with ``verify``. LoadError: wrong net, missing or mismatched tensors.
        CheckpointError: unreadable, truncated or corrupt checkpoint (checked before any
        weight is assigned). OutputError: output not writable.
    """
    recipe = get_recipe(recipe)
    check_weights(weights)
    if dry_run and verify:
        raise PortArgumentError(
            "port(dry_run=True, verify=True): verification compares the loaded model with "
            "Slim, and a dry run loads nothing. Fix: drop one of them (CLI: --dry-run or "
            "--verify)."
        )
    job = _Job(
        checkpoint=checkpoint,
        recipe=recipe,
        scope=scope or recipe.scope,
        shape=_input_shape(recipe, input_shape),
        keep_background=keep_background,
        strict=strict,
        dry_run=dry_run,
        verify=verify,
        rtol=rtol,
        output=check_output(output) if output is not None else None,
        batch=batch,
        seed=seed,
        rules=TRAINING_STATE if rules is None else rules,
        weights=weights,
    )
    with Phases(progress) as phases:
        phases.phase("Reading the checkpoint index")
        reader = open_reader(checkpoint)
        try:
            return _port(job, reader, phases)
        finally:
            reader.close()


@dataclass(frozen=True)
class _Job:
    """The checked arguments of one `port` call."""

    checkpoint: str
    recipe: Recipe
    scope: str
    shape: tuple[int | None, int | None, int]
    keep_background: bool
    strict: bool
    dry_run: bool
    verify: bool
    rtol: float
    output: str | None
    batch: int
    seed: int
    rules: RuleSpec
    weights: str = "raw"


def _port(job: _Job, reader: Reader, phases: Phases) -> tuple[Any, PortReport]:
    recipe, scope, checkpoint, shape = job.recipe, job.scope, job.checkpoint, job.shape
    shapes, dtypes = checkpoint_shapes(reader)
    _check_identity(recipe, shapes, scope, checkpoint)
    n_ckpt = num_classes(recipe, shapes, scope)
    if n_ckpt is None:
        names = [recipe.expand(p, scope) for p in recipe.logits]
        raise LoadError(
            f"Checkpoint {checkpoint!r} has no classifier for {recipe.name}: no entry matches "
            f"{names}. Fix: check the scope (scope=...) or port a checkpoint with logits."
        )
    drop_bg = n_ckpt == 1001 and not job.keep_background
    n_keras = n_ckpt - 1 if drop_bg else n_ckpt
    report = PortReport(
        recipe.name,
        checkpoint,
        recipe.target,
        num_classes=n_keras,
        background="dropped" if drop_bg else ("kept" if n_ckpt == 1001 else "none"),
        input_shape=shape,
        dry_run=job.dry_run,
        strict=job.strict,
        kind=reader.kind,
    )
    # weights="ema" on a checkpoint without moving averages refuses before the build
    ema = ema_stage(shapes, checkpoint) if job.weights == "ema" else None
    spec = BuildSpec(n_keras, shape, scope, recipe.net_name, recipe.default_size)
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
    drops = [(recipe.expand(p, scope), r) for p, r in recipe.drops]
    stages = [
        parse_rules(job.rules),
        Rules([(recipe.expand(p, scope), r) for p, r in recipe.rules]),
    ]
    if ema is not None:
        stages.insert(0, ema)
        transforms = moving_average_transforms(transforms)
    plan = make_plan(
        shapes, dtypes, model, parse_rules(stages), transforms, drops, recipe.naming, report
    )
    refuse_unclean(report, f"with {recipe.name}")
    if job.weights == "ema":
        report.weights = "ema"
        report.raw_statistics = check_shadows(report, shapes)
    if job.dry_run:
        return None, report
    execute(plan, reader, progress=phases)
    deferred.finish()
    if job.verify:
        phases.phase("Verifying against Slim (TF1 graph)")
        report.verification = verify_port(
            model,
            reader,
            recipe,
            report,
            scope=scope,
            batch=job.batch,
            seed=job.seed,
            rtol=job.rtol,
            weights=job.weights,
        )
        if not report.verification["ok"]:
            worst = max(d["max_rel"] for d in report.verification["outputs"].values())
            raise VerificationError(
                f"Verification of {recipe.name} failed: the Keras model's outputs differ from "
                f"Slim's by {worst:.3g} relative (tolerance {job.rtol:g}). Nothing was written. "
                "Fix: report this with `tfunite port ... --verify --json`.",
                report,
            )
    if job.output is not None:
        phases.phase(f"Saving {job.output}")
        report.output = save_atomic(model, job.output)
    return model, report


def refuse_unclean(report: PortReport, context: str) -> None:
    """Raise core's refusal (LoadError, nothing loaded) if the plan is not clean."""
    if not report.ok:
        raise LoadError(refusal(report, context, cli=True), report)
