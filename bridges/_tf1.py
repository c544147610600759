"""Run TF1 `get_variable`-style code (TF-Slim, TFLearn, `tf.compat.v1.layers`) as an owner.

`TF1Variables` is the machinery a bridge needs to call such code again and again with
its variables created once and reused, named exactly as TF1 names them:

    tf1 = TF1Variables(owner="vgg", framework="tf_slim")
    with tf1.call() as record:        # every call of the framework code goes in here
        net = fn(inputs)
    tf1.variables                     # [(name, tf.Variable)] in creation order
    tf1.regularization_losses()       # tensors, fresh each time (eagerly)
    record.collections                # what the call added to TF1 collections

Eagerly and inside `tf.function`, variables live in a private variable store (tf_keras'
`_EagerVariableStore`, the machinery behind `track_tf1_style_variables`, created under
`init_scope`, so `tf.function` sees them as ordinary captured variables). After the
first call the store is frozen: a later call that asks for a variable that does not
exist raises `DuplicateVariablesError` naming it (instead of silently creating a second
set eagerly, or TF's "only supports singleton tf.Variables" inside `tf.function`), and
a loose `tf.Variable` created by the code (not through `get_variable`) is refused
likewise. TF1 collections written during an eager or `tf.function` call are restored
afterwards, so nothing grows from call to call (Slim's end_points collections did).

In a TF1 `tf.Graph`, the code runs natively (variables in `GLOBAL_VARIABLES`,
regularizers in `REGULARIZATION_LOSSES`, batch-norm updates in `UPDATE_OPS`, so Saver
and TF1 training code see what they expect); later calls run under `reuse=True`.

In every mode the variable-scope counters are restored after each call, like
`tf.compat.v1.make_template` does: a layer without an explicit scope gets the same
default name (`fully_connected`, not `fully_connected_1`) on every call, so it reuses
its variables instead of creating a new set.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import tensorflow as tf
from tensorflow.python.eager import context
from tensorflow.python.framework import ops
from tensorflow.python.ops import variable_scope as vs
from tfunite.errors import DuplicateVariablesError, OwnershipError
from tfunite.owner import canonical, outer_graph

NEW_VARIABLE_ON_LATER_CALL = (
    "Owner {owner!r} ({framework}) tried to create variable {name!r} on a later call "
    "({where}). Expected the variables of the first call to be reused; got a name the "
    "first call did not create. This happens when the code builds different layers on "
    "different calls (a layer only built when is_training=True, a scope name that "
    "depends on Python state). Fix: build the same layers with the same scopes on every "
    "call (build the training-only layer always, and ignore its output when not training)."
)

LOOSE_VARIABLE = (
    "Owner {owner!r} ({framework}) created variable {name!r} with tf.Variable, outside "
    "any TF1 variable scope/store ({where}). Expected every variable to come from "
    "tf.compat.v1.get_variable (slim.variable, slim.model_variable, the slim layers), so "
    "it can be created once and reused; a loose tf.Variable would be created anew on every "
    "call. Fix: create it with slim.model_variable(name, shape, ...) or "
    "tf.compat.v1.get_variable inside a variable_scope."
)

ALREADY_EXISTS = (
    "Owner {owner!r} ({framework}): variable {name!r} already exists in graph {graph:#x}, "
    "created by another owner or by code outside tfunite. Expected the owner's first call "
    "to create its own variables; reusing someone else's would share them silently. Fix: "
    "build the second copy under its own scope (fn(..., scope='other_name') or "
    "tf.compat.v1.variable_scope('copy')), or call the first owner again."
)


def _store_class() -> type:
    try:
        from tf_keras.src.legacy_tf_layers.variable_scope_shim import _EagerVariableStore
    except ImportError as e:  # pragma: no cover - depends on the installed tf_keras
        from tfunite.errors import missing_dependency

        raise missing_dependency("tf_keras", "tf-keras", "Running TF1-style code eagerly") from e
    return _EagerVariableStore


def _make_store(tf1: TF1Variables) -> Any:
    base = _store_class()

    class _Store(base):
        """An `_EagerVariableStore` that refuses new variables once frozen."""

        def _get_single_variable(self, name, *args, **kwargs):
            if name not in self._vars:
                if tf1.frozen:
                    raise DuplicateVariablesError(
                        NEW_VARIABLE_ON_LATER_CALL.format(
                            owner=tf1.owner, framework=tf1.framework, name=name,
                            where=tf1.where()))
                tf1._store_creating += 1
                try:
                    return super()._get_single_variable(name, *args, **kwargs)
                finally:
                    tf1._store_creating -= 1
            return super()._get_single_variable(name, *args, **kwargs)

    return _Store()


@dataclass
class CallRecord:
    """What one call of TF1-style code did.

    Attributes:
        collections: items the call added to each TF1 collection, by key (eagerly and
            in `tf.function` these were removed again from the collection itself).
        graph: the TF1 graph of the call, or None when eager / in `tf.function`.
    """

    collections: dict[str, list[Any]] = field(default_factory=dict)
    graph: tf.Graph | None = None


class TF1Variables:
    """Variables of TF1 `get_variable`-style code, created once and reused on every call.

    Args:
        owner: name of the owner (used in error messages).
        framework: name of the framework (used in error messages), e.g. "tf_slim".
    """

    def __init__(self, owner: str, framework: str):
        self.owner = owner
        self.framework = framework
        self.frozen = False
        self._store = _make_store(self)
        self._store_creating = 0
        self._graph_vars: list[tf.Variable] = []
        self._graph: tf.Graph | None = None

    # ------------------------------------------------------------------ state
    @property
    def variables(self) -> list[tuple[str, tf.Variable]]:
        """(canonical TF1 name, variable) for every variable, in creation order."""
        if self._graph is not None:
            return [(canonical(v.name), v) for v in self._graph_vars]
        return [(canonical(v.name), v) for v in self._store._vars.values()]

    def regularization_losses(self) -> list[tf.Tensor]:
        """Eager / tf.function: regularizer losses computed now from the current values.

        In a TF1 graph the losses are graph tensors in `REGULARIZATION_LOSSES`; take them
        from the first call's `CallRecord.collections` instead.
        """
        # Asked from inside a TF1 graph (not a tf.function) while the variables are eager:
        # compute the losses eagerly instead of capturing eager variables into that graph.
        graph = ops.get_default_graph()
        lift = (context.eager_mode() if not tf.executing_eagerly()
                and getattr(graph, "outer_graph", None) is None else contextlib.nullcontext())
        with lift:
            return [regularizer() for regularizer in self._store._regularizers.values()]

    def where(self) -> str:
        if self._graph is not None:
            return f"in graph {id(self._graph):#x}"
        return "inside tf.function" if not tf.executing_eagerly() else "eagerly"

    # ------------------------------------------------------------------ calling
    @contextlib.contextmanager
    def call(self) -> Iterator[CallRecord]:
        """Run one call of the framework code inside this block.

        The first successful call creates the variables and freezes the set; a failed
        first call discards what it created, so the next call starts clean.
        """
        graph = outer_graph()
        record = CallRecord(graph=graph)
        default = ops.get_default_graph()
        before = {key: len(default.get_collection(key)) for key in default.get_all_collection_keys()}
        scope_store = vs.get_variable_scope_store()
        saved_counts = dict(scope_store.variable_scopes_count)
        try:
            if graph is None:
                with self._eager_scope():
                    yield record
            else:
                with self._graph_scope(graph):
                    yield record
            self.frozen = True
        except BaseException:
            if not self.frozen:
                self._store = _make_store(self)
                self._graph_vars = []
                self._graph = None
            raise
        finally:
            scope_store.variable_scopes_count = saved_counts
            for key in default.get_all_collection_keys():
                items = default.get_collection_ref(key)
                added = items[before.get(key, 0):]
                if added:
                    record.collections[key] = list(added)
                if graph is None:  # eager / tf.function: leave the collections as they were
                    if key in before:
                        del items[before[key]:]
                    else:
                        default.clear_collection(key)

    @contextlib.contextmanager
    def _eager_scope(self) -> Iterator[None]:
        def creator(next_creator, **kwargs):
            if not self._store_creating:
                raise OwnershipError(
                    LOOSE_VARIABLE.format(
                        owner=self.owner, framework=self.framework,
                        name=kwargs.get("name") or "<unnamed>", where=self.where()))
            return next_creator(**kwargs)

        with vs.with_variable_store(self._store), tf.variable_creator_scope(creator):
            yield

    @contextlib.contextmanager
    def _graph_scope(self, graph: tf.Graph) -> Iterator[None]:
        first = not self.frozen
        created: list[tf.Variable] = []

        def creator(next_creator, **kwargs):
            variable = next_creator(**kwargs)
            created.append(variable)
            return variable

        try:
            with contextlib.ExitStack() as stack:
                if not first:
                    stack.enter_context(vs.variable_scope(
                        vs.get_variable_scope(), reuse=True, auxiliary_name_scope=False))
                stack.enter_context(tf.variable_creator_scope(creator))
                yield
        except ValueError as e:
            message = str(e)
            missing = re.search(r"Variable (\S+) does not exist", message)
            if missing:
                raise DuplicateVariablesError(NEW_VARIABLE_ON_LATER_CALL.format(
                    owner=self.owner, framework=self.framework, name=missing.group(1),
                    where=f"in graph {id(graph):#x}")) from e
            exists = re.search(r"Variable (\S+) already exists", message)
            if exists and first:
                raise DuplicateVariablesError(ALREADY_EXISTS.format(
                    owner=self.owner, framework=self.framework, name=exists.group(1),
                    graph=id(graph))) from e
            raise
        if first:
            self._graph = graph
            self._graph_vars = created
