"""Owners under `tf.distribute`: MirroredStrategy and MultiWorkerMirroredStrategy.

tfunite adds nothing to TensorFlow's distributed engine; it makes owners compose with
it and refuses the combinations that would silently train wrong:

- **Capture composes with the strategy's creator.** An owner built inside
  `strategy.scope()` records the strategy's `MirroredVariable`s (never a per-replica
  component, never a `replica_` name): capture.py's creator runs inside the strategy's.
  Its non-trainable variables that declare no aggregation (Keras 3 and Sonnet
  BatchNorm moving statistics) get `MEAN` (floats) or `ONLY_FIRST_REPLICA` (integer
  counters) from `aggregation_for`, so a replica's update is combined with the
  others' instead of landing on its own copy only (TF-Slim's batch_norm already
  declares `MEAN`). **BatchNorm moving statistics are therefore the mean of the
  replicas' updates**: each replica normalizes with its own shard's batch statistics
  (TensorFlow's default; use a synchronized BatchNorm of the framework for global-batch
  statistics) and the moving averages move by the mean of the replicas' steps.
  Variables created before their owner ran (a Keras model built at construction by
  `keras.Input`) keep the framework's aggregation; if their replicas drift apart,
  `tu.save` refuses them (`check_replicas`) rather than write one replica's copy.
- **Gradients are all-reduced exactly once**, by the wrapped optimizer: Keras 3 and
  tf_keras optimizers sum the replicas' gradients themselves inside `apply`; tfunite
  adds no reduction of its own. Sonnet optimizers do not reduce (Sonnet leaves it to
  the caller) and are refused under a multi-replica strategy (`check_optimizer`).
- **Owners and optimizers belong to one strategy.** An optimizer built outside the
  scope of its owner's variables, or an owner built outside the scope and stepped
  inside `strategy.run`, raises `DistributeError` before anything is updated.
- **Saves.** Every worker calls `tu.save` (reading a variable may need every worker);
  only the chief writes into the checkpoint directory, the others write into a scratch
  directory they delete (`worker_scratch`), as TensorFlow's own multi-worker saving
  does. A save refuses variables whose local replicas disagree (`check_replicas`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable
from typing import Any

import tensorflow as tf

from .errors import DistributeError

_local = threading.local()  # set while a non-chief worker saves into its scratch directory


def _strategy(variable: Any) -> Any | None:
    """The strategy that distributes `variable`, or None for a plain variable."""
    if isinstance(variable, tf.distribute.DistributedValues):
        return getattr(variable, "_distribute_strategy", None)
    return None


def _describe(strategy: Any | None) -> str:
    if strategy is None or type(strategy).__name__ == "_DefaultDistributionStrategy":
        return "no strategy (outside any strategy.scope())"
    return f"{type(strategy).__name__} at {id(strategy):#x}"


def current_strategy() -> Any | None:
    """The strategy whose scope or `run` is active, or None (the default strategy)."""
    return tf.distribute.get_strategy() if tf.distribute.has_strategy() else None


def scope_of(strategy: Any | None) -> contextlib.AbstractContextManager[Any]:
    """`strategy.scope()` unless it is already active (or there is no strategy)."""
    if strategy is None or current_strategy() is strategy:
        return contextlib.nullcontext()
    scope: contextlib.AbstractContextManager[Any] = strategy.scope()
    return scope


def aggregation_for(kwargs: dict[str, Any]) -> Any | None:
    """The aggregation a variable about to be created inside a strategy's scope should
    get, or None to keep what its framework asked for.

    Only non-trainable variables that declare none: Keras 3 and Sonnet create their
    BatchNorm moving statistics with `NONE`, under which a replica's update in
    `strategy.run` changes its own copy only and the replicas silently drift apart.
    """
    if current_strategy() is None or kwargs.get("trainable") is not False:
        return None
    if kwargs.get("synchronization") == tf.VariableSynchronization.ON_READ:
        return None
    aggregation = kwargs.get("aggregation")
    if aggregation not in (None, tf.VariableAggregation.NONE):
        return None
    dtype = kwargs.get("dtype")
    if dtype is None:
        initial = kwargs.get("initial_value")
        dtype = getattr(initial, "dtype", None)
    try:
        floating = dtype is not None and tf.as_dtype(dtype).is_floating
    except TypeError:
        floating = False
    return tf.VariableAggregation.MEAN if floating else tf.VariableAggregation.ONLY_FIRST_REPLICA


def variables_strategy(where: str, named: Iterable[tuple[str, Any]]) -> Any | None:
    """The one strategy distributing every variable of `named`, or None if none is.

    Raises `DistributeError` when some are distributed and others are not (an owner
    built outside `strategy.scope()` combined with owners built inside it), or when
    they belong to two strategies.
    """
    by: dict[int, tuple[Any, list[str]]] = {}
    for name, var in named:
        strategy = _strategy(var)
        by.setdefault(id(strategy), (strategy, []))[1].append(name)
    if len(by) <= 1:
        return next(iter(by.values()))[0] if by else None
    groups = "; ".join(
        f"{_describe(s)}: {', '.join(names[:3])}{', ...' if len(names) > 3 else ''}"
        for s, names in by.values()
    )
    raise DistributeError(
        f"{where}: its variables belong to different strategies ({groups}). Expected "
        "every variable created inside one strategy.scope(). Fix: build (first call or "
        "initialize) every owner inside the same `with strategy.scope():` block."
    )


def check_optimizer(name: str, kind: str, optimizer: Any, strategy: Any | None) -> None:
    """Refuse an optimizer that would not step `strategy`'s variables correctly."""
    if strategy is None:
        inside = current_strategy()
        if inside is not None and inside.num_replicas_in_sync > 1:
            raise DistributeError(
                f"Optimizer {name!r} is built inside the scope of {_describe(inside)}, but "
                "its owner's variables are plain tf.Variables: the owner was built outside "
                "strategy.scope(). Expected the owner's variables created inside the "
                "scope. Fix: build (first call or initialize) the owner inside "
                "`with strategy.scope():` too."
            )
        return
    if kind in ("keras", "tf_keras"):
        own = getattr(optimizer, "_distribution_strategy", None)
        if own is not strategy:
            raise DistributeError(
                f"Optimizer {name!r}: its {kind} optimizer was created under "
                f"{_describe(own)}, but the owner's variables belong to {_describe(strategy)}. Expected the "
                "optimizer created inside the same strategy.scope() (it all-reduces the "
                "gradients through the strategy it was created under). Fix: create the "
                "optimizer and tu.Optimizer inside `with strategy.scope():`."
            )
    elif kind == "sonnet" and strategy.num_replicas_in_sync > 1:
        raise DistributeError(
            f"Optimizer {name!r} wraps a Sonnet optimizer ({type(optimizer).__name__}), "
            f"but the owner's variables belong to {type(strategy).__name__} with "
            f"{strategy.num_replicas_in_sync} replicas: Sonnet optimizers do not all-reduce "
            "gradients and refuse this strategy. Fix: use a Keras 3 optimizer, e.g. "
            "tu.Optimizer('adam', owner), created inside strategy.scope()."
        )


def reduce_for_keras(optimizer: Any, grads: list[Any]) -> list[Any]:
    """`grads` summed over the replicas where the Keras 3 optimizer would not do it.

    Keras 3.3-3.5's TensorFlow optimizer sums the replicas' gradients inside its
    merge_call, in cross-replica context, where there is no replica context and nothing
    is reduced: each replica then steps its own copy of a mirrored variable with its own
    gradient and the copies drift apart. Later Keras sums before the merge_call. For the
    old ones the gradients are summed here, in the replica context, as Keras means to.
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1 or _keras_sums(type(optimizer)):
        return grads
    return list(context.all_reduce(tf.distribute.ReduceOp.SUM, list(grads)))


_KERAS_SUMS: dict[type, bool] = {}


def _keras_sums(cls: type) -> bool:
    """Whether optimizer class `cls` sums the replicas' gradients in the replica context
    (its `_backend_update_step` reduces before its merge_call); True when unknown."""
    if cls not in _KERAS_SUMS:
        import inspect

        step = getattr(cls, "_backend_update_step", None)
        try:
            source = inspect.getsource(step) if step is not None else ""
        except (OSError, TypeError):
            source = ""
        before_merge = source.split("maybe_merge_call")[0]
        _KERAS_SUMS[cls] = not source or "_all_reduce_sum_gradients" in before_merge
    return _KERAS_SUMS[cls]


def check_host_scope(where: str, named: Iterable[tuple[str, Any]]) -> None:
    """Inside `strategy.scope()`, refuse variables that strategy does not distribute.

    A Keras model compiled inside the scope builds its optimizer slots next to each
    weight; a plain variable there fails in Keras' `fit` with a bare TF error."""
    inside = current_strategy()
    if inside is None:
        return
    named = list(named)
    strategy = variables_strategy(where, named)
    if strategy is inside:
        return
    shown = ", ".join(n for n, _ in named[:3]) + (", ..." if len(named) > 3 else "")
    raise DistributeError(
        f"{where} is made inside the scope of {_describe(inside)}, but the owner's "
        f"variables ({shown}) were created under {_describe(strategy)}: the owner was "
        "built outside that strategy.scope(), and Keras could not train them under it. "
        "Expected the owner's variables created inside the same scope. Fix: build (first "
        "call or initialize) the owner inside `with strategy.scope():` too, or pass it "
        "unbuilt with input_shape= so that tu.keras_layer builds it there."
    )


@tf.autograph.experimental.do_not_convert  # plain Python checks, run while tracing
def check_step(name: str, owner: str, named: Iterable[tuple[str, Any]]) -> None:
    """Inside `strategy.run`, every variable stepped must be distributed by that strategy."""
    if tf.distribute.in_cross_replica_context():
        return
    strategy = tf.distribute.get_strategy()
    if strategy.num_replicas_in_sync <= 1:
        return  # one replica (OneDeviceStrategy): nothing to combine
    outside = [n for n, v in named if _strategy(v) is not strategy]
    if outside:
        shown = ", ".join(outside[:3]) + (", ..." if len(outside) > 3 else "")
        raise DistributeError(
            f"Optimizer {name!r} steps {owner!r} inside {type(strategy).__name__}.run, but "
            f"{len(outside)} of its variables ({shown}) were not created inside that "
            "strategy's scope: each replica would update the one copy on its own, without "
            "all-reducing. Expected variables of the running strategy. Fix: build the owner "
            "and tu.Optimizer inside `with strategy.scope():`."
        )


def check_replicas(named: Iterable[tuple[str, Any]], where: str) -> None:
    """Refuse variables whose replicas on this worker hold different values."""
    differ = []
    for name, var in named:
        if _strategy(var) is None or not hasattr(var, "values") or len(var.values) < 2:
            continue
        if isinstance(var, tf.distribute.DistributedValues) and not hasattr(var, "_primary"):
            continue
        if getattr(var, "synchronization", None) == tf.VariableSynchronization.ON_READ:
            continue  # per-replica on purpose: read as their aggregation
        first, *rest = (c.numpy() for c in var.values)
        if any(not (first == other).all() for other in rest):
            differ.append(name)
    if differ:
        shown = ", ".join(differ[:5]) + (", ..." if len(differ) > 5 else "")
        raise DistributeError(
            f"{where}: the replicas disagree on {shown}: expected every copy of a mirrored "
            "variable to hold the same value. A replica updated its own copy only (a "
            "variable created with aggregation NONE and assigned inside strategy.run, such "
            "as the BatchNorm statistics of a Keras model built by keras.Input before its "
            "owner ran). Fix: create the variable during the owner's first call inside "
            "strategy.scope() (tfunite gives it MEAN aggregation; for Keras leave out "
            "keras.Input), or give it an explicit aggregation; nothing was saved."
        )


def _is_chief(strategy: Any) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    task_id = getattr(resolver, "task_id", None)
    if task_type in (None, "chief"):
        return True
    cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
    return task_type == "worker" and task_id == 0 and "chief" not in cluster


def worker_scratch(
    path: str, named: Iterable[tuple[str, Any]]
) -> Callable[[Callable[[str], str]], str] | None:
    """None on the chief (or without a multi-worker strategy): save into `path`.

    On any other worker, a function that runs a save into a fresh scratch directory
    next to `path` and deletes it: the worker reads its variables like the chief does
    (which may take part in collective reads) and leaves nothing behind.
    """
    if getattr(_local, "scratch", False):
        return None
    strategy = variables_strategy(f"Saving to {path}", named)
    if strategy is None or not strategy.extended._in_multi_worker_mode():
        return None
    if _is_chief(strategy):
        return None
    resolver = strategy.cluster_resolver

    def run(save: Callable[[str], str]) -> str:
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        scratch = tempfile.mkdtemp(
            prefix=f".{os.path.basename(path)}.{resolver.task_type}_{resolver.task_id}.",
            dir=parent,
        )
        _local.scratch = True
        try:
            return save(scratch)
        finally:
            _local.scratch = False
            shutil.rmtree(scratch, ignore_errors=True)

    return run
