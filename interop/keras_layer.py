"""`tu.keras_layer(owner)`: a Keras 3 layer whose weights ARE an owner's variables.

The layer's weights are `keras.Variable`s wrapping the owner's own `tf.Variable`s (the
same storage: Keras 3 on the TensorFlow backend keeps a given `tf.Variable` as the
variable's value, as its `TFSMLayer` does), so `fit` trains the owner and the owner's
`save`/`tu.save` see what `fit` did. Trainable variables are trainable weights, the rest
(BatchNorm statistics) non-trainable; `training` reaches the owner (`None`, Keras'
inference default, is `training=False`); a frozen layer (`layer.trainable = False`)
runs the owner in inference mode, as Keras' own BatchNormalization does; the owner's
`losses` (Slim/TFLearn regularizers, Keras losses) are added to `layer.losses`, so fit
minimises them.

Saving: `save_weights`/`load_weights` (`.weights.h5`) key the layer's weights by the
owner's canonical names (loaded through tfunite's one checkpoint pipeline, all or
nothing); `model.save("m.keras")` needs `factory=`, an importable function that makes
the owner again: the config stores its "module:qualname" and `from_config` imports and
calls it (nothing is unpickled; Keras' safe mode stays on). Load such a file in a
process that imported this module (`tu.keras_layer` or `import
tfunite.interop.keras_layer`), which registers the class as "tfunite>OwnerLayer".

An owner called inside a Keras layer or model that does not track its variables
raises `OwnershipError` pointing here, instead of training none of them
(`keras_host.check_host`, the Keras record's host check).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from tfunite.distribute import check_host_scope
from tfunite.errors import LoadError, NotBuiltError, NotSerializableError
from tfunite.interop.keras_host import hosting
from tfunite.owner import Owner
from tfunite.parameters import Parameters
from tfunite.plan import assign_all, check_data, plan
from tfunite.readers import Reader
from tfunite.registry import wrap
from tfunite.report import refusal


def keras_layer(
    owner: Any = None,
    factory: Callable[[], Any] | str | None = None,
    *,
    input_shape: Sequence[int | None] | None = None,
    input_dtype: str = "float32",
    name: str | None = None,
    trainable: bool = True,
) -> OwnerLayer:
    """A Keras 3 layer over `owner`'s own variables (no copy): fit, save_weights, save.

    Args:
        owner: an Owner (any eager bridge, or `tu.Parameters`' child), or an object
            `tu.wrap` accepts. Optional when `factory` is given.
        factory: an importable module-level function returning the owner (or an
            object `tu.wrap` accepts), or its "module:qualname". Needed for
            `model.save("m.keras")`: loading calls it to make the owner again.
        input_shape: the input's shape without the batch dimension, e.g. `(32,)`. Needed
            when the owner is not built yet (it is built on zeros of this shape) and
            for `.keras` saving; recorded from the first call otherwise.
        input_dtype: the input's dtype, for building on zeros.
        name: the layer's name (default: the owner's name; it keys the layer's
            weights in `.weights.h5` files, so keep it stable).
        trainable: False freezes the layer (also `layer.trainable = False`).

    >>> import keras, sonnet as snt
    >>> head = tu.wrap(snt.nets.MLP([8, 2]), name="head")
    >>> layer = tu.keras_layer(head, input_shape=(4,))  # builds the owner on zeros
    >>> model = keras.Sequential([keras.Input((4,)), layer, keras.layers.Softmax()])
    >>> [w.path for w in layer.trainable_weights]
    ['head/mlp/linear_0/b', 'head/mlp/linear_0/w', 'head/mlp/linear_1/b', 'head/mlp/linear_1/w']
    >>> layer.trainable_weights[1].value is head.variables["mlp/linear_0/w"]  # the same tf.Variable
    True
    """
    path = _factory_path(factory) if factory is not None else None
    if owner is None:
        if path is None:
            raise TypeError(
                "tu.keras_layer() needs an owner or a factory: got neither. Fix: "
                "tu.keras_layer(owner) or tu.keras_layer(factory=make_owner)."
            )
        owner = _call_factory(path)
    elif not isinstance(owner, Owner):
        owner = wrap(owner, name=name) if name else wrap(owner)
    if isinstance(owner, Parameters):
        raise TypeError(
            f"tu.keras_layer: tu.Parameters {owner.name!r} has no forward pass (it holds "
            f"the children {list(owner)}). Expected an owner that can be called. Fix: make "
            "one layer per child, tu.keras_layer(params['child']), and connect them in Keras."
        )
    return OwnerLayer(
        owner,
        factory=path,
        input_shape=input_shape,
        input_dtype=input_dtype,
        name=name or owner.name,
        trainable=trainable,
    )


def _factory_path(factory: Callable[[], Any] | str) -> str:
    """ "module:qualname" of an importable function (checked to import back to it)."""
    if isinstance(factory, str):
        _import(factory)  # raises if it does not import
        return factory
    module = getattr(factory, "__module__", None)
    qualname = getattr(factory, "__qualname__", None)
    if not module or not qualname or "<" in qualname or module == "__main__":
        raise ValueError(
            f"tu.keras_layer(factory={factory!r}): expected a function defined at the top "
            f"level of an importable module (a .keras file stores its 'module:qualname' and "
            f"a fresh process imports it); got module {module!r}, name {qualname!r}. Fix: "
            "move the function into a module (not __main__, not a lambda or nested def)."
        )
    path = f"{module}:{qualname}"
    if _import(path) is not factory:
        raise ValueError(
            f"tu.keras_layer(factory=...): {path!r} imports to another object than the "
            "function given. Fix: pass a module-level function under its own name."
        )
    return path


def _import(path: str) -> Any:
    module, sep, qualname = path.partition(":")
    try:
        if not sep or not qualname:
            raise ImportError("expected 'module:qualname'")
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise ValueError(
            f"tu.keras_layer factory {path!r} cannot be imported ({e}). Expected "
            "'module:qualname' of a module-level function. Fix: make the module importable "
            "in this process (installed, or on sys.path)."
        ) from None
    return obj


def _call_factory(path: str) -> Owner:
    made = _import(path)()
    return made if isinstance(made, Owner) else wrap(made)


def _build(owner: Owner, input_shape: tuple[int | None, ...] | None, dtype: str) -> None:
    """Build an unbuilt owner eagerly on zeros of `(1, *input_shape)`."""
    if owner.built:
        return
    if input_shape is None or any(d is None for d in input_shape):
        raise NotBuiltError(
            f"tu.keras_layer: owner {owner.name!r} ({owner.framework}) has no variables yet "
            f"and no complete input shape was given (got input_shape={input_shape}). Expected "
            "a built owner, or the input shape without the batch dimension. Fix: "
            f"{owner.name}.initialize(example) first, or tu.keras_layer(owner, "
            "input_shape=(32,))."
        )
    with tf.init_scope():
        owner(tf.zeros((1, *input_shape), dtype), training=False)


@keras.saving.register_keras_serializable(package="tfunite")
class OwnerLayer(keras.Layer):
    """A Keras 3 layer over an owner's variables; made by `tu.keras_layer`."""

    def __init__(
        self,
        owner: Owner,
        factory: str | None = None,
        input_shape: Sequence[int | None] | None = None,
        input_dtype: str = "float32",
        **kwargs: Any,
    ) -> None:
        shape = None if input_shape is None else tuple(input_shape)
        _build(owner, shape, input_dtype)  # validates before the layer exists
        check_host_scope(f"tu.keras_layer({owner.name!r})", owner.variables.items())
        super().__init__(**kwargs)
        # Not an attribute Keras or tf.train track: the layer's weights alias its variables.
        object.__setattr__(self, "_owner", owner)
        self.factory = factory
        self.owner_input_shape = shape
        self.owner_input_dtype = input_dtype
        self._names: list[str] = []
        trainable = {id(v) for v in owner.trainable_variables}
        for canonical_name, var in owner.variables.items():
            alias = keras.Variable(
                initializer=var,
                shape=var.shape,
                dtype=var.dtype.name,
                trainable=id(var) in trainable,
                name=canonical_name.replace("/", "."),
            )
            if alias.value is not var:
                # Older Keras 3 (3.3, 3.6) copies a tf.Variable initializer into a new tf.Variable; its
                # TF-backend Variable keeps the tf.Variable it reads and writes in `_value`,
                # as later versions do with the one they are given: point it at the owner's.
                alias._value = var
            if alias.value is not var:  # still a copy: fit would train it, not the owner
                raise RuntimeError(
                    f"tu.keras_layer({owner.name!r}): Keras {keras.__version__} copied "
                    f"variable {canonical_name!r} instead of wrapping it. Expected the same "
                    "tf.Variable. Fix: use Keras 3 on the TensorFlow backend."
                )
            alias._path = f"{self.name}/{canonical_name}"  # tags and messages: canonical
            self._track_variable(alias)
            self._names.append(canonical_name)
        self._by_name = dict(zip(self._names, self._all_aliases(), strict=True))
        self.built = True

    def _all_aliases(self) -> list[keras.Variable]:
        by_id = {id(v.value): v for v in self._trainable_variables + self._non_trainable_variables}
        return [by_id[id(var)] for var in self._owner.variables.values()]

    @property
    def owner(self) -> Owner:
        """The wrapped owner (its variables are this layer's weights)."""
        owner: Owner = self._owner
        return owner

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        if self.owner_input_shape is None and hasattr(inputs, "shape"):
            self.owner_input_shape = tuple(inputs.shape[1:])
        run_training = bool(training) and self.trainable
        with hosting(self._owner):
            outputs = self._owner(inputs, training=run_training)
        losses = self._owner.losses
        if losses:
            self.add_loss(tf.add_n([tf.cast(loss, tf.float32) for loss in losses]))
        return outputs

    # ------------------------------------------------------------------ saving
    def save_own_variables(self, store: Any) -> None:
        for name, alias in self._by_name.items():
            store[name] = alias

    def load_own_variables(self, store: Any) -> None:
        entries = {name: (shape, dtype) for name, (shape, dtype) in _store_entries(store).items()}
        targets = {name: alias.value for name, alias in self._by_name.items()}
        path = f"layer {self.name!r} of a Keras weights file"
        report, steps = plan(entries, targets, path=path, kind="keras weights")
        if not report.ok:
            raise LoadError(refusal(report), report)
        reader = _StoreReader(store, entries, path)
        check_data(reader, steps, deferred=True)  # assign_all reads all first
        assign_all(reader, steps, lambda var, value, step: var.assign(value))

    def get_config(self) -> dict[str, Any]:
        if self.factory is None:
            raise NotSerializableError(
                f"tu.keras_layer {self.name!r} (owner {self._owner.name!r}, "
                f"{self._owner.framework}) has no factory, so a .keras file could not make its "
                "owner again. Expected tu.keras_layer(owner, factory=<importable function "
                "returning the owner>). Fix: pass factory=, or save the weights only with "
                "model.save_weights('m.weights.h5') and rebuild the model in code."
            )
        if self.owner_input_shape is None:
            raise NotSerializableError(
                f"tu.keras_layer {self.name!r}: its input shape is unknown (never called). "
                "Fix: call the model once, or pass input_shape=(...) to tu.keras_layer."
            )
        config: dict[str, Any] = super().get_config()
        config.update(
            factory=self.factory,
            input_shape=list(self.owner_input_shape),
            input_dtype=self.owner_input_dtype,
        )
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> OwnerLayer:
        config = dict(config)
        factory = config.pop("factory")
        owner = _call_factory(factory)
        config.pop("dtype", None)
        return cls(owner, factory=factory, **config)


class _StoreReader(Reader):
    """A Keras saving store (one layer's entry of a weights file) as a `Reader`."""

    kind = "keras weights"

    def __init__(self, store: Any, entries: dict[str, Any], path: str) -> None:
        super().__init__(path)
        self.store = store
        self.entries = entries

    def read(self, name: str) -> np.ndarray:
        return np.asarray(self.store[name])


def _store_entries(store: Any) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """{name: (shape, dtype)} of every dataset under a store entry, nested names joined
    by '/' (h5 makes groups of a name's '/' parts)."""
    # The h5py group of this layer's entry: `_h5_entry_group` in current Keras, `group`
    # in Keras 3.3-3.6 (whose keys() list only the first part of a nested name).
    group = getattr(store, "_h5_entry_group", None)
    if group is None:
        group = getattr(store, "group", None)
    out: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    if group is not None and hasattr(group, "visititems"):

        def visit(name: str, obj: Any) -> None:
            if hasattr(obj, "shape") and hasattr(obj, "dtype"):
                out[name] = (tuple(obj.shape), np.dtype(obj.dtype))

        group.visititems(visit)
        return out
    for key in store.keys():
        value = np.asarray(store[key])
        out[key] = (value.shape, value.dtype)
    return out
