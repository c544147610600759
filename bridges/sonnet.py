"""Sonnet 2 bridge: wraps an `snt.Module` into an Owner.

Names are Sonnet's own variable names without `:0` (`mlp/linear_0/w`). Sonnet does not
uniquify module names, so two unnamed sibling modules give the same names
(`linear/w` twice); the owner then names every variable by its attribute path under
the module instead (`my_net/layers/0/w`), which is unique and stable.
"""

from __future__ import annotations

from typing import Any

import sonnet as snt
import tensorflow as tf
from tfunite.checkpoint import object_paths
from tfunite.naming import attribute_names, training_kwargs
from tfunite.owner import Owner, canonical


class SonnetOwner(Owner):
    """Owner of a Sonnet 2 module; called with `is_training=` when the module takes it."""

    framework = "sonnet"

    @classmethod
    def decline_reason(cls, obj: Any) -> str | None:
        return None if isinstance(obj, snt.Module) else f"{type(obj).__qualname__} is not an snt.Module"

    def __init__(self, module: Any, name: str | None = None):
        super().__init__(name or module.name)
        # Built on the first call: Sonnet modules create some variables in __init__
        # (BatchNorm's counters) and the rest on first use, so "has variables" is no signal.
        self.module = module

    def _forward(self, inputs: Any, training: bool) -> Any:
        return self.module(inputs, **training_kwargs(self.module.__call__, training))

    def _collect(self) -> list[tuple[str, tf.Variable, bool]]:
        trainable = {id(v) for v in tf.Module.trainable_variables.fget(self.module)}
        variables = list(tf.Module.variables.fget(self.module))
        names = [canonical(v.name) for v in variables]
        if len(set(names)) == len(names):
            listed = list(zip(names, variables))
        else:
            listed = attribute_names(self.module, self.module.name + "/")
        return [(n, v, id(v) in trainable) for n, v in listed]

    def _aliases(self, fmt: str) -> dict[str, str | None] | None:
        if fmt != "object":
            return None
        paths = object_paths(self.module)
        return {name: paths.get(id(v)) for name, v, _ in self._collect()}
