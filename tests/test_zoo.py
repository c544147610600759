"""Model-zoo checkpoints as they are (issue 12, items 1-3): trained the way the Slim
model zoo's ``train_image_classifier.py`` trains (global_step, a Momentum, RMSProp or
Adam optimizer under its default name, ``ExponentialMovingAverage(decay, global_step)``
over ``slim.get_model_variables()``, batch-norm update ops), saved by a TF1 ``Saver`` in
the V1 and V2 formats; ported raw or from the moving averages, with a custom recipe on
1-channel inputs of any size, from Python and from the CLI.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from tfunite.errors import LoadError
from tfunite.porting import (
    PortArgumentError,
    RecipeError,
    VerificationError,
    _slim,
    port,
    port_custom,
)
from tfunite.tools import cli
from tfunite.training_state import moving_average_rules, moving_average_transforms

from tests.zoo_recipe import ZOO, zoo_net

RTOL = 1e-5  # port verification bound on logits: max |keras - slim| / max |slim|
CLASSES = 5
SHADOW = "/ExponentialMovingAverage"
HERE = os.path.dirname(os.path.abspath(__file__))


def _optimizer(kind: str):
    """As train_image_classifier.py's _configure_optimizer makes them (default names)."""
    v1 = tf.compat.v1.train
    if kind == "momentum":
        return v1.MomentumOptimizer(0.1, momentum=0.9, name="Momentum")
    if kind == "rmsprop":
        return v1.RMSPropOptimizer(0.01, decay=0.9, momentum=0.9, epsilon=1.0)
    return v1.AdamOptimizer(0.01, beta1=0.9, beta2=0.999, epsilon=1.0)


def train(path: str, optimizer: str, version: str, steps: int = 3) -> str:
    """Train zoo_net `steps` steps as train_image_classifier.py does; returns the prefix."""
    slim = _slim.ensure_slim()
    with tf.Graph().as_default():
        step = tf.compat.v1.train.get_or_create_global_step()
        rng = np.random.default_rng(0)
        images = tf.constant(rng.normal(size=(4, 16, 16, 1)).astype(np.float32))
        labels = tf.one_hot([0, 1, 2, 3], CLASSES)
        logits, _ = zoo_net(images, num_classes=CLASSES, is_training=True)
        tf.compat.v1.losses.softmax_cross_entropy(labels, logits)
        total_loss = tf.compat.v1.losses.get_total_loss()
        update_ops = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)
        averages = tf.compat.v1.train.ExponentialMovingAverage(0.5, step)
        update_ops.append(averages.apply(slim.get_model_variables()))
        opt = _optimizer(optimizer)
        update_ops.append(opt.apply_gradients(opt.compute_gradients(total_loss), step))
        with tf.control_dependencies([tf.group(*update_ops)]):
            train_op = tf.identity(total_loss, name="train_op")
        saver = tf.compat.v1.train.Saver(
            write_version=getattr(tf.compat.v1.train.SaverDef, version)
        )
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            for _ in range(steps):
                sess.run(train_op)
            return saver.save(sess, path, global_step=step, write_meta_graph=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """trained(optimizer, version) -> (prefix, {name: value}), trained once per module."""
    cache: dict = {}

    def make(optimizer: str, version: str):
        if (optimizer, version) not in cache:
            folder = tmp_path_factory.mktemp(f"{optimizer}-{version}")
            path = train(str(folder / "model.ckpt"), optimizer, version)
            reader = tf.train.load_checkpoint(path)
            values = {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()}
            assert os.path.exists(path + ".index") == (version == "V2")
            cache[optimizer, version] = path, values
        return cache[optimizer, version]

    return make


@pytest.fixture(params=[("momentum", "V1"), ("rmsprop", "V2"), ("adam", "V2")], ids=str)
def zoo(request, trained):
    """(checkpoint prefix, optimizer, {name: value}) of a zoo-trained checkpoint."""
    optimizer, version = request.param
    return (trained(optimizer, version)[0], optimizer, trained(optimizer, version)[1])


@pytest.fixture
def zoo_v2(trained):
    """A zoo-trained V2 checkpoint (RMSProp) and its values, to edit."""
    return trained("rmsprop", "V2")


MODEL_VARIABLES = 10  # conv1, conv2: weights + BatchNorm beta/moving_mean/variance; logits
TRAINABLE = 6  # conv1, conv2: weights + beta; logits weights + biases
SLOTS = {"momentum": TRAINABLE, "rmsprop": 2 * TRAINABLE, "adam": 2 * TRAINABLE}


def _kernel(model, layer="conv1"):
    return model.get_layer(layer).kernel.numpy()


def test_zoo_checkpoint_ports_raw_weights_by_default(zoo):
    path, optimizer, values = zoo
    model, report = port(path, ZOO, verify=True)
    assert report.ok and report.weights == "raw" and report.verification["ok"]
    assert report.verification["outputs"]["logits"]["max_rel"] <= RTOL
    np.testing.assert_array_equal(_kernel(model), values["zoo/conv1/weights"])
    state = report.drop_counts()["training_state"]
    assert state["training state (ExponentialMovingAverage shadow)"] == MODEL_VARIABLES
    assert state["training state (TF1 optimizer slot)"] == SLOTS[optimizer]
    assert state["training state (step counter)"] == 1
    assert state.get("training state (TF1 Adam accumulator)", 0) == (2 * (optimizer == "adam"))
    assert sum(state.values()) == len(report.training_state)
    assert report.to_dict()["dropped_by_reason"]["training_state"] == state


def test_zoo_checkpoint_ports_the_moving_averages_with_weights_ema(zoo):
    path, _, values = zoo
    model, report = port(path, ZOO, weights="ema", verify=True)
    # Slim ran with the shadows too (what eval_image_classifier.py restores)
    assert report.ok and report.verification["ok"] and report.verification["weights"] == "ema"
    assert report.verification["outputs"]["logits"]["max_rel"] <= RTOL
    assert report.weights == "ema" and report.raw_statistics == []
    shadow = values["zoo/conv1/weights" + SHADOW]
    np.testing.assert_array_equal(_kernel(model), shadow)
    assert not np.allclose(shadow, values["zoo/conv1/weights"])  # training moved them apart
    bn = model.get_layer("conv1.BatchNorm")
    np.testing.assert_array_equal(
        bn.moving_mean.numpy(), values[f"zoo/conv1/BatchNorm/moving_mean{SHADOW}"]
    )
    dense = model.get_layer("logits").kernel.numpy()  # the transform applies to the shadow
    np.testing.assert_array_equal(dense, values["zoo/logits/weights" + SHADOW][0, 0])
    loaded = {e.source for e in report.matched + report.transformed}
    assert loaded == {n for n in values if n.startswith("zoo/") and n.endswith(SHADOW)}
    raw = [e for e in report.training_state if e.source in {s[: -len(SHADOW)] for s in loaded}]
    assert len(raw) == MODEL_VARIABLES
    assert all("raw weight: its ExponentialMovingAverage shadow" in e.reason for e in raw)
    assert "ema (ExponentialMovingAverage shadows of 10 variables)" == report.weights_note()


def test_ema_shadows_covering_only_some_variables_are_refused(zoo_v2, tmp_path):
    _, values = zoo_v2
    partial = dict(values)
    del partial["zoo/conv2/weights" + SHADOW], partial["zoo/logits/biases" + SHADOW]
    path = str(tmp_path / "partial.ckpt")
    _slim.write_raw(partial, path)
    out = tmp_path / "out.keras"
    with pytest.raises(
        LoadError,
        match=r"weights='ema': 2 of the 10 weights to port from .* have no "
        r"ExponentialMovingAverage shadow: zoo/conv2/weights, zoo/logits/biases\. .*Fix: "
        r"port the raw weights \(weights='raw'",
    ):
        port(path, ZOO, weights="ema", output=str(out))
    assert not out.exists()
    _, report = port(path, ZOO)  # the raw weights still port
    assert report.ok


def test_batch_norm_statistics_without_any_shadow_load_raw(zoo_v2, tmp_path):
    # ema.apply(tf.trainable_variables()): the statistics have no shadow; TF's
    # variables_to_restore restores them raw, and so does the port (and says so).
    _, values = zoo_v2
    trainable = {k: v for k, v in values.items() if "moving_" not in k or not k.endswith(SHADOW)}
    path = str(tmp_path / "trainable.ckpt")
    _slim.write_raw(trainable, path)
    model, report = port(path, ZOO, weights="ema", verify=True)
    assert report.verification["ok"]
    assert len(report.raw_statistics) == 4 and all("moving_" in n for n in report.raw_statistics)
    assert "4 batch-norm statistics without shadow, raw" in report.weights_note()
    np.testing.assert_array_equal(_kernel(model), values["zoo/conv1/weights" + SHADOW])


def test_weights_ema_on_a_checkpoint_without_moving_averages(zoo_v2, tmp_path):
    _, values = zoo_v2
    path = str(tmp_path / "plain.ckpt")
    _slim.write_raw({k: v for k, v in values.items() if not k.endswith(SHADOW)}, path)
    with pytest.raises(LoadError, match=r"weights='ema': checkpoint .* holds no Exponential"):
        port(path, ZOO, weights="ema")
    with pytest.raises(PortArgumentError, match=r"weights='shadow' is not a choice"):
        port(path, ZOO, weights="shadow")


def test_port_custom_takes_the_moving_averages_through_the_same_rules(zoo_v2):
    import tfunite as tu

    path, values = zoo_v2
    model = ZOO.build(dataclasses.replace(_spec(), input_shape=(16, 16, 1)))
    pairs = [
        (r"zoo/(.+)/weights", r"\1/kernel"),
        (r"zoo/(.+)/biases", r"\1/bias"),
        (r"zoo/(.+)/(beta|moving_\w+)", r"\1/\2"),
    ]
    transforms = {r"zoo/logits/weights": ZOO.transforms[0][1]}
    report = port_custom(
        path, model, [tu.TRAINING_STATE, *pairs], transforms, weights="ema", print_plan=False
    )
    assert report.ok and report.applied and report.weights == "ema"
    np.testing.assert_array_equal(_kernel(model, "conv2"), values["zoo/conv2/weights" + SHADOW])


def _spec():
    from tfunite.porting import BuildSpec

    return BuildSpec(CLASSES, (None, None, 1), "zoo", "zoo", 16)


def test_moving_average_rules_rename_shadows_and_drop_what_they_replace():
    rules = moving_average_rules(["a/w", "a/w" + SHADOW, "b/w", "c/w" + SHADOW])
    assert rules.apply("a/w" + SHADOW)[0] == "a/w"
    assert rules.apply("c/w" + SHADOW)[0] == "c/w"
    target, rule = rules.apply("a/w")
    assert target is None and rule.training_state
    assert rules.apply("b/w") == ("b/w", None)  # no shadow: unchanged, the caller decides
    ((pattern, _),) = moving_average_transforms({"a/w": None})
    assert pattern == "(?:a/w)(?:/ExponentialMovingAverage)?"


def test_a_custom_recipe_takes_any_size_and_its_channel_count(zoo_v2):
    path, values = zoo_v2
    model, report = port(path, ZOO, weights="ema")
    assert model.input_shape == (None, None, None, 1) and report.input_shape == (None, None, 1)
    sources = {k[: -len(SHADOW)]: k for k in values if k.endswith(SHADOW)}
    for size in (9, 16, 24):  # Slim builds its graph for one size: one graph per size
        sg = _slim.build_graph(zoo_net, (size, size, 1), CLASSES, scope="zoo")
        x = np.random.default_rng(size).normal(size=(2, size, size, 1)).astype(np.float32)
        ref = _slim.run_graph(sg, path, x, {"logits": sg.logits}, sources)["logits"]
        got = np.asarray(model(x, training=False))
        assert np.max(np.abs(got - ref)) <= RTOL * np.max(np.abs(ref)), size
    fixed, report = port(path, ZOO, input_shape=(12, 12, 1))
    assert fixed.input_shape == (None, 12, 12, 1)
    with pytest.raises(
        PortArgumentError,
        match=r"too small for custom:zoo: .* at least 4x4.*"
        r"input_shape=\(4, 4, 1\)",
    ):
        port(path, ZOO, input_shape=(3, 3, 1))
    with pytest.raises(PortArgumentError, match=r"e\.g\. input_shape=\(16, 16, 1\)"):
        port(path, ZOO, input_shape=(16, 16))


# ------------------------------------------------------------------------------ CLI
def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "reference", [os.path.join(HERE, "zoo_recipe.py") + ":ZOO", "tests.zoo_recipe:ZOO"]
)
def test_cli_ports_with_a_recipe_from_a_file_or_module_and_counts_what_it_drops(
    capsys, zoo_v2, tmp_path, reference
):
    path, values = zoo_v2
    out = tmp_path / "zoo.keras"
    code, text, err = run(
        capsys, "port", path, "--recipe", reference, "--weights", "ema", "-o", out, "--verify"
    )
    assert code == 0, err
    assert "weights: ema (ExponentialMovingAverage shadows of 10 variables)" in text
    assert "training_state    10  training state (raw weight: its Exponential" in text
    assert "training_state    12  training state (TF1 optimizer slot)" in text
    assert "training_state     1  training state (step counter)" in text
    assert "zoo/conv1/weights/RMSProp" not in text  # counts, not one line per entry
    assert len(text.splitlines()) < 25
    import keras

    model = keras.saving.load_model(out)
    np.testing.assert_array_equal(_kernel(model), values["zoo/conv1/weights" + SHADOW])
    code, text, _ = run(capsys, "port", path, "--recipe", reference, "--dry-run", "--verbose")
    assert code == 0 and "zoo/conv1/weights/RMSProp_1" in text and "global_step" in text


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        (
            "zoo_recipe.py:MISSING",
            r"zoo_recipe\.py does not define 'MISSING' \(Recipes it "
            r"defines: ZOO\)\. Nothing was read or written\.",
        ),
        (
            "zoo_recipe.py:NOT_A_RECIPE",
            r"NOT_A_RECIPE in .*zoo_recipe\.py is a str, not a "
            r"tfunite\.porting\.Recipe",
        ),
        ("no_such_file.py:ZOO", r"the file '.*no_such_file\.py' does not exist"),
        ("tests.no_such_module:ZOO", r"cannot import module 'tests\.no_such_module'"),
    ],
)
def test_cli_recipe_reference_errors_exit_2_and_write_nothing(
    capsys, zoo_v2, tmp_path, reference, message
):
    path, _ = zoo_v2
    where, name = reference.split(":")
    if where.endswith(".py"):
        reference = os.path.join(HERE, where) + ":" + name
    out = tmp_path / "zoo.keras"
    code, _, err = run(capsys, "port", path, "--recipe", reference, "-o", out)
    assert code == 2 and not out.exists()
    import re

    assert re.search(message, err), err
    with pytest.raises(RecipeError, match=message):
        port(path, reference)


def test_a_recipe_file_that_fails_to_run(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(RecipeError, match=r"running '.*bad\.py' failed \(RuntimeError: boom\)"):
        port("unused.ckpt", f"{bad}:ZOO")


def test_cli_recipes_say_which_nets_need_a_fixed_size_and_why(capsys):
    code, text, _ = run(capsys, "recipes", "--json")
    rows = {r["name"]: r for r in json.loads(text)}
    assert code == 0
    for name in (
        "slim:resnet_v1_50",
        "slim:resnet_v2_101",
        "slim:inception_v2",
        "slim:inception_v3",
    ):
        assert rows[name]["any_size"] and rows[name]["fixed_size"] is None
    for name in ("slim:vgg_16", "slim:alexnet_v2", "slim:inception_v1"):
        assert not rows[name]["any_size"] and rows[name]["fixed_size"]
    assert "fully connected" in rows["slim:vgg_16"]["fixed_size"]
    code, text, _ = run(capsys, "recipes")
    assert "any input size >= 32 (Keras input (None, None, C))" in text
    assert "fixed input size (224..255; default 224): its classifier is fully connected" in text


def _with_outputs(structure):
    """ZOO whose Keras model returns its logits inside `structure` ("list" or "dict")."""

    def build(spec):
        import keras

        base = ZOO.build(spec)
        x = keras.Input(spec.input_shape)
        pooled = x
        for layer in base.layers[:-1]:
            pooled = layer(pooled)
        logits = base.layers[-1](pooled)
        outputs = (
            [logits, pooled] if structure == "list" else {"features": pooled, "logits": logits}
        )
        return keras.Model(x, outputs, name=f"zoo_{structure}")

    return dataclasses.replace(ZOO, name=f"custom:zoo-{structure}", build=build)


@pytest.mark.parametrize("structure", ["list", "dict"])
def test_verification_finds_the_logits_in_any_output_structure(zoo_v2, structure):
    path, _ = zoo_v2
    model, report = port(path, _with_outputs(structure), verify=True)
    v = report.verification
    assert v["ok"] and v["outputs"]["logits"]["shape"] == [2, CLASSES]
    assert v["outputs"]["logits"]["max_rel"] <= RTOL


def test_verification_refuses_a_dict_of_outputs_without_logits(zoo_v2):
    import keras
    from tfunite.porting import verify_port

    path, _ = zoo_v2
    model, _ = port(path, _with_outputs("dict"))
    renamed = keras.Model(model.inputs, {"scores": model.output["logits"]})
    with pytest.raises(
        VerificationError,
        match=r"its outputs are a dict with keys \['scores'\], expected one "
        r"named 'logits'",
    ):
        verify_port(renamed, path, ZOO)
