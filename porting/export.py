"""`export`: write a ported Keras model back to a Slim-named checkpoint.

The inverse direction on core's pipeline: the Slim net's variables (built in a private
graph) are planned onto the model's Keras weights with the recipe's rules and
transforms (`tfunite.plan.plan`), then each weight is written through its transform's
inverse.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from tfunite.errors import LoadError
from tfunite.plan import plan
from tfunite.rules import Chain, DropIndex, Rules

from .output import write_checkpoint
from .plan import keras_weight_names
from .recipes import Recipe, get_recipe
from .report import PortReport
from .verify import _slim_net, _static_input, logits_output


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
    n = int(logits_output(model).shape[-1]) + (1 if background else 0)
    shape = _static_input(model, recipe)
    sg = _slim.build_graph(
        recipe.net, shape, n, scope=scope, net_kwargs=recipe.net_kwargs, arg_scope=recipe.arg_scope
    )
    entries = {
        name: (tuple(var.shape.as_list()), var.dtype.base_dtype.name)
        for name, var in sg.weights.items()
    }
    rules = Rules([(recipe.expand(p, scope), r) for p, r in recipe.rules])
    transforms = [(recipe.expand(p, scope), t) for p, t in recipe.transforms]
    if background:
        bg = DropIndex(axis=-1, index=0, fill=background_fill)
        for name in entries:
            if any(re.fullmatch(recipe.expand(p, scope), name) for p in recipe.logits):
                base = next((t for p, t in transforms if re.fullmatch(p, name)), None)
                transforms.insert(0, (re.escape(name), Chain((base, bg)) if base else bg))
    report = PortReport(recipe.name, path, getattr(model, "name", "model"), kind="export")
    _, steps = plan(
        entries, keras_weight_names(model, recipe.naming), rules, transforms, report=report
    )
    for e in report.unexpected:
        raise LoadError(
            f"Cannot export {recipe.name}: Slim variable {e.source!r} maps to {e.target!r}, "
            f"which is not a weight of model {model.name!r}. Fix: export a model built by "
            "this recipe (tfunite.porting.port).",
            report,
        )
    for e in report.mismatched:
        raise LoadError(
            f"Cannot export {e.source!r}: Keras weight {e.target!r} is {e.target_shape} "
            f"{e.target_dtype}, which does not fit Slim's variable {e.source_shape} {e.dtype} "
            f"({e.reason}). Fix: export with the recipe the model was ported with (and "
            "background=True for a dropped background class).",
            report,
        )
    values: dict[str, np.ndarray] = {}
    for step in steps:
        var = step.var
        value = np.asarray(var.numpy() if hasattr(var, "numpy") else var)
        values[step.source] = step.transform.inverse(value) if step.transform else value
    write_checkpoint(values, path)
    return {k: tuple(v.shape) for k, v in values.items()}
