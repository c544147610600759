"""The ownership protocol: `Owner`, the one thing the rest of tfunite talks to.

An Owner wraps one component (a Keras model, a Sonnet module, a Slim function, ...).
A bridge subclasses it and implements the hooks declared here, in this order (a test
checks every bridge keeps it):

    decline_reason(obj)          classmethod: None if the class wraps `obj`, else why not
    __init__(obj, name, ...)     the wrapped object, the owner's name, options
    _forward(inputs, training)   run the framework code (variables are created on the
                                 first call, inside `capturing`)
    _collect()                   [(canonical name, tf.Variable, trainable)] in a stable order
    _losses()                    regularization losses the component declared
    _endpoints()                 named intermediate activations of the last call
    _updates()                   TF1 graph: update ops of the owner's calls (BatchNorm)
    _aliases(fmt)                {canonical name: key or None} for a foreign checkpoint
                                 format ("object", "keras_h5", "legacy_h5"), or None

A bridge's `framework` and `supports_graph` come from its record (core/records.py).

Everything else (names, duplicate detection, graph checks, save/load) is shared here.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import numpy as np
import tensorflow as tf
from tensorflow.python.trackable import base as _trackable

from .capture import capturing, register_owner
from .errors import DuplicateVariablesError, GraphModeError, NotBuiltError
from .naming import canonical

_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


def check_name(name: str, what: str = "owner") -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"Invalid {what} name {name!r}: expected letters, digits, '_', '.' or '-' "
            "(no '/', which separates path components). Fix: pick a name like 'trunk'."
        )
    return name


def outer_graph() -> tf.Graph | None:
    """The TF1 graph code is being built in (seen through tf.function), or None if eager."""
    if tf.compat.v1.executing_eagerly_outside_functions():
        return None
    graph = tf.compat.v1.get_default_graph()
    while getattr(graph, "outer_graph", None) is not None:
        graph = graph.outer_graph
    return graph


def as_tensors(inputs: Any) -> Any:
    """numpy arrays (anywhere in a nest) as tensors, float64 as float32, as Keras layers
    take them (TF-Slim and TFLearn code calls `inputs.get_shape()`); the rest as is."""

    def convert(x: Any) -> Any:
        if isinstance(x, (np.ndarray, np.generic)):
            return tf.convert_to_tensor(x.astype(np.float32) if x.dtype == np.float64 else x)
        return x

    return tf.nest.map_structure(convert, inputs)


def _spec_of(x: Any) -> tf.TensorSpec | None:
    if isinstance(x, (tf.Tensor, tf.Variable)):
        return tf.TensorSpec(x.shape, x.dtype)
    return None


class Owner(_trackable.Trackable):
    """Owns the variables of one component. See the module docstring for the hooks."""

    framework: ClassVar[str] = "tfunite"
    supports_graph: ClassVar[bool] = True

    # ------------------------------------------------------------------ hooks
    # Declared here in the one order every bridge implements them (tests/test_architecture.py).
    @classmethod
    def decline_reason(cls, obj: Any) -> str | None:
        """None if this owner class wraps `obj`, else why not (shown by `tu.wrap`'s error).

        Asked by the registry after the record's `class_prefixes` matched `obj`'s class.
        """
        return None

    def __init__(self, name: str) -> None:
        """A bridge's `__init__` takes the wrapped object first, then `name` and options."""
        self.name = check_name(name)
        self.built = False
        self._graph: tf.Graph | None = None
        self._graph_cache: dict[Any, Any] = {}
        register_owner(self)

    def _forward(self, inputs: Any, training: bool) -> Any:
        """Run the framework code on `inputs`; variables are created on the first call."""
        raise NotImplementedError

    def _collect(self) -> list[tuple[str, tf.Variable, bool]]:
        """[(canonical name, tf.Variable, trainable)] of every variable, in a stable order."""
        raise NotImplementedError

    def _losses(self) -> list[tf.Tensor]:
        """The regularization losses the component declared (recomputed on each ask)."""
        return []

    def _endpoints(self) -> dict[str, tf.Tensor]:
        """Named intermediate activations of the last call."""
        return {}

    def _updates(self) -> list[Any]:
        """TF1 graph: the update ops of the owner's calls (BatchNorm moving statistics)
        that `tu.Optimizer.train_op` runs with the gradient step. Eagerly and in
        `tf.function` updates run during the call, so this is empty there."""
        return []

    def _aliases(self, fmt: str) -> dict[str, str | None] | None:
        """{canonical name: key in a checkpoint of format `fmt`} (None for a variable the
        format does not hold), or None when the owner has no aliases for `fmt`.

        Formats: "object" (`tf.train.Checkpoint` path), "keras_h5" (`.weights.h5`
        dataset path), "legacy_h5" (Keras 2 h5 position). TF1 name-based checkpoints
        need none: their keys are the canonical names.
        """
        return None

    # ------------------------------------------------------------------ calling
    # Framework code is already graph-compatible Python; AutoGraph converting library
    # internals inside a user's tf.function is slow and breaks on zero-arg super().
    @tf.autograph.experimental.do_not_convert
    def __call__(self, inputs: Any, training: bool = False) -> Any:
        """Forward pass; creates variables on the first call."""
        self._check_graph()
        inputs = as_tensors(inputs)
        with capturing(self) as created:
            outputs = self._forward(inputs, training)
        if not self.built:
            # Built only once the checks pass: a refused build leaves no half-listed owner.
            self._check_unique()
            self._check_all_owned(created)
            self._graph = outer_graph()
            # What it was built on, for checks such as tu.export's signature.
            self._input_spec = tf.nest.map_structure(_spec_of, inputs)
            self.built = True
        elif created:
            names = ", ".join(sorted(canonical(v.name) for v in created))
            raise DuplicateVariablesError(
                f"Owner {self.name!r} ({self.framework}) created new variables on a later "
                f"call: {names}. Expected the variables of the first call to be reused. "
                "A layer without an explicit scope/name creates a fresh set on every call; "
                "fix: give every layer a fixed scope (Slim: scope='fc1') or reuse=AUTO_REUSE."
            )
        return outputs

    def _check_graph(self) -> None:
        graph = outer_graph()
        if graph is not None and not self.supports_graph:
            raise GraphModeError(
                f"Owner {self.name!r} wraps {self.framework}, which does not run in a TF1 "
                "graph/Session. Fix: build the model with tf_keras (Keras 2) and wrap that, "
                "or run eagerly / inside tf.function."
            )
        if self.built and graph is not self._graph:
            where = "eagerly" if self._graph is None else f"in graph {id(self._graph):#x}"
            now = "eagerly" if graph is None else f"in graph {id(graph):#x}"
            raise GraphModeError(
                f"Owner {self.name!r} was built {where} but is now called {now}; its "
                "variables live where they were created. Fix: build and call an owner in "
                "the same graph (create a fresh owner for each tf.Graph)."
            )

    def _check_unique(self) -> None:
        seen: dict[str, tf.Variable] = {}
        ids: dict[int, str] = {}
        for name, var, _ in self._collect():
            if name in seen:
                raise DuplicateVariablesError(
                    f"Owner {self.name!r}: two variables are named {name!r} "
                    f"({seen[name].name} and {var.name}). Expected unique names. "
                    "Fix: give the sub-layers/modules distinct names."
                )
            if id(var) in ids:
                raise DuplicateVariablesError(
                    f"Owner {self.name!r}: variable {var.name} is listed twice, as "
                    f"{ids[id(var)]!r} and {name!r}. Expected each variable once; it would "
                    "be saved twice and get two updates per step. Fix: put each owner in a "
                    "tu.Parameters once, and do not share a layer between two wrapped models."
                )
            seen[name] = var
            ids[id(var)] = name

    def _check_all_owned(self, created: list[tf.Variable]) -> None:
        listed = {id(v) for _, v, _ in self._collect()}
        lost = [canonical(v.name) for v in created if id(v) not in listed]
        if lost:
            raise DuplicateVariablesError(
                f"Owner {self.name!r} ({self.framework}) created variables its framework "
                f"does not track: {', '.join(lost)}. They would be silently left out of "
                "training and checkpoints. Fix: create them inside a layer/module, not "
                "as loose tf.Variables."
            )

    # ------------------------------------------------------------------ protocol
    def _require_built(self) -> None:
        if not self.built:
            raise NotBuiltError(
                f"Owner {self.name!r} has no variables yet: it is built on its first call. "
                f"Fix: call {self.name}(example) or {self.name}.initialize(example) first."
            )

    @property
    def variables(self) -> Mapping[str, tf.Variable]:
        """Ordered mapping canonical name -> tf.Variable."""
        self._require_built()
        return OrderedDict((name, var) for name, var, _ in self._collect())

    @property
    def trainable_variables(self) -> list[tf.Variable]:
        self._require_built()
        return [var for _, var, trainable in self._collect() if trainable]

    @property
    def non_trainable_variables(self) -> list[tf.Variable]:
        self._require_built()
        return [var for _, var, trainable in self._collect() if not trainable]

    @property
    def losses(self) -> list[tf.Tensor]:
        return list(self._losses()) if self.built else []

    @property
    def endpoints(self) -> dict[str, tf.Tensor]:
        return dict(self._endpoints()) if self.built else {}

    def initialize(self, example: Any = None, session: Any = None) -> Owner:
        """Create (by calling on `example`) and initialize all variables without training.

        In a TF1 graph, runs the variables' initializers in `session`.
        """
        if not self.built:
            if example is None:
                raise NotBuiltError(
                    f"Owner {self.name!r} cannot create its variables without an example "
                    f"input. Fix: {self.name}.initialize(example=<a batch of inputs>)."
                )
            self(example)
        if session is not None:
            init = self._graph_op(
                "init", lambda: tf.compat.v1.variables_initializer(list(self.variables.values()))
            )
            session.run(init)
        return self

    def save(self, path: str, session: Any = None) -> str:
        """Save this owner's variables (see `tu.save`)."""
        from .checkpoint import save

        return save(self, path, session=session)

    def load(
        self,
        path: str,
        rules: Any = None,
        strict: bool = True,
        session: Any = None,
        transforms: Any = None,
        dry_run: bool = False,
    ) -> Any:
        """Load a checkpoint into this owner, all or nothing (see `tu.load`)."""
        from .checkpoint import load

        return load(
            self,
            path,
            rules=rules,
            strict=strict,
            session=session,
            transforms=transforms,
            dry_run=dry_run,
        )

    # ------------------------------------------------------------------ trackable
    # An owner is a TensorFlow trackable whose dependencies are its variables keyed by
    # canonical name: `tf.train.Checkpoint(model=owner)` writes `model/dense.Skernel/...`
    # and `tf.saved_model.save(owner, ...)` holds the variables themselves (so traced
    # functions capture them). In a checkpoint each variable is reached through a
    # `_VariableRef`, which restores from any checkpoint key: that is how a tu.save
    # bundle (keys = canonical names, plus an object graph) restores through
    # `tf.train.Checkpoint` too. A plain Trackable, not AutoTrackable: attributes
    # holding lists and dicts stay as they are, and `name` is the owner's own.
    def _build_deferred(self) -> None:
        """Create what can be created without an input (an optimizer's slots once its
        owner is built), as TF's deferred restore does; nothing for most owners."""

    def _trackable_children(
        self, save_type: Any = "checkpoint", **kwargs: Any
    ) -> dict[str, _trackable.Trackable]:
        self._build_deferred()
        if not self.built:
            return {}
        variables = {name: var for name, var, _ in self._collect()}
        if str(getattr(save_type, "value", save_type)) == "savedmodel":
            return dict(variables)
        refs: dict[int, _VariableRef] = self.__dict__.setdefault("_variable_refs", {})
        out: dict[str, _trackable.Trackable] = {}
        for name, var in variables.items():
            ref = refs.get(id(var))
            if ref is None or ref.variable is not var:
                ref = refs[id(var)] = _VariableRef(var)
            out[name] = ref
        return out

    # ------------------------------------------------------------------ helpers
    def _graph_op(self, key: Any, make: Any) -> Any:
        """Build a TF1 graph op once per owner and graph (no graph growth per call)."""
        graph = tf.compat.v1.get_default_graph()
        cache_key = (id(graph), key)
        if cache_key not in self._graph_cache:
            with graph.as_default():
                self._graph_cache[cache_key] = make()
        return self._graph_cache[cache_key]

    def leaves(self, prefix: str = "") -> Iterator[tuple[str, Owner]]:
        """(key prefix, owner) for every non-composite owner under this one."""
        yield prefix, self

    def __repr__(self) -> str:
        state = f"{len(self._collect())} variables" if self.built else "not built"
        return f"<{type(self).__name__} {self.name!r} ({self.framework}, {state})>"


class _VariableRef(_trackable.Trackable):
    """A variable in an owner's checkpoint: saves and restores `variable` under whatever
    key the checkpoint names (TF's own variables restore only from keys of the form
    `<path>/.ATTRIBUTES/VARIABLE_VALUE`, which a tu.save bundle does not use)."""

    def __init__(self, variable: tf.Variable) -> None:
        self.variable = variable

    def _gather_saveables_for_checkpoint(self) -> dict[str, Any]:
        from tensorflow.python.training.saving import saveable_object_util

        def make(name: str) -> list[Any]:
            return list(saveable_object_util.saveable_objects_for_op(self.variable, name))

        return {"VARIABLE_VALUE": make}
