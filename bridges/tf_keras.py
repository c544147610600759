"""tf_keras (Keras 2) bridge: wraps a `tf_keras.layers.Layer` or `tf_keras.Model`.

Names are the layer paths inside the model (`dense/kernel`), auto-generated layer names
renumbered per parent (tfunite/naming.py); this equals tf_keras' own variable names
for a model built first in a fresh process. Runs eagerly, in `tf.function`, and in a
TF1 graph + Session (build the model inside the graph).
"""

from __future__ import annotations

from typing import Any, ClassVar

import tensorflow as tf
import tf_keras
from tfunite.bridges import TF_KERAS
from tfunite.checkpoint import object_paths
from tfunite.naming import legacy_h5_positions, walk
from tfunite.owner import Owner, canonical, outer_graph


def _own_variables(layer: Any) -> list[tuple[str, Any]]:
    weights = list(layer._trainable_weights) + list(layer._non_trainable_weights)
    return [(canonical(v.name).split("/")[-1], v) for v in weights]


def _children(layer: Any) -> list[Any]:
    return list(layer._flatten_layers(include_self=False, recursive=False))


class TfKerasOwner(Owner):
    """Owner of a tf_keras layer or model."""

    framework: ClassVar[str] = TF_KERAS.name
    supports_graph: ClassVar[bool] = TF_KERAS.graph

    @classmethod
    def decline_reason(cls, obj: Any) -> str | None:
        if isinstance(obj, tf_keras.layers.Layer):
            return None
        return f"{type(obj).__qualname__} is not a tf_keras.layers.Layer"

    def __init__(self, model: Any, name: str | None = None) -> None:
        super().__init__(name or model.name)
        self.model = model
        self._graph_updates: list[Any] = []
        if model.built and model.variables:
            self.built = True
            self._graph = None if tf.executing_eagerly() else tf.compat.v1.get_default_graph()
            self._check_unique()

    def _forward(self, inputs: Any, training: bool) -> Any:
        if outer_graph() is None:
            return self.model(inputs, training=training)
        # TF1 graph: `model.updates` also holds the updates of calls the owner did not
        # make (a functional model's construction on its Input placeholders), which a
        # train op cannot run without feeding them; keep those of the owner's calls.
        before = {id(u) for u in self.model.updates}
        outputs = self.model(inputs, training=training)
        self._graph_updates += [u for u in self.model.updates if id(u) not in before]
        return outputs

    def _collect(self) -> list[tuple[str, tf.Variable, bool]]:
        trainable = {id(v) for v in self.model.trainable_weights}
        listed = walk(self.model, _children, _own_variables)
        seen = {id(v) for _, v in listed}
        listed += [(canonical(v.name), v) for v in self.model.weights if id(v) not in seen]
        return [(name, v, id(v) in trainable) for name, v in listed]

    def _losses(self) -> list[tf.Tensor]:
        return list(self.model.losses)

    def _updates(self) -> list[Any]:
        """TF1 graph: the BatchNorm moving-statistics updates of the owner's calls, to run
        with the train op. Eagerly and in `tf.function` they run during the call."""
        return list(self._graph_updates)

    def _aliases(self, fmt: str) -> dict[str, str | None] | None:
        if fmt == "object":
            paths = object_paths(self.model)
        elif fmt == "keras_h5":
            paths = _h5_paths(self.model)
        elif fmt == "legacy_h5":
            paths = legacy_h5_positions(self.model.layers)
        else:
            return None
        return {name: paths.get(id(v)) for name, v, _ in self._collect()}


def _h5_paths(model: Any) -> dict[int, str]:
    """{id(variable): dataset path} as tf_keras' `save_weights('x.weights.h5')` (and the
    `.keras` archive) writes it, computed by tf_keras' own saving walk.

    tf_keras hands the store numpy copies, not variables, so the layer being saved is
    recognised by the walk marking it visited right after `store.make(path)`; a layer
    with its own `save_own_variables` is left out (its entries then show as unexpected).
    """
    from tf_keras.src.saving import saving_lib

    layers = {id(layer): layer for layer in model._flatten_layers(include_self=True)}
    default = tf_keras.layers.Layer.save_own_variables
    pending: list[str] = []
    paths: dict[int, str] = {}

    class _Visited(set):
        def add(self, key: int) -> None:
            super().add(key)
            layer = layers.get(key)
            if pending and layer is not None and type(layer).save_own_variables is default:
                weights = list(layer._trainable_weights) + list(layer._non_trainable_weights)
                for i, weight in enumerate(weights):
                    paths[id(weight)] = "/".join(p for p in (pending[-1], "vars", str(i)) if p)
            pending.clear()

    class _Recorder(saving_lib.H5IOStore):
        def __init__(self) -> None:  # no file: records paths only
            pass

        def __bool__(self) -> bool:
            return True

        def make(self, path: str) -> dict[str, Any]:
            pending.append(path)
            return {}

    saving_lib._save_state(model, _Recorder(), None, "", _Visited())
    return paths
