"""The TFLearn bridge: `tu.tflearn(fn, name)` wraps TFLearn layer code into an Owner.

`fn(inputs) -> net` is ordinary TFLearn code (`tflearn.fully_connected`,
`tflearn.conv_2d`, `tflearn.lstm`, ...). The owner runs it eagerly, inside
`tf.function` and in a TF1 `tf.Graph`, with its variables created on the first call
and reused afterwards, named exactly as TFLearn names them in TF1 (`FullyConnected/W`,
`Conv2D/b`, ...). The machinery that runs `get_variable`-style code eagerly is shared
with the Slim bridge (`tfunite.bridges._tf1`).

What the owner adds on top of TFLearn:

- **Training mode.** TFLearn keeps it in a global `is_training` variable stored in a
  TF1 collection, owned by nobody. The owner has its own `is_training` variable
  (non-trainable, in `owner.variables`, checkpointed under TFLearn's own name), sets it
  to `training=` on every call and shows it to the layers (dropout, batch
  normalization) in place of the global one.
- **Regularizers.** `regularizer='L2'` on a layer adds one tensor to a global
  collection; eagerly that tensor is computed once and never again, so the loss is
  silently lost. The owner keeps the regularizer functions and `owner.losses`
  recomputes them from the current weights.
- **Legacy fixes** (`tflearn_fixes.py`, which lists the global state they patch),
  applied when the bridge is first used (`tfunite.fixes.ensure`) and listed by
  `tfunite doctor`: TFLearn imports again on current TensorFlow and
  Pillow, `import tflearn` no longer switches eager execution off for the process,
  `embedding` runs eagerly, and `input_data`/`regression` (placeholders, TF1 graphs
  only) fail with a clear error inside an eager owner.

Import TFLearn through the bridge (`tflearn = import_tflearn()`), or build an owner
first: a plain `import tflearn` before that fails on current TensorFlow.

**Loading `DNN.save` files.** Besides the model, a TFLearn `DNN` checkpoint holds its
training state: optimizer slots (`fc1/W/Adam`, `fc1/W/Adam_1`, `Adam/beta1_power`),
step counters (`Global_Step`, `Training_step`), the moving averages of its summaries
(`Crossentropy/Mean/moving_avg`, `fc1/L2-Loss/moving_avg`), `val_loss`/`val_acc`, and
TFLearn's global training flag (named after the first layer that read it,
`bn/is_training`). `TFLEARN_DNN_EXTRAS` is a rule list that drops the training state
and loads the flag into the owner's own `is_training`, so a strict load still refuses
a model variable the file lacks:

    >>> tflearn = import_tflearn()
    >>> def fn(x):
    ...     return tflearn.fully_connected(x, 3, scope="fc1")
    >>> with tf.Graph().as_default():  # a TFLearn DNN saved the TFLearn way
    ...     net = tflearn.regression(fn(tflearn.input_data(shape=[None, 4])), optimizer="adam")
    ...     tflearn.DNN(net).save("model.tfl")
    >>> owner = tu.tflearn(fn, name="dnn")
    >>> _ = owner(tf.ones([1, 4]))
    >>> report = owner.load("model.tfl", rules=TFLEARN_DNN_EXTRAS)  # strict=True
    >>> sorted(m.target for m in report.matched), len(report.training_state) > 0
    (['fc1/W', 'fc1/b', 'is_training'], True)

The training state it drops is `tu.TRAINING_STATE`'s, which knows TFLearn's default
optimizer names (`Adam`, `SGD`, `Momentum`, `RMSProp`, `AdaGrad`, `AdaDelta`, `Ftrl`,
`Nesterov`); for an optimizer given another `name=`, add a rule for its slots:
`[(r".+/MyAdam(?:_[0-9]+)?", None), *TFLEARN_DNN_EXTRAS]`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, ClassVar

import tensorflow as tf
from tensorflow.python.eager.context import eager_mode
from tfunite.bridges import TFLEARN
from tfunite.capture import capturing
from tfunite.owner import Owner, outer_graph
from tfunite.rules import Rule
from tfunite.training_state import TRAINING_STATE

from ._tf1 import TF1Variables
from .tflearn_fixes import GRAPH_ONLY_LAYER, IS_TRAINING, import_tflearn, running

REGULARIZATION_LOSSES = "regularization_losses"  # tf.GraphKeys.REGULARIZATION_LOSSES
LAYER_TENSOR = "layer_tensor/"  # tflearn.collections: tf.GraphKeys.LAYER_TENSOR + '/'

TFLEARN_DNN_EXTRAS: list[tuple[str, str | None] | Rule] = [
    # TFLearn's global training flag: the owner's own flag has TFLearn's root name.
    (rf"(?:.+/)?{IS_TRAINING}", IS_TRAINING),
    # Its optimizer slots, step counters and summary moving averages.
    *TRAINING_STATE,
]
"""Rules for `owner.load(dnn_save_file, rules=TFLEARN_DNN_EXTRAS)`: drop what a TFLearn
`DNN.save` file holds besides the model (`tu.TRAINING_STATE`), map its training flag onto
the owner's."""


class TFLearnOwner(Owner):
    """Owns the variables of TFLearn code `fn(inputs) -> net`.

    Args:
        fn: builds the network from its input tensor with TFLearn layers. Give layers
            a `name=`/`scope=` where the checkpoint names matter; layers without one
            get TFLearn's default names (`FullyConnected`, `FullyConnected_1`, ...),
            the same on every call.
        name: the owner's name.

    Example:
        >>> tflearn = import_tflearn()
        >>> def fn(x):
        ...     x = tflearn.fully_connected(x, 32, activation="relu", scope="fc1")
        ...     x = tflearn.dropout(x, 0.5)
        ...     return tflearn.fully_connected(x, 10, scope="logits")
        >>> mlp = tu.tflearn(fn, name="mlp")
        >>> logits = mlp(tf.ones([2, 8]), training=True)
        >>> list(mlp.variables)
        ['is_training', 'fc1/W', 'fc1/b', 'logits/W', 'logits/b']
    """

    framework: ClassVar[str] = TFLEARN.name
    supports_graph: ClassVar[bool] = TFLEARN.graph

    @classmethod
    def decline_reason(cls, obj: Any) -> str | None:
        if not callable(obj):
            return f"expected a function fn(inputs) -> net, got {type(obj).__qualname__}"
        return None

    def __init__(self, fn: Callable[[Any], Any], name: str) -> None:
        super().__init__(name)
        reason = self.decline_reason(fn)
        if reason is not None:
            raise TypeError(
                f"tu.tflearn(fn, name={name!r}): {reason}. Fix: pass the "
                "function that builds the network, not its result."
            )
        with capturing(self):  # `import tflearn` creates a variable: not a stray one
            self._tflearn = import_tflearn()
        self._fn = fn
        self._tf1 = TF1Variables(owner=name, framework=self.framework)
        self._flag: tf.Variable | None = None
        self._regularizers: dict[int, tuple[tf.Variable, Callable[[Any], Any]]] = {}
        self._graph_losses: list[tf.Tensor] = []
        self._last_endpoints: dict[str, Any] = {}
        self.in_graph = False

    # ------------------------------------------------------------------ hooks
    def _forward(self, inputs: Any, training: bool) -> Any:
        self.in_graph = outer_graph() is not None
        if not self.built:
            self._regularizers.clear()  # a failed first call starts over (so does _tf1)
        flag = _training_flag(self)
        default = tf.compat.v1.get_default_graph()
        saved = {key: list(default.get_collection(key)) for key in (IS_TRAINING, "is_training_ops")}
        with tf.control_dependencies([flag.assign(tf.cast(training, tf.bool))]):
            mode = tf.identity(flag, name="is_training_value")
        try:
            # TFLearn's dropout and batch_normalization read the flag from this collection.
            default.get_collection_ref(IS_TRAINING)[:] = [mode]
            with running(self), self._tf1.call() as record:
                outputs = self._fn(inputs)
        finally:
            for key, items in saved.items():
                default.get_collection_ref(key)[:] = items
        self._last_endpoints = {
            key[len(LAYER_TENSOR) :]: items[-1]
            for key, items in record.collections.items()
            if key.startswith(LAYER_TENSOR) and items
        }
        if self.in_graph and not self._graph_losses:
            self._graph_losses = list(record.collections.get(REGULARIZATION_LOSSES, []))
        return outputs

    def _collect(self) -> list[tuple[str, tf.Variable, bool]]:
        found = [] if self._flag is None else [(IS_TRAINING, self._flag, False)]
        found += [(name, var, bool(var.trainable)) for name, var in self._tf1.variables]
        return found

    def _losses(self) -> list[tf.Tensor]:
        if self.in_graph:
            return list(self._graph_losses)
        # An eager owner asked from inside a TF1 graph (not a tf.function): its variables
        # are eager, so compute the losses eagerly.
        in_tf1_graph = getattr(tf.compat.v1.get_default_graph(), "outer_graph", None) is None
        lift = (
            eager_mode()
            if in_tf1_graph and not tf.executing_eagerly()
            else contextlib.nullcontext()
        )
        with lift:
            return [regularizer(var) for var, regularizer in self._regularizers.values()]

    def _endpoints(self) -> dict[str, Any]:
        return dict(self._last_endpoints)

    def _aliases(self, fmt: str) -> dict[str, str | None] | None:
        return None  # TFLearn writes TF1 name-based checkpoints only: canonical names


def _training_flag(owner: TFLearnOwner) -> tf.Variable:
    """The owner's `is_training` variable (TFLearn's name), created once."""
    if owner._flag is None:
        with tf.init_scope():
            owner._flag = tf.Variable(False, trainable=False, name=IS_TRAINING, dtype=tf.bool)
    return owner._flag


__all__ = ["GRAPH_ONLY_LAYER", "TFLEARN_DNN_EXTRAS", "TFLearnOwner", "import_tflearn"]
