"""Keras 3 bridge: wraps a `keras.Layer` or `keras.Model` into an Owner.

Names are the layer paths inside the model (`dense/kernel`, `block/conv/bias`), with
auto-generated layer names renumbered per parent (tfunite/naming.py), so they do not
depend on what the process built before. Keras 3 does not run in TF1 graphs; an owner
used there raises GraphModeError suggesting tf_keras.
"""

from __future__ import annotations

from typing import Any, ClassVar

import keras
import tensorflow as tf
from tfunite.bridges import KERAS
from tfunite.checkpoint import object_paths
from tfunite.naming import legacy_h5_positions, stable_child_names, walk
from tfunite.owner import Owner


def _own_variables(layer: Any) -> list[tuple[str, Any]]:
    own = [
        (v.name, v) for v in list(layer._trainable_variables) + list(layer._non_trainable_variables)
    ]
    for i, generator in enumerate(getattr(layer, "_seed_generators", []) or []):
        prefix = "seed_generator" if i == 0 else f"seed_generator_{i}"
        own.append((f"{prefix}/{generator.state.name}", generator.state))
    return own


def _children(layer: Any) -> list[Any]:
    return list(layer._flatten_layers(include_self=False, recursive=False))


class KerasOwner(Owner):
    """Owner of a Keras 3 layer or model.

    Args:
        model: a built or unbuilt `keras.Layer` / `keras.Model`.
        name: the owner's name (defaults to the model's name).
        endpoints: for functional/Sequential models, record every layer's output of the
            last call in `owner.endpoints` (runs the model through a multi-output view).
    """

    framework: ClassVar[str] = KERAS.name
    supports_graph: ClassVar[bool] = KERAS.graph

    @classmethod
    def decline_reason(cls, obj: Any) -> str | None:
        if isinstance(obj, keras.Layer):
            return None
        return f"{type(obj).__qualname__} is not a keras.Layer"

    def __init__(self, model: Any, name: str | None = None, endpoints: bool = False) -> None:
        super().__init__(name or model.name)
        self.model = model
        self._want_endpoints = endpoints
        self._last_endpoints: dict[str, tf.Tensor] = {}
        self._feature_model: Any = None  # a keras.Model once built
        if model.built and model.variables:
            self.built = True
            self._check_unique()

    def _forward(self, inputs: Any, training: bool) -> Any:
        if self._want_endpoints and getattr(self.model, "inputs", None):
            if self._feature_model is None:
                layers = [
                    layer
                    for layer in self.model.layers
                    if not isinstance(layer, keras.layers.InputLayer)
                ]
                self._feature_model = keras.Model(
                    self.model.inputs, [layer.output for layer in layers]
                )
                self._feature_names = [name for name, _ in stable_child_names(layers)]
            outputs = self._feature_model(inputs, training=training)
            self._last_endpoints = dict(zip(self._feature_names, outputs))
            return outputs[-1]
        return self.model(inputs, training=training)

    def _collect(self) -> list[tuple[str, tf.Variable, bool]]:
        trainable = {id(v) for v in self.model.trainable_variables}
        listed = walk(self.model, _children, _own_variables)
        seen = {id(v) for _, v in listed}
        # Anything Keras tracks that the layer walk did not reach keeps Keras' own path.
        listed += [(v.path, v) for v in self.model.variables if id(v) not in seen]
        return [(name, v.value, id(v) in trainable) for name, v in listed]

    def _losses(self) -> list[tf.Tensor]:
        return list(self.model.losses)

    def _endpoints(self) -> dict[str, tf.Tensor]:
        return self._last_endpoints

    def _aliases(self, fmt: str) -> dict[str, str | None] | None:
        listed = walk(self.model, _children, _own_variables)
        if fmt == "object":
            paths = object_paths(self.model)
            return {name: paths.get(id(v)) for name, v in listed}
        if fmt == "keras_h5":
            paths = _h5_paths(self.model)
            return {name: paths.get(id(v)) for name, v in listed}
        if fmt == "legacy_h5":
            paths = legacy_h5_positions(getattr(self.model, "layers", [self.model]))
            return {name: paths.get(id(v)) for name, v in listed}
        return None


def _h5_paths(model: Any) -> dict[int, str]:
    """{id(variable): dataset path} as `model.save_weights('x.weights.h5')` writes it,
    computed by Keras' own saving walk with a recording store."""
    from keras.src.saving import saving_lib

    paths: dict[int, str] = {}

    class _Entry(dict):
        def __init__(self, path: str) -> None:
            super().__init__()
            self.path = path

        def __setitem__(self, key: str, value: Any) -> None:
            paths[id(value)] = "/".join(p for p in (self.path, "vars", str(key)) if p)

    class _Recorder(saving_lib.H5IOStore):
        def __init__(self) -> None:  # no file: records paths only
            pass

        def __bool__(self) -> bool:
            return True

        def make(self, path: str, metadata: Any = None) -> _Entry:
            return _Entry(path)

    saving_lib._save_state(model, _Recorder(), None, "", set())
    return paths
