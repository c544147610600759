"""`tu.convert`: any TF-Slim or TFLearn network function into a native Keras 3 model.

Small nets at small inputs: a feature net covering every supported op, two small Slim
nets written for these tests (tests/slim_nets.py: a LeNet-style net and a MobileNet-style
net of separable blocks, atrous and explicit padding included) and a TFLearn net; each is compared
with its TF1 graph run on the same inputs and weights. The saved `.keras` is loaded in
fresh processes (no tfunite, no tf_slim) under the TensorFlow and JAX backends.
"""

from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tfunite as tu
from tfunite.errors import LoadError
from tfunite.porting import ConvertError, PortArgumentError, VerificationError, _slim
from tfunite.porting.output import write_checkpoint
from tfunite.porting.trace import TraceError

from tests import slim_nets
from tests.conftest import run_fresh

slim = _slim.ensure_slim()
RTOL = 1e-5  # float32 logits through a dozen layers: max |keras - slim| / max |slim|


def features(inputs, num_classes=5, is_training=False, scope="Zoo"):
    """Every op `convert` supports, once."""
    with tf.compat.v1.variable_scope(scope):
        with slim.arg_scope([slim.batch_norm], is_training=is_training):
            net = slim.conv2d(inputs, 8, 3, stride=2, normalizer_fn=slim.batch_norm, scope="s2")
            a = slim.conv2d(net, 8, 3, rate=2, activation_fn=tf.nn.elu, scope="atrous")
            b = slim.separable_conv2d(
                net, 8, 3, depth_multiplier=2, activation_fn=tf.nn.relu6, scope="sep"
            )
            c = slim.separable_conv2d(net, None, 3, activation_fn=tf.nn.sigmoid, scope="dw")
            c = slim.conv2d(
                c,
                8,
                1,
                activation_fn=tf.nn.tanh,
                normalizer_fn=slim.batch_norm,
                normalizer_params={"fused": False, "scale": True, "is_training": False},
                scope="pw",
            )
            net = tf.concat([a + b, c], axis=3)
            net = slim.batch_norm(net, fused=False, center=False, scope="bn_unfused_plain")
            net = slim.batch_norm(net, center=True, scale=True, scope="bn_fused_scaled")
            net = tf.pad(net, [[0, 0], [1, 1], [1, 1], [0, 0]])
            p1 = slim.max_pool2d(net, 2, stride=2, padding="VALID", scope="mp_valid")
            p2 = slim.avg_pool2d(net, 3, stride=2, padding="SAME", scope="ap_same")
            p3 = slim.max_pool2d(net, 3, stride=2, padding="SAME", scope="mp_same")
            p4 = slim.avg_pool2d(net, 2, stride=2, padding="VALID", scope="ap_valid")
            net = tf.concat([p1, p4], 3) + tf.concat([p2, p3], 3)
            g = tf.reduce_mean(net, [1, 2], keepdims=True, name="global_pool")
            g = tf.squeeze(slim.dropout(g, 0.5, is_training=is_training), [1, 2])
            f = slim.fully_connected(
                slim.flatten(net), 6, normalizer_fn=slim.batch_norm, scope="fc_bn"
            )
            f = tf.reshape(tf.reshape(f, [-1, 2, 3]), [-1, 6])
            logits = slim.fully_connected(
                tf.concat([g, f], 1), num_classes, activation_fn=None, scope="logits"
            )
            return logits, {"Predictions": slim.softmax(logits)}


def _random_checkpoint(fn, shape, path, extra=None, **kwargs):
    """A checkpoint of `fn`'s variables with random values (plus `extra` entries)."""
    kw = {"is_training": False, **kwargs} if "is_training" in fn.__code__.co_varnames else kwargs
    sg = _slim.build_call_graph(lambda x: fn(x, **kw), shape)
    values = _slim.random_weights(sg.variable_shapes(), seed=1)
    write_checkpoint({**values, **(extra or {})}, path)
    return values


def _slim_logits(fn, shape, values, images, **kwargs):
    kw = {"is_training": False, **kwargs} if "is_training" in fn.__code__.co_varnames else kwargs
    sg = _slim.build_call_graph(lambda x: fn(x, **kw), shape)
    with tf.compat.v1.Session(graph=sg.graph) as sess:
        feed = {ph: values[n] for n, ph in sg.weights.items()}
        return sess.run(sg.logits, {**feed, sg.inputs: images})


def _images(shape, n=2):
    return np.random.default_rng(3).normal(0, 1, (n, *shape)).astype(np.float32)


def _close(got, ref, rtol=RTOL):
    got, ref = np.asarray(got), np.asarray(ref)
    assert got.shape == ref.shape
    assert np.max(np.abs(got - ref)) <= rtol * np.max(np.abs(ref))


@pytest.fixture(scope="module")
def feature_port(tmp_path_factory):
    folder = tmp_path_factory.mktemp("convert")
    ckpt = str(folder / "zoo.ckpt")
    extra = {
        "global_step": np.array(100, np.int64),
        "Zoo/logits/weights/Momentum": np.zeros((14, 5), np.float32),
    }
    values = _random_checkpoint(features, (16, 16, 3), ckpt, extra)
    out = str(folder / "zoo.keras")
    model, report = tu.convert(features, ckpt, (16, 16, 3), verify=True, output=out)
    return model, report, values, ckpt, out


def test_every_supported_op_converts_to_builtin_layers_equal_to_slim(feature_port):
    import keras

    model, report, values, _, out = feature_port
    classes = {type(layer).__name__ for layer in model.layers}
    assert classes >= {
        "Conv2D", "DepthwiseConv2D", "Dense", "BatchNormalization", "ReLU", "ELU",
        "Activation", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D",
        "Concatenate", "Add", "ZeroPadding2D", "Flatten", "Reshape",
    }  # fmt: skip
    assert all(type(layer).__module__.startswith("keras.") for layer in model.layers)
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in model.layers)
    dilated = model.get_layer("atrous")
    assert tuple(dilated.dilation_rate) == (2, 2) and dilated.padding == "same"
    # slim's batch norm after a fully connected layer runs fused on a (N, 1, 1, C)
    # reshape; Keras' BatchNormalization takes the (N, C) tensor as it is
    assert tuple(model.get_layer("fc_bn.BatchNorm").output.shape) == (None, 6)
    flat = sorted(x.name for x in model.layers if type(x).__name__ == "Flatten")
    assert flat == ["Flatten.flatten.Reshape", "Reshape_1"]  # slim.flatten, (N, 2, 3) -> (N, 6)
    bn = model.get_layer("bn_unfused_plain")
    assert (bn.center, bn.scale) == (False, False)
    images = _images((16, 16, 3))
    _close(model(images), _slim_logits(features, (16, 16, 3), values, images))
    assert report.ok and report.output == out and os.path.isfile(out)
    counts = report.counts()
    assert counts["training_state"] == 2 and counts["unexpected"] == counts["missing"] == 0


def test_verification_compares_every_layer(feature_port):
    model, report, *_ = feature_port
    v = report.verification
    assert v["ok"] and v["first_failure"] is None
    compared = [d["layer"] for d in v["layers"]]
    assert sorted(compared) == sorted(layer.name for layer in model.layers[1:])
    assert all(d["max_rel"] <= RTOL for d in v["layers"])
    assert v["outputs"]["logits"]["max_rel"] <= RTOL
    assert json.loads(json.dumps(report.to_dict()))["verification"]["layers"]


def test_verification_names_the_first_layer_beyond_tolerance(feature_port, tmp_path):
    _, _, _, ckpt, _ = feature_port
    out = tmp_path / "never.keras"
    with pytest.raises(
        VerificationError, match=r"failed: layer '[^']+' differs .* nothing was"
    ) as e:
        tu.convert(features, ckpt, (16, 16, 3), verify=True, rtol=0.0, output=str(out))
    v = e.value.report.verification
    first = v["first_failure"]
    assert first == next(d["layer"] for d in v["layers"] if d["max_rel"] > 0)
    assert not out.exists()


def _sepnet_scoped(x, is_training=False, **kwargs):
    with slim.arg_scope(slim_nets.sepnet_arg_scope(is_training=False)):
        return slim_nets.sepnet(x, is_training=is_training, **kwargs)


@pytest.fixture(scope="module")
def sepnet(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sepnet")
    ckpt = str(folder / "sepnet.ckpt")
    kw = {"num_classes": 7, "width": 0.25}
    values = _random_checkpoint(_sepnet_scoped, (64, 64, 3), ckpt, **kw)
    out = str(folder / "sepnet.keras")
    model, report = tu.convert(
        slim_nets.sepnet,
        ckpt,
        (64, 64, 3),
        arg_scope=lambda: slim_nets.sepnet_arg_scope(is_training=False),
        verify=True,
        output=out,
        **kw,
    )
    return model, report, values, out


def test_mobilenet_style_net_with_its_checkpoint(sepnet):
    model, report, values, _ = sepnet
    images = _images((64, 64, 3))
    kw = {"num_classes": 7, "width": 0.25}
    _close(model(images), _slim_logits(_sepnet_scoped, (64, 64, 3), values, images, **kw))
    assert report.verification["ok"] and report.ok
    assert model.get_layer("block1_dw.depthwise").__class__.__name__ == "DepthwiseConv2D"
    assert tuple(model.get_layer("block2_dw.depthwise").strides) == (2, 2)
    assert model.get_layer("block2_dw.Relu6").max_value == 6
    assert type(model.get_layer("Head.global_pool")).__name__ == "GlobalAveragePooling2D"
    assert model.output_shape == (None, 7)


def test_mobilenet_style_base_atrous_and_explicit_padding():
    model, report = tu.convert(
        slim_nets.sepnet_base,
        None,
        (32, 32, 3),
        arg_scope=lambda: slim_nets.sepnet_arg_scope(is_training=False),
        verify=True,
        width=0.25,
        output_stride=8,
        explicit_padding=True,
        final_endpoint="block7_pw",
    )
    assert report.verification["ok"] and report.checkpoint.startswith("(none")
    rates = {
        tuple(layer.dilation_rate) for layer in model.layers if hasattr(layer, "dilation_rate")
    }
    assert (2, 2) in rates
    assert tuple(model.get_layer("block7_dw.depthwise").dilation_rate) == (2, 2)
    assert any(type(layer).__name__ == "ZeroPadding2D" for layer in model.layers)


def test_lenet_style_fresh_weights_from_a_file_spec():
    model, report = tu.convert(
        "tests/slim_nets.py:lenet",
        input_shape=None,  # lenet.default_image_size, 3 channels
        arg_scope="tests.slim_nets:lenet_arg_scope",
        verify=True,
    )
    assert model.input_shape == (None, 28, 28, 3) and model.output_shape == (None, 10)
    assert [type(x).__name__ for x in model.layers[-4:]] == ["Flatten", "Dense", "ReLU", "Dense"]
    assert report.verification["ok"] and report.counts()["matched"] == 0


@pytest.mark.skipif(importlib.util.find_spec("tflearn") is None, reason="tflearn not installed")
def test_tflearn_network_function(tmp_path):
    from tfunite.bridges.tflearn_fixes import import_tflearn

    tflearn = import_tflearn()

    def net(x):
        n = tflearn.conv_2d(x, 4, 3, activation="relu", scope="conv")
        n = tflearn.batch_normalization(n, scope="bn")
        n = tflearn.merge([tflearn.max_pool_2d(n, 2), tflearn.avg_pool_2d(n, 2)], "concat", axis=3)
        n = tflearn.flatten(tflearn.dropout(n, 0.5))
        return tflearn.fully_connected(n, 5, activation="softmax", scope="fc")

    ckpt = str(tmp_path / "tfl.ckpt")
    shapes = {
        "conv/W": (3, 3, 3, 4), "conv/b": (4,), "bn/beta": (4,), "bn/gamma": (4,),
        "bn/moving_mean": (4,), "bn/moving_variance": (4,), "fc/W": (512, 5), "fc/b": (5,),
    }  # fmt: skip
    write_checkpoint({**_slim.random_weights(shapes, seed=2), "is_training": np.bool_(0)}, ckpt)
    model, report = tu.convert(net, ckpt, (16, 16, 3), verify=True)
    assert report.verification["ok"] and report.ok
    assert report.counts()["dropped"] == 1  # the training-mode flag: not on the path
    assert {"Softmax", "BatchNormalization", "Concatenate"} <= {
        type(x).__name__ for x in model.layers
    }


def _fresh_load(path, backend, images_path):
    code = f"""
import json, os, sys
os.environ["KERAS_BACKEND"] = {backend!r}
import numpy as np, keras
model = keras.saving.load_model({path!r})
out = model.predict(np.load({images_path!r}), verbose=0)  # one jit, not op by op
leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("tfunite", "tf_slim", "tflearn"))
print(json.dumps({{"backend": keras.backend.backend(), "leaked": leaked, "out": out.tolist()}}))
"""
    return run_fresh(code)


def test_saved_keras_loads_without_tfunite_same_logits_on_jax(feature_port, tmp_path):
    """Item 7: the .keras file alone, in a process without tfunite or tf_slim, under the
    JAX backend, gives the logits of the TensorFlow backend (here) within 1e-5."""
    import keras

    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed")
    model, _, _, _, out = feature_port
    images = _images((16, 16, 3))
    np.save(tmp_path / "images.npy", images)
    res = _fresh_load(out, "jax", str(tmp_path / "images.npy"))
    assert res["backend"] == "jax" and res["leaked"] == []
    _close(res["out"], model(images))
    _close(keras.saving.load_model(out)(images), model(images), rtol=0)  # tensorflow


def test_unsupported_op_names_op_scope_and_supported(tmp_path):
    def cifar_like(x, is_training=False):
        with tf.compat.v1.variable_scope("CifarNet"):
            net = slim.conv2d(x, 4, 3, scope="conv1")
            net = tf.nn.lrn(net, 4, bias=1.0, alpha=0.001 / 9.0, beta=0.75, name="norm1")
            return slim.fully_connected(slim.flatten(net), 3, scope="logits")

    out = tmp_path / "x.keras"
    with pytest.raises(
        TraceError,
        match=r"op 'CifarNet/norm1' of type 'LRN' \(scope 'CifarNet'\).*Supported op types: .*Conv2D",
    ):
        tu.convert(cifar_like, None, (8, 8, 3), output=str(out))
    assert not out.exists()


def test_input_below_the_nets_minimum(tmp_path):
    def valid_net(x):
        return slim.conv2d(x, 4, 5, padding="VALID", scope="conv")

    out = tmp_path / "x.keras"
    with pytest.raises(ConvertError, match=r"below what the network accepts.*larger input_shape"):
        tu.convert(valid_net, None, (3, 3, 1), output=str(out))
    with pytest.raises(ConvertError, match=r"lenet\(inputs of shape \(batch, 1, 1, 1\).*Negat"):
        tu.convert(slim_nets.lenet, None, (1, 1, 1), output=str(out))
    assert not out.exists()


def test_function_raising_and_bad_arguments(tmp_path):
    def broken(x):
        raise ValueError("boom")

    out = tmp_path / "x.keras"
    with pytest.raises(
        ConvertError, match=r"Building broken\(inputs of shape .* raised ValueError: boom"
    ):
        tu.convert(broken, None, (8, 8, 3), output=str(out))
    with pytest.raises(ConvertError, match=r"defines no callable 'nope'"):
        tu.convert("tests.slim_nets:nope", input_shape=(8, 8, 1))
    with pytest.raises(ConvertError, match=r"Cannot import 'no_such_module_x'"):
        tu.convert("no_such_module_x:net", input_shape=(8, 8, 1))
    with pytest.raises(ConvertError, match=r"expected a callable, 'package.module:NAME'"):
        tu.convert("lenet", input_shape=(8, 8, 1))
    with pytest.raises(PortArgumentError, match=r"input_shape=\(8, 8\) is not an image shape"):
        tu.convert(slim_nets.lenet, None, (8, 8))
    with pytest.raises(PortArgumentError, match=r"no input_shape, and broken has no default_"):
        tu.convert(broken)
    with pytest.raises(PortArgumentError, match=r"broken takes no scope argument"):
        tu.convert(broken, None, (8, 8, 3), scope="x")
    assert not out.exists()


def test_checkpoint_of_another_net_is_refused(feature_port, tmp_path):
    _, _, _, ckpt, _ = feature_port
    out = tmp_path / "x.keras"
    with pytest.raises(LoadError, match=r"converting lenet"):
        tu.convert(slim_nets.lenet, ckpt, (28, 28, 1), output=str(out))
    assert not out.exists()


def test_cli_convert(tmp_path, capsys):
    from tfunite.tools.cli import main

    out = tmp_path / "lenet.keras"
    argv = ["convert", "tests.slim_nets:lenet", "--input-size", "28", "28", "1"]
    code = main(
        [*argv, "--num-classes", "4", "--arg", "scope='Le'", "-o", str(out), "--verify", "--json"]
    )
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and out.is_file()
    assert report["verification"]["ok"] and report["num_classes"] == 4
    assert report["function"].endswith(":lenet") and report["layers"] == 10
    assert main(["convert", "tests.slim_nets:lenet", "--input-size", "28"]) == 2
    assert "convert: nothing to do: give -o/--output" in capsys.readouterr().err
    assert main(["convert", "tests.slim_nets:lenet", "--input-size", "28", "1", "--verify"]) == 2
    assert "--input-size takes N (for N N 3) or H W C" in capsys.readouterr().err
    assert main([*argv, "--verify", "--verbose"]) == 0
    text = capsys.readouterr().out
    assert "10 layers compared; largest difference" in text and "conv1.Relu" in text
    assert main([*argv, "--arg", "nope", "--verify"]) == 2
    assert "expected KEY=VALUE, got 'nope'" in capsys.readouterr().err
    assert main([*argv, "--arg", "nope=1", "--verify", "--json"]) == 2
    err = json.loads(capsys.readouterr().out)
    assert err["code"] == 2 and "raised TypeError" in err["error"]


def test_traced_recipes_are_cached_uses_of_the_converter(tmp_path, monkeypatch):
    """A traced recipe's layout is what `trace_network` (the converter) makes of the
    net's own function, and its port equals `tu.convert` of that function."""
    import sys

    from tf_slim.nets import resnet_v1
    from tfunite.porting import _layouts

    monkeypatch.setenv("TFUNITE_CACHE_DIR", "off")
    monkeypatch.setattr(_layouts, "_MEMORY", {})
    convert_module = sys.modules["tfunite.porting.convert"]
    traced = []
    original = convert_module.trace_network
    monkeypatch.setattr(
        convert_module,
        "trace_network",
        lambda fn, *a, **k: traced.append(fn) or original(fn, *a, **k),
    )
    ckpt = str(tmp_path / "r50.ckpt")
    _slim.write_random_checkpoint("resnet_v1_50", ckpt, (64, 64, 3), 10)
    ported, _ = tu.port(ckpt, "slim:resnet_v1_50", input_shape=(64, 64, 3))
    assert traced == [resnet_v1.resnet_v1_50]
    converted, _ = tu.convert(
        resnet_v1.resnet_v1_50,
        ckpt,
        (64, 64, 3),
        arg_scope=resnet_v1.resnet_arg_scope,
        num_classes=10,
    )
    images = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype(np.float32)
    # The same layers and weights (the recipe adds Slim's spatial squeeze at the end).
    want = np.asarray(converted(images, training=False)).reshape(2, 10)
    got = np.asarray(ported(images, training=False))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_slim_bias_add_after_a_layer_without_biases_and_elsewhere_refused():
    """slim.bias_add on a convolution or fully connected layer built without biases is
    that layer's bias; after any other op it has no built-in Keras layer: a TraceError."""

    def net(x, is_training=False, scope="B"):
        with tf.compat.v1.variable_scope(scope):
            y = slim.conv2d(x, 4, 3, biases_initializer=None, activation_fn=None, scope="c")
            y = slim.bias_add(y, activation_fn=tf.nn.relu, scope="ba")
            y = slim.flatten(y)
            y = slim.fully_connected(y, 3, biases_initializer=None, activation_fn=None)
            return slim.bias_add(y, scope="ba2")

    model, report = tu.convert(net, input_shape=(8, 8, 2), verify=True)
    assert report.verification["ok"]
    assert [type(layer).__name__ for layer in model.layers[1:]] == [
        "Conv2D",
        "ReLU",
        "Flatten",
        "Dense",
    ]
    assert model.layers[1].use_bias and model.layers[-1].use_bias

    def pooled(x, is_training=False, scope="B"):
        with tf.compat.v1.variable_scope(scope):
            return slim.bias_add(slim.max_pool2d(slim.conv2d(x, 4, 3), 2), scope="ba")

    with pytest.raises(TraceError, match=r"'B/ba/BiasAdd'.*right after a convolution"):
        tu.convert(pooled, input_shape=(8, 8, 2))


def test_fully_connected_on_a_feature_map_is_a_dense_on_its_last_axis(tmp_path):
    """slim.fully_connected on a 4-D input (a tf.tensordot with shape ops inside) is one
    Dense on the last axis, with its weights and bias, equal to Slim's on every layer."""

    def net(x, is_training=False, scope="F"):
        with tf.compat.v1.variable_scope(scope):
            y = slim.conv2d(x, 4, 3, scope="c")
            y = slim.fully_connected(y, 6, scope="fc4d")
            return tf.reduce_mean(y, [1, 2])

    model, report = tu.convert(net, input_shape=(8, 8, 2), verify=True, rtol=RTOL)
    assert report.verification["ok"], report.verification["first_failure"]
    dense = model.get_layer("fc4d")
    assert type(dense).__name__ == "Dense" and dense.use_bias and dense.units == 6
    assert dense.output.shape[1:] == (8, 8, 6)


def test_scaled_residuals_and_gates():
    """x * 0.17 (Inception-ResNet's residual scale) is a Rescaling, x * sigmoid(y) a
    Multiply: built-in layers, equal to Slim's on every layer."""

    def net(x, is_training=False, scope="R"):
        with tf.compat.v1.variable_scope(scope):
            a = slim.conv2d(x, 4, 3, scope="a")
            up = slim.conv2d(a, 4, 1, activation_fn=None, scope="up")
            a = a + 0.17 * up
            gate = slim.conv2d(a, 4, 1, activation_fn=tf.nn.sigmoid, scope="gate")
            return tf.reduce_mean(a * gate, [1, 2])

    model, report = tu.convert(net, input_shape=(8, 8, 2), verify=True, rtol=RTOL)
    assert report.verification["ok"], report.verification["first_failure"]
    classes = [type(layer).__name__ for layer in model.layers]
    assert "Rescaling" in classes and "Multiply" in classes
    (scale,) = [layer for layer in model.layers if type(layer).__name__ == "Rescaling"]
    assert scale.scale == pytest.approx(0.17)
