"""`tu.keras_layer`: owners inside Keras 3 fit, saving and TensorBoard (interop/).

Real Keras, Slim, Sonnet, TFLearn; one fresh process checks that `.weights.h5` and
`.keras` files load in a process that never built the model.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import re

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
pytest.importorskip("sonnet")
pytest.importorskip("tf_slim")

import tfunite as tu  # noqa: E402

from tests import models  # noqa: E402
from tests.conftest import run_fresh  # noqa: E402
from tests.keras_fit_models import data, mixed_model, slim_trunk, sonnet_head  # noqa: E402

X6 = models.example((4, 6))


def _owner(kind):
    if kind == "keras":
        return tu.wrap(models.keras_sequential(), name="k3")
    if kind == "tf_keras":
        pytest.importorskip("tf_keras")
        return tu.wrap(models.tf_keras_sequential(), name="k2")
    if kind == "sonnet":
        return tu.wrap(models.sonnet_bn(), name="snt")
    if kind == "tf_module":
        return tu.wrap(models.tf_module(), name="mod")
    if kind == "slim":
        return tu.slim(models.slim_net(), name="slim")
    if kind == "tflearn":
        if importlib.util.find_spec("tflearn") is None:  # importorskip would import it raw
            pytest.skip("tflearn is not installed")
        return tu.tflearn(models.tflearn_net(), name="tfl")
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["keras", "tf_keras", "sonnet", "tf_module", "slim", "tflearn"])
def test_weights_are_the_owners_variables(kind):
    owner = _owner(kind)
    layer = tu.keras_layer(owner, input_shape=(6,))
    # Same storage both ways, trainable as the owner says, paths by canonical name.
    paths = {w.path: w for w in layer.weights}
    assert sorted(paths) == sorted(f"{layer.name}/{n}" for n in owner.variables)
    for name, var in owner.variables.items():
        weight = paths[f"{layer.name}/{name}"]
        assert weight.value is var, name
        assert weight.trainable == any(var is t for t in owner.trainable_variables), name
    name = next(n for n, v in owner.variables.items() if v.dtype == tf.float32)
    var, first = owner.variables[name], paths[f"{layer.name}/{name}"]
    var.assign(tf.fill(var.shape, 0.5))
    np.testing.assert_array_equal(first.numpy(), np.full(var.shape, 0.5, np.float32))
    first.assign(np.full(var.shape, -0.25, np.float32))
    np.testing.assert_array_equal(var.numpy(), np.full(var.shape, -0.25, np.float32))
    # Inference: the layer gives the owner's outputs (training=None -> False).
    np.testing.assert_allclose(layer(X6), owner(X6, training=False), rtol=1e-6, atol=1e-6)


def test_parameters_children_and_the_parameters_itself():
    head, trunk = _owner("sonnet"), _owner("tf_module")
    head.initialize(X6), trunk.initialize(X6)
    params = tu.Parameters("both", head=head, trunk=trunk)
    layer = tu.keras_layer(params["head"])
    (weight,) = [w for w in layer.weights if w.path == "snt/net/linear/w"]
    assert weight.value is params.variables["head/net/linear/w"]
    with pytest.raises(TypeError, match=r"tu.Parameters 'both' has no forward pass.*children"):
        tu.keras_layer(params)


def test_unbuilt_owner_without_input_shape_is_refused():
    owner = tu.wrap(models.sonnet_mlp(), name="mlp")
    with pytest.raises(tu.NotBuiltError, match=r"owner 'mlp' \(sonnet\) has no variables yet"):
        tu.keras_layer(owner)
    with pytest.raises(tu.NotBuiltError, match=r"input_shape=\(None, 4\)"):
        tu.keras_layer(owner, input_shape=(None, 4))
    assert not owner.built  # refused: nothing built
    with pytest.raises(TypeError, match="needs an owner or a factory"):
        tu.keras_layer()


def test_factory_must_be_importable():
    with pytest.raises(ValueError, match="expected a function defined at the top level"):
        tu.keras_layer(factory=lambda: slim_trunk())
    with pytest.raises(ValueError, match="'nowhere:f' cannot be imported"):
        tu.keras_layer(factory="nowhere:f")


def test_factory_must_import_back_to_itself(monkeypatch):
    from tests import keras_fit_models

    original = keras_fit_models.slim_trunk
    monkeypatch.setattr(keras_fit_models, "slim_trunk", keras_fit_models.sonnet_head)
    with pytest.raises(ValueError, match=r"'tests.keras_fit_models:slim_trunk' imports to another"):
        tu.keras_layer(factory=original)


def test_keras_config_needs_the_input_shape():
    owner = _owner("tf_module")
    owner.initialize(X6)
    layer = tu.keras_layer(owner, factory=sonnet_head)  # built owner: no shape needed yet
    with pytest.raises(tu.NotSerializableError, match=r"'mod': its input shape is unknown"):
        layer.get_config()
    layer(X6)  # the first call records it
    assert layer.get_config()["input_shape"] == [6]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """The mixed model (Slim trunk with BN + L2, Sonnet head with BN, Keras Dense) fitted
    for 3 epochs with ModelCheckpoint, EarlyStopping and TensorBoard callbacks."""
    tmp = tmp_path_factory.mktemp("fit")
    keras.utils.set_random_seed(0)
    model = mixed_model()
    trunk, head = model.layers[1].owner, model.layers[2].owner
    x, y = data()
    start = {k: v.numpy().copy() for o in (trunk, head) for k, v in o.variables.items()}
    predicted = model.predict(x, verbose=0)
    after_predict = {k: v.numpy().copy() for o in (trunk, head) for k, v in o.variables.items()}
    model.compile(keras.optimizers.Adam(0.01), "mse")
    callbacks = [
        keras.callbacks.ModelCheckpoint(str(tmp / "best.weights.h5"), save_weights_only=True),
        keras.callbacks.EarlyStopping(monitor="loss", patience=5),
        keras.callbacks.TensorBoard(str(tmp / "logs"), histogram_freq=1),
    ]
    history = model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=callbacks)
    return dict(
        model=model,
        trunk=trunk,
        head=head,
        start=start,
        after_predict=after_predict,
        predicted=predicted,
        history=history.history,
        tmp=tmp,
    )


def test_fit_trains_every_owner_and_moves_bn_only_in_fit(fitted):
    start, after_predict = fitted["start"], fitted["after_predict"]
    assert all(np.array_equal(start[k], after_predict[k]) for k in start)  # predict: nothing
    for owner in (fitted["trunk"], fitted["head"]):
        for name, var in owner.variables.items():  # fit: weights and BN statistics
            assert not np.array_equal(var.numpy(), start[name]), f"{owner.name}/{name} unchanged"
    for stat in ("fc1/BatchNorm/moving_mean", "bn_head/bn/moving_mean/average"):
        owner = fitted["trunk"] if stat.startswith("fc1") else fitted["head"]
        assert stat in owner.variables
        assert stat not in [n for n, v in owner.variables.items() if v.trainable]
    history = fitted["history"]["loss"]
    assert len(history) == 3 and history[-1] < history[0]
    assert os.path.exists(fitted["tmp"] / "best.weights.h5")


def test_owner_losses_reach_layer_losses_and_the_fit_loss(fitted):
    model, trunk = fitted["model"], fitted["trunk"]
    x, y = data(16, seed=3)
    model(x)  # eager call: layer.losses hold this call's values
    trunk_layer = model.layers[1]
    (reg,) = trunk.losses
    np.testing.assert_allclose(sum(float(v) for v in trunk_layer.losses), float(reg), rtol=1e-6)
    mse = float(np.mean((model.predict(x, verbose=0) - y) ** 2))
    evaluated = model.evaluate(x, y, verbose=0, batch_size=16)
    # The evaluate loss is mse + the Slim L2 term (float32 sums: rtol 1e-5).
    np.testing.assert_allclose(evaluated, mse + float(reg), rtol=1e-5)


def test_keras_tensorboard_histograms_are_tagged_by_canonical_names(fitted):
    tags = set()
    for path in glob.glob(str(fitted["tmp"] / "logs" / "train" / "events.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(v.tag for v in event.summary.value)
    assert "trunk/fc1/weights/histogram" in tags
    assert "head/bn_head/bn/moving_mean/average/histogram" in tags


def test_frozen_layer_trains_nothing_and_runs_in_inference_mode():
    owner = _owner("sonnet")  # Linear -> BatchNorm -> Linear
    layer = tu.keras_layer(owner, input_shape=(6,))
    model = keras.Sequential([keras.Input((6,)), layer, keras.layers.Dense(1)])
    layer.trainable = False
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == len(
        owner.variables
    )
    before = {k: v.numpy().copy() for k, v in owner.variables.items()}
    dense = model.layers[-1].kernel.numpy().copy()
    model.compile(keras.optimizers.Adam(0.01), "mse")
    model.fit(X6, np.ones((4, 1), np.float32), epochs=2, verbose=0)
    for name, var in owner.variables.items():  # weights and BN statistics
        np.testing.assert_array_equal(var.numpy(), before[name], err_msg=name)
    assert not np.array_equal(model.layers[-1].kernel.numpy(), dense)


def test_subclass_model_holding_an_owner_raises_pointing_to_keras_layer():
    class Holder(keras.Model):
        def __init__(self, owner):
            super().__init__()
            self.owner = owner
            self.out = keras.layers.Dense(1)

        def call(self, x):
            return self.out(self.owner(x))

    owner = tu.wrap(models.sonnet_mlp(), name="mlp")
    model = Holder(owner)
    with pytest.raises(
        tu.OwnershipError,
        match=r"Owner 'mlp' \(sonnet\) ran inside Keras layer 'holder' \(Holder\), which does "
        r"not track its variables.*Fix: in __init__, self.mlp = tu.keras_layer\(owner\)",
    ):
        model(X6)


def test_subclass_model_holding_a_keras_layer_trains_it():
    class Holder(keras.Model):
        def __init__(self, owner):
            super().__init__()
            self.body = tu.keras_layer(owner, input_shape=(6,))
            self.out = keras.layers.Dense(1)

        def call(self, x):
            return self.out(self.body(x))

    owner = tu.wrap(models.sonnet_mlp(), name="mlp")
    model = Holder(owner)
    model.compile("sgd", "mse")
    before = {k: v.numpy().copy() for k, v in owner.variables.items()}
    model.fit(X6, np.ones((4, 1), np.float32), epochs=1, verbose=0)
    assert all(not np.array_equal(v.numpy(), before[k]) for k, v in owner.variables.items())
    assert len(model.trainable_weights) == len(owner.variables) + 2


def test_keras_save_without_factory_is_refused(tmp_path):
    owner = _owner("tf_module")
    inputs = keras.Input((6,))
    model = keras.Model(inputs, tu.keras_layer(owner, input_shape=(6,))(inputs))
    with pytest.raises(
        tu.NotSerializableError, match=r"tu.keras_layer 'mod' .*has no factory.*save_weights"
    ):
        model.save(tmp_path / "m.keras")


def test_load_weights_of_another_architecture_changes_nothing(fitted, tmp_path):
    # A Sequential whose first layer (a Sonnet head) sits where the mixed model has its
    # Slim trunk: the trunk's layer refuses the file's names and assigns nothing.
    other = keras.Sequential([keras.Input((8,)), tu.keras_layer(sonnet_head(), input_shape=(8,))])
    other.save_weights(tmp_path / "other.weights.h5")
    model = mixed_model()
    trunk_layer = model.layers[1]
    before = [w.numpy().copy() for w in trunk_layer.weights]
    # Keras gathers each layer's error into one ValueError; ours names the variable.
    with pytest.raises(
        ValueError,
        match=r"(?s)OwnerLayer name=trunk.*variable\(s\) missing from the checkpoint, first: "
        r"'fc1/weights'",
    ):
        model.load_weights(tmp_path / "other.weights.h5")
    for b, w in zip(before, trunk_layer.weights):
        np.testing.assert_array_equal(w.numpy(), b)


def test_weights_h5_and_keras_files_load_in_a_fresh_process(fitted):
    model, tmp = fitted["model"], fitted["tmp"]
    model.save_weights(tmp / "m.weights.h5")
    model.save(tmp / "m.keras")
    x, _ = data(8, seed=5)
    expected = model.predict(x, verbose=0)
    out = run_fresh(
        "import json, numpy as np, keras\n"
        "import tfunite.interop.keras_layer  # registers tfunite>OwnerLayer\n"
        "from tests.keras_fit_models import data, mixed_model\n"
        "keras.layers.Dense(3); keras.layers.Dense(3)  # other auto-numbering\n"
        "x, _ = data(8, seed=5)\n"
        "rebuilt = mixed_model()\n"
        f"rebuilt.load_weights({str(tmp / 'm.weights.h5')!r})\n"
        f"loaded = keras.saving.load_model({str(tmp / 'm.keras')!r})  # safe_mode on\n"
        "trunk = loaded.layers[1].owner\n"
        "print(json.dumps({'weights': rebuilt.predict(x, verbose=0).tolist(),\n"
        "  'keras': loaded.predict(x, verbose=0).tolist(), 'names': list(trunk.variables)}))\n"
    )
    np.testing.assert_allclose(out["weights"], expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out["keras"], expected, rtol=1e-6, atol=1e-6)
    assert out["names"] == list(fitted["trunk"].variables)


def test_summaries_write_unique_canonical_tags(tmp_path):
    from tfunite.interop.summaries import SummaryCallback

    owner = tu.wrap(models.sonnet_bn(), name="net")
    owner.initialize(X6)
    w_norm = np.linalg.norm(owner.variables["net/linear/w"].numpy())
    with tf.summary.create_file_writer(str(tmp_path / "direct")).as_default():
        assert tu.summaries(owner, step=3)
    assert not tu.summaries(owner, step=4)  # no default writer: nothing written
    inputs = keras.Input((6,))
    model = keras.Model(inputs, tu.keras_layer(owner)(inputs))
    model.compile("sgd", "mse")
    callback = SummaryCallback(owner, str(tmp_path / "callback"))
    model.fit(X6, np.zeros((4, 3), np.float32), epochs=2, verbose=0, callbacks=[callback])

    def read(folder):
        seen = []
        for path in glob.glob(str(tmp_path / folder / "events.*")):
            for event in tf.compat.v1.train.summary_iterator(path):
                seen += [(v.tag, event.step) for v in event.summary.value]
        return seen

    direct = read("direct")
    expected = {f"net/{n}/{kind}" for n in owner.variables for kind in ("histogram", "norm")}
    assert sorted(t for t, _ in direct) == sorted(expected)  # one of each: unique
    assert {s for _, s in direct} == {3}
    norm = next(
        tf.make_ndarray(v.tensor)
        for path in glob.glob(str(tmp_path / "direct" / "events.*"))
        for e in tf.compat.v1.train.summary_iterator(path)
        for v in e.summary.value
        if v.tag == "net/net/linear/w/norm"
    )
    np.testing.assert_allclose(norm, w_norm, rtol=1e-6)
    assert sorted(read("callback")) == sorted((t, s) for t in expected for s in (0, 1))


def test_summaries_without_tensorboard_says_how_to_install():
    out = run_fresh(
        "import json, sys\n"
        "sys.modules['tensorboard'] = None  # as on a machine without tensorboard\n"
        "import tensorflow as tf\n"
        "import tfunite as tu\n"
        "module = tf.Module(name='m')\n"
        "module.w = tf.Variable([1.0, 2.0])\n"
        "try:\n"
        "    tu.summaries(tu.wrap(module, name='m'), 0)\n"
        "    print(json.dumps({'error': None}))\n"
        "except tu.TfuniteError as e:\n"
        "    print(json.dumps({'error': str(e)}))\n"
    )
    assert out["error"] and re.search(
        r"tu.summaries \(tf.summary.histogram\) needs the package 'tensorboard'.*"
        r"pip install 'tfunite\[all\]'",
        out["error"],
    )
