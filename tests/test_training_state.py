"""Training state recognised once: `tu.TRAINING_STATE` with tu.load, Owner.load,
port_custom, and the refusal that names it (issue 9, item 2)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tfunite as tu

from tests import models

SLOTS = ("Momentum", "ExponentialMovingAverage")


def _slim_owner():
    owner = tu.slim(models.slim_net(), name="zoo")
    owner(tf.constant(models.example()))
    return owner


@pytest.fixture(scope="module", params=["V1", "V2"])
def zoo(request, tmp_path_factory):
    """A Slim model-zoo style checkpoint: the model trained one step in a TF1 graph with
    Momentum, global_step and ExponentialMovingAverage, saved by a TF1 Saver (V1 or V2).
    Returns (path, {model variable: value})."""
    _slim_owner()  # the Slim bridge's fixes, so that tf_slim imports
    path = str(tmp_path_factory.mktemp("zoo") / "model.ckpt")
    with tf.Graph().as_default():
        x = tf.constant(models.example())
        logits = models.slim_net()(x, True)
        step = tf.compat.v1.train.get_or_create_global_step()
        loss = tf.reduce_mean(tf.square(logits))
        train = tf.compat.v1.train.MomentumOptimizer(0.1, 0.9).minimize(loss, global_step=step)
        with tf.control_dependencies([train]):
            ema = tf.compat.v1.train.ExponentialMovingAverage(0.99).apply(
                tf.compat.v1.trainable_variables()
            )
        version = getattr(tf.compat.v1.train.SaverDef, request.param)
        saver = tf.compat.v1.train.Saver(write_version=version)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            sess.run(ema)
            values = {v.op.name: sess.run(v) for v in tf.compat.v1.model_variables()}
            values.update({v.op.name: sess.run(v) for v in tf.compat.v1.trainable_variables()})
            path = saver.save(sess, path, write_meta_graph=False)
    names = tf.train.load_checkpoint(path).get_variable_to_shape_map()
    assert "global_step" in names and any(n.endswith("/Momentum") for n in names)
    assert any(n.endswith("/ExponentialMovingAverage") for n in names)
    return path, values


def test_strict_load_with_training_state_rules(zoo):
    path, values = zoo
    owner = _slim_owner()
    report = tu.load(owner, path, rules=tu.TRAINING_STATE)  # strict=True
    assert report.ok and report.applied and not report.unexpected and not report.missing
    state = {e.source for e in report.training_state}
    assert "global_step" in state and "net/fc1/weights/Momentum" in state
    assert "net/logits/biases/ExponentialMovingAverage" in state
    assert all(e.reason.startswith("training state (") for e in report.training_state)
    for name, var in owner.variables.items():
        np.testing.assert_array_equal(var.numpy(), values[name], err_msg=name)


def test_owner_load_combines_training_state_with_user_rules(zoo):
    path, values = zoo
    owner = _slim_owner()
    # One stage, the first full match wins: specific rules can come first...
    rules = [(r"net/bn/moving_(mean|variance)", r"net/bn/moving_\1"), *tu.TRAINING_STATE]
    report = owner.load(path, rules=rules)
    assert report.ok and report.applied and len(report.training_state) > 3
    # ... a broad rule would also rename slots: put the set first, or use stages.
    for rules in (
        [*tu.TRAINING_STATE, (r"net/bn/(.*)", r"net/bn/\1")],
        [tu.TRAINING_STATE, {"net/": "net/"}],
    ):
        report = owner.load(path, rules=rules)
        assert report.ok and report.applied and len(report.training_state) > 3
    np.testing.assert_array_equal(
        owner.variables["net/bn/moving_mean"].numpy(), values["net/bn/moving_mean"]
    )


def test_strict_refusal_names_the_rule_set_when_only_training_state_is_unexpected(zoo):
    path, _ = zoo
    owner = _slim_owner()
    before = {k: v.numpy().copy() for k, v in owner.variables.items()}
    with pytest.raises(
        tu.LoadError,
        match=r"unexpected checkpoint entr\(y/ies\), first: .* Nothing was assigned\. These "
        r"entries are all training state .* Fix: pass rules=tfunite\.TRAINING_STATE",
    ) as info:
        tu.load(owner, path)
    assert "strict=False would also hide" in str(info.value)
    for k, v in owner.variables.items():
        np.testing.assert_array_equal(v.numpy(), before[k])
    # Another unexpected entry: the usual fix (rules, or strict=False), not the hint.
    with pytest.raises(tu.LoadError, match=r"or pass strict=False to load only") as info:
        tu.load(owner, path, rules=[(r"net/fc1/biases", "nowhere/b")])
    assert "TRAINING_STATE" not in str(info.value)


def test_dry_run_lists_training_state_not_unexpected(zoo):
    path, _ = zoo
    owner = _slim_owner()
    report = tu.load(owner, path, rules=tu.TRAINING_STATE, dry_run=True)
    assert report.ok and not report.applied and report.dry_run
    counts = report.counts()
    assert counts["unexpected"] == 0 and counts["training_state"] >= 1 + 2 * 5
    assert counts["matched"] == len(owner.variables)
    lenient = tu.load(owner, path, strict=False, dry_run=True)
    assert {e.source for e in lenient.unexpected} == {e.source for e in report.training_state}


def test_port_custom_with_training_state(zoo, tmp_path):
    import keras
    from tfunite.porting import port_custom

    path, values = zoo
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(8, name="fc1"),
            keras.layers.Dense(3, name="logits"),
        ]
    )
    rules = [
        tu.TRAINING_STATE,
        (r"net/bn/.*", None),
        (r"net/(.*)/weights", r"\1/kernel"),
        (r"net/(.*)/biases", r"\1/bias"),
    ]
    report = port_custom(path, model, rules=rules, print_plan=False)
    assert report.ok and not report.unexpected and len(report.training_state) >= 11
    np.testing.assert_array_equal(model.get_layer("fc1").kernel.numpy(), values["net/fc1/weights"])
    with pytest.raises(tu.LoadError, match=r"Fix: pass rules=tfunite\.TRAINING_STATE"):
        port_custom(path, model, rules=rules[1:], print_plan=False)


def test_keras_object_based_checkpoint_with_optimizer_state(tmp_path):
    source = models.tf_keras_sequential()
    source(models.example())
    import tf_keras

    opt = tf_keras.optimizers.Adam()
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(source(models.example()) ** 2)
    opt.apply_gradients(
        zip(tape.gradient(loss, source.trainable_weights), source.trainable_weights)
    )
    prefix = tf.train.Checkpoint(model=source, optimizer=opt).save(str(tmp_path / "ck"))
    owner = tu.wrap(models.tf_keras_sequential(), name="net")
    owner(models.example())
    report = tu.load(owner, prefix)  # outside the model: never unexpected
    assert report.ok and report.applied
    state = {e.source: e.reason for e in report.training_state}
    assert any(n.startswith("optimizer/") for n in state) and "save_counter" in state
    assert all("training state" in r for r in state.values())
    for w, v in zip(source.weights, owner.variables.values()):
        np.testing.assert_array_equal(v.numpy(), w.numpy())
