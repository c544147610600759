"""`convert`: turn any TF-Slim or TFLearn network function into a native Keras 3 model.

The function is built once in a private TF1 graph (inference mode, weights as
placeholders, see `_slim.build_call_graph`), the graph is traced into a layout of
built-in Keras layers (`trace.trace_layout`, the tracer the recipes use), and the Keras
model gets the checkpoint's weights through core's one pipeline (plan, check, assign:
`make_plan` then `execute`), or keeps Keras' fresh ones when no checkpoint is given.
``verify=True`` runs the graph and the Keras model on the same random inputs and
compares every Keras layer with the graph tensor it replaces.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from tfunite.errors import TfuniteError
from tfunite.rules import Rules, RuleSpec, parse_rules
from tfunite.training_state import TRAINING_STATE

from ._gc import gc_paused
from .checkpoint import checkpoint_shapes, open_reader
from .errors import PortArgumentError, VerificationError
from .load import DeferredBuild, execute
from .output import check_output, save_atomic
from .plan import make_plan
from .recipe_port import image_shape, refuse_unclean
from .report import PortReport
from .verify import DEFAULT_RTOL

__all__ = ["ConvertError", "ConvertReport", "convert", "load_callable", "trace_network"]

UNUSED = "a variable of the network that does not reach its output"


class ConvertError(TfuniteError, ValueError):
    """The network function cannot be built or converted (nothing was written)."""


class ConvertReport(PortReport):
    """A `PortReport` of a conversion; its verification also compares every layer."""

    def __init__(self, *args: Any, function: str = "?", layers: int = 0, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.function = function
        self.layers = layers

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out.update(function=self.function, layers=self.layers)
        return out

    def render(self, console: Any = None, verbose: bool = False) -> None:
        """Print the report; `verbose` lists every layer's difference with the graph."""
        from rich.console import Console

        console = console or Console(soft_wrap=True)
        super().render(console, verbose=verbose)
        v = self.verification
        if not v or "layers" not in v:
            return
        worst = max(v["layers"], key=lambda d: d["max_rel"], default=None)
        if worst is not None:
            console.print(
                f"  {len(v['layers'])} layers compared; largest difference "
                f"{worst['max_rel']:.3g} relative at layer {worst['layer']!r}"
            )
        if v["first_failure"]:
            console.print(f"  [red]first layer beyond tolerance: {v['first_failure']}[/red]")
        if verbose:
            for d in v["layers"]:
                console.print(f"    {d['layer']:50s} {d['class']:22s} max rel {d['max_rel']:.3g}")


def load_callable(spec: str | Callable[..., Any], what: str = "network function") -> Any:
    """`spec` itself if callable, else the object named by ``"package.module:NAME"`` or
    ``"path/to/file.py:NAME"``."""
    if callable(spec):
        return spec
    if not isinstance(spec, str) or spec.count(":") != 1 or not all(spec.split(":")):
        raise ConvertError(
            f"Cannot use {spec!r} as the {what}: expected a callable, 'package.module:NAME' "
            "or 'path/to/file.py:NAME'. Fix: e.g. 'nets.lenet:lenet'."
        )
    module, attr = spec.split(":")
    try:
        if module.endswith(".py"):
            if not os.path.isfile(module):
                raise FileNotFoundError(f"no file {module}")
            mod_name = "_tfunite_convert_" + re.sub(r"\W", "_", os.path.abspath(module))
            file_spec = importlib.util.spec_from_file_location(mod_name, module)
            mod = importlib.util.module_from_spec(file_spec)  # type: ignore[arg-type]
            sys.modules[mod_name] = mod
            file_spec.loader.exec_module(mod)  # type: ignore[union-attr]
        else:
            mod = importlib.import_module(module)
    except Exception as e:
        raise ConvertError(
            f"Cannot import {module!r} for the {what} {spec!r}: {type(e).__name__}: {e}. "
            "Fix: check the module path (is its folder on PYTHONPATH?) or the file name."
        ) from None
    if not callable(getattr(mod, attr, None)):
        raise ConvertError(
            f"{module!r} defines no callable {attr!r} for the {what} {spec!r}. Fix: name a "
            f"function of that module (it has: "
            f"{sorted(n for n in vars(mod) if not n.startswith('_'))[:12]})."
        )
    return getattr(mod, attr)


def _shape(input_shape: Sequence[int] | None, fn: Any, fname: str) -> tuple[int, int, int]:
    if input_shape is None:
        size = getattr(fn, "default_image_size", None)
        if isinstance(size, int):
            return (size, size, 3)
        raise PortArgumentError(
            f"convert({fname}): no input_shape, and {fname} has no default_image_size. "
            "Fix: pass input_shape=(height, width, channels) (CLI: --input-size H [W C])."
        )
    shape = image_shape(input_shape)
    if shape is None:
        raise PortArgumentError(
            f"convert({fname}): input_shape={input_shape!r} is not an image shape: expected "
            "(height, width, channels), three positive integers. Fix: e.g. "
            "input_shape=(224, 224, 3) (CLI: --input-size 224)."
        )
    return shape


def _default_scope(fn: Any) -> str | None:
    try:
        param = inspect.signature(fn).parameters.get("scope")
    except (TypeError, ValueError):
        return None
    return param.default if param is not None and isinstance(param.default, str) else None


def _call_kwargs(fn: Any, fname: str, scope: str | None, fn_kwargs: dict) -> dict[str, Any]:
    kwargs = dict(fn_kwargs)
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}  # type: ignore[assignment]
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if "is_training" in params and "is_training" not in kwargs:
        kwargs["is_training"] = False
    if scope is not None:
        if "scope" not in params and not takes_any:
            raise PortArgumentError(
                f"convert({fname}, scope={scope!r}): {fname} takes no scope argument. "
                "Fix: drop scope=..., or give the function a scope parameter."
            )
        kwargs["scope"] = scope
    return kwargs


def _top_scope(variables: Sequence[str]) -> str:
    tops = {v.split("/", 1)[0] for v in variables if "/" in v}
    if len(tops) == 1 and all("/" in v for v in variables):
        return tops.pop()
    return ""


def trace_network(
    fn: Callable[..., Any] | str,
    input_shape: Sequence[int],
    arg_scope: Callable[[], Any] | str | None = None,
    scope: str | None = None,
    name: str | None = None,
    *,
    squeeze_output: bool = False,
    **fn_kwargs: Any,
) -> tuple[Any, dict[str, Any]]:
    """The converter's first half: build `fn` once in a private TF1 graph and trace it
    into a layout of built-in Keras layers; ``(SlimGraph, layout)``.

    `convert` builds its model from this layout, and so do the recipes of the
    `tf_slim.nets` they do not port onto keras.applications (`_layouts.get_layout`,
    which caches the layout per net). Arguments as for `convert`; `squeeze_output`
    appends Slim's ``SpatialSqueeze`` (what the nets do with ``spatial_squeeze=True``).
    """
    fn = load_callable(fn)
    fname = getattr(fn, "__name__", type(fn).__name__)
    shape = _shape(input_shape, fn, fname)
    arg_scope_fn = load_callable(arg_scope, "arg scope function") if arg_scope else None
    kwargs = _call_kwargs(fn, fname, scope, fn_kwargs)
    from . import _slim, trace

    if importlib.util.find_spec("tf_slim") is not None:
        _slim.ensure_slim()  # tf_slim's legacy fixes (its batch_norm import on current TF)

    def call(inputs: Any) -> Any:
        return fn(inputs, **kwargs)

    shown = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    try:
        try:
            sg = _slim.build_call_graph(call, shape, arg_scope=arg_scope_fn)
        except AttributeError as e:
            if "assign" not in str(e):
                raise
            # The net updates a variable while it is built (TFLearn's batch norm builds
            # its moving-average updates even for inference): build real variables.
            sg = _slim.build_call_graph(call, shape, weights="variables", arg_scope=arg_scope_fn)
    except TfuniteError:
        raise
    except Exception as e:
        small = "negative dimension" in str(e).lower() or "must be at least" in str(e).lower()
        hint = (
            f"the input {shape[0]}x{shape[1]} is below what the network accepts: pass a "
            "larger input_shape (CLI: --input-size)"
            if small
            else "check the function's arguments (fn_kwargs, arg_scope, scope)"
        )
        raise ConvertError(
            f"Building {fname}(inputs of shape (batch, {shape[0]}, {shape[1]}, {shape[2]})"
            f"{', ' + shown if shown else ''}) raised {type(e).__name__}: {str(e).rstrip('.')}. "
            "Expected it to "
            f"build the network and return its logits. Fix: {hint}."
        ) from e
    prefix = scope or _default_scope(fn) or _top_scope(list(sg.weights))
    layout = trace.trace_layout(
        sg.graph, sg.inputs, sg.logits, prefix, name or fname, squeeze_output=squeeze_output
    )
    return sg, layout


@gc_paused()
def convert(
    fn: Callable[..., Any] | str,
    checkpoint: str | os.PathLike | None = None,
    input_shape: Sequence[int] | None = None,
    arg_scope: Callable[[], Any] | str | None = None,
    scope: str | None = None,
    *,
    name: str | None = None,
    verify: bool = False,
    rtol: float = DEFAULT_RTOL,
    output: str | None = None,
    strict: bool = True,
    rules: RuleSpec = None,
    batch: int = 2,
    seed: int = 0,
    **fn_kwargs: Any,
) -> tuple[Any, ConvertReport]:
    """Convert a TF-Slim or TFLearn network function into a Keras 3 functional model.

    `fn` is called once as ``fn(inputs, is_training=False, scope=scope, **fn_kwargs)``
    (``is_training`` if it takes one, ``scope`` if given) in a private TF1 graph, inside
    ``slim.arg_scope(arg_scope())`` if given, and returns its logits (or ``(logits,
    end_points)``). Each op from the inputs to the logits becomes one built-in Keras layer
    (`tfunite.porting.trace.SUPPORTED_OPS`), named after its Slim scope with ``.`` for
    ``/``; an op it cannot convert is a `TraceError` naming the op and its scope.

    Args:
        fn: the network function, or ``"package.module:NAME"`` / ``"file.py:NAME"``.
        checkpoint: a checkpoint of the network's variables (planned and checked before
            any weight is assigned); None keeps Keras' fresh weights.
        input_shape: ``(height, width, channels)``; default ``fn.default_image_size``.
        arg_scope: Slim arg scope function (or its ``"module:NAME"``).
        scope: passed to `fn` as ``scope=``; names are taken relative to it.
        name: the Keras model's name (default the function's name).
        verify: run the graph and the model on `batch` random inputs and compare every
            layer (max |keras - graph| / max |graph| <= `rtol`); raises
            `VerificationError` naming the first layer beyond it, nothing written.
        output: write the model to this ``.keras`` path (atomically).
        strict: refuse checkpoint entries that map to no weight.
        rules: checkpoint entries to leave out (default `tfunite.TRAINING_STATE`).
        **fn_kwargs: passed to `fn` (e.g. ``num_classes=10``).

    Returns:
        ``(model, report)``.

    Raises:
        ConvertError: `fn` cannot be imported or raised (an input below the net's
        minimum size, typically). PortArgumentError: bad input_shape or scope.
        TraceError: an op with no built-in Keras layer. LoadError: the checkpoint does
        not fit the network. VerificationError, OutputError.
    """
    out_path = check_output(output) if output is not None else None
    fn = load_callable(fn)
    fname = getattr(fn, "__name__", type(fn).__name__)
    shape = _shape(input_shape, fn, fname)
    sg, layout = trace_network(fn, shape, arg_scope, scope, name, **fn_kwargs)
    from . import trace

    used = {v: e for e in layout["layers"] for v in e["weights"].values()}
    n_out = sg.logits.shape.as_list()[-1]
    report = ConvertReport(
        f"convert:{fname}",
        str(checkpoint) if checkpoint is not None else "(none: fresh Keras weights)",
        f"Keras 3 functional model of {len(layout['layers'])} built-in layers",
        num_classes=int(n_out) if n_out else None,
        input_shape=shape,
        strict=strict,
        kind="none",
        function=f"{getattr(fn, '__module__', '?')}:{fname}",
        layers=len(layout["layers"]),
    )
    if checkpoint is None:
        model = trace.build_layout(layout, fast_init=False)
        reader = None
    else:
        reader = open_reader(checkpoint)
    try:
        if reader is not None:
            report.kind = reader.kind
            with DeferredBuild() as deferred:
                model = trace.build_layout(layout)
            shapes, dtypes = checkpoint_shapes(reader)
            pairs = []
            for e in layout["layers"]:
                lname = e["config"]["name"]
                for role, var in e["weights"].items():
                    pairs.append((re.escape(var), f"{lname.replace('.', '/')}/{role}"))
            drops = [(re.escape(v), UNUSED) for v in sg.weights if v not in used]
            drops.append((r"(.*/)?is_training", "TFLearn's training-mode flag"))
            staged = parse_rules(
                [parse_rules(TRAINING_STATE if rules is None else rules), Rules(pairs)]
            )
            plan = make_plan(shapes, dtypes, model, staged, (), drops, "layers", report)
            refuse_unclean(report, f"converting {fname}")
            execute(plan, reader)
            deferred.finish()
        if verify:
            report.verification = _verify(model, layout, sg, reader, used, batch, seed, rtol)
            v = report.verification
            if not v["ok"]:
                raise VerificationError(
                    f"Verification of the conversion of {fname} failed: layer "
                    f"{v['first_failure']!r} differs from the graph tensor it replaces by "
                    f"{_rel_of(v, v['first_failure']):.3g} relative (tolerance {rtol:g}); "
                    "nothing was written. Fix: report this with `tfunite convert ... --verify "
                    "--json` (its `verification.layers` lists every layer).",
                    report,
                )
    finally:
        if reader is not None:
            reader.close()
    if out_path is not None:
        report.output = save_atomic(model, out_path)
    return model, report


def _rel_of(v: dict[str, Any], layer: str | None) -> float:
    for d in v["layers"]:
        if d["layer"] == layer:
            return float(d["max_rel"])
    return float(v["outputs"]["logits"]["max_rel"])


def _verify(
    model: Any,
    layout: dict[str, Any],
    sg: Any,
    reader: Any,
    used: dict[str, Any],
    batch: int,
    seed: int,
    rtol: float,
) -> dict[str, Any]:
    """Compare every Keras layer's output with the graph tensor it replaces."""
    import keras
    import tensorflow as tf

    shape = tuple(layout["input_shape"])
    images = np.random.default_rng(seed).normal(0.0, 1.0, (batch, *shape)).astype(np.float32)
    if reader is not None:
        values = {v: reader.read(v) for v in used}
    else:
        values = {}
        for e in layout["layers"]:
            layer = model.get_layer(e["config"]["name"])
            by_name = {w.name: w for w in layer.weights}
            for role, var in e["weights"].items():
                values[var] = np.asarray(keras.ops.convert_to_numpy(by_name[role]))
    feed: dict[Any, Any] = {sg.inputs: images}
    for var, ph in sg.weights.items():
        if not isinstance(ph, tf.Tensor):
            continue
        if var in values:
            feed[ph] = values[var]
        elif ph.dtype == tf.bool:  # TFLearn's training mode
            feed[ph] = False
    entries = layout["layers"]
    fetch = {e["config"]["name"]: sg.graph.get_tensor_by_name(e["tensor"]) for e in entries}
    fetch["logits"] = sg.logits
    with tf.compat.v1.Session(graph=sg.graph) as sess:
        with sg.graph.as_default():
            real = tf.compat.v1.global_variables()
            if real:  # TFLearn's training-mode flag; every weight of a TFLearn net
                sess.run(tf.compat.v1.variables_initializer(real))
                for v in real:
                    if v.op.name in values:
                        v.load(values[v.op.name], sess)
        ref = sess.run(fetch, feed_dict=feed)
    names = [e["config"]["name"] for e in entries]
    (x_in,) = model.inputs
    sub = keras.Model(x_in, [model.get_layer(n).output for n in names])
    outs = sub(images, training=False)
    outs = outs if isinstance(outs, (list, tuple)) else [outs]

    def compare(a: Any, b: Any) -> tuple[float, float]:
        a = np.asarray(a, np.float64).reshape(batch, -1)
        b = np.asarray(keras.ops.convert_to_numpy(b), np.float64).reshape(batch, -1)
        diff = float(np.max(np.abs(a - b))) if a.size else 0.0
        return diff, diff / max(float(np.max(np.abs(a))) if a.size else 0.0, 1e-30)

    layers = []
    for e, got in zip(entries, outs):
        diff, rel = compare(ref[e["config"]["name"]], got)
        layers.append(
            {
                "layer": e["config"]["name"],
                "class": e["class"],
                "tensor": e["tensor"],
                "max_abs": diff,
                "max_rel": rel,
                "ok": rel <= rtol,
            }
        )
    diff, rel = compare(ref["logits"], model(images, training=False))
    first = next((d["layer"] for d in layers if not d["ok"]), None)
    if first is None and rel > rtol:
        first = names[-1] if names else None
    return {
        "batch": batch,
        "input_shape": list(shape),
        "rtol": rtol,
        "definition": "max |keras - slim| / max |slim|, per layer and on the logits",
        "outputs": {"logits": {"max_abs": diff, "max_rel": rel, "shape": list(sg.logits.shape)}},
        "layers": layers,
        "first_failure": first,
        "ok": first is None and rel <= rtol,
    }
