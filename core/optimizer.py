"""`Optimizer`: an owner for an optimizer's own variables (slots, step counter).

Wraps a Keras 3, tf_keras or Sonnet 2 optimizer, or builds a Keras 3 one by name, over
the trainable variables of one owner. Its variables have stable names derived from the
owner's names (`momentum/dense/kernel`, `iteration`), so it can sit in a `Parameters`
and be checkpointed with the model: a resumed run continues exactly.

The framework is recognised by the class's module, matched against the `class_prefixes`
of the records with `optimizers=True` (records.py), so this file imports no framework
except Keras 3 when an optimizer is built by name.
"""

from __future__ import annotations

import re
from typing import Any

import tensorflow as tf

from . import distribute
from .capture import capturing
from .errors import GraphModeError, NotBuiltError
from .owner import Owner, check_name
from .records import records


def _kind(optimizer: Any) -> str:
    """The name of the record (with `optimizers=True`) whose classes `optimizer` is of."""
    accepting = [r for r in records().values() if r.optimizers]
    for record in accepting:
        if record.owns_class(type(optimizer)):
            return record.name
    titles = ", ".join(r.title for r in accepting)
    raise TypeError(
        f"tu.Optimizer cannot wrap {type(optimizer).__module__}.{type(optimizer).__qualname__}: "
        f"expected an optimizer of {titles}, or a Keras optimizer name such as 'adam'."
    )


def _by_name(name: str, config: dict[str, Any]) -> Any:
    """A Keras 3 optimizer by name; where `keras` is still Keras 2 (TensorFlow < 2.16),
    the tf_keras one, which Keras 2's own `get` would make a legacy optimizer."""
    import keras

    if int(keras.__version__.split(".")[0]) < 3:
        # Keras 2's deserializer makes a legacy optimizer of any config that does not
        # say otherwise.
        config = {**config, "is_legacy_optimizer": False}
        try:
            import tf_keras as keras
        except ImportError:
            raise TypeError(
                f"tu.Optimizer({name!r}) builds a Keras 3 optimizer, but keras "
                f"{keras.__version__} is Keras 2. Fix: pip install 'tfunite[tf-keras]' (its "
                "optimizers are used then), or pass an optimizer instance."
            ) from None
    try:
        return keras.optimizers.get({"class_name": name, "config": config})
    except ValueError as e:
        raise ValueError(
            f"Unknown optimizer name {name!r} ({e}). Fix: use a Keras optimizer name such "
            "as 'adam', 'sgd', 'rmsprop', or pass an optimizer instance."
        ) from None


def _tf_variable(v: Any) -> tf.Variable:
    """The tf.Variable behind a Keras 3 variable (tf.Variable itself otherwise)."""
    return v if isinstance(v, tf.Variable) else v.value


def _is_variable(v: Any) -> bool:
    return isinstance(v, tf.Variable) or (
        hasattr(v, "value") and isinstance(getattr(v, "value", None), tf.Variable)
    )


def _patterns(value: str | list[str] | None, what: str) -> list[re.Pattern[str]]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    out = []
    for item in items:
        try:
            out.append(re.compile(item))
        except (re.error, TypeError) as e:
            raise ValueError(
                f"tu.Optimizer {what}={item!r} is not a regular expression ({e}). Expected "
                "regexes over canonical names. Fix: e.g. include=r'^head/'."
            ) from None
    return out


def _select(
    owner: Owner, include: list[re.Pattern[str]], exclude: list[re.Pattern[str]], name: str
) -> list[tf.Variable]:
    """The owner's trainable variables matching `include` (any, searched in the
    canonical name; all when empty) and no `exclude` pattern, in the owner's order."""
    trainable = {id(v) for v in owner.trainable_variables}
    names = [(n, v) for n, v in owner.variables.items() if id(v) in trainable]
    chosen = [
        v
        for n, v in names
        if (not include or any(p.search(n) for p in include))
        and not any(p.search(n) for p in exclude)
    ]
    if not chosen:
        given = ", ".join(
            f"{w}={[p.pattern for p in ps]}"
            for w, ps in (("include", include), ("exclude", exclude))
            if ps
        )
        raise ValueError(
            f"Optimizer {name!r}: {given} selects none of the {len(names)} trainable "
            f"variables of {owner.name!r} ({', '.join(n for n, _ in names[:6])}"
            f"{', ...' if len(names) > 6 else ''}). Fix: use regexes that match these "
            "canonical names (searched anywhere in the name)."
        )
    return chosen


class Optimizer(Owner):
    """An optimizer that owns its variables.

    `include`/`exclude` (a regex or a list, searched in canonical names) train part of
    the owner, e.g. ``include=r"^head/"`` over a frozen trunk; `include` matching no
    trainable variable is an error.

    >>> import keras
    >>> model = tu.wrap(keras.Sequential([keras.layers.Dense(1)]), name="model")
    >>> _ = model.initialize(np.zeros([1, 2], np.float32))
    >>> opt = tu.Optimizer("adam", model, learning_rate=1e-3)
    >>> x = np.ones([4, 2], np.float32)
    >>> loss = opt.minimize(lambda: tf.reduce_mean(model(x) ** 2))  # eagerly or in tf.function
    >>> list(opt.variables)  # named after the variables they serve
    ['iteration', 'learning_rate', 'momentum/dense/kernel', 'momentum/dense/bias',
     'velocity/dense/kernel', 'velocity/dense/bias']
    """

    framework = "optimizer"

    def __init__(
        self,
        optimizer: Any,
        owner: Owner,
        name: str | None = None,
        include: str | list[str] | None = None,
        exclude: str | list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        check_name(name or "optimizer")
        # Validated before anything is made: a refused optimizer leaves no trace.
        self._include = _patterns(include, "include")
        self._exclude = _patterns(exclude, "exclude")
        if owner.built:
            _select(owner, self._include, self._exclude, name or "optimizer")
        super().__init__(name or "optimizer")
        if isinstance(optimizer, str):
            # Built inside the owner's capture: its step counter and learning rate are
            # this owner's variables (also under tu.strict()).
            with capturing(self):
                optimizer = _by_name(optimizer, kwargs)
        elif kwargs:
            raise TypeError(
                f"Options {sorted(kwargs)} are only accepted with an optimizer name; "
                "configure the optimizer instance itself instead."
            )
        self.kind = _kind(optimizer)
        if self.kind == "tf_keras" and not hasattr(optimizer, "build"):
            raise TypeError(
                f"tu.Optimizer cannot wrap {type(optimizer).__module__}."
                f"{type(optimizer).__qualname__}: a tf_keras legacy optimizer creates its "
                "slots lazily under names of its own. Fix: use the tf_keras optimizer of the "
                "same name outside `optimizers.legacy` (e.g. tf_keras.optimizers.Adam)."
            )
        self.optimizer = optimizer
        self.owner = owner

    # The variables it trains: the owner's trainable variables whose canonical names
    # match `include` and not `exclude`, in the owner's order.
    def _var_list(self) -> list[tf.Variable]:
        if not self._include and not self._exclude:
            return self.owner.trainable_variables
        return _select(self.owner, self._include, self._exclude, self.name)

    def build(self) -> Optimizer:
        """Create the slot variables and the step counter (idempotent); the owner must
        be built. `minimize`, `apply` and `tu.load` call it."""
        if self.built:
            return self
        if not self.owner.built:
            raise NotBuiltError(
                f"Optimizer {self.name!r} cannot create its slots: its owner "
                f"{self.owner.name!r} has no variables yet. Fix: build the owner first "
                f"({self.owner.name}(example) or {self.owner.name}.initialize(example)), "
                f"then {self.name}.build() (or its first minimize/apply, or tu.load)."
            )
        var_list = self._var_list()
        self._refs = {id(v): n for n, v in self.owner.variables.items()}
        self._built_for = [id(v) for v in var_list]
        where = f"Optimizer {self.name!r} over {self.owner.name!r}"
        strategy = distribute.variables_strategy(where, self.owner.variables.items())
        distribute.check_optimizer(self.name, self.kind, self.optimizer, strategy)
        # Slots are created under the variables' strategy (mirrored like them).
        with distribute.scope_of(strategy), capturing(self) as created:
            if self.kind == "sonnet":
                if hasattr(self.optimizer, "_initialize"):
                    self.optimizer._initialize(var_list)
            else:
                self.optimizer.build(var_list)
        self._created = list(created)  # e.g. tf_keras' learning_rate, which it does not list
        self._check_unique()
        self._check_all_owned(created)
        self.built = True
        return self

    def __call__(self, inputs: Any, training: bool = False) -> Any:
        raise TypeError(
            "tu.Optimizer is not called; use opt.minimize(loss_fn) or opt.apply(grads)."
        )

    def _require_built(self) -> None:
        if not self.built:
            raise NotBuiltError(
                f"Optimizer {self.name!r} has no slots yet. Fix: call {self.name}.build() "
                f"once its owner {self.owner.name!r} is built (minimize, apply and tu.load "
                "build it too)."
            )

    def _build_deferred(self) -> None:
        if not self.built and self.owner.built:
            self.build()

    def apply(self, grads: list[Any]) -> None:
        """Apply `grads`, given in the order of the variables it trains (the owner's
        `trainable_variables`, filtered by `include`/`exclude`)."""
        self.build()
        var_list = self._var_list()
        if [id(v) for v in var_list] != self._built_for:
            raise NotBuiltError(
                f"Optimizer {self.name!r}: the trainable variables of {self.owner.name!r} "
                "changed since the optimizer was built (a layer was frozen or added). "
                "Fix: create a new tu.Optimizer for the new set of variables."
            )
        if len(grads) != len(var_list):
            raise ValueError(
                f"Optimizer {self.name!r}: got {len(grads)} gradients for {len(var_list)} "
                f"trainable variables it trains in {self.owner.name!r}. Fix: pass one "
                "gradient per variable, in the order of owner.trainable_variables (filtered "
                "by include/exclude), or use minimize."
            )
        missing = [self._refs[id(v)] for g, v in zip(grads, var_list) if g is None]
        if missing:
            raise ValueError(
                f"Optimizer {self.name!r}: no gradient for {missing}. The loss does not depend "
                "on these variables. Fix: check the loss uses this owner's outputs, or freeze them."
            )
        if tf.distribute.has_strategy():
            distribute.check_step(self.name, self.owner.name, self.owner.variables.items())
        if self.kind == "keras":
            self.optimizer.apply(distribute.reduce_for_keras(self.optimizer, grads), var_list)
        elif self.kind == "tf_keras":
            self.optimizer.apply_gradients(zip(grads, var_list))
        else:
            self.optimizer.apply(grads, var_list)

    def minimize(self, loss_fn: Any) -> tf.Tensor:
        """Compute `loss_fn()` under a tape, apply its gradients, return the loss."""
        self.build()
        var_list = self._var_list()
        with tf.GradientTape() as tape:
            loss = loss_fn()
        self.apply(tape.gradient(loss, var_list))
        return loss

    def train_op(self, loss: tf.Tensor) -> tf.Operation:
        """TF1 graph mode: one op that applies the gradients of `loss` and runs the
        owner's update ops (BatchNorm moving statistics)."""
        if tf.executing_eagerly():
            raise GraphModeError("train_op() is for TF1 graphs; eagerly use minimize(loss_fn).")
        if self.kind == "keras":
            raise GraphModeError(
                f"Optimizer {self.name!r} wraps a Keras 3 optimizer, which does not run in a "
                "TF1 Session. Fix: use a tf_keras or Sonnet optimizer in graph mode."
            )
        self.build()
        var_list = self._var_list()
        updates = [op for _, leaf in self.owner.leaves() for op in leaf._updates()]
        grads = tf.gradients(loss, var_list)

        # tf_keras (new API) and Sonnet optimizers are eager-style Python: run directly in a
        # TF1 graph their variable updates are silently dropped (only the step counter
        # moves). Traced as a function inside the graph, every update runs.
        @tf.function(autograph=False)
        def apply(*g: Any) -> tf.Tensor:
            self.apply(list(g))
            return tf.constant(0)

        with tf.control_dependencies(updates):
            return apply(*grads).op

    # ---------------------------------------------------------------- hooks
    def _collect(self) -> list[tuple[str, tf.Variable, bool]]:
        opt = self.optimizer
        refs = self._refs
        out: list[tuple[str, tf.Variable, bool]] = []
        in_slots: set[int] = set()
        n = len(self._built_for)
        ref_ids = set(self._built_for)
        # The step counter and learning rate: a list holding them is the optimizer's own
        # list of all its variables, not slots (it has n entries when n == 2).
        state = {
            id(_tf_variable(v))
            for v in (
                getattr(opt, a, None)
                for a in ("_iterations", "iterations", "_learning_rate", "learning_rate")
            )
            if v is not None and _is_variable(v)
        }
        for attr, value in sorted(vars(opt).items()):
            if not isinstance(value, (list, tuple)) or len(value) != n or n == 0:
                continue
            if not all(v is None or _is_variable(v) for v in value):
                continue
            tf_vars = [None if v is None else _tf_variable(v) for v in value]
            if any(v is not None and (id(v) in ref_ids or id(v) in state) for v in tf_vars):
                continue  # the variable list itself, or the optimizer's list of its own
            slot = re.sub(r"(?<=[^s])s$", "", re.sub(r"ies$", "y", attr.strip("_")))
            for ref_id, var in zip(self._built_for, tf_vars):
                if var is not None:
                    out.append((f"{slot}/{refs[ref_id]}", var, False))
                    in_slots.add(id(var))
        try:
            variables = (
                opt.variables() if callable(getattr(opt, "variables", None)) else opt.variables
            )
        except ValueError:  # a stateless Sonnet optimizer (SGD) refuses to list nothing
            variables = []
        scalars, seen = [], set(in_slots)
        # Some state is neither listed nor created in build (tf_keras' learning_rate is
        # made in __init__ and held as an attribute): look at attributes too.
        held = [_tf_variable(v) for v in vars(opt).values() if _is_variable(v)]
        for var in [_tf_variable(v) for v in variables] + self._created + held:
            if id(var) not in seen:
                seen.add(id(var))
                scalars.append((var.name.split("/")[-1].split(":")[0], var, False))
        return scalars + out
