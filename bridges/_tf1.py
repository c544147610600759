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
and TF1 training code see what they expect); later calls run under `reuse=True`. Every
variable must come from the graph's variable store (`get_variable`): a loose
`tf.Variable` is refused on the first call already. A failed call leaves the graph's
collections, its variable store and the scope counters as they were; its ops stay (a
TF1 graph cannot delete ops), so a variable whose name such an op took would be renamed
(`fc/weights_1`): that is refused too (`NAME_TAKEN`), never loaded under a wrong name.

Variable-scope counters (what makes an unscoped layer `fully_connected` or
`fully_connected_1`) follow `tf.compat.v1.make_template`: every later call runs with the
counters the first call started from, so a layer without an explicit scope gets the
same default name on every call and reuses its variables instead of creating a new
set; the later call's own counts are then dropped. Eagerly and in `tf.function` the
first call's counts are dropped too (nothing else shares its private store). In a TF1
graph the first call's counts stay, as native code's would: code built after the owner
in the same graph (native Slim/TFLearn, a TFLearn `DNN`, another owner) gets
`fully_connected_1`, not a name that collides with the owner's variables.
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


NAME_TAKEN = (
    "Owner {owner!r} ({framework}): variable {name!r} would be created as {got!r} in graph "
    "{graph:#x}, because the graph already has an op named {name!r} (left by an earlier "
    "call that failed: a TF1 graph cannot delete ops, or built by other code under that "
    "name). Expected the TF1 name, which checkpoints hold; a renamed variable would not "
    "match them. Fix: build the model in a fresh tf.Graph() after a failed build, or "
    "under its own scope."
)


def _store_class() -> type:
    try:
        from tf_keras.src.legacy_tf_layers.variable_scope_shim import _EagerVariableStore
    except ImportError as e:  # pragma: no cover - depends on the installed tf_keras
        from tfunite.errors import missing_dependency

        raise missing_dependency("tf_keras", "tf-keras", "Running TF1-style code eagerly") from e
    return _EagerVariableStore


def _make_store(tf1: TF1Variables) -> Any:
    base: Any = _store_class()  # tf_keras' private class, untyped

    class _Store(base):
        """An `_EagerVariableStore` that refuses new variables once frozen."""

        def _get_single_variable(self, name: str, *args: Any, **kwargs: Any) -> Any:
            if name not in self._vars:
                if tf1.frozen:
                    raise DuplicateVariablesError(
                        NEW_VARIABLE_ON_LATER_CALL.format(
                            owner=tf1.owner, framework=tf1.framework, name=name, where=tf1.where()
                        )
                    )
                tf1._store_creating += 1
                try:
                    return super()._get_single_variable(name, *args, **kwargs)
                finally:
                    tf1._store_creating -= 1
            return super()._get_single_variable(name, *args, **kwargs)

    return _Store()


class _CountingStore(vs._VariableStore):
    """A TF1 graph's variable store seen through a counter: shares the wrapped store's
    variables (its dicts), delegates creation to it, and counts in `tf1._store_creating`
    while it runs (the wrapped store may be another owner's `_CountingStore`)."""

    def __init__(self, inner: Any, tf1: TF1Variables) -> None:
        super().__init__()
        self._vars = inner._vars
        self._partitioned_vars = inner._partitioned_vars
        self._store_eager_variables = inner._store_eager_variables
        self._tfunite = (inner, tf1)

    def _get_single_variable(self, *args: Any, **kwargs: Any) -> Any:
        inner, tf1 = self._tfunite
        tf1._store_creating += 1
        try:
            return inner._get_single_variable(*args, **kwargs)
        finally:
            tf1._store_creating -= 1


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

    def __init__(self, owner: str, framework: str) -> None:
        self.owner = owner
        self.framework = framework
        self.frozen = False
        self._store = _make_store(self)
        self._store_creating = 0
        self._graph_vars: list[tf.Variable] = []
        self._graph: tf.Graph | None = None
        # TF1 graph: the variable-scope counters the first call started from.
        self._first_counts: dict[str, int] | None = None

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
        lift = (
            context.eager_mode()
            if not tf.executing_eagerly() and getattr(graph, "outer_graph", None) is None
            else contextlib.nullcontext()
        )
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

        The first successful call creates the variables and freezes the set. A failed
        call leaves nothing behind: a failed first call discards what it created (so
        the next call starts clean), and in every mode the TF1 collections and the
        variable-scope counters are restored.
        """
        graph = outer_graph()
        record = CallRecord(graph=graph)
        default = ops.get_default_graph()
        if graph is not None:
            # The stores live in the graph's collections: create them before the snapshot,
            # so that restoring the collections after a failed call never drops them.
            vs.get_variable_scope_store()
            vs._get_default_variable_store()
        before = {
            key: len(default.get_collection(key)) for key in default.get_all_collection_keys()
        }
        scope_store = vs.get_variable_scope_store()
        saved_counts = dict(scope_store.variable_scopes_count)
        first_in_graph = graph is not None and not self.frozen
        if graph is not None and self._first_counts is not None:
            # A later call: the counters of the first call, so default names repeat.
            scope_store.variable_scopes_count = dict(self._first_counts)
        failed = False
        try:
            if graph is None:
                with self._eager_scope():
                    yield record
            else:
                with self._graph_scope(graph):
                    yield record
            self.frozen = True
        except BaseException:
            failed = True
            if not self.frozen:
                self._store = _make_store(self)
                self._graph_vars = []
                self._graph = None
            raise
        finally:
            if first_in_graph and not failed:
                self._first_counts = saved_counts  # the counts advanced stay, as natively
            else:
                scope_store.variable_scopes_count = saved_counts
            for key in default.get_all_collection_keys():
                items = default.get_collection_ref(key)
                added = items[before.get(key, 0) :]
                if added and not failed:
                    record.collections[key] = list(added)
                # Eager / tf.function: leave the collections as they were. TF1 graph: keep
                # what a successful call added (Saver, UPDATE_OPS), drop a failed call's.
                if graph is None or failed:
                    if key in before:
                        del items[before[key] :]
                    else:
                        default.clear_collection(key)

    @contextlib.contextmanager
    def _eager_scope(self) -> Iterator[None]:
        def creator(next_creator: Any, **kwargs: Any) -> Any:
            if not self._store_creating:
                raise OwnershipError(
                    LOOSE_VARIABLE.format(
                        owner=self.owner,
                        framework=self.framework,
                        name=kwargs.get("name") or "<unnamed>",
                        where=self.where(),
                    )
                )
            return next_creator(**kwargs)

        with vs.with_variable_store(self._store), tf.variable_creator_scope(creator):
            yield

    @contextlib.contextmanager
    def _graph_scope(self, graph: tf.Graph) -> Iterator[None]:
        first = not self.frozen
        created: list[tf.Variable] = []
        where = f"in graph {id(graph):#x}"
        store = vs._get_default_variable_store()
        known = set(store._vars), set(store._partitioned_vars)

        def creator(next_creator: Any, **kwargs: Any) -> Any:
            if not self._store_creating:
                raise OwnershipError(
                    LOOSE_VARIABLE.format(
                        owner=self.owner,
                        framework=self.framework,
                        name=kwargs.get("name") or "<unnamed>",
                        where=where,
                    )
                )
            variable = next_creator(**kwargs)
            created.append(variable)
            requested = kwargs.get("name")
            if isinstance(requested, str) and canonical(variable.name) != requested:
                raise DuplicateVariablesError(
                    NAME_TAKEN.format(
                        owner=self.owner,
                        framework=self.framework,
                        name=requested,
                        got=canonical(variable.name),
                        graph=id(graph),
                    )
                )
            return variable

        try:
            with contextlib.ExitStack() as stack:
                stack.enter_context(self._counting_store(store))
                if not first:
                    stack.enter_context(
                        vs.variable_scope(
                            vs.get_variable_scope(), reuse=True, auxiliary_name_scope=False
                        )
                    )
                stack.enter_context(tf.variable_creator_scope(creator))
                yield
        except BaseException as e:
            # Forget what the failed call put in the graph's variable store, so that a
            # later call (or another owner) does not find it "already exists".
            for name in set(store._vars) - known[0]:
                del store._vars[name]
            for name in set(store._partitioned_vars) - known[1]:
                del store._partitioned_vars[name]
            if not isinstance(e, ValueError):
                raise
            message = str(e)
            missing = re.search(r"Variable (\S+) does not exist", message)
            if missing:
                raise DuplicateVariablesError(
                    NEW_VARIABLE_ON_LATER_CALL.format(
                        owner=self.owner,
                        framework=self.framework,
                        name=missing.group(1),
                        where=where,
                    )
                ) from e
            exists = re.search(r"Variable (\S+) already exists", message)
            if exists and first:
                raise DuplicateVariablesError(
                    ALREADY_EXISTS.format(
                        owner=self.owner,
                        framework=self.framework,
                        name=exists.group(1),
                        graph=id(graph),
                    )
                ) from e
            raise
        if first:
            self._graph = graph
            self._graph_vars = created

    @contextlib.contextmanager
    def _counting_store(self, store: Any) -> Iterator[None]:
        """Count variables that the graph's variable store creates (`get_variable`), so
        the creator can tell them from loose `tf.Variable`s: for the duration of the call
        the graph's store is a `_CountingStore` that shares its dicts and delegates to it."""
        counting = _CountingStore(store, self)
        with vs.with_variable_store(counting):
            yield
