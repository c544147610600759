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

import numpy as np
import tensorflow as tf
from tfunite.errors import TfuniteError

# The graph op types the translator turns into Keras layers (or leaves out: Identity, and
# TFLearn's training-mode `If` resolved to its inference branch).
SUPPORTED_OPS: dict[str, str] = {
    "Conv2D": "Conv2D (with its BiasAdd; strided, atrous, the pointwise half of a separable one)",
    "DepthwiseConv2dNative": "DepthwiseConv2D (with its BiasAdd; strided or atrous)",
    "SpaceToBatchND": "the dilation of an atrous convolution (SpaceToBatchND, conv, BatchToSpaceND)",
    "BatchToSpaceND": "the end of an atrous convolution (see SpaceToBatchND)",
    "MatMul": "Dense (with its BiasAdd; also the tf.tensordot of slim.fully_connected on a "
    "rank > 2 input, a Dense on its last axis)",
    "BiasAdd": "the bias of the convolution or Dense layer it follows",
    "FusedBatchNormV3": "BatchNormalization",
    "FusedBatchNorm": "BatchNormalization",
    "Mul": "BatchNormalization (the x * rsqrt(variance + eps) * gamma of an unfused batch "
    "norm), Rescaling (x times a constant scalar) or Multiply (of two activations)",
    "Relu": "ReLU",
    "Relu6": "ReLU(max_value=6)",
    "Elu": "ELU",
    "LeakyRelu": "LeakyReLU",
    "Sigmoid": "Activation('sigmoid')",
    "Tanh": "Activation('tanh')",
    "Softmax": "Softmax",
    "MaxPool": "MaxPooling2D",
    "AvgPool": "AveragePooling2D",
    "Mean": "GlobalAveragePooling2D (a mean over height and width)",
    "Pad": "ZeroPadding2D",
    "ConcatV2": "Concatenate",
    "AddV2": "Add (a residual add of two activations)",
    "Add": "Add (a residual add of two activations)",
    "Reshape": "Reshape or Flatten",
    "Squeeze": "Reshape",
    "Identity": "(nothing: dropout at inference, tf.identity)",
    "If": "(nothing: TFLearn's training-mode switch, inference branch)",
    "StatelessIf": "(nothing: TFLearn's training-mode switch, inference branch)",
}

_VARIABLE_OPS = ("VarHandleOp", "VariableV2", "Variable")
_ACTIVATIONS = {
    "Relu": ("ReLU", {}),
    "Relu6": ("ReLU", {"max_value": 6.0}),
    "Elu": ("ELU", {}),
    "Sigmoid": ("Activation", {"activation": "sigmoid"}),
    "Tanh": ("Activation", {"activation": "tanh"}),
    "Softmax": ("Softmax", {"axis": -1}),
}


class TraceError(TfuniteError):
    """A Slim graph uses an op the Keras translator does not support."""


def keras_names(model: Any) -> dict[str, Any]:
    """Map tfunite's Keras-side weight names (``layer/with/scopes/weight``) to variables."""
    out = {}
    for layer in model.layers:
        for w in layer.weights:
            out[f"{layer.name.replace('.', '/')}/{w.name}"] = w
    return out


def _unsupported(op: tf.Operation, why: str = "") -> TraceError:
    scope = op.name.rsplit("/", 1)[0] if "/" in op.name else "(top level)"
    listed = ", ".join(sorted(SUPPORTED_OPS))
    return TraceError(
        f"Cannot convert op {op.name!r} of type {op.type!r} (scope {scope!r}) into a "
        f"built-in Keras layer{': ' + why if why else ''}. Supported op types: {listed}. "
        "Fix: express this part with supported Slim layers, or port the network onto your "
        "own Keras model with rules (see tfunite/porting/README.md, 'Custom models')."
    )


def _if_branch_input(op: tf.Operation, index: int) -> tf.Tensor:
    """The input of `op` (an ``If``) that its inference branch returns as output `index`.

    TFLearn switches dropout and batch norm statistics on its training-mode variable
    (``is_training``); at inference the ``else`` branch runs, which passes inputs through.
    """
    pred = op.inputs[0]
    while pred.op.type in ("Identity", "ReadVariableOp"):
        pred = pred.op.inputs[0]
    if pred.op.type == "Const":
        branch = (
            "then_branch" if bool(tf.make_ndarray(pred.op.get_attr("value"))) else "else_branch"
        )
    elif pred.op.name.rsplit("/", 1)[-1] == "is_training":
        branch = "else_branch"
    else:
        raise _unsupported(op, "its condition is not a constant or TFLearn's training mode")
    fdef = op.graph._get_function(op.get_attr(branch).name).definition
    args = [a.name for a in fdef.signature.input_arg]
    nodes = {n.name: n for n in fdef.node_def}
    ref = fdef.ret[fdef.signature.output_arg[index].name]
    while True:
        node = ref.split(":", 1)[0]
        if node in args:
            return op.inputs[1 + args.index(node)]
        n = nodes.get(node)
        if n is None or n.op not in ("Identity", "ReadVariableOp"):
            raise _unsupported(op, f"its {branch} computes its output {index}, not a pass-through")
        ref = n.input[0]


def _src(t: tf.Tensor) -> tf.Tensor:
    """`t` seen through Identity ops and TFLearn's resolved training-mode switches."""
    while True:
        if t.op.type == "Identity":
            t = t.op.inputs[0]
        elif t.op.type in ("If", "StatelessIf"):
            t = _if_branch_input(t.op, t.value_index)
        else:
            return t


def _variable_name(t: tf.Tensor) -> str | None:
    op = _src(t).op
    while op.type in ("Identity", "ReadVariableOp"):
        op = _src(op.inputs[0]).op
    if op.type in _VARIABLE_OPS:
        return op.name
    if op.type == "Placeholder" and op.name != "inputs":  # a weight (see _slim.SlimGraph)
        return op.name
    return None


def _scalar(inputs: Any) -> float | None:
    """The one-element float constant among `inputs` (a scale), or None."""
    for t in inputs:
        try:
            value = _src(t).op.type == "Const" and _const(t)
        except TraceError:
            continue
        if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind == "f":
            return float(value.ravel()[0])
    return None


def _const(t: tf.Tensor) -> Any:
    op = _src(t).op
    if op.type != "Const":
        raise TraceError(f"Expected a constant for {t.name}, got op type {op.type!r}.")
    return tf.make_ndarray(op.get_attr("value"))


def _weight_side(t: tf.Tensor) -> tuple[dict[str, str], list[tf.Operation]]:
    """The variables (by leaf name) and ops of the weights-only subgraph computing `t`."""
    found: dict[str, str] = {}
    ops: list[tf.Operation] = []
    stack, seen = [t], set()
    while stack:
        x = _src(stack.pop())
        if x.op.name in seen:
            continue
        seen.add(x.op.name)
        var = _variable_name(x)
        if var is not None:
            found.setdefault(var.rsplit("/", 1)[-1], var)
            continue
        ops.append(x.op)
        stack.extend(x.op.inputs)
    return found, ops


def _pick(found: dict[str, str], *keys: str) -> str | None:
    return next((found[k] for k in keys if k in found), None)


# Bump when the layout format or the translation changes: cached layouts are then ignored.
LAYOUT_VERSION = 2

# Initializer arguments of the layers the translator makes, and their Keras defaults.
_INITIALIZERS: dict[str, dict[str, str]] = {
    "Conv2D": {"kernel_initializer": "glorot_uniform", "bias_initializer": "zeros"},
    "DepthwiseConv2D": {"depthwise_initializer": "glorot_uniform", "bias_initializer": "zeros"},
    "Dense": {"kernel_initializer": "glorot_uniform", "bias_initializer": "zeros"},
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


def _static(t: tf.Tensor, op: tf.Operation) -> list[int]:
    dims = t.shape.as_list()
    if dims is None or any(d is None for d in dims[1:]):
        raise _unsupported(op, f"its output shape {dims} is not fully known (fix the input size)")
    return [int(d) for d in dims[1:]]


def trace_layout(
    graph: tf.Graph,
    inputs: tf.Tensor,
    output: tf.Tensor,
    scope: str,
    name: str,
    squeeze_output: bool = True,
) -> dict[str, Any]:
    """The Keras layout of a Slim graph, as JSON-able data (`build_layout` makes the model).

    ``{"version", "name", "input_shape", "layers": [{"class", "config", "inputs",
    "weights", "tensor"}], "output"}``: one entry per Keras layer in creation order;
    ``config`` holds the layer's constructor arguments (with its ``name``), ``inputs`` the
    names of the layers (or ``"inputs"``) whose outputs it takes, ``weights`` the graph
    variable feeding each of its Keras weights (``{"kernel": "net/conv1/weights"}``) and
    ``tensor`` the graph tensor it computes. Arguments the translator leaves at their
    Keras defaults (the initializers) are not stored.
    """
    prefix = scope.rstrip("/") + "/" if scope else ""

    def rel(op_name: str) -> str:
        op_name = op_name[len(prefix) :] if prefix and op_name.startswith(prefix) else op_name
        return op_name.replace("/", ".")

    def var_scope(var: str) -> str:
        return rel(var.rsplit("/", 1)[0])

    # Which ops compute from the inputs (activations); the rest only read weights.
    dep: set[str] = {inputs.op.name}

    def source_op(t: tf.Tensor) -> str:
        try:
            return _src(t).op.name
        except TraceError:  # an If that cannot be resolved: refused if it is needed
            return t.op.name

    for op in graph.get_operations():
        if any(source_op(i) in dep for i in op.inputs):
            dep.add(op.name)

    def is_act(t: tf.Tensor) -> bool:
        return _src(t).op.name in dep

    # tf.tensordot over the last axis (slim.fully_connected on a rank > 2 input): its
    # group of shape ops, transpose, reshapes and MatMul is one Dense on the last axis.
    # Output op name -> (the MatMul, the input tensor).
    tensordots: dict[str, tuple[tf.Operation, tf.Tensor]] = {}
    for op in graph.get_operations():
        if op.type != "MatMul" or not op.name.endswith("/Tensordot/MatMul"):
            continue
        group = op.name[: -len("/MatMul")]
        try:
            out_op = graph.get_operation_by_name(group)
        except KeyError:
            continue
        members = [g for g in graph.get_operations() if g.name.startswith(group + "/")]
        outside = {
            _src(i).name: _src(i)
            for g in members
            for i in g.inputs
            if is_act(i) and not _src(i).op.name.startswith(group + "/")
        }
        kvar = _variable_name(op.inputs[1])
        if len(outside) != 1 or kvar is None or op.get_attr("transpose_b"):
            continue
        (x,) = outside.values()
        x_shape, y_shape = x.shape.as_list(), out_op.outputs[0].shape.as_list()
        units = op.inputs[1].shape.as_list()
        if x_shape[:-1] == y_shape[:-1] and units == [x_shape[-1], y_shape[-1]]:
            tensordots[out_op.name] = (op, x)

    def act_inputs(op: tf.Operation) -> list[tf.Tensor]:
        if op.name in tensordots:
            return [tensordots[op.name][1]]
        if op.type not in SUPPORTED_OPS:
            raise _unsupported(op)
        return [_src(i) for i in op.inputs if is_act(i)]

    # Ops on the path from the inputs to the output, in graph (topological) order.
    needed: set[str] = set()
    stack = [_src(output).op]
    while stack:
        op = stack.pop()
        if op.name in needed or op is inputs.op:
            continue
        needed.add(op.name)
        stack.extend(t.op for t in act_inputs(op))
    if inputs.op.name not in dep or not (needed and _src(output).op.name in dep):
        raise TraceError(f"The output {output.name} does not depend on the inputs.")
    ops = [op for op in graph.get_operations() if op.name in needed]

    shape = [int(d) for d in inputs.shape.as_list()[1:]]
    tensors: dict[str, str] = {inputs.name: "inputs"}  # graph tensor -> Keras layer name
    layers: list[dict[str, Any]] = []
    fused: set[str] = set()
    names: set[str] = {"inputs"}

    def consumer(t: tf.Tensor, types: tuple[str, ...]) -> tf.Operation | None:
        users = [u for u in t.consumers() if u.name in needed]
        if len(users) == 1 and users[0].type in types:
            return users[0]
        return None

    def bias_of(t: tf.Tensor) -> tf.Operation | None:
        user = consumer(t, ("BiasAdd",))
        if user is not None and _variable_name(user.inputs[1]):
            return user
        return None

    def add(cls: str, args: list[str], tensor: tf.Tensor, weights=None, **config: Any) -> str:
        base = config["name"] or "layer"
        lname, k = base, 0
        while lname in names:
            k += 1
            lname = f"{base}_{k}"
        names.add(lname)
        config["name"] = lname
        entry = {"class": cls, "config": config, "inputs": args, "tensor": tensor.name}
        entry["weights"] = {k: v for k, v in (weights or {}).items() if v is not None}
        layers.append(entry)
        return lname

    def conv(op: tf.Operation, x: str, dil: list[int], padding: str, last: tf.Operation) -> tuple:
        if op.get_attr("data_format") != b"NHWC":
            raise _unsupported(op, "only NHWC (channels last) is supported")
        kvar = _variable_name(op.inputs[1])
        if kvar is None:
            raise _unsupported(op, "its filter is not a variable")
        kshape = op.inputs[1].shape.as_list()
        bias_op = bias_of(last.outputs[0])
        leaf = kvar.rsplit("/", 1)[-1]
        lname = (
            var_scope(kvar)
            if leaf in ("weights", "W", "kernel")
            else (var_scope(kvar) + "." + leaf.replace("_weights", ""))
        )
        out = last
        if bias_op is not None:
            fused.add(bias_op.name)
            out = bias_op
        common = {
            "kernel_size": kshape[:2],
            "strides": list(op.get_attr("strides")[1:3]),
            "padding": padding,
            "dilation_rate": dil,
            "use_bias": bias_op is not None,
            "name": lname,
        }
        w = {"kernel": kvar, "bias": _variable_name(bias_op.inputs[1]) if bias_op else None}
        if op.type == "Conv2D":
            y = add("Conv2D", [x], out.outputs[0], w, filters=kshape[3], **common)
        else:
            y = add("DepthwiseConv2D", [x], out.outputs[0], w, depth_multiplier=kshape[3], **common)
        return y, out

    def batch_norm(op, x, out, eps, mean, var, gamma, beta, scope_of) -> str:
        w = {"gamma": gamma, "beta": beta, "moving_mean": mean, "moving_variance": var}
        if mean is None or var is None:
            raise _unsupported(op, "its mean and variance are not variables")
        return add(
            "BatchNormalization",
            [x],
            out.outputs[0],
            w,
            axis=-1,
            epsilon=eps,
            center=beta is not None,
            scale=gamma is not None,
            name=scope_of,
        )

    flat_bn: set[str] = set()  # Reshapes around a 2-D batch norm, left out
    for op in ops:
        if op.name in fused:
            continue
        t = op.type
        act = act_inputs(op)
        args = [tensors[i.name] for i in act]
        out_op = op
        if t in ("Conv2D", "DepthwiseConv2dNative"):
            y, out_op = conv(
                op,
                args[0],
                list(op.get_attr("dilations")[1:3]),
                op.get_attr("padding").decode().lower(),
                op,
            )
        elif t == "SpaceToBatchND":  # atrous: SpaceToBatchND -> conv (VALID) -> BatchToSpaceND
            cv = consumer(op.outputs[0], ("Conv2D", "DepthwiseConv2dNative"))
            b2s = consumer(cv.outputs[0], ("BatchToSpaceND",)) if cv is not None else None
            if b2s is None:
                raise _unsupported(op, "it is not the dilation of a convolution")
            rate = [int(r) for r in _const(op.inputs[1]).ravel()]
            same = _static(b2s.outputs[0], b2s)[:2] == _static(act[0], op)[:2]
            fused.update((cv.name, b2s.name))
            y, out_op = conv(cv, args[0], rate, "same" if same else "valid", b2s)
        elif op.name in tensordots:  # a Dense on the last axis of a rank > 2 input
            matmul = tensordots[op.name][0]
            kvar = _variable_name(matmul.inputs[1])
            bias_op = bias_of(op.outputs[0])
            if bias_op is not None:
                fused.add(bias_op.name)
                out_op = bias_op
            y = add(
                "Dense",
                args,
                out_op.outputs[0],
                {"kernel": kvar, "bias": _variable_name(bias_op.inputs[1]) if bias_op else None},
                units=int(matmul.inputs[1].shape[1]),
                use_bias=bias_op is not None,
                name=var_scope(kvar or op.name),
            )
        elif t == "MatMul":
            if op.get_attr("transpose_a") or op.get_attr("transpose_b") or len(act) != 1:
                raise _unsupported(op, "only activations @ kernel variable is supported")
            kvar = _variable_name(op.inputs[1])
            if kvar is None:
                raise _unsupported(op, "its kernel is not a variable")
            bias_op = bias_of(op.outputs[0])
            if bias_op is not None:
                fused.add(bias_op.name)
                out_op = bias_op
            bvar = _variable_name(bias_op.inputs[1]) if bias_op is not None else None
            y = add(
                "Dense",
                args,
                out_op.outputs[0],
                {"kernel": kvar, "bias": bvar},
                units=int(op.inputs[1].shape[1]),
                use_bias=bias_op is not None,
                name=var_scope(kvar),
            )
        elif t in ("FusedBatchNormV3", "FusedBatchNorm"):
            if op.get_attr("is_training"):
                raise _unsupported(op, "build the network with is_training=False")
            mean = _variable_name(op.inputs[3])
            y = batch_norm(
                op,
                args[0],
                op,
                float(op.get_attr("epsilon")),
                mean,
                _variable_name(op.inputs[4]),
                _variable_name(op.inputs[1]),
                _variable_name(op.inputs[2]),
                var_scope(mean or op.name),
            )
        elif t == "Mul" and len(act) == 2:  # a gate: x * y
            y = add("Multiply", args, op.outputs[0], name=rel(op.name))
        elif t == "Mul" and _scalar(op.inputs):  # a residual scale: x * 0.17
            y = add(
                "Rescaling",
                args[:1],
                op.outputs[0],
                scale=_scalar(op.inputs),
                offset=0.0,
                name=rel(op.name),
            )
        elif t == "Mul":  # an unfused batch norm: x * inv + (beta - mean * inv)
            other = [i for i in op.inputs if not is_act(i)]
            found, wops = _weight_side(other[0]) if len(other) == 1 else ({}, [])
            rsqrt = [o for o in wops if o.type == "Rsqrt"]
            tail = consumer(op.outputs[0], ("AddV2", "Add"))
            if not rsqrt or tail is None or all(is_act(i) for i in tail.inputs):
                raise _unsupported(op, "only the scale of an unfused batch norm is supported")
            found.update(_weight_side([i for i in tail.inputs if not is_act(i)][0])[0])
            eps_t = [i for i in rsqrt[0].inputs[0].op.inputs if _src(i).op.type == "Const"]
            eps = float(_const(eps_t[0])) if eps_t else 0.0

            mean, var = (
                _pick(found, "moving_mean", "mean"),
                _pick(found, "moving_variance", "variance"),
            )
            fused.add(tail.name)
            out_op = tail
            y = batch_norm(
                op,
                args[0],
                tail,
                eps,
                mean,
                var,
                _pick(found, "gamma", "scale"),
                _pick(found, "beta", "offset"),
                var_scope(mean or op.name),
            )
        elif t in _ACTIVATIONS:
            cls, extra = _ACTIVATIONS[t]
            y = add(cls, args[:1], op.outputs[0], name=rel(op.name), **extra)
        elif t == "LeakyRelu":
            y = add(
                "LeakyReLU",
                args[:1],
                op.outputs[0],
                name=rel(op.name),
                negative_slope=float(op.get_attr("alpha")),
            )
        elif t in ("MaxPool", "AvgPool"):
            if op.get_attr("data_format") != b"NHWC":
                raise _unsupported(op, "only NHWC (channels last) is supported")
            y = add(
                "MaxPooling2D" if t == "MaxPool" else "AveragePooling2D",
                args[:1],
                op.outputs[0],
                pool_size=list(op.get_attr("ksize")[1:3]),
                strides=list(op.get_attr("strides")[1:3]),
                padding=op.get_attr("padding").decode().lower(),
                name=rel(op.name),
            )
        elif t == "Pad":
            pads = _const(op.inputs[1]).tolist()
            if len(pads) != 4 or pads[0] != [0, 0] or pads[3] != [0, 0]:
                raise _unsupported(op, f"only spatial padding of NHWC is supported, got {pads}")
            y = add(
                "ZeroPadding2D",
                args[:1],
                op.outputs[0],
                padding=[pads[1], pads[2]],
                name=rel(op.name),
            )
        elif t == "ConcatV2":
            if len(act) != len(op.inputs) - 1:
                raise _unsupported(op, "it concatenates a constant or a weight")
            axis = int(_const(op.inputs[-1]))
            y = add("Concatenate", args, op.outputs[0], axis=axis, name=rel(op.name))
        elif t in ("AddV2", "Add"):
            if len(act) != 2:
                raise _unsupported(op, "only the sum of two activations is supported")
            y = add("Add", args, op.outputs[0], name=rel(op.name))
        elif t == "Mean":
            axes = sorted(int(a) % 4 for a in _const(op.inputs[1]).ravel())
            if axes != [1, 2] or len(act[0].shape) != 4:
                raise _unsupported(
                    op, f"only a mean over height and width is supported, got {axes}"
                )
            y = add(
                "GlobalAveragePooling2D",
                args[:1],
                op.outputs[0],
                keepdims=bool(op.get_attr("keep_dims")),
                name=rel(op.name),
            )
        elif t in ("Squeeze", "Reshape"):
            target = _static(op.outputs[0], op)
            src_rank = len(act[0].shape)
            users = [u for u in op.outputs[0].consumers() if u.name in needed]
            if (
                t == "Reshape"
                and src_rank == 2
                and len(target) == 3
                and target[:2] == [1, 1]
                and len(users) == 1
                and users[0].type.startswith("FusedBatchNorm")
            ):
                flat_bn.add(users[0].name)  # slim's 2-D batch norm: Keras' runs on 2-D
                y = args[0]
            elif src_rank == 4 and len(target) == 1 and act[0].op.name in flat_bn:
                y = args[0]
            elif len(target) == 1 and src_rank > 2 and t == "Reshape":
                y = add("Flatten", args[:1], op.outputs[0], name=rel(op.name))
            else:
                y = add("Reshape", args[:1], op.outputs[0], target_shape=target, name=rel(op.name))
        elif t == "BiasAdd":
            raise _unsupported(op, "a bias add is supported right after a convolution or MatMul")
        else:
            raise _unsupported(op)
        tensors[out_op.outputs[0].name] = y
        if out_op is not op:
            tensors[op.outputs[0].name] = y

    y = tensors[_src(output).name]
    out_shape = output.shape.as_list()
    if squeeze_output and len(out_shape) == 4 and out_shape[1:3] == [1, 1]:
        y = add("Reshape", [y], output, target_shape=[int(out_shape[3])], name="SpatialSqueeze")
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
        outputs[config["name"]] = layer(
            args if cls in ("Concatenate", "Add", "Multiply") else args[0]
        )
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
