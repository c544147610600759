"""tf_keras (Keras 2) bridge: wraps a `tf_keras.layers.Layer` or `tf_keras.Model`.

Names are the layer paths inside the model (`dense/kernel`), auto-generated layer names
renumbered per parent (tfunite/naming.py); this equals tf_keras' own variable names
for a model built first in a fresh process. Runs eagerly, in `tf.function`, and in a
TF1 graph + Session (build the model inside the graph).
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tf_keras
from tfunite.checkpoint import object_paths
from tfunite.naming import legacy_h5_positions, walk
from tfunite.owner import Owner, canonical


def _own_variables(layer: Any) -> list[tuple[str, Any]]:
    weights = list(layer._trainable_weights) + list(layer._non_trainable_weights)
    return [(canonical(v.name).split("/")[-1], v) for v in weights]


def _children(layer: Any) -> list[Any]:
    return list(layer._flatten_layers(include_self=False, recursive=False))


class TfKerasOwner(Owner):
    """Owner of a tf_keras layer or model."""

    framework = "tf_keras"

    @classmethod
    def decline_reason(cls, obj: Any) -> str | None:
        if isinstance(obj, tf_keras.layers.Layer):
            return None
        return f"{type(obj).__qualname__} is not a tf_keras.layers.Layer"

    def __init__(self, model: Any, name: str | None = None):
        super().__init__(name or model.name)
        self.model = model
        if model.built and model.variables:
            self.built = True
            self._graph = None if tf.executing_eagerly() else tf.compat.v1.get_default_graph()
            self._check_unique()

    def _forward(self, inputs: Any, training: bool) -> Any:
        return self.model(inputs, training=training)

    def _collect(self) -> list[tuple[str, tf.Variable, bool]]:
        trainable = {id(v) for v in self.model.trainable_weights}
        listed = walk(self.model, _children, _own_variables)
        seen = {id(v) for _, v in listed}
        listed += [(canonical(v.name), v) for v in self.model.weights if id(v) not in seen]
        return [(name, v, id(v) in trainable) for name, v in listed]

    def _losses(self) -> list[tf.Tensor]:
        return list(self.model.losses)

    def _updates(self) -> list[Any]:
        """BatchNorm moving-statistics updates to run with a TF1 train op."""
        return [] if tf.executing_eagerly() else list(self.model.updates)

    def _aliases(self, fmt: str) -> dict[str, str | None] | None:
        if fmt == "object":
            paths = object_paths(self.model)
        elif fmt == "legacy_h5":
            paths = legacy_h5_positions(self.model.layers)
        else:
            return None
        return {name: paths.get(id(v)) for name, v, _ in self._collect()}
