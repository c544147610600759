"""Owners are TensorFlow trackables: `tf.train.Checkpoint(model=owner)` save/restore with
`assert_consumed()`, `tf.saved_model.save(owner)`, and `tu.save` directories restored by
`tf.train.Checkpoint` while their keys stay canonical names. Every bridge, and
`Parameters` holding a `tu.Optimizer`.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tfunite as tu

from tests import models
from tests.harness import scramble

# (case, factory, wrap): one owner per framework.
BRIDGES = {
    "keras": ("keras_sequential", lambda o: tu.wrap(o, name="keras")),
    "tf_keras": ("tf_keras_sequential", lambda o: tu.wrap(o, name="tf_keras")),
    "sonnet": ("sonnet_bn", lambda o: tu.wrap(o, name="sonnet")),
    "tf_module": ("tf_module", lambda o: tu.wrap(o, name="tf_module")),
    "slim": ("slim_net", lambda fn: tu.slim(fn, name="slim")),
    "tflearn": ("tflearn_net", lambda fn: tu.tflearn(fn, name="tflearn")),
}


@pytest.fixture(scope="module")
def owners() -> dict[str, tu.Owner]:
    x = models.example()
    built = {}
    for key, (factory, wrap) in BRIDGES.items():
        owner = wrap(getattr(models, factory)())
        owner(x)
        built[key] = owner
    return built


def _values(owner: tu.Owner) -> dict[str, np.ndarray]:
    return {k: v.numpy().copy() for k, v in owner.variables.items()}


def _assert_values(owner: tu.Owner, want: dict[str, np.ndarray]) -> None:
    assert list(owner.variables) == list(want)
    for k, v in owner.variables.items():
        np.testing.assert_array_equal(v.numpy(), want[k], err_msg=k)


@pytest.mark.parametrize("key", list(BRIDGES))
def test_tf_checkpoint_round_trip(owners, key, tmp_path):
    owner = owners[key]
    scramble(owner, seed=3)
    want = _values(owner)
    prefix = tf.train.Checkpoint(model=owner).save(str(tmp_path / "ckpt"))
    keys = {name for name, _ in tf.train.list_variables(prefix)}
    # The owner's dependencies are its variables keyed by canonical name.
    escaped = {n.replace(".", "..").replace("/", ".S") for n in want}
    assert {f"model/{n}/.ATTRIBUTES/VARIABLE_VALUE" for n in escaped} <= keys
    scramble(owner, seed=4)
    tf.train.Checkpoint(model=owner).restore(prefix).assert_consumed()
    _assert_values(owner, want)


@pytest.mark.parametrize("key", list(BRIDGES))
def test_tu_save_restores_through_tf_checkpoint(owners, key, tmp_path):
    owner = owners[key]
    scramble(owner, seed=5)
    want = _values(owner)
    prefix = tu.save(owner, tmp_path)
    # Keys stay canonical names (plus TF's object graph and save counter).
    keys = {name for name, _ in tf.train.list_variables(str(tmp_path))}
    assert keys == set(want) | {
        "_CHECKPOINTABLE_OBJECT_GRAPH",
        "save_counter/.ATTRIBUTES/VARIABLE_VALUE",
    }
    scramble(owner, seed=6)
    tf.train.Checkpoint(model=owner).restore(prefix).assert_consumed()
    _assert_values(owner, want)
    scramble(owner, seed=6)
    report = tu.load(owner, tmp_path)  # still a name-based checkpoint for tu.load
    assert report.kind == "tf-v2" and len(report.matched) == len(want)
    assert not report.unexpected
    _assert_values(owner, want)


@pytest.mark.parametrize("key", ["keras", "sonnet", "slim", "tflearn"])
def test_saved_model_of_an_owner(owners, key, tmp_path):
    owner = owners[key]
    scramble(owner, seed=9)
    want = _values(owner)
    tf.saved_model.save(owner, str(tmp_path))
    keys = {name for name, _ in tf.train.list_variables(str(tmp_path / "variables" / "variables"))}
    assert len(keys - {"_CHECKPOINTABLE_OBJECT_GRAPH"}) == len(want)  # each variable once
    loaded = tf.saved_model.load(str(tmp_path))
    for name, value in want.items():
        np.testing.assert_array_equal(getattr(loaded, name).numpy(), value, err_msg=name)


def test_tf1_saver_reads_a_tu_save_directory(owners, tmp_path):
    """TF1 `Saver` restores a tu.save bundle by canonical names (the extra object-graph
    keys are ignored)."""
    owner = owners["slim"]
    scramble(owner, seed=10)
    want = _values(owner)
    prefix = tu.save(owner, tmp_path)
    with tf.Graph().as_default():
        variables = {
            name: tf.compat.v1.get_variable(name, shape=value.shape, dtype=value.dtype)
            for name, value in want.items()
        }
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session() as sess:
            saver.restore(sess, prefix)
            got = sess.run(variables)
    for name, value in want.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)


# ------------------------------------------------------------------ Parameters + Optimizer
def _gan(seed: int = 0) -> tuple[tu.Parameters, tu.Optimizer, tu.Owner, tu.Owner]:
    import keras

    keras.utils.set_random_seed(seed)
    g = tu.wrap(models.keras_functional(), name="g")
    d = tu.wrap(models.sonnet_mlp(), name="d")
    d(g(models.example()))
    opt = tu.Optimizer("adam", tu.Parameters("both", g=g, d=d), learning_rate=1e-2)
    return tu.Parameters("run", g=g, d=d, opt=opt), opt, g, d


def _train(opt: tu.Optimizer, g: tu.Owner, d: tu.Owner, steps: int) -> None:
    x = models.example(seed=2)
    for _ in range(steps):
        opt.minimize(lambda: tf.reduce_mean(d(g(x)) ** 2))


def test_parameters_with_optimizer_through_tf_checkpoint(tmp_path):
    params, opt, g, d = _gan()
    _train(opt, g, d, 2)
    want = _values(params)
    assert any(name.startswith("opt/momentum/") for name in want)
    prefix = tf.train.Checkpoint(model=params).save(str(tmp_path / "ckpt"))
    # A fresh run whose optimizer has no slots yet: the restore builds them (deferred).
    fresh, fresh_opt, _, _ = _gan(seed=1)
    assert not fresh_opt.built
    tf.train.Checkpoint(model=fresh).restore(prefix).assert_consumed()
    _assert_values(fresh, want)
    # And a tu.save directory restores the same way.
    tu.save(params, tmp_path / "tu")
    other, _, _, _ = _gan(seed=2)
    tf.train.Checkpoint(model=other).restore(
        tf.train.latest_checkpoint(str(tmp_path / "tu"))
    ).assert_consumed()
    _assert_values(other, want)


@pytest.mark.parametrize("bridge", ["keras", "slim"])
def test_tu_load_reads_directories_written_before_the_object_graph(bridge):
    """tests/golden_legacy holds tu.save directories of the previous format (canonical
    keys only): tu.load still reads them, with the same values as today's goldens."""
    from pathlib import Path

    golden = Path(__file__).parent / "golden"
    old, new = golden.parent / "golden_legacy" / bridge, golden / bridge / "tfunite"
    assert "_CHECKPOINTABLE_OBJECT_GRAPH" not in dict(tf.train.list_variables(str(old)))
    targets = {
        name: tf.Variable(tf.zeros(shape, tf.float32))
        for name, shape in tf.train.list_variables(str(new))
        if name not in ("_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter/.ATTRIBUTES/VARIABLE_VALUE")
    }
    report = tu.load(targets, old)
    assert report.applied and len(report.matched) == len(targets)
    for name, var in targets.items():
        np.testing.assert_array_equal(
            var.numpy(), tf.train.load_checkpoint(str(new)).get_tensor(name)
        )
