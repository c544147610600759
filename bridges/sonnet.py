"""Sonnet 2 bridge: wraps an `snt.Module` into an Owner.

Names follow Sonnet's module names (`mlp/linear_0/w`), built from the module tree
rather than from `variable.name`: Sonnet does not uniquify module names (two unnamed
`snt.Linear` siblings both give `linear/w`) while a TF1 graph does (`linear_1/w`), so
names taken from the tree, with a repeated sibling name suffixed `_1`, `_2` in
attribute order, are unique and the same eagerly and in a graph.

In a TF1 graph the module runs inside a `tf.function`: Sonnet is TF2 code whose state
updates (BatchNorm's moving averages) rely on automatic control dependencies, and would
otherwise be built but never run by a Session.

Sonnet's once-per-process TF2 check fails for a first module built inside a TF1 graph;
the legacy fix in `sonnet_fixes.py` (applied when the bridge is first used, or by
`tfunite.fixes.ensure("sonnet")`) runs it eagerly instead.
"""

from __future__ import annotations

from typing import Any, ClassVar

import sonnet as snt
import tensorflow as tf
from tfunite import fixes
from tfunite.bridges import SONNET
from tfunite.checkpoint import object_paths
from tfunite.naming import distinct_child_names, training_kwargs, walk
from tfunite.owner import Owner, canonical


def _children(module: tf.Module) -> list[tf.Module]:
    return list(module._flatten(recursive=False, predicate=lambda m: isinstance(m, tf.Module)))


def _own_variables(module: tf.Module) -> list[tuple[str, tf.Variable]]:
    own = module._flatten(recursive=False, predicate=lambda v: isinstance(v, tf.Variable))
    return [(canonical(v.name).split("/")[-1], v) for v in own]


class SonnetOwner(Owner):
    """Owner of a Sonnet 2 module; called with `is_training=` when the module takes it."""

    framework: ClassVar[str] = SONNET.name
    supports_graph: ClassVar[bool] = SONNET.graph

    @classmethod
    def decline_reason(cls, obj: Any) -> str | None:
        return (
            None
            if isinstance(obj, snt.Module)
            else f"{type(obj).__qualname__} is not an snt.Module"
        )

    def __init__(self, module: Any, name: str | None = None) -> None:
        fixes.ensure("sonnet")
        super().__init__(name or module.name)
        # Built on the first call: Sonnet modules create some variables in __init__
        # (BatchNorm's counters) and the rest on first use, so "has variables" is no signal.
        self.module = module
        self._graph_fns: dict[bool, Any] = {}

    def _forward(self, inputs: Any, training: bool) -> Any:
        kwargs = training_kwargs(self.module.__call__, training)
        if (
            isinstance(self.module, snt.nets.MLP)
            and getattr(self.module, "_dropout_rate", None) is None
        ):
            kwargs = {}  # MLP refuses is_training unless it has dropout (nothing depends on it)
        if tf.executing_eagerly() or tf.compat.v1.executing_eagerly_outside_functions():
            return self.module(inputs, **kwargs)
        if training not in self._graph_fns:  # TF1 graph: trace once per mode
            self._graph_fns[training] = tf.function(
                lambda x: self.module(x, **kwargs), autograph=False
            )
        return self._graph_fns[training](inputs)

    def _collect(self) -> list[tuple[str, tf.Variable, bool]]:
        trainable = {id(v) for v in tf.Module.trainable_variables.fget(self.module)}
        listed = walk(self.module, _children, _own_variables, distinct_child_names)
        return [(f"{self.module.name}/{n}", v, id(v) in trainable) for n, v in listed]

    def _aliases(self, fmt: str) -> dict[str, str | None] | None:
        if fmt != "object":
            return None
        paths = object_paths(self.module)
        return {name: paths.get(id(v)) for name, v, _ in self._collect()}
