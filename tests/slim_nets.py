"""Two small TF-Slim network functions written for tests/test_convert.py.

`lenet`: a LeNet-style classifier (two 5x5 convolutions with max pooling, a hidden fully
connected layer with dropout, linear logits and a softmax end point). `sepnet`: a
MobileNet-style net of depthwise-separable blocks (3x3 depthwise then 1x1 pointwise
convolution, each with batch norm and relu6), with an output stride (later strided
depthwise convolutions become atrous), optional explicit padding, and a head of global
average pooling, a 1x1 convolution for the logits and a squeeze. Both follow the Slim
conventions `tu.convert` relies on: ``fn(inputs, num_classes, is_training, ...,
scope=...) -> (logits, end_points)``, a ``default_image_size`` attribute, and an arg
scope function holding the layers' defaults.
"""

from __future__ import annotations

import tensorflow as tf
import tf_slim as slim

# --------------------------------------------------------------------------- LeNet-style


def lenet_arg_scope(weight_decay: float = 1e-4):
    """Defaults of `lenet`'s layers: ReLU, L2 weight decay, truncated normal init."""
    with slim.arg_scope(
        [slim.conv2d, slim.fully_connected],
        activation_fn=tf.nn.relu,
        weights_regularizer=slim.l2_regularizer(weight_decay),
        weights_initializer=tf.compat.v1.truncated_normal_initializer(stddev=0.05),
    ) as scope:
        return scope


def lenet(
    images,
    num_classes: int = 10,
    is_training: bool = False,
    keep_prob: float = 0.5,
    scope: str = "LeNet",
):
    """conv 5x5 (20) - pool - conv 5x5 (50) - pool - flatten - fc 256 - dropout - logits.

    A 1x1 input fails in the first pooling (VALID 2x2): a "negative dimension" error.
    """
    points = {}
    with tf.compat.v1.variable_scope(scope, [images]):
        x = slim.conv2d(images, 20, [5, 5], scope="conv1")
        x = points["pool1"] = slim.max_pool2d(x, [2, 2], stride=2, scope="pool1")
        x = slim.conv2d(x, 50, [5, 5], scope="conv2")
        x = points["pool2"] = slim.max_pool2d(x, [2, 2], stride=2, scope="pool2")
        x = points["flat"] = slim.flatten(x)
        x = points["fc3"] = slim.fully_connected(x, 256, scope="fc3")
        x = slim.dropout(x, keep_prob, is_training=is_training, scope="drop3")
        logits = slim.fully_connected(x, num_classes, activation_fn=None, scope="logits")
    points["Logits"] = logits
    points["Predictions"] = slim.softmax(logits, scope="Predictions")
    return logits, points


lenet.default_image_size = 28

# ----------------------------------------------------------------------- MobileNet-style

# (stride, output channels before the width multiplier) of each separable block
SEPNET_BLOCKS = ((1, 32), (2, 64), (1, 64), (2, 128), (1, 128), (2, 256), (1, 256))


def sepnet_arg_scope(is_training: bool = True, weight_decay: float = 4e-5, stddev: float = 0.1):
    """Defaults of `sepnet`'s layers: batch norm (scaled, centred) and relu6 after every
    convolution, L2 weight decay on the full convolutions only."""
    bn = {"is_training": is_training, "center": True, "scale": True, "decay": 0.99}
    with slim.arg_scope(
        [slim.conv2d, slim.separable_conv2d],
        weights_initializer=tf.compat.v1.truncated_normal_initializer(stddev=stddev),
        activation_fn=tf.nn.relu6,
        normalizer_fn=slim.batch_norm,
    ):
        with slim.arg_scope([slim.batch_norm], **bn):
            with slim.arg_scope(
                [slim.conv2d], weights_regularizer=slim.l2_regularizer(weight_decay)
            ):
                with slim.arg_scope([slim.separable_conv2d], weights_regularizer=None) as sc:
                    return sc


def _pad_for(x, kernel: int, rate: int, name: str):
    """Zero-pad `x` as SAME would for a stride-1 `kernel` at dilation `rate`, so that a
    VALID convolution after it gives the same size whatever the stride."""
    span = kernel + (kernel - 1) * (rate - 1)
    before = (span - 1) // 2
    after = span - 1 - before
    return tf.pad(x, [[0, 0], [before, after], [before, after], [0, 0]], name=name)


def sepnet_base(
    inputs,
    final_endpoint: str = "block7_pw",
    width: float = 1.0,
    min_channels: int = 8,
    output_stride: int | None = None,
    explicit_padding: bool = False,
    scope: str = "SepNet",
):
    """The feature extractor of `sepnet`: a 3x3 stride-2 stem convolution then the
    `SEPNET_BLOCKS`, each a depthwise (``blockN_dw``) then a pointwise (``blockN_pw``)
    convolution. Once the product of the strides reaches `output_stride`, the strided
    depthwise convolutions that follow run at stride 1 and dilate the later ones
    instead. Returns ``(features, end_points)``, stopping at `final_endpoint`."""
    if output_stride is not None and output_stride not in (4, 8, 16, 32):
        raise ValueError(f"output_stride must be 4, 8, 16, 32 or None, got {output_stride}")

    with tf.compat.v1.variable_scope(scope, [inputs]):
        return _features(
            inputs, final_endpoint, width, min_channels, output_stride, explicit_padding
        )


def _features(inputs, final_endpoint, width, min_channels, output_stride, explicit_padding):
    def channels(c: int) -> int:
        return max(min_channels, int(c * width))

    padding = "VALID" if explicit_padding else "SAME"
    points = {}
    with slim.arg_scope([slim.conv2d, slim.separable_conv2d], padding=padding):
        x = _pad_for(inputs, 3, 1, "stem_pad") if explicit_padding else inputs
        x = points["stem"] = slim.conv2d(x, channels(32), [3, 3], stride=2, scope="stem")
        if final_endpoint == "stem":
            return x, points
        reached, rate = 2, 1
        for i, (stride, out) in enumerate(SEPNET_BLOCKS, start=1):
            dw_rate = 1
            if output_stride is not None and reached >= output_stride:
                dw_rate, rate, stride = rate, rate * stride, 1
            else:
                reached *= stride
            if explicit_padding:
                x = _pad_for(x, 3, dw_rate, f"block{i}_pad")
            name = f"block{i}_dw"
            x = points[name] = slim.separable_conv2d(
                x, None, [3, 3], depth_multiplier=1, stride=stride, rate=dw_rate, scope=name
            )
            if final_endpoint == name:
                return x, points
            name = f"block{i}_pw"
            x = points[name] = slim.conv2d(x, channels(out), [1, 1], stride=1, scope=name)
            if final_endpoint == name:
                return x, points
    raise ValueError(f"Unknown final_endpoint {final_endpoint!r} for sepnet_base")


def sepnet(
    inputs,
    num_classes: int = 1000,
    is_training: bool = False,
    keep_prob: float = 0.999,
    width: float = 1.0,
    squeeze: bool = True,
    scope: str = "SepNet",
):
    """`sepnet_base` then global average pooling, dropout, 1x1 convolution logits (no
    batch norm, no activation) and a squeeze of the 1x1 spatial dimensions."""
    with tf.compat.v1.variable_scope(scope, [inputs]):
        with slim.arg_scope([slim.batch_norm, slim.dropout], is_training=is_training):
            x, points = _features(inputs, "block7_pw", width, 8, None, False)
            with tf.compat.v1.variable_scope("Head"):
                x = points["global_pool"] = tf.reduce_mean(
                    x, [1, 2], keepdims=True, name="global_pool"
                )
                x = slim.dropout(x, keep_prob, scope="dropout")
                logits = slim.conv2d(
                    x, num_classes, [1, 1], activation_fn=None, normalizer_fn=None, scope="logits"
                )
                if squeeze:
                    logits = tf.squeeze(logits, [1, 2], name="squeeze")
    points["Logits"] = logits
    points["Predictions"] = slim.softmax(logits, scope="Predictions")
    return logits, points


sepnet.default_image_size = 96
