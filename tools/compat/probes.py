"""The compat probes: one real check per bridge x feature, declared as data.

`PROBES` maps (bridge, feature) to the function that checks it (`@probe(feature)` for
every registered bridge, `@probe(feature, bridge, ...)` for a framework-specific one) and
`NOT_PROBED` is the allow-list, with a reason, of the cells that have no probe. A test
fails when a registered bridge x feature is in neither.

Every probe goes through the public API only (`tu.wrap`, `tu.slim`, `tu.tflearn`,
`tu.Optimizer`, `tu.save`, `tu.load`, `tu.port`, `owner.initialize(session=...)`) and
asserts something real: outputs finite and equal between modes at rtol=atol=1e-6, the
loss decreasing after a training step, a load round trip that is exact. What a probe
needs to know about a framework (its import name, whether it runs in a TF1 graph, its
pip extra) it reads from the bridge's record, bound to the case (`case.record`).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .cases import Case, keras3_gate
from .helpers import (
    built,
    check_close,
    check_names,
    check_same_values,
    fill,
    graph_session,
    object_key,
    pip_hint,
    values,
)

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
    "distribute": "MirroredStrategy (2 logical CPUs): a strategy.run step equals one device; "
    "tu.save keys and values as without",
    "checkpoint_interop": "tf.train.Checkpoint(model=owner) restores it and tu.save dirs "
    "with assert_consumed()",
    "export": "tu.export SavedModel: serving_default equals the owner, canonical variable names",
    "onnx": "tu.export(format='onnx') via tf2onnx equals the owner in onnxruntime (1e-5 rel)",
    "keras_fit": "tu.keras_layer: Keras 3 fit trains the owner's own variables; .weights.h5 exact",
    "convert": "tu.convert turns a network function into built-in Keras 3 layers, same logits",
    "keras_jax": "a converted .keras loads without tfunite under KERAS_BACKEND=jax, same logits",
    "keras_torch": "the same under KERAS_BACKEND=torch (skipped where torch is not installed)",
}
FEATURES: tuple[str, ...] = tuple(FEATURE_DOCS)


class NotApplicable(Exception):
    """Raised by a probe when the feature does not exist for a bridge, by design."""


class Skip(Exception):
    """Raised by a probe when it cannot run here (a framework is not installed)."""


def registered_bridges() -> list[str]:
    """The names of the registered bridges, in registry order."""
    import tfunite.bridges  # noqa: F401  (registers the bridges; imports no framework)
    from tfunite.registry import BRIDGES

    return list(BRIDGES)


def _record(name: str) -> Any:
    import tfunite.bridges  # noqa: F401  (registers the bridges; imports no framework)
    from tfunite.registry import BRIDGES

    return BRIDGES[name]


# ---------------------------------------------------------------------------- registry
Probe = Callable[[Case, Path], None]
PROBES: dict[tuple[str, str], Probe] = {}


def probe(feature: str, *bridges: str) -> Callable[[Probe], Probe]:
    """Register `fn` as the probe of `feature` for `bridges` (every registered bridge if
    none given)."""
    if feature not in FEATURES:
        raise ValueError(f"Unknown feature {feature!r}; expected one of {FEATURES}.")

    def register(fn: Probe) -> Probe:
        for bridge in bridges or tuple(registered_bridges()):
            if (bridge, feature) in PROBES:
                raise ValueError(f"Probe for {bridge} x {feature} is already registered.")
            PROBES[(bridge, feature)] = fn
        return fn

    return register


# ---------------------------------------------------------------------------- probes
@probe("import")
def probe_import(case: Case, tmp: Path) -> None:
    """The bridge module loads, an owner is made, then the framework imports (in that order:
    bridges of legacy libraries apply their import fixes when first used)."""
    import tensorflow as tf

    owner_class = case.record.load()
    owner, _ = case.build()
    if not isinstance(owner, owner_class):
        raise AssertionError(f"got {type(owner).__name__}, expected {owner_class.__name__}")
    importlib.import_module(case.record.import_name)
    if not tf.executing_eagerly():
        raise AssertionError(f"importing {case.record.import_name} switched eager execution off")


@probe("wrap")
def probe_wrap(case: Case, tmp: Path) -> None:
    import tensorflow as tf

    first, _ = built(case)
    expected = case.record.load()
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


def _in_graph(case: Case, run: Callable[[Case], None]) -> None:
    """Run a TF1-graph probe; for a bridge whose record says it does not run in a TF1
    graph (`graph=False`), tfunite must refuse with GraphModeError: the cell is n/a."""
    import tfunite as tu

    if case.record.graph:
        run(case)
        return
    try:
        run(case)
    except tu.GraphModeError as e:
        raise NotApplicable(
            f"{case.record.title} does not run in a TF1 Session; tfunite raises "
            f"GraphModeError ({str(e).split('. ')[0]})"
        ) from e
    raise AssertionError(
        f"expected GraphModeError for {case.record.title} in a TF1 graph (its record says "
        "graph=False), got outputs"
    )


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


@probe("graph")
def probe_graph(case: Case, tmp: Path) -> None:
    _in_graph(case, _graph_probe)


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


GRAPH_OPTIMIZER_BRIDGE = "tf_keras"  # its Adam drives tu.Optimizer.train_op in a TF1 graph


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


@probe("train_graph")
def probe_train_graph(case: Case, tmp: Path) -> None:
    """A tf_keras optimizer through tu.Optimizer.train_op in a TF1 Session."""
    optimizer = _record(GRAPH_OPTIMIZER_BRIDGE)
    if case.record.graph and importlib.util.find_spec(optimizer.import_name) is None:
        raise Skip(
            f"the graph-mode optimizer is {optimizer.import_name}, which is not installed "
            f"({pip_hint(optimizer)})"
        )
    _in_graph(case, _graph_train)


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


def _native_saver(case: Case, tmp: Path) -> None:
    """A TF1 `Saver` checkpoint of the plain framework code (no tfunite) loads by name."""
    import numpy as np
    import tensorflow as tf
    import tfunite as tu

    if case.tf1 is None:
        raise AssertionError(
            f"the {case.bridge} record lists the 'saver' format but its case has no tf1 code"
        )
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


@probe("native")
def probe_native(case: Case, tmp: Path) -> None:
    """Each native format of the record (`golden_formats`) loads through tu.load exactly:
    Keras `.weights.h5` and object-based `tf.train.Checkpoint` against the same model's
    outputs, a TF1 `Saver` checkpoint of the plain framework code against its graph."""
    import tensorflow as tf

    formats = case.record.golden_formats
    if not formats:
        raise AssertionError(
            f"the {case.bridge} record declares no native checkpoint format (golden_formats)"
        )
    unknown = sorted(set(formats) - {"keras-h5", "object", "saver"})
    if unknown:
        raise AssertionError(f"no native probe for format(s) {unknown} of {case.bridge}")
    eager = [fmt for fmt in ("keras-h5", "object") if fmt in formats]
    if eager:
        source, native = built(case)
        want = fill(source, 0.05)
        out = source(case.example())
        for fmt in eager:
            if fmt == "keras-h5":
                path = str(tmp / "model.weights.h5")
                native.save_weights(path)
            else:
                checkpoint = tf.train.Checkpoint(**{object_key(native): native})
                path = checkpoint.write(str(tmp / "object" / "ckpt"))
            _load_native(case, path, want, out)
    if "saver" in formats:
        _native_saver(case, tmp)


@probe("golden")
def probe_golden(case: Case, tmp: Path) -> None:
    """Checkpoints written by an earlier version (tests/golden) load with the same names."""
    from .goldens import CHECKOUT, golden_dir, verify

    if golden_dir() is None:
        raise Skip(
            f"the golden checkpoints are in a tfunite checkout (tests/golden), and this "
            f"tfunite runs from {CHECKOUT}, which has none: run tfunite compat from a "
            "checkout (pip install -e .) to probe them"
        )
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
PORT_SOURCE, PORT_TARGET = "slim", "keras"  # tu.port reads Slim checkpoints, builds Keras 3


@probe("port", PORT_SOURCE)
def probe_port(case: Case, tmp: Path) -> None:
    """tu.port: a Slim resnet_v2_50 checkpoint becomes a Keras ResNet50V2, same outputs."""
    import numpy as np
    import tensorflow as tf
    import tfunite as tu

    target = _record(PORT_TARGET)
    if importlib.util.find_spec(target.import_name) is None:
        raise Skip(
            f"tu.port builds {target.title} models; {target.distribution} is not installed "
            f"({pip_hint(target)})"
        )
    gate = keras3_gate()
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


# ---------------------------------------------------------------------------- allow-list
def _not_probed() -> dict[tuple[str, str], str]:
    """The cells without a probe, each with its reason: tu.port reads PORT_SOURCE
    checkpoints only; every other bridge's checkpoints load by name with tu.load."""
    source, target = _record(PORT_SOURCE), _record(PORT_TARGET)
    return {
        (name, "port"): (
            f"tu.port turns {source.title} checkpoints into {target.title} models; "
            f"{_record(name).title} checkpoints load by name with tu.load"
        )
        for name in registered_bridges()
        if (name, "port") not in PROBES
    }


NOT_PROBED: dict[tuple[str, str], str] = _not_probed()


def coverage_gaps(bridges: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """Registered bridge x feature cells that have neither a probe nor an allow-list entry."""
    if bridges is None:
        bridges = registered_bridges()
    return [
        (b, f)
        for b in bridges
        for f in FEATURES
        if (b, f) not in PROBES and (b, f) not in NOT_PROBED
    ]


# Probes of other areas, in modules of their own (registered on import, after the
# registry above exists).
from . import (  # noqa: E402, F401
    probes_convert,
    probes_distribute,
    probes_export,
    probes_keras_fit,
)
