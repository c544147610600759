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
    import keras

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

    shape = tuple(inputs.shape.as_list()[1:])
    x_in = keras.Input(shape=shape, name="inputs")
    tensors: dict[str, Any] = {inputs.name: x_in}
    fused: set[str] = set()

    def consumer_bias(op: tf.Operation) -> tf.Operation | None:
        users = op.outputs[0].consumers()
        if len(users) == 1 and users[0].type == "BiasAdd" and _variable_name(users[0].inputs[1]):
            return users[0]
        return None

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
            strides = tuple(op.get_attr("strides")[1:3])
            dil = tuple(op.get_attr("dilations")[1:3])
            padding = op.get_attr("padding").decode().lower()
            bias_op = consumer_bias(op)
            leaf = kvar.rsplit("/", 1)[-1]
            lname = (
                var_scope(kvar)
                if leaf == "weights"
                else (var_scope(kvar) + "." + leaf.replace("_weights", ""))
            )
            if t == "Conv2D":
                layer = keras.layers.Conv2D(
                    kshape[3],
                    kshape[:2],
                    strides=strides,
                    padding=padding,
                    dilation_rate=dil,
                    use_bias=bias_op is not None,
                    name=lname,
                )
            else:
                layer = keras.layers.DepthwiseConv2D(
                    kshape[:2],
                    strides=strides,
                    padding=padding,
                    depth_multiplier=kshape[3],
                    dilation_rate=dil,
                    use_bias=bias_op is not None,
                    name=lname,
                )
            if bias_op is not None:
                fused.add(bias_op.name)
                out_op = bias_op
            y = layer(args[0])
        elif t in ("FusedBatchNormV3", "FusedBatchNorm"):
            if op.get_attr("is_training"):
                raise TraceError(f"Op {op.name!r}: build the Slim net with is_training=False.")
            gamma = _variable_name(op.inputs[1])
            beta = _variable_name(op.inputs[2])
            mean = _variable_name(op.inputs[3])
            lname = var_scope(mean)
            layer = keras.layers.BatchNormalization(
                axis=-1,
                epsilon=float(op.get_attr("epsilon")),
                center=beta is not None,
                scale=gamma is not None,
                name=lname,
            )
            y = layer(args[0])
        elif t == "Relu":
            y = keras.layers.ReLU(name=rel(op.name))(args[0])
        elif t in ("MaxPool", "AvgPool"):
            cls = keras.layers.MaxPooling2D if t == "MaxPool" else keras.layers.AveragePooling2D
            y = cls(
                tuple(op.get_attr("ksize")[1:3]),
                strides=tuple(op.get_attr("strides")[1:3]),
                padding=op.get_attr("padding").decode().lower(),
                name=rel(op.name),
            )(args[0])
        elif t == "Pad":
            pads = _const(op.inputs[1]).tolist()
            if pads[0] != [0, 0] or pads[3] != [0, 0]:
                raise TraceError(f"Op {op.name!r}: only spatial padding is supported, got {pads}.")
            y = keras.layers.ZeroPadding2D((tuple(pads[1]), tuple(pads[2])), name=rel(op.name))(
                args[0]
            )
        elif t == "ConcatV2":
            axis = int(_const(op.inputs[-1]))
            y = keras.layers.Concatenate(axis=axis, name=rel(op.name))(args)
        elif t in ("AddV2", "Add"):
            y = keras.layers.Add(name=rel(op.name))(args)
        elif t == "Mean":
            axes = sorted(int(a) for a in _const(op.inputs[1]).ravel())
            if axes != [1, 2]:
                raise TraceError(f"Op {op.name!r}: only a spatial mean is supported, got {axes}.")
            y = keras.layers.GlobalAveragePooling2D(
                keepdims=bool(op.get_attr("keep_dims")), name=rel(op.name)
            )(args[0])
        elif t == "Squeeze":
            target = tuple(op.outputs[0].shape.as_list()[1:])
            y = keras.layers.Reshape(target, name=rel(op.name))(args[0])
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
        y = keras.layers.Reshape((out_shape[3],), name="SpatialSqueeze")(y)
    return keras.Model(x_in, y, name=re.sub(r"[^A-Za-z0-9_.-]", "_", name))


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
