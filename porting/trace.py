"""Translate a TF-Slim network, built in a TF1 graph, into a plain Keras 3 functional model.

The Keras model mirrors Slim's layout op by op: every convolution, batch norm, pool,
padding, concat and residual add of the Slim graph becomes one built-in Keras layer,
so the `.keras` file it saves loads anywhere (no custom objects, any backend).

Layer names follow Slim's scopes, relative to the network's top scope, with ``.`` for
``/`` (Keras forbids ``/`` in layer names): the convolution whose kernel Slim calls
``resnet_v1_50/block1/unit_1/bottleneck_v1/conv1/weights`` is the layer
``block1.unit_1.bottleneck_v1.conv1``, its batch norm ``...conv1.BatchNorm``. tfunite
reads ``.`` in a Keras layer name as ``/`` (`keras_names`), so a weight's Keras-side
name is ``block1/unit_1/bottleneck_v1/conv1/kernel`` and recipes map names with plain
regex rules.
"""

from __future__ import annotations

import re
from typing import Any

import tensorflow as tf
from tfunite.errors import TfuniteError

# Which inputs of each supported op carry activations (the rest are weights or constants).
_ACTIVATION_INPUTS: dict[str, Any] = {
    "Conv2D": (0,),
    "DepthwiseConv2dNative": (0,),
    "BiasAdd": (0,),
    "FusedBatchNormV3": (0,),
    "FusedBatchNorm": (0,),
    "Relu": (0,),
    "MaxPool": (0,),
    "AvgPool": (0,),
    "Pad": (0,),
    "ConcatV2": "all_but_last",
    "AddV2": (0, 1),
    "Add": (0, 1),
    "Mean": (0,),
    "Squeeze": (0,),
    "Identity": (0,),
}

_VARIABLE_OPS = ("VarHandleOp", "VariableV2", "Variable")


class TraceError(TfuniteError):
    """A Slim graph uses an op the Keras translator does not support."""


def keras_names(model: Any) -> dict[str, Any]:
    """Map tfunite's Keras-side weight names (``layer/with/scopes/weight``) to variables."""
    out = {}
    for layer in model.layers:
        for w in layer.weights:
            out[f"{layer.name.replace('.', '/')}/{w.name}"] = w
    return out


def _variable_name(t: tf.Tensor) -> str | None:
    op = t.op
    while op.type in ("Identity", "ReadVariableOp"):
        op = op.inputs[0].op
    if op.type in _VARIABLE_OPS:
        return op.name
    if op.type == "Placeholder" and op.name != "inputs":  # a weight (see _slim.SlimGraph)
        return op.name
    return None


def _const(t: tf.Tensor) -> Any:
    op = t.op
    while op.type == "Identity":
        op = op.inputs[0].op
    if op.type != "Const":
        raise TraceError(f"Expected a constant for {t.name}, got op type {op.type!r}.")
    return tf.make_ndarray(op.get_attr("value"))


def _activation_inputs(op: tf.Operation) -> list[tf.Tensor]:
    spec = _ACTIVATION_INPUTS.get(op.type)
    if spec is None:
        raise TraceError(
            f"Cannot translate Slim op {op.name!r} of type {op.type!r} into a Keras layer. "
            f"Supported op types: {sorted(_ACTIVATION_INPUTS)}. Fix: port this network with "
            "your own Keras model and rules (see tfunite/porting/README.md, 'Custom models')."
        )
    inputs = list(op.inputs)
    if spec == "all_but_last":
        return inputs[:-1]
    return [inputs[i] for i in spec]


# Bump when the layout format or the translation changes: cached layouts are then ignored.
LAYOUT_VERSION = 1

# Initializer arguments of the layers the translator makes, and their Keras defaults.
_INITIALIZERS: dict[str, dict[str, str]] = {
    "Conv2D": {"kernel_initializer": "glorot_uniform", "bias_initializer": "zeros"},
    "DepthwiseConv2D": {"depthwise_initializer": "glorot_uniform", "bias_initializer": "zeros"},
    "BatchNormalization": {
        "beta_initializer": "zeros",
        "gamma_initializer": "ones",
        "moving_mean_initializer": "zeros",
        "moving_variance_initializer": "ones",
    },
}


def slim_to_keras(
    graph: tf.Graph,
    inputs: tf.Tensor,
    output: tf.Tensor,
    scope: str,
    name: str,
    squeeze_output: bool = True,
) -> Any:
    """Build a Keras 3 functional model computing `output` from `inputs` of a Slim graph.

    Args:
        graph: the graph holding the Slim network (built with ``is_training=False``).
        inputs: the image placeholder, shape ``(batch, height, width, channels)``.
        output: the tensor to reproduce (the logits).
        scope: the network's top variable scope (``"resnet_v1_50"``), stripped from names.
        name: the Keras model's name.
        squeeze_output: flatten a ``(batch, 1, 1, classes)`` output to ``(batch, classes)``.

    Returns:
        A `keras.Model` with fresh weights; load them with `tfunite.porting.port`.
    """
    return build_layout(trace_layout(graph, inputs, output, scope, name, squeeze_output))


def trace_layout(
    graph: tf.Graph,
    inputs: tf.Tensor,
    output: tf.Tensor,
    scope: str,
    name: str,
    squeeze_output: bool = True,
) -> dict[str, Any]:
    """The Keras layout of a Slim graph, as JSON-able data (`build_layout` makes the model).

    ``{"version", "name", "input_shape", "layers": [{"class", "config", "inputs"}], "output"}``:
    one entry per Keras layer in creation order; ``config`` holds the layer's constructor
    arguments (with its ``name``), ``inputs`` the names of the layers (or ``"inputs"``)
    whose outputs it takes. Arguments the translator leaves at their Keras defaults (the
    initializers) are not stored.
    """
    prefix = scope.rstrip("/") + "/"

    def rel(op_name: str) -> str:
        op_name = op_name[len(prefix) :] if op_name.startswith(prefix) else op_name
        return op_name.replace("/", ".")

    def var_scope(var: str) -> str:
        return rel(var.rsplit("/", 1)[0])

    # Ops on the path from the inputs to the output, in graph (topological) order.
    needed: set[str] = set()
    stack = [output.op]
    while stack:
        op = stack.pop()
        if op.name in needed or op is inputs.op:
            continue
        needed.add(op.name)
        stack.extend(t.op for t in _activation_inputs(op))
    ops = [op for op in graph.get_operations() if op.name in needed]

    shape = [int(d) for d in inputs.shape.as_list()[1:]]
    tensors: dict[str, str] = {inputs.name: "inputs"}  # graph tensor -> Keras layer name
    layers: list[dict[str, Any]] = []
    fused: set[str] = set()

    def consumer_bias(op: tf.Operation) -> tf.Operation | None:
        users = op.outputs[0].consumers()
        if len(users) == 1 and users[0].type == "BiasAdd" and _variable_name(users[0].inputs[1]):
            return users[0]
        return None

    def add(cls: str, args: list[str], **config: Any) -> str:
        layers.append({"class": cls, "config": config, "inputs": args})
        return config["name"]

    for op in ops:
        if op.name in fused:
            continue
        t = op.type
        args = [tensors[i.name] for i in _activation_inputs(op)]
        out_op = op
        if t in ("Conv2D", "DepthwiseConv2dNative"):
            if op.get_attr("data_format") != b"NHWC":
                raise TraceError(f"Op {op.name!r}: only NHWC is supported.")
            kvar = _variable_name(op.inputs[1])
            if kvar is None:
                raise TraceError(f"Op {op.name!r}: the filter is not a variable.")
            kshape = op.inputs[1].shape.as_list()
            strides = list(op.get_attr("strides")[1:3])
            dil = list(op.get_attr("dilations")[1:3])
            padding = op.get_attr("padding").decode().lower()
            bias_op = consumer_bias(op)
            leaf = kvar.rsplit("/", 1)[-1]
            lname = (
                var_scope(kvar)
                if leaf == "weights"
                else (var_scope(kvar) + "." + leaf.replace("_weights", ""))
            )
            if bias_op is not None:
                fused.add(bias_op.name)
                out_op = bias_op
            common = {
                "kernel_size": kshape[:2],
                "strides": strides,
                "padding": padding,
                "dilation_rate": dil,
                "use_bias": bias_op is not None,
                "name": lname,
            }
            if t == "Conv2D":
                y = add("Conv2D", args[:1], filters=kshape[3], **common)
            else:
                y = add("DepthwiseConv2D", args[:1], depth_multiplier=kshape[3], **common)
        elif t in ("FusedBatchNormV3", "FusedBatchNorm"):
            if op.get_attr("is_training"):
                raise TraceError(f"Op {op.name!r}: build the Slim net with is_training=False.")
            gamma = _variable_name(op.inputs[1])
            beta = _variable_name(op.inputs[2])
            mean = _variable_name(op.inputs[3])
            y = add(
                "BatchNormalization",
                args[:1],
                axis=-1,
                epsilon=float(op.get_attr("epsilon")),
                center=beta is not None,
                scale=gamma is not None,
                name=var_scope(mean),
            )
        elif t == "Relu":
            y = add("ReLU", args[:1], name=rel(op.name))
        elif t in ("MaxPool", "AvgPool"):
            y = add(
                "MaxPooling2D" if t == "MaxPool" else "AveragePooling2D",
                args[:1],
                pool_size=list(op.get_attr("ksize")[1:3]),
                strides=list(op.get_attr("strides")[1:3]),
                padding=op.get_attr("padding").decode().lower(),
                name=rel(op.name),
            )
        elif t == "Pad":
            pads = _const(op.inputs[1]).tolist()
            if pads[0] != [0, 0] or pads[3] != [0, 0]:
                raise TraceError(f"Op {op.name!r}: only spatial padding is supported, got {pads}.")
            y = add("ZeroPadding2D", args[:1], padding=[pads[1], pads[2]], name=rel(op.name))
        elif t == "ConcatV2":
            axis = int(_const(op.inputs[-1]))
            y = add("Concatenate", args, axis=axis, name=rel(op.name))
        elif t in ("AddV2", "Add"):
            y = add("Add", args, name=rel(op.name))
        elif t == "Mean":
            axes = sorted(int(a) for a in _const(op.inputs[1]).ravel())
            if axes != [1, 2]:
                raise TraceError(f"Op {op.name!r}: only a spatial mean is supported, got {axes}.")
            y = add(
                "GlobalAveragePooling2D",
                args[:1],
                keepdims=bool(op.get_attr("keep_dims")),
                name=rel(op.name),
            )
        elif t == "Squeeze":
            target = [int(d) for d in op.outputs[0].shape.as_list()[1:]]
            y = add("Reshape", args[:1], target_shape=target, name=rel(op.name))
        elif t == "Identity":
            y = args[0]
        else:  # pragma: no cover - _activation_inputs raised already
            raise TraceError(f"Unsupported op {op.name!r} ({t}).")
        tensors[out_op.outputs[0].name] = y
        if out_op is not op:
            tensors[op.outputs[0].name] = y

    y = tensors[output.name]
    out_shape = output.shape.as_list()
    if squeeze_output and len(out_shape) == 4 and out_shape[1:3] == [1, 1]:
        y = add("Reshape", [y], target_shape=[int(out_shape[3])], name="SpatialSqueeze")
    return {
        "version": LAYOUT_VERSION,
        "name": re.sub(r"[^A-Za-z0-9_.-]", "_", name),
        "input_shape": shape,
        "layers": layers,
        "output": y,
    }


def _tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def build_layout(layout: dict[str, Any], fast_init: bool = True) -> Any:
    """The Keras 3 functional model of a `trace_layout` layout.

    With `fast_init`, weights are created filled with zeros, not random: every weight is overwritten by the port anyway, and random kernels cost
    about a fifth of the build. The layers' initializers are then set back to Keras'
    defaults, so the model's config (and a saved ``.keras`` file) is the one a plain
    construction gives.
    """
    import keras

    x_in = keras.Input(shape=tuple(layout["input_shape"]), name="inputs")
    outputs: dict[str, Any] = {"inputs": x_in}
    for entry in layout["layers"]:
        cls = entry["class"]
        config = {k: _tuples(v) for k, v in entry["config"].items()}
        inits = _INITIALIZERS.get(cls, {}) if fast_init else {}
        layer = getattr(keras.layers, cls)(**config, **dict.fromkeys(inits, "zeros"))
        args = [outputs[i] for i in entry["inputs"]]
        outputs[config["name"]] = layer(args if cls in ("Concatenate", "Add") else args[0])
        for attr, default in inits.items():
            setattr(layer, attr, keras.initializers.get(default))
    return keras.Model(x_in, outputs[layout["output"]], name=layout["name"])


def layer_for_tensor(t: tf.Tensor, scope: str) -> str:
    """The name of the traced Keras layer that computes Slim tensor `t`."""
    op = t.op
    while op.type == "Identity":
        op = op.inputs[0].op
    if op.type == "BiasAdd":
        op = op.inputs[0].op
        kvar = _variable_name(op.inputs[1])
        name = kvar.rsplit("/", 1)[0]
    elif op.type in ("Conv2D", "DepthwiseConv2dNative"):
        name = _variable_name(op.inputs[1]).rsplit("/", 1)[0]
    elif op.type.startswith("FusedBatchNorm"):
        name = _variable_name(op.inputs[3]).rsplit("/", 1)[0]
    else:
        name = op.name
    prefix = scope.rstrip("/") + "/"
    name = name[len(prefix) :] if name.startswith(prefix) else name
    return name.replace("/", ".")
