"""Importable owner factories for tests/test_keras_layer.py, the bench and the compat
probe: a `.keras` file stores a `tu.keras_layer` factory as "module:qualname", and a
fresh process imports it from here."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import sonnet as snt
import tensorflow as tf
import tf_slim as slim
import tfunite as tu


def _trunk_fn(inputs: Any, is_training: bool) -> Any:
    return slim.fully_connected(
        inputs,
        8,
        scope="fc1",
        normalizer_fn=slim.batch_norm,
        normalizer_params={"is_training": is_training, "decay": 0.9},
        weights_regularizer=slim.l2_regularizer(0.01),
    )


def slim_trunk() -> tu.Owner:
    """A Slim feature extractor: fully connected + batch norm + an L2 regularizer."""
    return tu.slim(_trunk_fn, name="trunk")


class BNHead(snt.Module):
    """A Sonnet head with batch norm, taking `is_training`."""

    def __init__(self) -> None:
        super().__init__(name="bn_head")
        self.linear = snt.Linear(6, name="linear")
        self.bn = snt.BatchNorm(create_scale=True, create_offset=True, decay_rate=0.9, name="bn")
        self.out = snt.Linear(3, name="out")

    def __call__(self, x: tf.Tensor, is_training: bool) -> tf.Tensor:
        return self.out(tf.nn.relu(self.bn(self.linear(x), is_training=is_training)))


def sonnet_head() -> tu.Owner:
    """A Sonnet head with batch norm."""
    return tu.wrap(BNHead(), name="head")


def mixed_model() -> keras.Model:
    """Slim trunk -> Sonnet head -> Keras Dense, as a functional model (factories set,
    so it saves as .keras)."""
    inputs = keras.Input((4,), name="x")
    features = tu.keras_layer(factory=slim_trunk, input_shape=(4,))(inputs)
    hidden = tu.keras_layer(factory=sonnet_head, input_shape=(8,))(features)
    outputs = keras.layers.Dense(2, name="logits")(hidden)
    return keras.Model(inputs, outputs, name="mixed")


def data(n: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = np.stack([x[:, 0] - x[:, 1], x[:, 2] * 0.5], axis=1).astype(np.float32)
    return x, y
