"""Plain `tf.Module` bridge: the fallback for any TF object that tracks its variables.

Names are attribute paths (`layers/0/w`), since a plain tf.Variable's own name
(`Variable:0`) is neither unique nor meaningful.
"""

from __future__ import annotations

from typing import Any, ClassVar

import tensorflow as tf
from tfunite.bridges import TF_MODULE
from tfunite.checkpoint import object_paths
from tfunite.naming import attribute_names, training_kwargs
from tfunite.owner import Owner


class ModuleOwner(Owner):
    """Owner of a plain `tf.Module` (called as `module(x)`, with `training=` if accepted)."""

    framework: ClassVar[str] = TF_MODULE.name
    supports_graph: ClassVar[bool] = TF_MODULE.graph

    @classmethod
    def decline_reason(cls, obj: Any) -> str | None:
        return (
            None if isinstance(obj, tf.Module) else f"{type(obj).__qualname__} is not a tf.Module"
        )

    def __init__(self, module: tf.Module, name: str | None = None) -> None:
        super().__init__(name or module.name)
        self.module = module
        if module.variables:
            self.built = True
            self._check_unique()

    def _forward(self, inputs: Any, training: bool) -> Any:
        return self.module(inputs, **training_kwargs(self.module.__call__, training))

    def _collect(self) -> list[tuple[str, tf.Variable, bool]]:
        trainable = {id(v) for v in self.module.trainable_variables}
        return [(n, v, id(v) in trainable) for n, v in attribute_names(self.module, "")]

    def _aliases(self, fmt: str) -> dict[str, str | None] | None:
        if fmt != "object":
            return None
        paths = object_paths(self.module)
        return {name: paths.get(id(v)) for name, v, _ in self._collect()}
