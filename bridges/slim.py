"""The TF-Slim bridge: `tu.slim(fn, name, arg_scope=None)` wraps Slim code into an owner.

`fn(inputs, is_training=...)` builds with `tf_slim` and returns `net` or
`(net, end_points)`, like every net in `tf_slim.nets`, which can be passed directly:

>>> from tf_slim.nets import vgg
>>> trunk = tu.slim(vgg.vgg_16, name="vgg_16", arg_scope=vgg.vgg_arg_scope())  # built when called
>>> import tf_slim as slim
>>> def head(inputs, is_training):
...     net = slim.fully_connected(inputs, 8, scope="fc1")
...     net = slim.dropout(net, is_training=is_training)
...     return slim.fully_connected(net, 3, activation_fn=None, scope="logits")
>>> owner = tu.slim(head, name="head")
>>> logits = owner(tf.ones([2, 4]), training=True)  # eager, tf.function or TF1 graph
>>> logits.shape, list(owner.variables)
(TensorShape([2, 3]), ['fc1/weights', 'fc1/biases', 'logits/weights', 'logits/biases'])

`training` reaches `fn` as `is_training=training` when `fn` has an `is_training`
parameter (the `tf_slim.nets` functions do; their second positional parameter is
`num_classes`), as `training=training` when it has a `training` one, and otherwise as
the second positional argument (`fn(inputs, flag)`). Use `functools.partial(vgg.vgg_16,
num_classes=10)` for other keyword arguments.

Variables are created once, on the first call, and reused on every later call; their
canonical names are exactly the TF1 names (a Slim checkpoint's keys). Eagerly and in
`tf.function` this runs on `bridges._tf1.TF1Variables`; in a TF1 graph it runs natively
(Saver, `UPDATE_OPS` and `REGULARIZATION_LOSSES` work as TF1 code expects), and Slim
code built after the owner in the same graph gets the next default names
(`fully_connected_1`), as it would natively.

- `owner.endpoints`: the end_points of the last call (returned by `fn`, or collected
  from the `*end_points` collections of the call), with no collection growing between
  calls.
- `owner.losses`: the regularizers Slim's arg_scopes attached (weight decay).
- Batch-norm statistics update on `training=True` eagerly and in `tf.function`. In a
  TF1 graph, train with `tu.Optimizer(tf_keras_or_sonnet_optimizer, owner).train_op(loss)`:
  one op that applies the gradients and runs the `UPDATE_OPS` of the owner's calls
  (with plain TF1 optimizers, run the `UPDATE_OPS` collection with the train op).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, ClassVar

import tensorflow as tf
from tfunite import fixes
from tfunite.bridges import SLIM
from tfunite.bridges._tf1 import CallRecord, TF1Variables
from tfunite.naming import training_kwargs
from tfunite.owner import Owner

_LOSSES_KEY = tf.compat.v1.GraphKeys.REGULARIZATION_LOSSES
_UPDATES_KEY = tf.compat.v1.GraphKeys.UPDATE_OPS


def _import_slim() -> Any:
    try:
        import tf_slim
    except ImportError as e:
        from tfunite.errors import missing_dependency

        raise missing_dependency("tf-slim", "slim", "tu.slim") from e
    return tf_slim


class SlimOwner(Owner):
    """Owns the variables of a TF-Slim function `fn(inputs, is_training=...)`.

    Args:
        fn: builds the net with tf_slim; returns `net` or `(net, end_points)`. Gets the
            training flag as `is_training=` (or `training=`) if it has such a
            parameter, else as its second positional argument.
        name: the owner's name (not a scope: the variables keep Slim's own names).
        arg_scope: an arg_scope dict (e.g. `vgg.vgg_arg_scope()`) applied around `fn`.
    """

    # The framework's import name: messages say "(tf_slim)", as TF1 code knows it.
    framework: ClassVar[str] = SLIM.import_name
    supports_graph: ClassVar[bool] = SLIM.graph

    @classmethod
    def decline_reason(cls, obj: Any) -> str | None:
        return "TF-Slim code is a function: wrap it with tu.slim(fn, name=...), not tu.wrap"

    def __init__(self, fn: Callable[..., Any], name: str, arg_scope: Any = None) -> None:
        super().__init__(name)
        if not callable(fn):
            raise TypeError(
                f"tu.slim(fn, name={name!r}): expected fn to be a function "
                f"fn(inputs, is_training=...) -> net or (net, end_points); got "
                f"{type(fn).__name__}. Fix: pass e.g. tf_slim.nets.vgg.vgg_16 or a def."
            )
        if arg_scope is not None and not isinstance(arg_scope, dict):
            raise TypeError(
                f"tu.slim(fn, name={name!r}): expected arg_scope to be the dict an "
                f"arg_scope function returns (e.g. vgg.vgg_arg_scope()); got "
                f"{type(arg_scope).__name__}. Fix: call the arg_scope function: "
                "arg_scope=vgg.vgg_arg_scope()."
            )
        fixes.ensure("slim")
        self._slim = _import_slim()
        self._fn = fn
        # `is_training=` by keyword where fn has it: tf_slim.nets functions take
        # (inputs, num_classes, is_training), so a positional flag would be num_classes.
        self._training_key = next(iter(training_kwargs(fn, False)), None)
        self._arg_scope = arg_scope
        self._tf1 = TF1Variables(owner=name, framework=self.framework)
        self._last_endpoints: dict[str, tf.Tensor] = {}
        self._graph_losses: list[tf.Tensor] = []
        self._graph_updates: list[Any] = []

    # ------------------------------------------------------------------ hooks
    def _forward(self, inputs: Any, training: bool) -> Any:
        first = not self._tf1.frozen
        with self._tf1.call() as record:
            with contextlib.ExitStack() as stack:
                if self._arg_scope is not None:
                    stack.enter_context(self._slim.arg_scope(self._arg_scope))
                # Slim code is TF1 graph code: autograph has nothing to convert in it, and
                # converting a deep net's every layer call makes tf.function tracing ~10x
                # slower (resnet_v1_152: 40 s -> 7 s).
                fn = tf.autograph.experimental.do_not_convert(self._fn)
                if self._training_key is None:
                    out = fn(inputs, training)
                else:
                    out = fn(inputs, **{self._training_key: training})
        net, end_points = out if _is_pair(out) else (out, None)
        self._last_endpoints = (
            dict(end_points) if end_points is not None else _collected_endpoints(record)
        )
        if record.graph is not None:
            if first:
                self._graph_losses = list(record.collections.get(_LOSSES_KEY, []))
            self._graph_updates.extend(
                u
                for u in record.collections.get(_UPDATES_KEY, [])
                if not any(u is seen for seen in self._graph_updates)
            )
        return net

    def _collect(self) -> list[tuple[str, tf.Variable, bool]]:
        return [(name, var, bool(var.trainable)) for name, var in self._tf1.variables]

    def _losses(self) -> list[tf.Tensor]:
        if self._graph is not None:
            return list(self._graph_losses)
        return self._tf1.regularization_losses()

    def _endpoints(self) -> dict[str, tf.Tensor]:
        return self._last_endpoints

    def _updates(self) -> list[Any]:
        """TF1 graph: the `UPDATE_OPS` (batch-norm moving statistics) the owner's calls
        created, which `tu.Optimizer.train_op` runs with the gradient step. Eagerly and
        in `tf.function` the updates run during the call, so this is empty."""
        return list(self._graph_updates)

    def _aliases(self, fmt: str) -> dict[str, str | None] | None:
        return None  # Slim has only TF1 name-based checkpoints: canonical names are the keys


def _is_pair(out: Any) -> bool:
    return isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict)


def _collected_endpoints(record: CallRecord) -> dict[str, tf.Tensor]:
    """end_points from the `*end_points` collections the call wrote (Slim's convention)."""
    points: dict[str, tf.Tensor] = {}
    for key, items in record.collections.items():
        if not key.endswith("end_points"):
            continue
        for item in items:
            for alias in getattr(item, "aliases", []) or []:
                points[alias] = item
    return points
