"""Compatibility probe: which bridge x feature works in this environment, proven by running it.

`tfunite compat` (or `python -m tfunite.tools.compat`) runs one real probe per registered
bridge x feature, each bridge in its own subprocess (a clean, time-bounded process), and
prints a table of pass / fail / skip / n/a with the reason for everything that is not a
pass. The probes are declared as data next to the bridge registry: `CASES` says how to
build a small model for a bridge, `PROBES` maps (bridge, feature) to the function that
checks it, and `NOT_PROBED` is the explicit allow-list (with a reason) for the cells that
have no probe. A test fails when a registered bridge x feature is in neither.

Every probe goes through the public API only (`tu.wrap`, `tu.slim`, `tu.tflearn`,
`tu.Optimizer`, `tu.save`, `tu.load`, `tu.port`, `owner.initialize(session=...)`) and
asserts something real: outputs finite and equal between modes at rtol=atol=1e-6, the
loss decreasing after a training step, a load round trip that is exact.

    python -m tfunite.tools.compat                  # table for every bridge
    python -m tfunite.tools.compat --bridge slim    # one bridge
    python -m tfunite.tools.compat --json           # machine-readable (used by tools/matrix.py)
    python -m tfunite.tools.compat --check compat_matrix.md   # CI: exit 1 if the matrix is stale

Statuses: ``pass`` (the assertion held), ``fail`` (it did not, or the code raised: the
reason is the real error), ``skip`` (the framework is not installed here), ``n/a`` (the
feature does not exist for this bridge by design: either a probe verified that tfunite
says so with a clear error, as for Keras 3 in a TF1 graph, or the cell is on the
`NOT_PROBED` allow-list, whose reason is printed, as for porting anything but Slim).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Every feature probed, and what its probe checks (the matrix prints this as a legend).
FEATURE_DOCS: dict[str, str] = {
    "import": "the framework and the bridge module import; eager execution stays on",
    "wrap": "an owner is built; names canonical, and the same after building other models",
    "eager": "forward pass eagerly: deterministic, equal to the framework's own call",
    "function": "inside tf.function equals eager; an owner first built inside tf.function too",
    "graph": "a fresh owner in a TF1 tf.Graph + Session equals eager with the same values",
    "train": "tu.Optimizer steps (eager and tf.function): loss decreases, every weight moves",
    "train_graph": "tu.Optimizer.train_op in a TF1 Session: loss decreases, every weight moves",
    "save": "tu.save writes a name-based checkpoint tf.train.load_checkpoint reads exactly",
    "load": "tu.load into a fresh owner restores every value exactly, same outputs",
    "native": "the framework's own checkpoint formats load through tu.load exactly",
    "golden": "the checked-in golden checkpoints (tests/golden/<bridge>) load exactly",
    "port": "tu.port turns a Slim checkpoint into a Keras 3 model with the same outputs",
}
FEATURES: tuple[str, ...] = tuple(FEATURE_DOCS)

STATUSES = ("pass", "fail", "skip", "n/a")
# rows of the matrix's versions table that say where a column comes from, not a package
PROVENANCE_ROWS = ("probed (UTC)", "tfunite commit")
# Features probed first thing in a fresh process of their own, as a TF1 script would run
# them: an earlier eager build must not make them pass (Sonnet's once-only TF2 check).
FRESH = frozenset({"graph", "train_graph"})
MARK = "@@tfunite-probe@@ "  # prefixes the worker's result lines (frameworks print too)
RTOL = ATOL = 1e-6  # float32 default (DESIGN.md)


# ---------------------------------------------------------------------------- results
@dataclass
class Result:
    bridge: str
    feature: str
    status: str  # one of STATUSES
    reason: str = ""  # why it is not a pass (the real error for a fail)
    seconds: float = 0.0


class NotApplicable(Exception):
    """Raised by a probe when the feature does not exist for a bridge, by design."""


class Skip(Exception):
    """Raised by a probe when it cannot run here (a framework is not installed)."""


# ---------------------------------------------------------------------------- cases
@dataclass(frozen=True)
class Case:
    """How to build a small model for one bridge.

    `build()` returns a fresh owner (not yet built) and the framework's own object (the
    Keras model, the Sonnet module, the Slim/TFLearn function), so that probes can write
    the framework's native checkpoints. `example()` is the input batch.
    """

    bridge: str
    module: str  # the framework's import name
    distribution: str  # its pip distribution
    extra: str  # the tfunite extra that installs it
    build: Callable[[], tuple[Any, Any]]
    example: Callable[[], Any]
    tf1: Callable[[Any], Any] | None = None  # the plain framework code in a TF1 graph


def _mlp_example():
    import numpy as np

    return (np.arange(8, dtype=np.float32).reshape(2, 4) - 3.5) / 4.0


def _build_keras():
    import keras
    import tfunite as tu

    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(8, activation="tanh", name="hidden")(inputs)
    # Auto-named layers: their names (`batch_normalization`, `dense`) must not depend on
    # what the process built before (Keras numbers them per process).
    normed = keras.layers.BatchNormalization()(hidden)
    outputs = keras.layers.Dense(3)(normed)
    model = keras.Model(inputs, outputs, name="mlp")
    return tu.wrap(model, name="mlp"), model


def _build_tf_keras():
    import tf_keras
    import tfunite as tu

    inputs = tf_keras.Input((4,))
    hidden = tf_keras.layers.Dense(8, activation="tanh", name="hidden")(inputs)
    # Auto-named layers: their names (`batch_normalization`, `dense`) must not depend on
    # what the process built before (Keras numbers them per process).
    normed = tf_keras.layers.BatchNormalization()(hidden)
    outputs = tf_keras.layers.Dense(3)(normed)
    model = tf_keras.Model(inputs, outputs, name="mlp")
    return tu.wrap(model, name="mlp"), model


def _build_sonnet():
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


def _build_tf_module():
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


def slim_mlp(inputs, is_training):
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


def slim_graph(inputs):
    """The plain Slim model in a TF1 graph (inference mode)."""
    return slim_mlp(inputs, False)


def _build_slim():
    import tfunite as tu

    return tu.slim(slim_mlp, name="mlp"), slim_mlp


def tflearn_mlp(inputs):
    """A two-layer TFLearn MLP."""
    import tflearn

    net = tflearn.fully_connected(inputs, 8, activation="tanh", scope="fc1")
    return tflearn.fully_connected(net, 3, activation="linear", scope="logits")


def tflearn_graph(inputs):
    """The plain TFLearn model in a TF1 graph, with TFLearn's own training flag."""
    import tflearn

    tflearn.config.init_training_mode()  # what tflearn.DNN does: `is_training` is in its checkpoints
    return tflearn_mlp(inputs)


def _build_tflearn():
    import tfunite as tu

    return tu.tflearn(tflearn_mlp, name="mlp"), tflearn_mlp


CASES: dict[str, Case] = {
    "keras": Case("keras", "keras", "keras", "keras", _build_keras, _mlp_example),
    "tf_keras": Case("tf_keras", "tf_keras", "tf-keras", "tf-keras", _build_tf_keras, _mlp_example),
    "sonnet": Case("sonnet", "sonnet", "dm-sonnet", "sonnet", _build_sonnet, _mlp_example),
    "slim": Case("slim", "tf_slim", "tf-slim", "slim", _build_slim, _mlp_example, slim_graph),
    "tflearn": Case(
        "tflearn", "tflearn", "tflearn", "tflearn", _build_tflearn, _mlp_example, tflearn_graph
    ),
    "tf_module": Case("tf_module", "tensorflow", "tensorflow", "", _build_tf_module, _mlp_example),
}


# ---------------------------------------------------------------------------- helpers
def values(owner: Any, session: Any = None) -> dict[str, Any]:
    """{name: numpy value} of every variable of `owner`."""
    variables = dict(owner.variables)
    if session is not None:
        return dict(zip(variables, session.run(list(variables.values())), strict=True))
    return {name: var.numpy() for name, var in variables.items()}


def deterministic(shape: Sequence[int], dtype: Any, offset: float = 0.0) -> Any:
    """`np.arange(n).reshape(shape) * 0.01 + offset`, cast to `dtype` (golden values)."""
    import numpy as np

    n = int(np.prod(shape)) if len(shape) else 1
    return (np.arange(n, dtype=np.float64).reshape(shape) * 0.01 + offset).astype(dtype)


def fill(owner: Any, offset: float = 0.0, session: Any = None) -> dict[str, Any]:
    """Assign deterministic values to every variable of `owner`; returns them."""
    filled = {}
    for name, var in owner.variables.items():
        filled[name] = deterministic(var.shape.as_list(), var.dtype.as_numpy_dtype, offset)
    assign(owner, filled, session)
    return filled


def assign(owner: Any, new: dict[str, Any], session: Any = None) -> None:
    variables = owner.variables
    if session is None:
        for name, value in new.items():
            variables[name].assign(value)
    else:
        session.run([variables[name].assign(value) for name, value in new.items()])


def check_close(got: Any, want: Any, what: str, rtol: float = RTOL, atol: float = ATOL) -> None:
    import numpy as np

    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        raise AssertionError(f"{what}: shape {got.shape}, expected {want.shape}")
    if not np.all(np.isfinite(got)):
        raise AssertionError(f"{what}: non-finite values {got}")
    if not np.allclose(got, want, rtol=rtol, atol=atol):
        diff = float(np.max(np.abs(got - want)))
        raise AssertionError(f"{what}: max abs difference {diff:.3g} > rtol=atol={rtol:g}")


def check_same_values(got: dict[str, Any], want: dict[str, Any], what: str) -> None:
    import numpy as np

    if list(got) != list(want):
        missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
        raise AssertionError(f"{what}: names differ (missing {missing}, unexpected {extra})")
    for name in want:
        if not np.array_equal(np.asarray(got[name]), np.asarray(want[name])):
            raise AssertionError(f"{what}: {name} is not restored exactly")


def check_names(owner: Any) -> list[str]:
    names = list(owner.variables)
    if not names:
        raise AssertionError(f"{owner!r} has no variables after initialize()")
    bad = [n for n in names if n.endswith(":0") or n.startswith("/") or "//" in n]
    if bad:
        raise AssertionError(f"non-canonical names {bad} (expected '/'-joined paths without ':0')")
    return names


def built(case: Case) -> tuple[Any, Any]:
    owner, native = case.build()
    owner.initialize(case.example())
    return owner, native


@contextlib.contextmanager
def graph_session(bridge: str | None = None) -> Iterator[Any]:
    """A TF1 graph and its Session; with `bridge`, that bridge's legacy fixes are applied
    first, as a TF1 script does before building its first model in a graph (README)."""
    import tensorflow as tf
    from tfunite import fixes

    if bridge is not None:
        fixes.ensure(bridge)
    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        yield session


# ---------------------------------------------------------------------------- probes
Probe = Callable[[Case, Path], None]
PROBES: dict[tuple[str, str], Probe] = {}


def probe(feature: str, *bridges: str) -> Callable[[Probe], Probe]:
    """Register `fn` as the probe of `feature` for `bridges` (every case if none given)."""
    if feature not in FEATURES:
        raise ValueError(f"Unknown feature {feature!r}; expected one of {FEATURES}.")

    def register(fn: Probe) -> Probe:
        for bridge in bridges or tuple(CASES):
            if (bridge, feature) in PROBES:
                raise ValueError(f"Probe for {bridge} x {feature} is already registered.")
            PROBES[(bridge, feature)] = fn
        return fn

    return register


@probe("import")
def probe_import(case: Case, tmp: Path) -> None:
    """The bridge module loads, an owner is made, then the framework imports (in that order:
    bridges of legacy libraries apply their import fixes when first used)."""
    import importlib

    import tensorflow as tf
    import tfunite.bridges  # noqa: F401  (registers the bridges)
    from tfunite.registry import BRIDGES

    owner_class = BRIDGES[case.bridge].load()
    owner, _ = case.build()
    if not isinstance(owner, owner_class):
        raise AssertionError(f"got {type(owner).__name__}, expected {owner_class.__name__}")
    importlib.import_module(case.module)
    if not tf.executing_eagerly():
        raise AssertionError(f"importing {case.module} switched eager execution off")


@probe("wrap")
def probe_wrap(case: Case, tmp: Path) -> None:
    import tensorflow as tf
    from tfunite.registry import BRIDGES

    first, _ = built(case)
    expected = BRIDGES[case.bridge].load()
    if not isinstance(first, expected):
        raise AssertionError(
            f"the model was wrapped by {type(first).__name__}, expected the "
            f"{case.bridge} bridge's {expected.__name__}"
        )
    names = check_names(first)
    trainable = {id(v) for v in first.trainable_variables}
    non_trainable = {id(v) for v in first.non_trainable_variables}
    if trainable & non_trainable or len(trainable | non_trainable) != len(names):
        raise AssertionError("trainable + non_trainable variables do not partition variables")
    # Names are a contract: building the same model again in the same process (after
    # other models were built) gives the same names, not `dense_1`-style renumbering.
    second, _ = built(case)
    if list(second.variables) != names:
        raise AssertionError(
            f"names changed on a second build: {names} -> {list(second.variables)}"
        )
    if not all(isinstance(v, tf.Variable) for v in first.variables.values()):
        raise AssertionError("owner.variables holds objects that are not tf.Variable")


@probe("eager")
def probe_eager(case: Case, tmp: Path) -> None:
    owner, native = built(case)
    fill(owner, 0.05)
    x = case.example()
    y1, y2 = owner(x), owner(x)
    check_close(y1, y2, "two eager calls")
    if tuple(y1.shape) != (x.shape[0], 3):
        raise AssertionError(f"output shape {tuple(y1.shape)}, expected {(x.shape[0], 3)}")
    if case.tf1 is None:  # an object: the framework's own call gives the same outputs
        # (Slim and TFLearn code is compared with its TF1 graph by the `native` probe)
        check_close(y1, native(x), "owner vs the framework's own call")


@probe("function")
def probe_function(case: Case, tmp: Path) -> None:
    import tensorflow as tf

    owner, _ = built(case)
    fill(owner, 0.05)
    x = case.example()
    eager = owner(x)
    compiled = tf.function(lambda inputs: owner(inputs))
    check_close(compiled(tf.constant(x)), eager, "tf.function vs eager")
    check_close(compiled(tf.constant(x)), eager, "tf.function second call vs eager")
    # A fresh owner whose variables are created by its first call, inside tf.function.
    fresh, _ = case.build()
    first = tf.function(lambda inputs: fresh(inputs))
    first(tf.constant(x))
    if list(fresh.variables) != list(owner.variables):
        raise AssertionError(
            f"built inside tf.function the names are {list(fresh.variables)}, "
            f"eagerly {list(owner.variables)}"
        )
    fill(fresh, 0.05)
    check_close(first(tf.constant(x)), eager, "owner built inside tf.function vs eager")


def _graph_probe(case: Case) -> None:
    import tensorflow as tf

    # The graph comes first, as in a TF1 script: this probe runs in a fresh process
    # (FRESH), so nothing built eagerly earlier can make it pass.
    x = case.example()
    with graph_session(case.bridge) as session:
        owner, _ = case.build()
        outputs = owner(tf.constant(x))
        owner.initialize(session=session)
        graph_values = fill(owner, 0.05, session)
        got = session.run(outputs)
    reference, _ = built(case)
    if list(reference.variables) != list(graph_values):
        raise AssertionError(
            f"graph names {list(graph_values)} != eager names {list(reference.variables)}"
        )
    fill(reference, 0.05)
    check_close(got, reference(x), "TF1 Session vs eager")


@probe("graph", "tf_keras", "sonnet", "slim", "tflearn", "tf_module")
def probe_graph(case: Case, tmp: Path) -> None:
    _graph_probe(case)


@probe("graph", "keras")
def probe_graph_keras3(case: Case, tmp: Path) -> None:
    """Keras 3 does not run in TF1 graphs: tfunite must say so with GraphModeError."""
    import tfunite as tu

    try:
        _graph_probe(case)
    except tu.GraphModeError as e:
        raise NotApplicable(
            f"Keras 3 does not run in a TF1 Session; tfunite raises "
            f"GraphModeError ({str(e).split('. ')[0]})"
        ) from e
    raise AssertionError("expected GraphModeError for Keras 3 in a TF1 graph, got outputs")


@probe("train")
def probe_train(case: Case, tmp: Path) -> None:
    import numpy as np
    import tensorflow as tf
    import tfunite as tu

    owner, _ = built(case)
    x = tf.constant(case.example())
    target = tf.constant(np.linspace(-1.0, 1.0, 6, dtype=np.float32).reshape(2, 3))
    optimizer = tu.Optimizer("adam", owner, learning_rate=1e-2)

    def loss_fn():
        return tf.reduce_mean(tf.square(owner(x, training=True) - target))

    before = [v.numpy() for v in owner.trainable_variables]
    first = float(loss_fn())
    step = tf.function(lambda: optimizer.minimize(loss_fn))
    for i in range(6):  # eagerly, then compiled (how training loops run)
        optimizer.minimize(loss_fn) if i < 2 else step()
    after = float(loss_fn())
    if not after < first:
        raise AssertionError(f"loss did not decrease after 5 steps: {first:.6g} -> {after:.6g}")
    changed = sum(
        not np.array_equal(b, v.numpy())
        for b, v in zip(before, owner.trainable_variables, strict=True)
    )
    if changed != len(before):
        raise AssertionError(f"only {changed} of {len(before)} trainable variables changed")
    if not list(optimizer.variables):
        raise AssertionError("tu.Optimizer owns no variables after a step (slots, step counter)")


def _graph_train(case: Case) -> None:
    import numpy as np
    import tensorflow as tf
    import tf_keras
    import tfunite as tu

    with graph_session(case.bridge) as session:
        owner, _ = case.build()
        x = tf.constant(case.example())
        target = tf.constant(np.linspace(-1.0, 1.0, 6, dtype=np.float32).reshape(2, 3))
        loss = tf.reduce_mean(tf.square(owner(x, training=True) - target))
        optimizer = tu.Optimizer(tf_keras.optimizers.Adam(learning_rate=1e-2), owner)
        train_op = optimizer.train_op(loss)
        owner.initialize(session=session)
        optimizer.initialize(session=session)
        before = session.run(owner.trainable_variables)
        first = session.run(loss)
        for _ in range(5):
            session.run(train_op)
        after = session.run(loss)
        if not after < first:
            raise AssertionError(f"loss did not decrease after 5 steps: {first:.6g} -> {after:.6g}")
        now = session.run(owner.trainable_variables)
        changed = sum(not np.array_equal(b, a) for b, a in zip(before, now, strict=True))
        if changed != len(before):
            raise AssertionError(f"only {changed} of {len(before)} trainable variables changed")


@probe("train_graph", "tf_keras", "sonnet", "slim", "tflearn", "tf_module")
def probe_train_graph(case: Case, tmp: Path) -> None:
    """A tf_keras optimizer through tu.Optimizer.train_op in a TF1 Session."""
    import importlib.util

    if importlib.util.find_spec("tf_keras") is None:
        raise Skip(
            "the graph-mode optimizer is tf_keras, which is not installed "
            "(pip install 'tfunite[tf-keras]')"
        )
    _graph_train(case)


@probe("train_graph", "keras")
def probe_train_graph_keras3(case: Case, tmp: Path) -> None:
    """Keras 3 does not run in TF1 graphs: tfunite must say so with GraphModeError."""
    import tfunite as tu

    try:
        _graph_train(case)
    except tu.GraphModeError as e:
        raise NotApplicable(
            "Keras 3 does not run in a TF1 Session; tfunite raises "
            f"GraphModeError ({str(e).split('. ')[0]})"
        ) from e
    raise AssertionError("expected GraphModeError for Keras 3 in a TF1 graph")


@probe("save")
def probe_save(case: Case, tmp: Path) -> None:
    import numpy as np
    import tensorflow as tf
    import tfunite as tu

    owner, _ = built(case)
    want = fill(owner, 0.05)
    path = tu.save(owner, str(tmp / "ckpt"))
    reader = tf.train.load_checkpoint(str(path))
    stored = reader.get_variable_to_shape_map()
    missing = [name for name in want if name not in stored]
    if missing:
        raise AssertionError(f"tu.save did not store {missing}; stored {sorted(stored)}")
    for name, value in want.items():
        if not np.array_equal(reader.get_tensor(name), value):
            raise AssertionError(f"{name} is stored with a different value")


@probe("load")
def probe_load(case: Case, tmp: Path) -> None:
    import numpy as np
    import tfunite as tu

    source, _ = built(case)
    want = fill(source, 0.05)
    path = tu.save(source, str(tmp / "ckpt"))
    target, _ = built(case)
    fill(target, 0.5)
    tu.load(target, str(path), strict=True)
    check_same_values(values(target), want, "tu.load round trip")
    x = case.example()
    if not np.array_equal(np.asarray(target(x)), np.asarray(source(x))):
        raise AssertionError("outputs after tu.load differ from the saved model's outputs")


def _load_native(case: Case, path: str, want: dict[str, Any], source_out: Any) -> None:
    import numpy as np
    import tfunite as tu

    target, _ = built(case)
    fill(target, 0.5)
    tu.load(target, path, strict=True)
    check_same_values(values(target), want, f"tu.load of {Path(path).name}")
    if not np.array_equal(np.asarray(target(case.example())), np.asarray(source_out)):
        raise AssertionError("outputs after loading the native checkpoint differ")


@probe("native", "keras", "tf_keras")
def probe_native_keras(case: Case, tmp: Path) -> None:
    """Keras `.weights.h5` and object-based `tf.train.Checkpoint` load through tu.load."""
    import tensorflow as tf

    source, model = built(case)
    want = fill(source, 0.05)
    out = source(case.example())
    h5 = str(tmp / "model.weights.h5")
    model.save_weights(h5)
    _load_native(case, h5, want, out)
    prefix = tf.train.Checkpoint(model=model).write(str(tmp / "object" / "ckpt"))
    _load_native(case, prefix, want, out)


@probe("native", "sonnet", "tf_module")
def probe_native_module(case: Case, tmp: Path) -> None:
    """An object-based `tf.train.Checkpoint(module=...)` loads through tu.load."""
    import tensorflow as tf

    source, module = built(case)
    want = fill(source, 0.05)
    out = source(case.example())
    prefix = tf.train.Checkpoint(module=module).write(str(tmp / "object" / "ckpt"))
    _load_native(case, prefix, want, out)


@probe("native", "slim", "tflearn")
def probe_native_tf1(case: Case, tmp: Path) -> None:
    """A TF1 `Saver` checkpoint of the plain framework code (no tfunite) loads by name."""
    import numpy as np
    import tensorflow as tf
    import tfunite as tu

    x = case.example()
    with graph_session() as session:
        case.build()  # through the bridge first: it applies its legacy fixes
        outputs = case.tf1(tf.constant(x))
        session.run(tf.compat.v1.global_variables_initializer())
        saver = tf.compat.v1.train.Saver()
        prefix = saver.save(session, str(tmp / "saver" / "model.ckpt"), write_meta_graph=False)
        graph_out = session.run(outputs)
        graph_values = {v.op.name: session.run(v) for v in tf.compat.v1.global_variables()}
    target, _ = built(case)
    fill(target, 0.5)
    tu.load(target, prefix, strict=True)
    got = values(target)
    for name, value in got.items():
        if name not in graph_values:
            raise AssertionError(
                f"owner variable {name} is not in the Saver checkpoint ({sorted(graph_values)})"
            )
        if not np.array_equal(value, graph_values[name]):
            raise AssertionError(f"{name} is not restored exactly from the Saver checkpoint")
    check_close(target(x), graph_out, "eager owner after tu.load vs the TF1 graph")


@probe("golden")
def probe_golden(case: Case, tmp: Path) -> None:
    """Checkpoints written by an earlier version (tests/golden) load with the same names."""
    from tfunite.tools.golden import verify

    problems = verify(case.bridge)
    if problems:
        raise AssertionError("; ".join(problems))


PORT_NET, PORT_RECIPE, PORT_SHAPE, PORT_CLASSES = (
    "resnet_v2_50",
    "slim:resnet_v2_50",
    (32, 32, 3),
    10,
)
# 50 conv + batch-norm layers in float32, run by a TF1 Slim graph and by Keras 3 ops in a
# different order: compare relative to the largest logit (the porting engine's metric).
PORT_RTOL = 1e-5


@probe("port", "slim")
def probe_port(case: Case, tmp: Path) -> None:
    """tu.port: a Slim resnet_v2_50 checkpoint becomes a Keras ResNet50V2, same outputs."""
    import importlib.util

    import numpy as np
    import tensorflow as tf
    import tfunite as tu

    if importlib.util.find_spec("keras") is None:
        raise Skip(
            "tu.port builds Keras 3 models; keras is not installed (pip install 'tfunite[keras]')"
        )
    gate = _keras3_gate("keras")
    if gate:
        raise Skip(f"tu.port builds Keras 3 models: {gate.split(';')[0]}")
    case.build()  # through the bridge first: it applies its legacy fixes (batch_norm)
    import tf_slim as slim
    from tf_slim.nets import resnet_v2

    rng = np.random.default_rng(0)
    x = rng.uniform(-1.0, 1.0, size=(2, *PORT_SHAPE)).astype(np.float32)
    with graph_session() as session:
        tf.compat.v1.set_random_seed(0)
        with slim.arg_scope(resnet_v2.resnet_arg_scope()):
            logits, _ = getattr(resnet_v2, PORT_NET)(
                tf.constant(x), num_classes=PORT_CLASSES, is_training=False
            )
        session.run(tf.compat.v1.global_variables_initializer())
        want = session.run(logits).reshape(2, -1)
        prefix = tf.compat.v1.train.Saver().save(
            session, str(tmp / "slim" / "model.ckpt"), write_meta_graph=False
        )
    model, report = tu.port(prefix, recipe=PORT_RECIPE, input_shape=PORT_SHAPE)
    del report
    got = np.asarray(model(x, training=False)).reshape(2, -1)
    if got.shape != want.shape:
        raise AssertionError(f"Keras output shape {got.shape}, Slim {want.shape}")
    if not np.all(np.isfinite(got)):
        raise AssertionError("the ported model gives non-finite outputs")
    rel = float(np.max(np.abs(got - want)) / max(float(np.max(np.abs(want))), 1e-12))
    if rel > PORT_RTOL:
        raise AssertionError(
            f"ported outputs differ from Slim's by {rel:.3g} relative "
            f"(max |keras - slim| / max |slim|) > {PORT_RTOL:g}"
        )


NOT_PROBED: dict[tuple[str, str], str] = {
    ("keras", "port"): "porting targets Keras 3 from Slim checkpoints; covered by slim x port",
    ("tf_keras", "port"): "porting targets Keras 3 from Slim checkpoints; covered by slim x port",
    ("sonnet", "port"): "no porting recipe for Sonnet (Sonnet 2 checkpoints load by name)",
    ("tflearn", "port"): "no porting recipe for TFLearn (its checkpoints load by name)",
    ("tf_module", "port"): "a tf.Module has no architecture to port",
}


def coverage_gaps(bridges: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """Registered bridge x feature cells that have neither a probe nor an allow-list entry."""
    if bridges is None:
        import tfunite.bridges  # noqa: F401  (registers the bridges)
        from tfunite.registry import BRIDGES

        bridges = list(BRIDGES)
    return [
        (b, f)
        for b in bridges
        for f in FEATURES
        if (b, f) not in PROBES and (b, f) not in NOT_PROBED
    ]


# ---------------------------------------------------------------------------- worker
def _reason(error: BaseException) -> str:
    text = str(error)
    if "Detected at node" in text:  # a TF op error: keep its message, not its traceback
        lines = [ln.strip() for ln in text.splitlines()]
        node = next((i for i, ln in enumerate(lines) if ln.startswith("Node: ")), None)
        if node is not None:
            text = " ".join(ln for ln in lines[node : node + 2] if ln)
    text = " ".join(text.split())
    if len(text) > 400:
        text = text[:397] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def run_probe(bridge: str, feature: str) -> Result:
    """Run one probe in this process."""
    import importlib.util

    start = time.perf_counter()
    if (bridge, feature) in NOT_PROBED and (bridge, feature) not in PROBES:
        return Result(bridge, feature, "n/a", NOT_PROBED[(bridge, feature)])
    case = CASES.get(bridge)
    if case is None or (bridge, feature) not in PROBES:
        return Result(
            bridge, feature, "fail", f"no probe and no allow-list entry for {bridge} x {feature}"
        )
    if importlib.util.find_spec(case.module) is None:
        fix = (
            f"pip install 'tfunite[{case.extra}]'"
            if case.extra
            else f"pip install {case.distribution}"
        )
        return Result(bridge, feature, "skip", f"{case.distribution} is not installed ({fix})")
    with tempfile.TemporaryDirectory(prefix=f"tfunite-{bridge}-{feature}-") as tmp:
        try:
            PROBES[(bridge, feature)](case, Path(tmp))
            status, reason = "pass", ""
        except NotApplicable as e:
            status, reason = "n/a", str(e)
        except Skip as e:
            status, reason = "skip", str(e)
        except Exception as e:  # the real error is the result
            status, reason = "fail", _reason(e).replace(tmp, "<tmp>").replace(sys.prefix, "<venv>")
            if os.environ.get("TFUNITE_COMPAT_TRACEBACK"):
                traceback.print_exc(file=sys.stderr)
    return Result(bridge, feature, status, reason, round(time.perf_counter() - start, 2))


def _keras3_gate(bridge: str) -> str | None:
    """Keras 2 installed as `keras` (TF <= 2.15): the Keras 3 bridge cannot run."""
    if bridge != "keras":
        return None
    try:
        from importlib.metadata import version

        major = int(version("keras").split(".")[0])
    except Exception:
        return None
    if major < 3:
        return (
            f"keras {version('keras')} is Keras 2; the keras bridge needs Keras 3, which this "
            "TensorFlow does not support (use the tf_keras bridge)"
        )
    return None


POISONED = 3  # worker exit code: a probe left the process unusable for the next ones


def _poisoned() -> str | None:
    """Why this process can no longer run probes cleanly, or None."""
    tf = sys.modules.get("tensorflow")
    if tf is not None and not tf.executing_eagerly():
        return "it left eager execution switched off for the whole process"
    return None


def worker(bridge: str, features: Sequence[str]) -> int:
    """Run the probes of one bridge in this process; print one marked JSON line each.

    Exits with POISONED right after a probe that leaves global state broken (eager
    execution switched off): the runner continues in a fresh process.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    gate = _keras3_gate(bridge)
    for feature in features:
        if gate is not None and (bridge, feature) not in NOT_PROBED:
            result = Result(bridge, feature, "skip", gate)
        else:
            result = run_probe(bridge, feature)
        poison = _poisoned()
        if poison:
            result.status = "fail"
            result.reason = "; ".join(filter(None, [result.reason, poison]))
        print(MARK + json.dumps(asdict(result)), flush=True)
        if poison:
            return POISONED
    return 0


# ---------------------------------------------------------------------------- runner
def _run_bridge(
    bridge: str, features: Sequence[str], timeout: float, python: str = sys.executable
) -> list[Result]:
    """Run one bridge's probes in a fresh subprocess.

    A probe that crashes the worker (or exceeds `timeout` seconds) fails with the reason,
    and the remaining probes continue in a fresh worker, as they do after a probe that
    poisons the process.
    """
    results: dict[str, Result] = {}
    shared = [f for f in features if f not in FRESH]
    for batch in [shared] + [[f] for f in features if f in FRESH]:
        results.update(_run_batch(bridge, batch, timeout, python))
    return [results[f] for f in features]


def _run_batch(
    bridge: str, features: Sequence[str], timeout: float, python: str
) -> dict[str, Result]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONHASHSEED="0")
    results: dict[str, Result] = {}
    remaining = list(features)
    while remaining:
        cmd = [python, "-m", "tfunite.tools.compat", "--worker", bridge, "--feature", *remaining]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
            stdout, stderr, code = proc.stdout, proc.stderr, proc.returncode
            why = f"worker exited with code {code}"
        except subprocess.TimeoutExpired as e:
            stdout = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            stderr = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
            code, why = None, f"worker timed out after {timeout:g}s"
        for line in stdout.splitlines():
            if line.startswith(MARK):
                r = Result(**json.loads(line[len(MARK) :]))
                results[r.feature] = r
        progressed = len(remaining) != len([f for f in remaining if f not in results])
        remaining = [f for f in remaining if f not in results]
        if remaining and (code != POISONED or not progressed):
            tail = " | ".join(ln.strip() for ln in stderr.strip().splitlines()[-3:])
            crashed = remaining.pop(0)  # the probe that was running
            results[crashed] = Result(bridge, crashed, "fail", f"{why} during this probe: {tail}")
    return results


def run(
    bridges: Sequence[str],
    features: Sequence[str] = FEATURES,
    jobs: int = 2,
    timeout: float = 600.0,
) -> list[Result]:
    """Run every probe of `bridges`, one subprocess per bridge, `jobs` at a time."""
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        chunks = list(pool.map(lambda b: _run_bridge(b, features, timeout), bridges))
    return [r for chunk in chunks for r in chunk]


def registered_bridges() -> list[str]:
    import tfunite.bridges  # noqa: F401
    from tfunite.registry import BRIDGES

    return list(BRIDGES)


def report(results: Sequence[Result]) -> dict[str, Any]:
    """The JSON document of a run: environment, date, results, counts."""
    from tfunite.tools.doctor import versions

    counts = {s: sum(r.status == s for r in results) for s in STATUSES}
    return {
        "tool": "tfunite compat",
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "tfunite_commit": source_commit(),
        "environment": versions(),
        "counts": counts,
        "results": [asdict(r) for r in results],
    }


def source_commit() -> str | None:
    """The git commit of the tfunite code that ran (`+dirty` with local changes), or None
    outside a git checkout."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(
                ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    commit = git("rev-parse", "--short=12", "HEAD")
    if commit is None:
        return None
    # compat_matrix.md itself is rewritten while the matrix is made: not a code change
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!compat_matrix.md")
    return commit + ("+dirty" if changed else "")


def format_table(results: Sequence[Result]) -> str:
    """A plain-text table: one row per bridge x feature, the reason for anything not a pass."""
    rows = [("bridge", "feature", "status", "seconds", "reason")]
    rows += [(r.bridge, r.feature, r.status, f"{r.seconds:.1f}", r.reason) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for row in rows:
        lines.append(
            "  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths, strict=True))
            + "  "
            + row[4]
        )
    counts = ", ".join(f"{sum(r.status == s for r in results)} {s}" for s in STATUSES)
    lines.append(f"\n{len(results)} probes: {counts}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- --check
def check(matrix_path: str, results: Sequence[Result], column: str | None = None) -> list[str]:
    """Differences between the matrix's column for this environment and a fresh run."""
    from tfunite.tools.doctor import versions
    from tfunite.tools.matrix import parse_matrix

    matrix = parse_matrix(Path(matrix_path).read_text())
    env = versions()
    if column is None:
        tf_version = env.get("tensorflow")
        matches = [c for c, v in matrix["versions"].items() if v.get("tensorflow") == tf_version]
        if not matches:
            return [
                f"no column of {matrix_path} has tensorflow {tf_version} "
                f"(columns: {', '.join(matrix['columns'])}); regenerate the matrix"
            ]
        column = matches[0]
    if column not in matrix["columns"]:
        return [f"{matrix_path} has no column {column!r} (columns: {', '.join(matrix['columns'])})"]
    diffs = []
    for package, want in matrix["versions"][column].items():
        if package in PROVENANCE_ROWS:
            continue
        have = env.get(package)
        if package == "python" and have is not None:  # a patch release changes no probe
            want, have = ".".join(want.split(".")[:2]), ".".join(have.split(".")[:2])
        if have is not None and have != want:
            diffs.append(f"version {package}: matrix {want}, here {have}")
    cells = matrix["cells"][column]
    for r in results:
        want = cells.get((r.bridge, r.feature))
        if want is None:
            diffs.append(f"{r.bridge} x {r.feature}: not in the matrix, here {r.status}")
        elif want != r.status:
            why = f" ({r.reason})" if r.reason else ""
            diffs.append(f"{r.bridge} x {r.feature}: matrix {want}, here {r.status}{why}")
    ran = {(r.bridge, r.feature) for r in results}
    bridges, features = {r.bridge for r in results}, {r.feature for r in results}
    for (bridge, feature), want in sorted(cells.items()):
        if (bridge, feature) not in ran and bridge in bridges and feature in features:
            diffs.append(f"{bridge} x {feature}: in the matrix ({want}), not probed here")
    return diffs


# ---------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tfunite compat",
        description="Probe every bridge x feature in this environment and print what works.",
    )
    parser.add_argument(
        "--bridge",
        action="append",
        metavar="B",
        help="probe only this bridge (repeatable); default: every registered bridge",
    )
    parser.add_argument(
        "--feature",
        nargs="+",
        choices=FEATURES,
        metavar="F",
        help=f"probe only these features (of: {', '.join(FEATURES)})",
    )
    parser.add_argument(
        "--json", action="store_true", help="print a JSON report instead of a table"
    )
    parser.add_argument(
        "--check",
        metavar="MATRIX",
        help="compare this environment's column of MATRIX (compat_matrix.md) "
        "with a fresh run; exit 1 with the differences if it is stale",
    )
    parser.add_argument(
        "--column",
        help="with --check: the matrix column to compare "
        "(default: the one with this tensorflow version)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 if any probe fails")
    parser.add_argument(
        "--jobs",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="bridges probed in parallel (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="seconds allowed per bridge subprocess (default: %(default)s)",
    )
    parser.add_argument("--worker", metavar="B", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | argparse.Namespace | None = None) -> int:
    parser = build_parser()
    if isinstance(argv, argparse.Namespace):
        argv = getattr(argv, "args", None) or []
    args = parser.parse_args(argv)
    features = tuple(args.feature or FEATURES)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.worker:
        return worker(args.worker, features)
    known = registered_bridges()
    bridges = args.bridge or known
    unknown = [b for b in bridges if b not in known]
    if unknown:
        parser.error(f"unknown bridge(s) {', '.join(unknown)}; registered: {', '.join(known)}")
    if args.check and not Path(args.check).is_file():
        parser.error(f"--check: no such file {args.check!r}")
    results = run(bridges, features, jobs=args.jobs, timeout=args.timeout)
    if args.check:
        diffs = check(args.check, results, args.column)
        if diffs:
            print(f"{args.check} is stale for this environment:", file=sys.stderr)
            for d in diffs:
                print(f"  - {d}", file=sys.stderr)
            print(
                "Fix: regenerate it with `python -m tfunite.tools.matrix` (or `make matrix`).",
                file=sys.stderr,
            )
            return 1
        print(f"{args.check} matches this environment ({len(results)} probes).")
        return 0
    if args.json:
        print(json.dumps(report(results), indent=2))
    else:
        print(format_table(results))
    if args.strict and any(r.status == "fail" for r in results):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
