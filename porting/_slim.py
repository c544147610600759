"""The TF-Slim side of porting: build a `tf_slim.nets` network in a TF1 graph.

Everything here runs inside a private `tf.Graph` (and `Session` where values are
needed), so the calling process stays eager. TF-Slim is imported lazily, and its
`batch_norm` import bug on current TensorFlow is fixed through tfunite's legacy-fix
registry when the slim bridge provides it (see COMPAT_NOTES.md).
"""

from __future__ import annotations

import importlib
import inspect
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf
from tfunite.errors import CheckpointError, missing_dependency

# net name -> (module in tf_slim.nets, net function, arg scope function)
SLIM_NETS: dict[str, tuple[str, str, str]] = {
    "alexnet_v2": ("alexnet", "alexnet_v2", "alexnet_v2_arg_scope"),
    "overfeat": ("overfeat", "overfeat", "overfeat_arg_scope"),
    "vgg_a": ("vgg", "vgg_a", "vgg_arg_scope"),
    "vgg_16": ("vgg", "vgg_16", "vgg_arg_scope"),
    "vgg_19": ("vgg", "vgg_19", "vgg_arg_scope"),
    "inception_v1": ("inception_v1", "inception_v1", "inception_v1_arg_scope"),
    "inception_v2": ("inception_v2", "inception_v2", "inception_v2_arg_scope"),
    "inception_v3": ("inception_v3", "inception_v3", "inception_v3_arg_scope"),
    **{
        f"resnet_v{v}_{d}": (f"resnet_v{v}", f"resnet_v{v}_{d}", "resnet_arg_scope")
        for v in (1, 2)
        for d in (50, 101, 152, 200)
    },
}


def ensure_slim() -> Any:
    """Import tf_slim with the named legacy fixes of the slim bridge applied.

    `tfunite.fixes.ensure("slim")` imports `tfunite.bridges.slim_fixes`, which registers
    the fixes (e.g. ``slim-batch-norm-import``), and applies them once, idempotently.
    """
    from tfunite import fixes

    fixes.ensure("slim")
    try:
        import tf_slim
    except ImportError:
        raise missing_dependency("tf-slim", "slim", "Porting a TF-Slim checkpoint") from None
    return tf_slim


def net_functions(net: str | Callable[..., Any], arg_scope: Any = None) -> tuple[Any, Any]:
    """(net function, arg scope function or None) of a `tf_slim.nets` network name, or of
    a custom Slim network function `net` (with its optional `arg_scope` function)."""
    ensure_slim()
    if callable(net):
        return net, arg_scope
    module, fn, scope_fn = SLIM_NETS[net]
    mod = importlib.import_module(f"tf_slim.nets.{module}")
    return getattr(mod, fn), getattr(mod, scope_fn)


@dataclass
class SlimGraph:
    """A Slim network built in its own graph, ready to trace or to run.

    With ``weights="placeholders"`` (the default) every variable Slim asks for is a
    placeholder named exactly like the variable: building is ~20x faster than creating
    TF1 variables and their initializers, and running feeds the checkpoint's tensors by
    name, which is what a `Saver` restore does. ``weights="variables"`` builds real
    variables (for Slim's own loaders).
    """

    graph: tf.Graph
    inputs: tf.Tensor
    logits: tf.Tensor
    end_points: dict[str, tf.Tensor]
    weights: dict[str, Any]  # variable name -> placeholder or tf.Variable

    def variable_shapes(self) -> dict[str, tuple[int, ...]]:
        return {k: tuple(v.shape.as_list()) for k, v in self.weights.items()}


# The last few placeholder-weight graphs built, by arguments: a port with verify=True,
# an export or a checkpoint writer then reuse the graph that tracing built. Such graphs
# are only traced, fed and fetched from, never changed.
_GRAPHS: OrderedDict[str, SlimGraph] = OrderedDict()
_GRAPHS_KEPT = 2


def build_graph(
    net: str | Callable[..., Any],
    input_shape: Sequence[int],
    num_classes: int,
    scope: str | None = None,
    batch: int | None = None,
    net_kwargs: Mapping[str, Any] | None = None,
    weights: str = "placeholders",
    arg_scope: Callable[[], Any] | None = None,
) -> SlimGraph:
    """Build `net` (inference mode) in a fresh graph on a float32 placeholder.

    `net` is a `tf_slim.nets` name or a Slim network function ``net(inputs,
    num_classes=..., is_training=False, scope=...) -> (logits, end_points)``, built
    inside `arg_scope()` if given. Graphs with placeholder weights are shared: do not add
    ops to them (build with ``weights="variables"`` for a graph of your own).
    """
    args = (net, input_shape, num_classes, scope, batch, net_kwargs, weights, arg_scope)
    if weights != "placeholders":
        return _build_graph(*args)
    key = _graph_key(net, input_shape, num_classes, scope, batch, net_kwargs, arg_scope)
    if key in _GRAPHS:
        _GRAPHS.move_to_end(key)
        return _GRAPHS[key]
    sg = _build_graph(net, input_shape, num_classes, scope, batch, net_kwargs, weights, arg_scope)
    keep_graph(key, sg)
    return sg


def _graph_key(
    net: Any,
    input_shape: Sequence[int],
    num_classes: int,
    scope: str | None,
    batch: int | None,
    net_kwargs: Mapping[str, Any] | None,
    arg_scope: Any,
) -> str:
    """The key of `build_graph`'s shared graphs for these arguments."""
    if scope is None:  # the net's own default scope: the same graph as passing it
        params = inspect.signature(net_functions(net, arg_scope)[0]).parameters
        default = params["scope"].default if "scope" in params else None
        scope = default if isinstance(default, str) else None
    return repr(
        (
            net,
            tuple(int(s) for s in input_shape),
            int(num_classes),
            scope,
            batch,
            sorted((net_kwargs or {}).items()),
            arg_scope,
        )
    )


def keep_graph(key: str, sg: SlimGraph) -> None:
    """Share `sg` (placeholder weights) as `build_graph`'s graph for `key`."""
    _GRAPHS[key] = sg
    _GRAPHS.move_to_end(key)
    while len(_GRAPHS) > _GRAPHS_KEPT:
        _GRAPHS.popitem(last=False)


def traced_graph(
    net: str,
    input_shape: Sequence[int],
    num_classes: int,
    scope: str,
    name: str,
    net_kwargs: Mapping[str, Any] | None = None,
) -> tuple[SlimGraph, dict[str, Any]]:
    """`tf_slim.nets` network `net` traced by the converter (`convert.trace_network`),
    its graph then shared as `build_graph`'s (a port's verification runs it)."""
    from .convert import trace_network

    fn, arg_scope = net_functions(net)
    sg, layout = trace_network(
        fn,
        input_shape,
        arg_scope,
        scope,
        name,
        squeeze_output=True,
        num_classes=num_classes,
        **dict(net_kwargs or {}),
    )
    keep_graph(_graph_key(net, input_shape, num_classes, scope, None, net_kwargs, None), sg)
    return sg, layout


def _build_graph(
    net, input_shape, num_classes, scope, batch, net_kwargs, weights, arg_scope=None
) -> SlimGraph:
    fn, arg_scope = net_functions(net, arg_scope)
    kwargs = dict(net_kwargs or {})
    if scope is not None:
        kwargs["scope"] = scope

    def call(inputs: tf.Tensor) -> Any:
        return fn(inputs, num_classes=num_classes, is_training=False, **kwargs)

    return build_call_graph(call, input_shape, batch, weights, arg_scope)


def build_call_graph(
    call: Callable[[tf.Tensor], Any],
    input_shape: Sequence[int],
    batch: int | None = None,
    weights: str = "placeholders",
    arg_scope: Callable[[], Any] | None = None,
) -> SlimGraph:
    """Build ``call(inputs) -> logits or (logits, end_points)`` in a fresh graph, on a
    float32 placeholder ``inputs`` of shape ``(batch, *input_shape)``, inside
    `arg_scope()` if given (see `SlimGraph` for `weights`). Exceptions of `call` propagate.
    """
    graph = tf.Graph()
    created: dict[str, Any] = {}

    def as_placeholder(getter, name, *args, shape=None, dtype=tf.float32, **kw):
        if name in created:
            return created[name]
        if not dtype.base_dtype.is_floating:  # a flag (TFLearn's training mode): real
            return getter(name, *args, shape=shape, dtype=dtype, **kw)
        with graph.name_scope(None):
            ph = tf.compat.v1.placeholder(dtype.base_dtype, shape, name=name)
        if ph.op.name != name:  # pragma: no cover - a graph op already had this name
            raise RuntimeError(f"Placeholder for {name!r} was renamed {ph.op.name!r}.")
        created[name] = ph
        return ph

    getter = as_placeholder if weights == "placeholders" else None
    with graph.as_default():
        inputs = tf.compat.v1.placeholder(tf.float32, (batch, *input_shape), name="inputs")
        with tf.compat.v1.variable_scope("", custom_getter=getter, auxiliary_name_scope=False):
            if arg_scope:
                slim = ensure_slim()
                with slim.arg_scope(arg_scope()):
                    result = call(inputs)
            else:
                result = call(inputs)
        if weights != "placeholders":
            created = {v.op.name: v for v in tf.compat.v1.global_variables()}
    if isinstance(result, (tuple, list)) and result:
        logits, end_points = result[0], (result[1] if len(result) > 1 else {})
    else:
        logits, end_points = result, {}
    if not isinstance(logits, tf.Tensor):
        raise TypeError(
            f"expected the network to return a tensor or (tensor, end_points), got "
            f"{type(result).__name__}"
        )
    return SlimGraph(graph, inputs, logits, dict(end_points or {}), created)


def run_graph(
    sg: SlimGraph,
    checkpoint: Any,
    images: np.ndarray,
    fetch: Mapping[str, tf.Tensor],
    sources: Mapping[str, str] | None = None,
) -> dict[str, np.ndarray]:
    """Evaluate `fetch` on `images`, with every weight read by name from `checkpoint`
    (a path, or an open `tfunite.readers.Reader`); `sources` maps a variable to another
    entry to read it from (its ExponentialMovingAverage shadow).

    A path is opened with tfunite's reader and its data files are checked first,
    so a truncated or corrupt checkpoint raises `CheckpointError` naming it.
    """
    from tfunite.readers import Reader, open_checkpoint

    own = not isinstance(checkpoint, Reader)
    reader = open_checkpoint(checkpoint) if own else checkpoint
    try:
        if own:
            reader.verify()
        if any(isinstance(w, tf.Tensor) for w in sg.weights.values()):
            sources = sources or {}
            missing = sorted(n for n in sg.weights if sources.get(n, n) not in reader.entries)
            if missing:
                raise CheckpointError(
                    f"Checkpoint {reader.path} has no entry for {len(missing)} variable(s) of "
                    f"the Slim net, first {missing[0]!r}. Expected every variable the net "
                    "creates. Fix: pass the checkpoint of this net (and its scope)."
                )
            feed = {ph: reader.read(sources.get(name, name)) for name, ph in sg.weights.items()}
        else:
            feed = None
    finally:
        if own:
            reader.close()
    with tf.compat.v1.Session(graph=sg.graph) as sess:
        if feed is None:
            with sg.graph.as_default():
                saver = tf.compat.v1.train.Saver(var_list=dict(sg.weights))
            saver.restore(sess, reader.path)
            feed = {}
        feed[sg.inputs] = images
        return sess.run(dict(fetch), feed_dict=feed)


def random_weights(shapes: Mapping[str, Sequence[int]], seed: int = 0) -> dict[str, np.ndarray]:
    """Random float32 weights with He-scaled kernels and non-trivial BatchNorm statistics.

    `moving_mean`, `moving_variance`, `beta` and `gamma` are all randomized, so a port
    that mixes them up or ignores one is caught.
    """
    rng = np.random.default_rng(seed)
    values = {}
    for name in sorted(shapes):
        shape = tuple(shapes[name])
        leaf = name.rsplit("/", 1)[-1]
        # Drawn in float32 directly: VGG's fc6 alone has 100M weights.
        if leaf in ("moving_variance", "gamma"):
            val = rng.random(shape, dtype=np.float32) + np.float32(0.5)
        elif leaf in ("moving_mean", "beta", "biases") or len(shape) < 2:
            val = rng.standard_normal(shape, dtype=np.float32) * np.float32(0.1)
        else:
            fan_in = int(np.prod(shape[:2] if leaf == "depthwise_weights" else shape[:-1]))
            val = rng.standard_normal(shape, dtype=np.float32)
            val *= np.float32(np.sqrt(2.0 / fan_in))
        values[name] = np.asarray(val, np.float32)
    return values


def write_random_checkpoint(
    net: str,
    path: str,
    input_shape: Sequence[int],
    num_classes: int,
    seed: int = 0,
    write_version: str = "V2",
    scope: str | None = None,
    extra: Mapping[str, np.ndarray] | None = None,
) -> dict[str, tuple[int, ...]]:
    """Write a checkpoint of `net` with `random_weights` (tests, benchmark, example).

    Args:
        write_version: ``"V2"`` (``.index`` + ``.data``) or ``"V1"`` (one file).
        extra: more entries to write (e.g. ``global_step`` or optimizer slots).

    Returns:
        The written names and shapes.
    """
    sg = build_graph(net, input_shape, num_classes, scope=scope)
    values = random_weights(sg.variable_shapes(), seed)
    values.update(extra or {})
    write_raw(values, path, write_version)
    return {k: v.shape for k, v in values.items()}


def write_raw(values: Mapping[str, np.ndarray], path: str, write_version: str = "V2") -> None:
    """Write name-based checkpoint entries with TF's own save ops (V1 or V2 format)."""
    names = sorted(values)
    tensors = [tf.constant(values[n]) for n in names]
    with tf.device("/cpu:0"):
        if write_version == "V2":
            tf.raw_ops.SaveV2(
                prefix=path, tensor_names=names, shape_and_slices=[""] * len(names), tensors=tensors
            )
        elif write_version == "V1":
            tf.raw_ops.Save(filename=path, tensor_names=names, data=tensors)
        else:
            raise ValueError(f"write_version must be 'V1' or 'V2', got {write_version!r}.")
