"""A small custom Slim net as a model-zoo net is written (conv + batch norm, a global
mean, a 1x1 conv classifier squeezed), on 1-channel inputs, with its porting `Recipe`
``ZOO`` and Keras twin. `tests/test_zoo.py` trains it the way the Slim model zoo's
``train_image_classifier.py`` does; the CLI loads ``ZOO`` as
``tests/zoo_recipe.py:ZOO`` or ``tests.zoo_recipe:ZOO``.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
from tfunite.porting import BuildSpec, Recipe
from tfunite.rules import Squeeze


def zoo_net(inputs, num_classes=5, is_training=False, scope="zoo"):
    import tf_slim as slim

    bn = {"is_training": is_training, "decay": 0.9}
    with tf.compat.v1.variable_scope(scope, "zoo", [inputs]):
        with slim.arg_scope(
            [slim.conv2d], normalizer_fn=slim.batch_norm, normalizer_params=bn, padding="SAME"
        ):
            net = slim.conv2d(inputs, 4, [3, 3], stride=2, scope="conv1")
            net = slim.conv2d(net, 8, [3, 3], scope="conv2")
        net = tf.reduce_mean(net, [1, 2], keepdims=True, name="global_pool")
        logits = slim.conv2d(
            net, num_classes, [1, 1], activation_fn=None, normalizer_fn=None, scope="logits"
        )
        logits = tf.squeeze(logits, [1, 2], name="SpatialSqueeze")
    return logits, {f"{scope}/conv2": net}


def zoo_keras(spec: BuildSpec) -> Any:
    import keras

    layers = [keras.Input(spec.input_shape)]
    for name, filters, stride in (("conv1", 4, 2), ("conv2", 8, 1)):
        layers += [
            keras.layers.Conv2D(filters, 3, stride, "same", use_bias=False, name=name),
            keras.layers.BatchNormalization(epsilon=1e-3, scale=False, name=f"{name}.BatchNorm"),
            keras.layers.ReLU(),
        ]
    layers += [
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(spec.num_classes, name="logits"),
    ]
    return keras.Sequential(layers, name="zoo")


ZOO = Recipe(
    name="custom:zoo",
    net=zoo_net,
    scope="zoo",
    target="a Keras Sequential twin of zoo_net",
    build=zoo_keras,
    rules=(
        (r"{scope}/(.+)/weights", r"\1/kernel"),
        (r"{scope}/(.+)/biases", r"\1/bias"),
        (r"{scope}/(.+)/(beta|moving_mean|moving_variance)", r"\1/\2"),
    ),
    transforms=((r"{scope}/logits/weights", Squeeze((0, 1))),),
    logits=(r"{scope}/logits/(weights|biases)",),
    default_size=16,
    min_size=4,
    channels=1,
    any_size=True,
)

NOT_A_RECIPE = "zoo"
