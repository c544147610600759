"""The compat cases: one small model per bridge, named by the bridge.

Each bridge's record (`tfunite.registry.Bridge`, registered in bridges/__init__.py)
names its case as `compat_case = "tfunite.tools.compat.cases:<bridge>"`; `case_for(bridge)`
resolves it. A case holds only what is code: how to build the model (`build`), its input
batch (`example`), the plain framework code in a TF1 graph (`tf1`, for Slim and TFLearn)
and, rarely, a `gate` saying why the case cannot run although its framework imports. The
facts about the framework (import name, pip distribution and extra, whether it runs in a
TF1 graph, its native checkpoint formats) come from the record, which `case_for` binds to
the case it returns.

The compatibility probes (`tfunite compat`) and the golden checkpoints (maint/golden.py,
tests/golden) build these models.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tfunite.registry import Bridge


class CaseError(LookupError):
    """A bridge's record names no compat case, or one that does not resolve to a `Case`."""


@dataclass(frozen=True)
class Case:
    """How to build a small model for one bridge.

    `build()` returns a fresh owner (not yet built) and the framework's own object (the
    Keras model, the Sonnet module, the Slim/TFLearn function), so that probes can write
    the framework's native checkpoints. `example()` is the input batch. `record` is the
    bridge's record, bound by `case_for`.
    """

    build: Callable[[], tuple[Any, Any]]
    example: Callable[[], Any]
    tf1: Callable[[Any], Any] | None = None  # the plain framework code in a TF1 graph
    gate: Callable[[], str | None] | None = None  # why it cannot run here, or None
    record: Bridge | None = field(default=None, compare=False)

    @property
    def bridge(self) -> str:
        """The name of the bridge this case is bound to."""
        if self.record is None:
            raise CaseError("this Case is not bound to a bridge record; get it with case_for()")
        return self.record.name


def case_for(bridge: str) -> Case:
    """The case of a registered bridge, resolved from its record's `compat_case`
    ("module:attr") and bound to the record."""
    import tfunite.bridges  # noqa: F401  (registers the bridges; imports no framework)
    from tfunite.registry import BRIDGES

    record = BRIDGES.get(bridge)
    if record is None:
        raise CaseError(
            f"no bridge {bridge!r} is registered (registered: {', '.join(BRIDGES)}); "
            "register its record in tfunite.bridges (bridges/__init__.py)"
        )
    return resolve(record)


def resolve(record: Bridge) -> Case:
    """Resolve `record.compat_case` ("module:attr") to a Case bound to `record`."""
    spec = record.compat_case
    fix = (
        f"Fix: define `{record.name} = Case(...)` in tfunite.tools.compat.cases "
        f"(tools/compat/cases.py) and set the record's "
        f'compat_case="tfunite.tools.compat.cases:{record.name}".'
    )
    if not spec:
        raise CaseError(f"bridge record {record.name!r} has no compat_case. {fix}")
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise CaseError(
            f"bridge record {record.name!r}: compat_case {spec!r} is not 'module:attr'. {fix}"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise CaseError(
            f"bridge record {record.name!r}: compat_case {spec!r} does not resolve: "
            f"cannot import {module_name} ({e}). {fix}"
        ) from e
    case = getattr(module, attr, None)
    if not isinstance(case, Case):
        got = "nothing" if case is None else type(case).__name__
        raise CaseError(
            f"bridge record {record.name!r}: compat_case {spec!r} does not resolve to a Case: "
            f"{module_name}.{attr} is {got}. {fix}"
        )
    return replace(case, record=record)


# ---------------------------------------------------------------------------- builders
def _mlp_example() -> Any:
    import numpy as np

    return (np.arange(8, dtype=np.float32).reshape(2, 4) - 3.5) / 4.0


def _keras_mlp(keras: Any) -> tuple[Any, Any]:
    """The same functional MLP in `keras` (Keras 3 or tf_keras), wrapped."""
    import tfunite as tu

    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(8, activation="tanh", name="hidden")(inputs)
    # Auto-named layers: their names (`batch_normalization`, `dense`) must not depend on
    # what the process built before (Keras numbers them per process).
    normed = keras.layers.BatchNormalization()(hidden)
    outputs = keras.layers.Dense(3)(normed)
    model = keras.Model(inputs, outputs, name="mlp")
    return tu.wrap(model, name="mlp"), model


def _build_keras() -> tuple[Any, Any]:
    import keras

    return _keras_mlp(keras)


def keras3_gate() -> str | None:
    """Keras 2 installed as `keras` (TF <= 2.15): the Keras 3 bridge cannot run."""
    try:
        from importlib.metadata import version

        installed = version("keras")
        major = int(installed.split(".")[0])
    except Exception:
        return None
    if major < 3:
        return (
            f"keras {installed} is Keras 2; the keras bridge needs Keras 3, which this "
            "TensorFlow does not support (use the tf_keras bridge)"
        )
    return None


def _build_tf_keras() -> tuple[Any, Any]:
    import tf_keras

    return _keras_mlp(tf_keras)


def _build_sonnet() -> tuple[Any, Any]:
    import sonnet as snt
    import tensorflow as tf
    import tfunite as tu

    class Net(snt.Module):
        """An MLP whose attribute names differ from its module names: canonical names
        follow Sonnet's module names (`mlp/linear`, `mlp/linear_1`), checkpoints of
        `tf.train.Checkpoint` the attributes (`hidden`, `out`)."""

        def __init__(self):
            super().__init__(name="mlp")
            self.hidden = snt.Linear(8)
            self.out = snt.Linear(3)

        def __call__(self, x):
            return self.out(tf.tanh(self.hidden(x)))

    module = Net()
    return tu.wrap(module, name="mlp"), module


def _build_tf_module() -> tuple[Any, Any]:
    import tensorflow as tf
    import tfunite as tu

    class Affine(tf.Module):
        """y = tanh(x @ w + b) @ v, variables created on the first call."""

        def __init__(self):
            super().__init__(name="affine")
            self.w = self.b = self.v = None

        def __call__(self, x):
            if self.w is None:
                init = tf.random_normal_initializer(stddev=0.5)
                self.w = tf.Variable(init([4, 8]), name="w")
                self.b = tf.Variable(tf.zeros([8]), name="b")
                self.v = tf.Variable(init([8, 3]), name="v")
            return tf.tanh(x @ self.w + self.b) @ self.v

    module = Affine()
    return tu.wrap(module, name="affine"), module


def slim_mlp(inputs: Any, is_training: Any) -> Any:
    """A two-layer Slim MLP with batch_norm, the layer every Slim net uses."""
    import tensorflow as tf
    import tf_slim as slim

    net = slim.fully_connected(
        inputs,
        8,
        activation_fn=tf.tanh,
        scope="fc1",
        normalizer_fn=slim.batch_norm,
        normalizer_params={"is_training": is_training, "scale": True},
    )
    return slim.fully_connected(net, 3, activation_fn=None, scope="logits")


def slim_graph(inputs: Any) -> Any:
    """The plain Slim model in a TF1 graph (inference mode)."""
    return slim_mlp(inputs, False)


def _build_slim() -> tuple[Any, Any]:
    import tfunite as tu

    return tu.slim(slim_mlp, name="mlp"), slim_mlp


def tflearn_mlp(inputs: Any) -> Any:
    """A two-layer TFLearn MLP."""
    import tflearn

    net = tflearn.fully_connected(inputs, 8, activation="tanh", scope="fc1")
    return tflearn.fully_connected(net, 3, activation="linear", scope="logits")


def tflearn_graph(inputs: Any) -> Any:
    """The plain TFLearn model in a TF1 graph, with TFLearn's own training flag."""
    import tflearn

    tflearn.config.init_training_mode()  # what tflearn.DNN does: `is_training` is in its checkpoints
    return tflearn_mlp(inputs)


def _build_tflearn() -> tuple[Any, Any]:
    import tfunite as tu

    return tu.tflearn(tflearn_mlp, name="mlp"), tflearn_mlp


# ---------------------------------------------------------------------------- the cases
keras = Case(_build_keras, _mlp_example, gate=keras3_gate)
tf_keras = Case(_build_tf_keras, _mlp_example)
sonnet = Case(_build_sonnet, _mlp_example)
slim = Case(_build_slim, _mlp_example, tf1=slim_graph)
tflearn = Case(_build_tflearn, _mlp_example, tf1=tflearn_graph)
tf_module = Case(_build_tf_module, _mlp_example)
