"""Verify a port: run the Slim network (TF1 graph) and the Keras model on the same
inputs and compare their outputs."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from tfunite.readers import Reader
from tfunite.training_state import shadows

from .checkpoint import checkpoint_shapes, num_classes, open_reader
from .errors import VerificationError
from .recipes import Recipe, RecipeError, get_recipe
from .report import PortReport

DEFAULT_RTOL = 1e-5  # max |keras - slim| / max |slim| on logits, float32


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


def logits_output(model: Any) -> Any:
    """The model's logits tensor, whatever its output structure: the only output, the
    ``"logits"`` entry of a dict of outputs, else the first of a list of outputs."""
    try:  # a Sequential has no `output` until called: its `outputs` is the one list
        output = model.output
    except AttributeError:
        output = model.outputs
    if isinstance(output, dict):
        if "logits" not in output:
            raise VerificationError(
                f"Cannot tell which output of model {getattr(model, 'name', '?')!r} holds the "
                f"logits: its outputs are a dict with keys {sorted(output)}, expected one "
                "named 'logits'. Fix: name the classifier's output 'logits' in the dict "
                "(keras.Model(inputs, {'logits': ..., ...}))."
            )
        return output["logits"]
    if isinstance(output, (list, tuple)):
        return output[0]
    return output


def _static_input(model: Any, recipe: Recipe) -> tuple[int, ...]:
    """The model's input shape, with the recipe's default size where it takes any size
    (Slim builds its graph for one static size)."""
    h, w, c = tuple(model.input_shape[1:])
    return (h or recipe.default_size, w or recipe.default_size, c)


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
    weights: str = "raw",
) -> dict[str, Any]:
    """Run Slim (TF1 graph + Session) and `model` on the same inputs; compare outputs.

    ``weights="ema"``: Slim runs with each variable's ExponentialMovingAverage shadow
    where the checkpoint has one (what Slim's eval_image_classifier.py restores), for a
    model ported with ``weights="ema"``.

    A 1001-class checkpoint compared with a 1000-output model is one ported with the
    background class dropped: Slim's class 0 is left out of the comparison. `report`,
    if given, must agree with that.
    """
    from . import _slim, trace

    recipe = get_recipe(recipe)
    _slim_net(recipe, "verify")
    scope = scope or recipe.scope
    shape = _static_input(model, recipe)
    reader = checkpoint if isinstance(checkpoint, Reader) else open_reader(checkpoint)
    try:
        shapes, _ = checkpoint_shapes(reader)
        logits = logits_output(model)
        n_model = int(logits.shape[-1])
        n_ckpt = num_classes(recipe, shapes, scope) or n_model
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
        sources = shadows(reader.entries) if weights == "ema" else None
        slim_out = _slim.run_graph(sg, reader, images, fetch, sources)
    finally:
        if reader is not checkpoint:
            reader.close()
    import keras

    # model.inputs/outputs, not model.input/output: those are undefined on a Sequential
    (inputs,) = model.inputs
    sub = keras.Model(inputs, [logits] + [model.get_layer(n).output for n in layers.values()])
    outs = sub(images, training=False)
    # A one-output Keras model returns a bare tensor, not a one-element list.
    keras_out = [np.asarray(o) for o in (outs if isinstance(outs, (list, tuple)) else [outs])]
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
        "weights": weights,
        "batch": batch,
        "input_shape": list(shape),
        "rtol": rtol,
        "definition": "max |keras - slim| / max |slim|",
        "outputs": outputs,
        "ok": outputs["logits"]["max_rel"] <= rtol,
    }
