"""Load a plan into a Keras model: core's apply loop with a setter that creates
deferred Keras variables straight from their checkpoint tensors (`DeferredBuild`)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from tfunite.errors import LoadError
from tfunite.plan import Step, assign_all, check_data
from tfunite.readers import Reader

from .checkpoint import open_reader
from .plan import Plan
from .progress import Phases, _as_phases


def execute(
    plan: Plan, checkpoint: str | os.PathLike | Reader, progress: bool | Phases = False
) -> None:
    """Read each planned tensor, transform it and assign it (the plan must be clean).

    Nothing is assigned unless the plan covers every model weight, the checkpoint's
    data files are complete and every tensor to read passes its checksum (core's
    `check_data`). `progress` is a bool (a bar on stderr, on a terminal) or the
    `Phases` display of a whole port.
    """
    _check_covers_model(plan)
    reader = checkpoint if isinstance(checkpoint, Reader) else open_reader(checkpoint)
    try:
        with _as_phases(progress) as phases:
            check_data(reader, plan.steps, deferred=True)  # assign_all reads all first
            advance = phases.phase("Loading weights", total=len(plan.steps))
            assign_all(
                reader,
                plan.steps,
                _set,
                fast=_eager(),  # untransformed tensors read straight into TF tensors
                what=f"weights of model {getattr(plan.model, 'name', '?')!r}",
                advance=advance,
            )
        plan.report.applied = True
    finally:
        if reader is not checkpoint:
            reader.close()


class DeferredBuild:
    """Build a Keras 3 model whose variables hold no value yet, then create each one
    straight from its checkpoint tensor.

    Keras defers a variable's initialization when it is created inside a
    ``keras.StatelessScope`` (what its JAX backend does for every model). A port uses that
    so the weights are not first filled with zeros and then overwritten: `execute`
    creates each planned variable from the tensor read for it (one copy instead of a fill
    and an assignment), and `finish` initializes what no checkpoint entry feeds (a
    Dropout layer's seed state) with its own initializer. Where this Keras lacks the
    deferred path, the build is an ordinary one and `execute` assigns as usual.
    """

    def __init__(self) -> None:
        self.pending: list[Any] = []
        self._scope: Any = None
        self._before: set[int] = set()

    @staticmethod
    def _registry() -> Any:
        try:
            import keras
            from keras.src.backend.common import global_state
            from keras.src.backend.common.variables import Variable
        except ImportError:
            return None
        if not (hasattr(keras, "StatelessScope") and hasattr(Variable, "_deferred_initialize")):
            return None
        return global_state

    def __enter__(self) -> DeferredBuild:
        state = self._registry()
        if state is None or state.get_global_attribute("stateless_scope") is not None:
            return self  # no deferred path, or already inside someone else's scope
        import keras

        self._before = {id(v) for v in state.get_global_attribute("uninitialized_variables", [])}
        self._scope = keras.StatelessScope(initialize_variables=False)
        self._scope.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._scope is None:
            return
        self._scope.__exit__(*exc)
        state = self._registry()
        registry = state.get_global_attribute("uninitialized_variables", [])
        self.pending = [v for v in registry if id(v) not in self._before]
        # the variables are ours to initialize: Keras' registry must not do it again
        mine = {id(v) for v in self.pending}
        state.set_global_attribute(
            "uninitialized_variables", [v for v in registry if id(v) not in mine]
        )

    def finish(self) -> None:
        """Initialize, with their own initializers, the variables `execute` left empty."""
        for var in self.pending:
            if getattr(var, "_value", None) is None:
                var._deferred_initialize()
        self.pending = []


def _eager() -> bool:
    import tensorflow as tf

    return bool(tf.executing_eagerly())


def _set(var: Any, value: np.ndarray, step: Step) -> None:
    """Assign `value` to `var`, or create a deferred Keras variable from it."""
    if getattr(var, "_value", True) is not None or not hasattr(var, "_deferred_initialize"):
        var.assign(value)
        return
    if tuple(value.shape) != tuple(var.shape):  # the plan checked the transformed shape
        raise LoadError(
            f"Checkpoint entry {step.source!r} gives shape {tuple(value.shape)} for Keras weight "
            f"{var.path!r}, which expects {tuple(var.shape)}. Fix: check the transform."
        )
    var._initializer = lambda shape, dtype=None: value
    var._deferred_initialize()


def _check_covers_model(plan: Plan) -> None:
    """Refuse (before any assignment) a plan that leaves a model weight unassigned: it
    would silently keep the zeros of a fast build (or its initializer's values)."""
    weights = getattr(plan.model, "weights", None)
    if weights is None:
        return
    assigned = {id(step.var) for step in plan.steps}
    left = [getattr(w, "path", None) or w.name for w in weights if id(w) not in assigned]
    if left:
        shown = ", ".join(left[:8]) + (f" and {len(left) - 8} more" if len(left) > 8 else "")
        raise LoadError(
            f"The plan assigns no checkpoint entry to {len(left)} weight(s) of model "
            f"{getattr(plan.model, 'name', '?')!r}: {shown}. Nothing was loaded. Fix: add rules "
            "mapping checkpoint entries onto these weights.",
            plan.report,
        )
