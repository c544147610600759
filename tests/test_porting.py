"""Porting TF-Slim checkpoints into Keras 3 models (tfunite.porting), verified against Slim.

Checkpoints are written here with random weights and randomized BatchNorm statistics
(`tfunite.porting._slim.random_weights`), in TF's V1 and V2 formats. One parametrized
test runs every recipe end to end at its smallest input size; the rest use the small
nets.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
import tfunite as tu
from tfunite.errors import CheckpointError, LoadError, RuleError
from tfunite.porting import (
    BuildSpec,
    OutputError,
    PortArgumentError,
    Recipe,
    RecipeError,
    VerificationError,
    _slim,
    export,
    port,
    port_custom,
    recipes,
    register_recipe,
    verify_port,
)
from tfunite.porting.recipes import RECIPES

RTOL = 1e-5  # port verification bound on logits: max |keras - slim| / max |slim|

# net -> (input size for the Keras model, classes, input size for writing the checkpoint)
CASES = {
    "alexnet_v2": (224, 10, 224),  # fc6 is a 5x5 VALID conv: needs pool5 of 5x5
    "overfeat": (231, 10, 231),  # fc6 is a 6x6 VALID conv
    "vgg_a": (224, 10, 224),  # fc6 is a 7x7 VALID conv
    "vgg_16": (224, 1001, 224),  # 1001 classes: the background round trip below
    "vgg_19": (224, 10, 224),
    "inception_v1": (224, 10, 224),  # a fixed 7x7 VALID average pool at the end
    "inception_v2": (64, 10, 64),
    "inception_v3": (75, 1001, 150),  # checkpoint at 150 so that it holds AuxLogits
    "resnet_v1_50": (64, 10, 64),
    "resnet_v1_101": (64, 10, 64),
    "resnet_v1_152": (64, 10, 64),
    "resnet_v1_200": (64, 10, 64),
    "resnet_v2_50": (64, 1001, 64),
    "resnet_v2_101": (64, 10, 64),
    "resnet_v2_152": (64, 10, 64),
    "resnet_v2_200": (64, 10, 64),
}


@pytest.fixture(scope="session")
def ckpt(tmp_path_factory):
    """ckpt(net, classes=None, size=None, version="V2", seed=0) -> a cached checkpoint prefix."""
    cache: dict = {}
    root = tmp_path_factory.mktemp("slim_ckpts")

    def make(net, classes=None, size=None, version="V2", seed=0):
        _, n, s = CASES[net]
        key = (net, classes or n, size or s, version, seed)
        if key not in cache:
            path = str(root / "_".join(map(str, key)) / "model.ckpt")
            os.makedirs(os.path.dirname(path))
            _slim.write_random_checkpoint(
                net, path, (key[2], key[2], 3), key[1], seed=seed, write_version=version
            )
            cache[key] = path
        return cache[key]

    return make


def _input(net):
    s = CASES[net][0]
    return (s, s, 3)


# ----------------------------------------------------------------- every recipe
def test_all_16_nets_have_recipes():
    assert sorted(r.split(":")[1] for r in recipes()) == sorted(CASES)


@pytest.mark.parametrize("net", sorted(CASES))
def test_recipe_ports_and_verifies(net, ckpt):
    model, report = port(ckpt(net), f"slim:{net}", input_shape=_input(net), verify=True)
    v = report.verification
    assert v["ok"]
    assert v["outputs"]["logits"]["max_rel"] <= RTOL
    assert len(v["outputs"]) >= 3, "logits and two endpoints are compared"
    for name, d in v["outputs"].items():
        # endpoints: same bound, they are float32 activations of the same computation
        assert d["max_rel"] <= RTOL, (name, d)
    assert report.ok and not report.missing and not report.unexpected
    expected_classes = 1000 if CASES[net][1] == 1001 else CASES[net][1]
    assert model.output_shape == (None, expected_classes)
    print(f"{net}: logits max rel {v['outputs']['logits']['max_rel']:.2e}")


@pytest.mark.parametrize("net", ["resnet_v1_50", "resnet_v2_50", "inception_v2", "inception_v3"])
def test_fully_convolutional_nets_take_any_input_size(net, ckpt):
    # issue 12, item 2: no input_shape= gives (None, None, 3); the one model matches Slim
    # built at each size (Slim's graph is static: one graph per size).
    model, report = port(ckpt(net), f"slim:{net}")
    assert model.input_shape == (None, None, None, 3) and report.input_shape == (None, None, 3)
    n = CASES[net][1]
    sizes = (CASES[net][0], CASES[net][0] + 37) if net == "resnet_v1_50" else (CASES[net][0] + 37,)
    for size in sizes:  # (the recipes' own size is verified by test_recipe_ports_and_verifies)
        sg = _slim.build_graph(
            net, (size, size, 3), n, net_kwargs=RECIPES[f"slim:{net}"].net_kwargs
        )
        x = np.random.default_rng(size).normal(size=(2, size, size, 3)).astype(np.float32)
        ref = _slim.run_graph(sg, ckpt(net), x, {"logits": sg.logits})["logits"].reshape(2, -1)
        ref = ref[:, 1:] if report.background == "dropped" else ref
        got = np.asarray(model(x, training=False))
        assert np.max(np.abs(got - ref)) <= RTOL * np.max(np.abs(ref)), (net, size)


def test_verification_compares_real_signal(ckpt):
    """A zero difference must not come from all-zero logits."""
    model, report = port(ckpt("alexnet_v2"), "slim:alexnet_v2", verify=True)
    x = np.random.default_rng(0).normal(size=(2, 224, 224, 3)).astype(np.float32)
    assert float(np.max(np.abs(model(x)))) > 1e-3
    assert report.verification["outputs"]["logits"]["max_rel"] <= RTOL


def test_keras_applications_targets(ckpt):
    assert "VGG16" in RECIPES["slim:vgg_16"].target
    assert "VGG19" in RECIPES["slim:vgg_19"].target
    assert "InceptionV3" in RECIPES["slim:inception_v3"].target
    for d in (50, 101, 152):
        assert f"ResNet{d}V2" in RECIPES[f"slim:resnet_v2_{d}"].target
    # What the descriptions claim: a ported ResNet50V2 has keras.applications' layers and
    # weight layout, so its weights load into the stock model by name and give the same
    # outputs up to Slim's pool1 and batch-norm epsilon (see the recipe's target).
    import keras

    model, _ = port(ckpt("resnet_v2_50"), "slim:resnet_v2_50", input_shape=(64, 64, 3))
    stock = keras.applications.ResNet50V2(
        weights=None, input_shape=(64, 64, 3), classes=1000, classifier_activation=None
    )
    layout = {w.path: tuple(w.shape) for w in stock.weights}
    assert layout == {w.path: tuple(w.shape) for w in model.weights}
    for layer in stock.layers:
        if layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype(np.float32)
    ours, theirs = np.asarray(model(x)), np.asarray(stock(x))
    assert np.corrcoef(ours.ravel(), theirs.ravel())[0, 1] > 0.9  # same net, same weights


# ------------------------------------------------------------- background class
def test_background_class_dropped_by_default_and_kept_on_request(ckpt):
    path = ckpt("resnet_v2_50")  # 1001 classes
    m_drop, r_drop = port(path, "slim:resnet_v2_50", input_shape=(64, 64, 3), verify=True)
    m_keep, r_keep = port(
        path, "slim:resnet_v2_50", input_shape=(64, 64, 3), verify=True, keep_background=True
    )
    assert m_drop.output_shape == (None, 1000) and r_drop.background == "dropped"
    assert m_keep.output_shape == (None, 1001) and r_keep.background == "kept"
    x = np.random.default_rng(1).normal(size=(2, 64, 64, 3)).astype(np.float32)
    np.testing.assert_allclose(
        np.asarray(m_drop(x)), np.asarray(m_keep(x))[:, 1:], rtol=1e-6, atol=1e-6
    )
    logits = [e for e in r_drop.transformed if "logits" in e.source]
    assert logits and all("background" in str(e.to_dict()["transform"]) for e in logits)
    # The values themselves: class 0 of Slim's classifier is gone from the dropped model,
    # kept in the other, and the 1000 classes left are Slim's classes 1..1000.
    reader = tf.train.load_checkpoint(path)
    kernel = reader.get_tensor("resnet_v2_50/logits/weights").reshape(-1, 1001)
    bias = reader.get_tensor("resnet_v2_50/logits/biases")
    head_drop, head_keep = m_drop.layers[-1].get_weights(), m_keep.layers[-1].get_weights()
    np.testing.assert_array_equal(head_drop[0], kernel[:, 1:])
    np.testing.assert_array_equal(head_drop[1], bias[1:])
    np.testing.assert_array_equal(head_keep[0], kernel)
    np.testing.assert_array_equal(head_keep[1], bias)
    # Without a report, the dropped background class is read off the model's 1000 outputs.
    alone = verify_port(m_drop, path, "slim:resnet_v2_50")
    assert alone["ok"] and alone["outputs"]["logits"]["shape"] == [2, 1000]
    with pytest.raises(
        VerificationError,
        match=r"Cannot verify: the report says the background class was dropped, but the model "
        r"has 1001 outputs for a 1001-class checkpoint\. Fix: pass the report of this model",
    ):
        verify_port(m_keep, path, "slim:resnet_v2_50", r_drop)


def test_training_state_and_aux_logits_are_dropped_on_purpose(tmp_path):
    path = str(tmp_path / "model.ckpt")
    _slim.write_random_checkpoint(
        "resnet_v1_50",
        path,
        (32, 32, 3),
        5,
        extra={
            "global_step": np.array(7, np.int64),
            "resnet_v1_50/conv1/weights/Momentum": np.zeros((7, 7, 3, 64), np.float32),
        },
    )
    _, report = port(path, "slim:resnet_v1_50", input_shape=(32, 32, 3), dry_run=True)
    state = {e.source: e.reason for e in report.training_state}
    assert "training state" in state["global_step"]
    assert "training state" in state["resnet_v1_50/conv1/weights/Momentum"]
    assert not report.unexpected and report.ok


def test_inception_v3_drops_aux_logits(ckpt):
    _, report = port(
        ckpt("inception_v3"), "slim:inception_v3", input_shape=(75, 75, 3), dry_run=True
    )
    aux = [e for e in report.dropped if "/AuxLogits/" in e.source]
    assert aux and all("auxiliary" in e.reason for e in aux)


def test_v1_saver_format(ckpt):
    path = ckpt("resnet_v1_50", classes=7, size=32, version="V1")
    assert not os.path.exists(path + ".index")  # really the V1 single-file format
    _, report = port(path, "slim:resnet_v1_50", input_shape=(32, 32, 3), verify=True)
    assert report.verification["outputs"]["logits"]["max_rel"] <= RTOL


# ------------------------------------------------------------------- the file
FRESH = textwrap.dedent("""
    import sys, numpy as np, keras
    assert "tf_slim" not in sys.modules and "tfunite" not in sys.modules
    m = keras.saving.load_model(sys.argv[1])
    x = np.load(sys.argv[2])
    np.save(sys.argv[3], np.asarray(m.predict(x, verbose=0)))
    assert "tf_slim" not in sys.modules and "tfunite" not in sys.modules
    print(keras.backend.backend())
""")


# The fresh-process checks (a new interpreter importing TF, or Keras on JAX, which also
# compiles the model with XLA: ~30 s) run on one representative traced net, not all 16:
# the .keras file holds only built-in Keras layers, and inception_v2 uses the most
# kinds of them (Conv2D, DepthwiseConv2D, BatchNormalization, ReLU, both poolings,
# Concatenate, Reshape). Every recipe's numbers are checked in-process above.
@pytest.fixture(scope="module")
def saved_inception_v2(ckpt, tmp_path_factory):
    folder = tmp_path_factory.mktemp("keras_file")
    out = str(folder / "inception_v2.keras")
    model, report = port(
        ckpt("inception_v2"), "slim:inception_v2", input_shape=(64, 64, 3), output=out
    )
    x = np.random.default_rng(2).normal(size=(2, 64, 64, 3)).astype(np.float32)
    np.save(folder / "x.npy", x)
    # Both fresh processes start now and run side by side (each test waits for its own).
    procs = {
        backend: _start_fresh(folder, out, backend)
        for backend in ("tensorflow", "jax")
        if backend != "jax" or importlib.util.find_spec("jax") is not None
    }
    yield folder, out, np.asarray(model(x)), procs
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _start_fresh(folder, out, backend):
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen(
        [sys.executable, "-c", FRESH, out, str(folder / "x.npy"), str(folder / f"y_{backend}.npy")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run_fresh(saved, backend):
    folder, _, _, procs = saved
    stdout, stderr = procs[backend].communicate(timeout=300)
    assert procs[backend].returncode == 0, stderr[-2000:]
    assert stdout.strip().splitlines()[-1] == backend
    return np.load(folder / f"y_{backend}.npy")


def test_keras_file_loads_in_fresh_process_without_slim_or_tfunite(saved_inception_v2):
    folder, out, expected, _ = saved_inception_v2
    assert not [f for f in os.listdir(folder) if f.startswith(".")], "no temp files left"
    np.testing.assert_allclose(
        _run_fresh(saved_inception_v2, "tensorflow"), expected, rtol=1e-6, atol=1e-6
    )


def test_keras_file_same_outputs_under_jax(saved_inception_v2):
    pytest.importorskip("jax")
    _, _, expected, _ = saved_inception_v2
    # Another backend runs other convolution kernels: float32 summation order differs.
    np.testing.assert_allclose(
        _run_fresh(saved_inception_v2, "jax"),
        expected,
        rtol=1e-5,
        atol=1e-5 * float(np.max(np.abs(expected))),
    )


# ------------------------------------------------------------------ back again
def _all_tensors(path):
    r = tf.train.load_checkpoint(path)
    return {k: r.get_tensor(k) for k in r.get_variable_to_shape_map()}


def test_slim_keras_slim_round_trip_is_exact_and_slim_loads_it(ckpt, tmp_path):
    src = ckpt("alexnet_v2")
    model, _ = port(src, "slim:alexnet_v2")
    dst = str(tmp_path / "back.ckpt")
    export(model, "slim:alexnet_v2", dst)
    a, b = _all_tensors(src), _all_tensors(dst)
    assert sorted(a) == sorted(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    # Slim's own loader, into real TF1 variables.
    slim = _slim.ensure_slim()
    sg = _slim.build_graph("alexnet_v2", (224, 224, 3), 10, weights="variables")
    with sg.graph.as_default():
        init_fn = slim.assign_from_checkpoint_fn(dst, list(sg.weights.values()))
        with tf.compat.v1.Session(graph=sg.graph) as sess:
            init_fn(sess)
            got = sess.run({k: v for k, v in sg.weights.items()})
    for k in a:
        np.testing.assert_array_equal(got[k], a[k], err_msg=k)


def test_round_trip_through_keras_applications_model_with_background(ckpt, tmp_path):
    src = ckpt("resnet_v2_50")  # 1001 classes, ported to a 1000-class ResNet50V2
    model, _ = port(src, "slim:resnet_v2_50", input_shape=(64, 64, 3))
    dst = str(tmp_path / "back.ckpt")
    export(model, "slim:resnet_v2_50", dst, background=True)
    a, b = _all_tensors(src), _all_tensors(dst)
    assert sorted(a) == sorted(b)
    for k in a:
        if "/logits/" in k:  # class 0 (background) was dropped; export fills zeros
            np.testing.assert_array_equal(a[k][..., 1:], b[k][..., 1:], err_msg=k)
            assert not np.any(b[k][..., 0])
        else:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def _assert_same_tensors(src, dst, skip=None):
    """`dst` holds exactly `src`'s entries (but those matching the regex `skip`), equal."""
    ra, rb = tf.train.load_checkpoint(src), tf.train.load_checkpoint(dst)
    names = sorted(ra.get_variable_to_shape_map())
    kept = [k for k in names if not (skip and re.search(skip, k))]
    assert kept and sorted(rb.get_variable_to_shape_map()) == kept
    for k in kept:  # one tensor at a time: VGG's fc6 alone is 400 MB
        np.testing.assert_array_equal(ra.get_tensor(k), rb.get_tensor(k), err_msg=k)
    return [k for k in names if k not in kept]


@pytest.mark.parametrize("net", ["vgg_16", "inception_v3"])
def test_round_trip_keeping_the_background_class_is_exact(net, ckpt, tmp_path):
    """1001 classes kept: vgg_16 inverts its fc6 reshape and fc7/fc8 squeezes,
    inception_v3 its ordinal layer names; Inception's AuxLogits are neither ported nor
    exported (a Keras InceptionV3 has no auxiliary classifier)."""
    src = ckpt(net)
    model, report = port(src, f"slim:{net}", input_shape=_input(net), keep_background=True)
    assert report.background == "kept" and model.output_shape == (None, 1001)
    dst = str(tmp_path / "back.ckpt")
    export(model, f"slim:{net}", dst)
    left_out = _assert_same_tensors(src, dst, skip="/AuxLogits/")
    assert bool(left_out) == (net == "inception_v3"), left_out


# ----------------------------------------------------------------- bad inputs
def test_checkpoint_of_another_net_says_which_net(ckpt):
    with pytest.raises(
        LoadError,
        match=r"is not a slim:resnet_v1_50 checkpoint: it looks like "
        r"slim:inception_v2 .*Fix: use recipe='slim:inception_v2'",
    ):
        port(ckpt("inception_v2"), "slim:resnet_v1_50")


def test_resnet_depths_are_told_apart(ckpt):
    with pytest.raises(LoadError, match=r"looks like slim:resnet_v1_101"):
        port(ckpt("resnet_v1_101"), "slim:resnet_v1_50", input_shape=(64, 64, 3))


def test_missing_tensor(ckpt, tmp_path):
    values = _all_tensors(ckpt("resnet_v1_50"))
    del values["resnet_v1_50/block2/unit_1/bottleneck_v1/conv2/BatchNorm/moving_variance"]
    path = str(tmp_path / "m.ckpt")
    _slim.write_raw(values, path)
    with pytest.raises(
        LoadError,
        match=r"1 missing .*\n.*block2/unit_1/bottleneck_v1/conv2/"
        r"BatchNorm/moving_variance \(128,\)",
    ) as info:
        port(path, "slim:resnet_v1_50", input_shape=(64, 64, 3))
    assert info.value.report.counts()["missing"] == 1
    # strict=False only tolerates unexpected entries: not offered as the fix here.
    assert "no-strict" not in str(info.value) and "strict=False" not in str(info.value)


def test_wrong_shape(ckpt, tmp_path):
    values = _all_tensors(ckpt("resnet_v1_50"))
    values["resnet_v1_50/block1/unit_1/bottleneck_v1/conv2/weights"] = np.zeros(
        (5, 5, 64, 64), np.float32
    )
    path = str(tmp_path / "s.ckpt")
    _slim.write_raw(values, path)
    with pytest.raises(
        LoadError,
        match=r"wrong shape.*\n.*conv2/weights -> .*checkpoint shape "
        r"\(5, 5, 64, 64\), Keras weight expects \(3, 3, 64, 64\)",
    ):
        port(path, "slim:resnet_v1_50", input_shape=(64, 64, 3))


def test_unexpected_entries_refused_when_strict(ckpt, tmp_path):
    values = _all_tensors(ckpt("resnet_v1_50"))
    values["resnet_v1_50/extra_head/weights"] = np.zeros((3, 3), np.float32)
    path = str(tmp_path / "u.ckpt")
    _slim.write_raw(values, path)
    with pytest.raises(
        LoadError,
        match=r"(?s)1 unexpected checkpoint entr\(y/ies\), first: "
        r"'resnet_v1_50/extra_head/weights'\. Nothing was assigned\. Fix: add rules mapping "
        r"these names .* or pass strict=False \(CLI: --no-strict\) to load only what "
        r"matches\.\n.*1 unexpected .*\n.*resnet_v1_50/extra_head/weights",
    ):
        port(path, "slim:resnet_v1_50", input_shape=(64, 64, 3))
    _, report = port(path, "slim:resnet_v1_50", input_shape=(64, 64, 3), strict=False)
    assert [e.source for e in report.unexpected] == ["resnet_v1_50/extra_head/weights"]
    # A lenient port that succeeded is ok (PortReport.ok honours strict).
    assert report.ok and not report.strict and report.to_dict()["ok"] is True


def test_unknown_recipe_lists_known_ones(ckpt):
    with pytest.raises(
        RecipeError,
        match=r"Unknown recipe 'slim:vgg_17'\. Known recipes: "
        r"slim:alexnet_v2, .*slim:vgg_16, slim:vgg_19",
    ):
        port(ckpt("alexnet_v2"), "slim:vgg_17")


def test_duplicate_recipe_raises():
    with pytest.raises(RecipeError, match=r"'slim:vgg_16' is already registered"):
        register_recipe(RECIPES["slim:vgg_16"])


def test_unreadable_checkpoint(tmp_path):
    with pytest.raises(
        CheckpointError, match=r"nothing\.ckpt does not exist .*Fix: check the path"
    ):
        port(str(tmp_path / "nothing.ckpt"), "slim:vgg_16")


def _truncated_copy(prefix, folder):
    """A copy of the V2 checkpoint `prefix` whose data file is cut in half."""
    dst = str(folder / "cut.ckpt")
    shutil.copy(prefix + ".index", dst + ".index")
    with open(prefix + ".data-00000-of-00001", "rb") as f:
        data = f.read()
    with open(dst + ".data-00000-of-00001", "wb") as f:
        f.write(data[: len(data) // 2])
    return dst


def test_truncated_checkpoint_is_refused_before_anything_is_built(ckpt, tmp_path):
    cut = _truncated_copy(ckpt("resnet_v1_50"), tmp_path)
    out = tmp_path / "m.keras"
    with pytest.raises(
        CheckpointError,
        match=r"cut\.ckpt is truncated: its index describes \d+ bytes of tensor data but the "
        r"data file\(s\) hold \d+ bytes\. Nothing was loaded\. Fix: restore",
    ):
        port(cut, "slim:resnet_v1_50", input_shape=(64, 64, 3), output=str(out))
    assert not out.exists() and not [f for f in os.listdir(tmp_path) if f.startswith(".")]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"input_shape": (16, 16, 3)},
            r"Input shape \(16, 16, 3\) is too small for slim:resnet_v1_50: its Slim net needs "
            r"at least 32x32 \(default 224x224\)\. Fix: pass input_shape=\(32, 32, 3\) or "
            r"larger \(CLI: --input-size 32\)",
        ),
        (
            {"input_shape": (64, 64)},
            r"input_shape=\(64, 64\) is not an image shape: expected \(height, width, "
            r"channels\), three positive integers",
        ),
        (
            {"dry_run": True, "verify": True},
            r"port\(dry_run=True, verify=True\): .* a dry run loads nothing\. Fix: drop one",
        ),
    ],
)
def test_bad_arguments_are_refused_before_the_checkpoint_is_read(tmp_path, kwargs, message):
    with pytest.raises(PortArgumentError, match=message):  # the checkpoint does not exist
        port(str(tmp_path / "none.ckpt"), "slim:resnet_v1_50", **kwargs)


@pytest.mark.parametrize(
    "name", sorted(n for n, r in RECIPES.items() if n.startswith("slim:") and r.max_size)
)
def test_max_size_is_the_largest_input_the_slim_net_builds_at(name):
    recipe = RECIPES[name]
    _slim.build_graph(recipe.net, (recipe.max_size,) * 2 + (3,), 10, batch=1)
    with pytest.raises(ValueError, match="squeeze"):
        _slim.build_graph(recipe.net, (recipe.max_size + 1,) * 2 + (3,), 10, batch=1)


@pytest.mark.parametrize("net, size, most", [("vgg_16", 256, 255), ("alexnet_v2", 227, 226)])
def test_input_too_large_for_a_fully_connected_classifier(tmp_path, net, size, most):
    # Beyond max_size Slim's own net fails (fc8 cannot squeeze a 2x2 map) and Keras'
    # VGG16 gets a Dense kernel of another shape: the arguments are refused first.
    recipe = RECIPES[f"slim:{net}"]
    least = recipe.min_size
    with pytest.raises(
        PortArgumentError,
        match=rf"Input shape \({size}, {size}, 3\) is too large for slim:{net}: its classifier is "
        rf"fully connected over a feature map of one size, so it takes {least}x{least} to "
        rf"{most}x{most} \(default 224x224\)\. Fix: pass input_shape=\(224, 224, 3\)",
    ):
        port(str(tmp_path / "none.ckpt"), recipe, input_shape=(size, size, 3))


@pytest.mark.parametrize(
    "make_path, message",
    [
        (lambda d: d / "no_such_dir" / "m.keras", r"the directory .*no_such_dir' does not exist"),
        (lambda d: d / "m.h5", r"must end in '\.keras'"),
        (lambda d: d, r"is a directory"),
    ],
)
def test_output_path_that_cannot_be_written(ckpt, tmp_path, make_path, message):
    before = set(os.listdir(tmp_path))
    with pytest.raises(OutputError, match=message):
        port(ckpt("alexnet_v2"), "slim:alexnet_v2", output=str(make_path(tmp_path)))
    assert set(os.listdir(tmp_path)) == before


def test_failed_save_leaves_no_file(ckpt, tmp_path, monkeypatch):
    import keras

    def broken_save(self, path, *a, **k):
        with open(path, "wb") as f:
            f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(keras.Model, "save", broken_save)
    out = tmp_path / "m.keras"
    with pytest.raises(OutputError, match=r"Writing .*m\.keras' failed: disk full\. Nothing"):
        port(ckpt("resnet_v1_50"), "slim:resnet_v1_50", input_shape=(64, 64, 3), output=str(out))
    assert os.listdir(tmp_path) == []


def test_refused_port_writes_nothing(ckpt, tmp_path):
    out = tmp_path / "m.keras"
    with pytest.raises(LoadError):
        port(ckpt("inception_v2"), "slim:resnet_v1_50", output=str(out))
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------- custom models
def _custom_checkpoint(path):
    rng = np.random.default_rng(3)
    values = {
        "net/conv1/weights": rng.normal(size=(3, 3, 1, 4)).astype(np.float32),
        "net/conv1/biases": rng.normal(size=(4,)).astype(np.float32),
        "net/logits/weights": rng.normal(size=(6, 6, 4, 3)).astype(np.float32),
        "net/logits/biases": rng.normal(size=(3,)).astype(np.float32),
        "global_step": np.array(3, np.int64),
    }
    _slim.write_raw(values, path)
    return values


def _custom_model():
    import keras

    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, name="features.conv1"),
            keras.layers.Flatten(),
            keras.layers.Dense(3, name="head"),
        ]
    )


def test_custom_model_with_regex_rules_and_transforms(tmp_path, capsys):
    path = str(tmp_path / "c.ckpt")
    values = _custom_checkpoint(path)
    model = _custom_model()
    rules = [
        (r"net/conv1/weights", "features/conv1/kernel"),
        (r"net/conv1/biases", "features/conv1/bias"),
        (r"net/logits/weights", "head/kernel"),
        (r"net/logits/biases", "head/bias"),
    ]
    transforms = {r"net/logits/weights": tu.Reshape((144, 3), source_shape=(6, 6, 4, 3))}
    before = [np.array(w) for w in model.weights]
    report = port_custom(path, model, rules, transforms, drop=["global_step"], dry_run=True)
    out = capsys.readouterr().out
    assert "Plan" in out and "net/logits/weights" in out and "head/kernel" in out
    for w, b in zip(model.weights, before):  # a dry run loads nothing
        np.testing.assert_array_equal(np.array(w), b)
    report = port_custom(
        path, model, rules, transforms, drop=["global_step"], output=str(tmp_path / "c.keras")
    )
    assert report.counts()["transformed"] == 1 and report.ok
    np.testing.assert_array_equal(
        np.array(model.get_layer("head").kernel), values["net/logits/weights"].reshape(144, 3)
    )
    assert os.path.exists(tmp_path / "c.keras")


def test_custom_model_with_assignment_map(tmp_path):
    path = str(tmp_path / "c.ckpt")
    _custom_checkpoint(path)
    import keras

    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, name="conv1")])
    with pytest.raises(
        LoadError, match=r"(?s)missing.*conv1/kernel.*unexpected.*net/logits/biases"
    ):
        port_custom(path, model, {"net/conv1/": "conv1/"}, print_plan=False)
    # assignment_map alone renames scopes, not leaf names: Slim 'weights' -> Keras 'kernel'
    # needs pairs (alone, or after the map in a mixed list: see the scope-map test below)
    report = port_custom(
        path,
        model,
        [(r"net/conv1/weights", "conv1/kernel"), (r"net/conv1/biases", "conv1/bias")],
        drop=[r"net/logits/.*", "global_step"],
        print_plan=False,
    )
    assert report.ok and report.counts()["matched"] == 2


_LEAF_RULES = [
    (r"net/conv1/weights", "features/conv1/kernel"),
    (r"net/conv1/biases", "features/conv1/bias"),
    (r"net/logits/weights", "head/kernel"),
    (r"net/logits/biases", "head/bias"),
]
_LOGITS_RESHAPE = {r"net/logits/weights": tu.Reshape((144, 3), source_shape=(6, 6, 4, 3))}


def test_custom_port_of_a_truncated_checkpoint_leaves_the_model_unchanged(tmp_path):
    path = str(tmp_path / "c.ckpt")
    _custom_checkpoint(path)
    cut = _truncated_copy(path, tmp_path)
    model = _custom_model()
    before = [np.array(w) for w in model.weights]
    with pytest.raises(CheckpointError, match=r"cut\.ckpt is truncated: .*Nothing was loaded"):
        port_custom(cut, model, _LEAF_RULES, _LOGITS_RESHAPE, drop=["global_step"])
    for w, b in zip(model.weights, before):
        np.testing.assert_array_equal(np.array(w), b)


def test_corruption_inside_the_data_is_caught_before_any_weight_is_assigned(tmp_path):
    """A flipped byte keeps the file size: the CRC32C check of core's pipeline finds it
    before the first assignment (a port used to find it only when reading the tensor,
    after three weights were assigned)."""
    path = str(tmp_path / "c.ckpt")
    _custom_checkpoint(path)
    with open(path + ".data-00000-of-00001", "r+b") as f:  # the last tensor in the file
        f.seek(-8, os.SEEK_END)
        byte = f.read(1)
        f.seek(-8, os.SEEK_END)
        f.write(bytes([byte[0] ^ 0xFF]))
    model = _custom_model()
    before = [np.array(w) for w in model.weights]
    with pytest.raises(
        CheckpointError,
        match=r"tensor 'net/logits/weights' is corrupted: .* should have CRC32C [0-9a-f]{8} "
        r"\(from the index\) but have [0-9a-f]{8}\. Nothing was loaded\. Fix: restore the "
        r"checkpoint from a good copy",
    ):
        port_custom(path, model, _LEAF_RULES, _LOGITS_RESHAPE, drop=["global_step"])
    for w, b in zip(model.weights, before):
        np.testing.assert_array_equal(np.array(w), b)


def test_a_tensor_changed_after_the_check_assigns_nothing(tmp_path, monkeypatch):
    """If the data changes after the checksums were checked (simulated: the check sees
    the file before the flip), the read fails before any weight is assigned."""
    from tfunite import readers

    path = str(tmp_path / "c.ckpt")
    _custom_checkpoint(path)
    original = readers.TFReader.check

    def check_then_flip(self, names, **kw):
        original(self, names, **kw)
        self._checked.clear()  # serve tensors through TensorFlow, which checks them
        with open(path + ".data-00000-of-00001", "r+b") as f:  # the last tensor
            f.seek(-8, os.SEEK_END)
            byte = f.read(1)
            f.seek(-8, os.SEEK_END)
            f.write(bytes([byte[0] ^ 0xFF]))

    monkeypatch.setattr(readers.TFReader, "check", check_then_flip)
    model = _custom_model()
    before = [np.array(w) for w in model.weights]
    with pytest.raises(
        CheckpointError,
        match=r"tensor 'net/logits/weights' cannot be read .*Fix: restore the checkpoint from a "
        r"good copy\. Nothing was assigned: the weights of model '\w+' are as they were\.",
    ):
        port_custom(path, model, _LEAF_RULES, _LOGITS_RESHAPE, drop=["global_step"])
    for w, b in zip(model.weights, before):
        np.testing.assert_array_equal(np.array(w), b)


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_keras_file_gets_the_mode_of_a_plain_open(tmp_path, umask, mode):
    path = str(tmp_path / "c.ckpt")
    _custom_checkpoint(path)
    out = tmp_path / "c.keras"
    old = os.umask(umask)
    try:
        port_custom(
            path,
            _custom_model(),
            _LEAF_RULES,
            _LOGITS_RESHAPE,
            drop=["global_step"],
            print_plan=False,
            output=str(out),
        )
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == mode  # not mkstemp's 0600


# A custom Slim network (not in tf_slim.nets) and its Keras twin.
def _tiny_slim_net(inputs, num_classes=3, is_training=False, scope="net"):
    slim = _slim.ensure_slim()
    with tf.compat.v1.variable_scope(scope, "net", [inputs]):
        conv = slim.conv2d(inputs, 4, [3, 3], padding="VALID", scope="conv1")
        flat = slim.flatten(conv)
        logits = slim.fully_connected(flat, num_classes, activation_fn=None, scope="logits")
    return logits, {f"{scope}/conv1": conv}


def _tiny_keras(spec):
    import keras

    return keras.Sequential(
        [
            keras.Input(spec.input_shape),
            keras.layers.Conv2D(4, 3, activation="relu", name="features.conv1"),
            keras.layers.Flatten(),
            keras.layers.Dense(spec.num_classes, name="features.logits"),
        ],
        name="tiny",
    )


TINY = Recipe(
    name="custom:tiny",
    net=_tiny_slim_net,
    scope="net",
    target="a Keras Sequential twin of _tiny_slim_net",
    build=_tiny_keras,
    rules=(
        (r"{scope}/(.+)/weights", r"features/\1/kernel"),
        (r"{scope}/(.+)/biases", r"features/\1/bias"),
    ),
    logits=(r"{scope}/logits/(weights|biases)",),
    default_size=8,
    min_size=8,
    endpoints=(("{scope}/conv1", "features.conv1"),),
)


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("tiny") / "tiny.ckpt")
    _slim.write_random_checkpoint(_tiny_slim_net, path, (8, 8, 3), 3, scope="net")
    return path


def test_custom_recipe_with_its_own_slim_net_verifies_and_exports(tiny_ckpt, tmp_path):
    model, report = port(tiny_ckpt, TINY, verify=True)
    v = report.verification
    assert v["ok"] and set(v["outputs"]) == {"logits", "net/conv1"}
    assert all(d["max_rel"] <= RTOL for d in v["outputs"].values())
    dst = str(tmp_path / "back.ckpt")
    export(model, TINY, dst)
    assert _assert_same_tensors(tiny_ckpt, dst) == []


def test_custom_recipe_without_endpoints_verifies_a_one_output_model(tiny_ckpt):
    # A one-output Keras model returns a bare tensor, not a list: verification used to
    # iterate over its rows ("cannot reshape array of size 3 into shape (2,newaxis)").
    recipe = dataclasses.replace(TINY, name="custom:tiny-no-endpoints", endpoints=())
    model, report = port(tiny_ckpt, recipe, verify=True)
    v = report.verification
    assert v["ok"] and set(v["outputs"]) == {"logits"}
    assert v["outputs"]["logits"]["shape"] == [2, 3]
    assert v["outputs"]["logits"]["max_rel"] <= RTOL


def _keras_pending():
    from keras.src.backend.common import global_state

    return list(global_state.get_global_attribute("uninitialized_variables", []) or [])


def test_deferred_build_creates_each_weight_from_its_tensor_and_leaves_nothing_pending(tiny_ckpt):
    # Weights are created straight from the checkpoint (no zero fill, no assignment); a
    # variable no entry feeds (Dropout's seed state) gets its own initializer.
    def with_dropout(spec):
        import keras

        base = _tiny_keras(spec)
        return keras.Sequential([*base.layers[:2], keras.layers.Dropout(0.5), base.layers[2]])

    before = _keras_pending()
    model, _ = port(tiny_ckpt, dataclasses.replace(TINY, build=with_dropout))
    assert _keras_pending() == before
    assert all(v._value is not None for v in model.variables)
    reader = tf.train.load_checkpoint(tiny_ckpt)
    kernel = model.get_layer("features.conv1").kernel
    np.testing.assert_array_equal(kernel.numpy(), reader.get_tensor("net/conv1/weights"))
    seed = next(v for v in model.variables if "seed_generator" in v.path)
    assert seed.numpy().shape == (2,)
    x = np.ones((2, 8, 8, 3), np.float32)
    np.testing.assert_array_equal(model(x, training=False), model(x, training=False))


def test_refused_port_leaves_no_deferred_variables_behind(ckpt, tmp_path):
    values = _all_tensors(ckpt("resnet_v1_50"))
    values["resnet_v1_50/logits/weights"] = np.zeros((1, 1, 2048, 7, 1), np.float32)
    path = str(tmp_path / "bad.ckpt")
    _slim.write_raw(values, path)
    before = _keras_pending()
    with pytest.raises(LoadError):
        port(path, "slim:resnet_v1_50", input_shape=(64, 64, 3))
    port(ckpt("resnet_v1_50"), "slim:resnet_v1_50", input_shape=(64, 64, 3), dry_run=True)
    assert _keras_pending() == before


@pytest.mark.parametrize(
    "net, why",
    [
        (None, r"it has no Slim network \(Recipe\.net is None\), and {what} runs Slim's own"),
        ("tiny_net", r"its net 'tiny_net' is not a network of tf_slim\.nets \(known: alexnet_v2,"),
    ],
)
def test_recipe_without_a_usable_slim_net_cannot_verify_or_export(tiny_ckpt, tmp_path, net, why):
    recipe = dataclasses.replace(TINY, net=net)
    model, _ = port(tiny_ckpt, recipe)  # porting itself needs no Slim net
    fix = r".*Fix: set Recipe\(net=\.\.\.\) to .*(your Slim network function|tf_slim\.nets)"
    for what, call in (
        ("verify", lambda: verify_port(model, tiny_ckpt, recipe)),
        ("export", lambda: export(model, recipe, str(tmp_path / "x.ckpt"))),
    ):
        with pytest.raises(
            RecipeError,
            match=rf"Cannot {what} with recipe 'custom:tiny': " + why.format(what=what) + fix,
        ):
            call()
    assert os.listdir(tmp_path) == []


def test_export_refuses_a_model_the_recipe_did_not_build(tmp_path):
    """export plans Slim's variables onto the Keras weights with core's plan first:
    a weight of another shape, or a Slim variable with no weight, writes nothing."""
    import keras

    def model(filters, head):
        return keras.Sequential(
            [
                keras.Input((8, 8, 3)),
                keras.layers.Conv2D(filters, 3, name="features.conv1"),
                keras.layers.Flatten(),
                keras.layers.Dense(3, name=head),
            ],
            name="tiny",
        )

    with pytest.raises(
        LoadError,
        match=r"Cannot export 'net/conv1/weights': Keras weight 'features/conv1/kernel' is "
        r"\(3, 3, 3, 5\) float32, which does not fit Slim's variable \(3, 3, 3, 4\) float32 "
        r"\(.*\)\. Fix: export with the recipe",
    ):
        export(model(5, "features.logits"), TINY, str(tmp_path / "a.ckpt"))
    with pytest.raises(
        LoadError,
        match=r"Cannot export custom:tiny: Slim variable 'net/logits/(weights|biases)' maps to "
        r"'features/logits/(kernel|bias)', which is not a weight of model 'tiny'",
    ):
        export(model(4, "features.head"), TINY, str(tmp_path / "b.ckpt"))
    assert os.listdir(tmp_path) == []


def test_verify_refuses_a_model_of_another_class_count(tiny_ckpt, tmp_path):
    path = str(tmp_path / "five.ckpt")
    _slim.write_random_checkpoint(_tiny_slim_net, path, (8, 8, 3), 5, scope="net")
    model, _ = port(tiny_ckpt, TINY)
    with pytest.raises(
        VerificationError,
        match=r"Cannot verify model 'tiny' against .*five\.ckpt: the model has 3 outputs, the "
        r"checkpoint's classifier 5 classes\..*Fix: verify the model against the checkpoint",
    ):
        verify_port(model, path, TINY)


def test_verify_names_a_variable_the_checkpoint_lacks(tiny_ckpt, tmp_path):
    values = _all_tensors(tiny_ckpt)
    del values["net/conv1/biases"]
    path = str(tmp_path / "partial.ckpt")
    _slim.write_raw(values, path)
    model, _ = port(tiny_ckpt, TINY)
    with pytest.raises(
        CheckpointError,
        match=r"partial\.ckpt has no entry for 1 variable\(s\) of the Slim net, first "
        r"'net/conv1/biases'.*Fix: pass the checkpoint of this net",
    ):
        verify_port(model, path, TINY)


def test_custom_port_with_a_scope_map_and_leaf_renames_matches_slim(tiny_ckpt):
    model = _tiny_keras(BuildSpec(3, (8, 8, 3), "net", "tiny"))
    # The scope map renames net/ -> features/, then the pairs rename Slim's leaves.
    rules = [{"net/": "features/"}, (r"(.*)/weights", r"\1/kernel"), (r"(.*)/biases", r"\1/bias")]
    report = port_custom(tiny_ckpt, model, rules, print_plan=False)
    assert report.ok and report.counts()["matched"] == 4
    entry = next(e for e in report.entries if e.source == "net/conv1/weights")
    assert entry.target == "features/conv1/kernel"
    assert entry.rule == r"'net/(.*)' -> 'features/\\1' then '(.*)/weights' -> '\\1/kernel'"
    sg = _slim.build_graph(_tiny_slim_net, (8, 8, 3), 3, scope="net")
    x = np.random.default_rng(4).normal(size=(2, 8, 8, 3)).astype(np.float32)
    slim_logits = _slim.run_graph(sg, tiny_ckpt, x, {"logits": sg.logits})["logits"]
    assert float(np.max(np.abs(slim_logits))) > 1e-3
    np.testing.assert_allclose(np.asarray(model(x)), slim_logits, rtol=1e-6, atol=1e-6)


def test_a_rule_list_item_that_is_neither_a_map_nor_a_pair(tiny_ckpt):
    with pytest.raises(
        RuleError,
        match=r"Invalid rule 'weights' in a rule list: expected an assignment_map dict .* or a "
        r"\(regex, replacement\) pair",
    ):
        port_custom(tiny_ckpt, _custom_model(), [{"net/": "features/"}, "weights"])


def test_export_that_fails_mid_write_leaves_no_temporary_files(tmp_path):
    from tfunite.porting.output import write_checkpoint

    # A folder in the way of the index of the temporary bundle (named after this process):
    # TF writes the data file, then fails on the index.
    blocker = tmp_path / f".back.ckpt.tmp-{os.getpid()}.index"
    blocker.mkdir()
    with pytest.raises(
        OutputError,
        match=r"Writing checkpoint '.*back\.ckpt' failed: .*Is a directory\. Nothing was "
        r"written \(the temporary files were removed\)\. Fix: check free disk space",
    ):
        write_checkpoint({"w": np.ones((2, 2), np.float32)}, str(tmp_path / "back.ckpt"))
    assert os.listdir(tmp_path) == [blocker.name]


def test_export_that_fails_between_data_and_index_says_the_checkpoint_is_inconsistent(
    tmp_path,
):
    from tfunite.porting.output import write_checkpoint

    (tmp_path / "back.ckpt.index").mkdir()  # the data file is renamed first, the index fails
    with pytest.raises(
        OutputError,
        match=r"Writing checkpoint '.*back\.ckpt' failed: .*Only \['back\.ckpt\.data-00000-of-"
        r"00001'\] were renamed into place: the checkpoint at '.*back\.ckpt' is inconsistent; "
        r"delete it\. Fix:",
    ):
        write_checkpoint({"w": np.ones((2, 2), np.float32)}, str(tmp_path / "back.ckpt"))
    assert sorted(os.listdir(tmp_path)) == ["back.ckpt.data-00000-of-00001", "back.ckpt.index"]


def test_export_into_a_missing_folder(tiny_ckpt, tmp_path):
    model, _ = port(tiny_ckpt, TINY)
    with pytest.raises(
        OutputError,
        match=r"Cannot write checkpoint '.*x\.ckpt': the directory '.*nodir' does not exist or "
        r"is not writable\. Fix: create it",
    ):
        export(model, TINY, str(tmp_path / "nodir" / "x.ckpt"))


def test_report_json_serializable(ckpt):
    _, report = port(
        ckpt("inception_v3"), "slim:inception_v3", input_shape=(75, 75, 3), dry_run=True
    )
    data = json.loads(json.dumps(report.to_dict()))
    assert data["counts"]["dropped"] > 0 and data["background"] == "dropped"


# ------------------------------------------------------------- fast building
def test_traced_layout_is_cached_on_disk_and_matches_a_fresh_trace(tmp_path, monkeypatch):
    from tfunite.porting import _layouts, trace

    monkeypatch.setenv("TFUNITE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_layouts, "_MEMORY", {})
    args = ("inception_v2", (64, 64, 3), 10, "InceptionV2", "inception_v2", {})
    layout = _layouts.get_layout(*args)
    (path,) = (tmp_path / "porting-layouts").iterdir()
    sg = _slim._build_graph("inception_v2", (64, 64, 3), 10, "InceptionV2", None, {}, "variables")
    fresh = trace.trace_layout(sg.graph, sg.inputs, sg.logits, "InceptionV2", "inception_v2")
    assert layout == fresh
    assert json.loads(path.read_text())["layout"] == fresh

    # A new process (empty memory) reads the file and does not trace.
    def no_trace(*a, **k):
        raise AssertionError("traced although the layout is cached")

    monkeypatch.setattr(_layouts, "_MEMORY", {})
    monkeypatch.setattr(trace, "trace_layout", no_trace)
    assert _layouts.get_layout(*args) == fresh
    # A damaged cache file is ignored (traced again and rewritten).
    monkeypatch.undo()
    monkeypatch.setenv("TFUNITE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_layouts, "_MEMORY", {})
    path.write_text('{"key": ')
    assert _layouts.get_layout(*args) == fresh
    assert json.loads(path.read_text())["layout"] == fresh
    # TFUNITE_CACHE_DIR=off: no file.
    off = tmp_path / "off"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TFUNITE_CACHE_DIR", "off")
    monkeypatch.setattr(_layouts, "_MEMORY", {})
    assert _layouts.cache_dir() is None and _layouts.get_layout(*args) == fresh
    assert not off.exists()


def test_layout_cache_key_names_the_library_versions():
    import keras
    from tfunite.porting import _layouts

    key = _layouts.layout_key("resnet_v1_50", (64, 64, 3), 10, "resnet_v1_50", "resnet_v1_50")
    assert key["tensorflow"] == tf.__version__ and key["keras"] == keras.__version__
    assert key["tf_slim"] not in ("", "missing")


def test_fast_build_keeps_keras_default_initializers(ckpt):
    """Weights are created zero-filled, but the model's config (and so a saved .keras
    file) is that of a plain construction, with Keras' default initializers."""
    import keras
    from tfunite.porting import _layouts, trace

    layout = _layouts.get_layout("resnet_v1_50", (64, 64, 3), 10, "resnet_v1_50", "resnet_v1_50")
    fast, plain = trace.build_layout(layout), trace.build_layout(layout, fast_init=False)
    assert json.dumps(fast.get_config(), sort_keys=True, default=str) == json.dumps(
        plain.get_config(), sort_keys=True, default=str
    )
    conv = fast.get_layer("conv1")
    assert isinstance(conv.kernel_initializer, keras.initializers.GlorotUniform)
    assert not np.any(np.asarray(conv.kernel)), "created zero-filled"
    model, _ = port(ckpt("resnet_v1_50"), "slim:resnet_v1_50", input_shape=(64, 64, 3))
    for w in model.weights:  # every weight was overwritten from the checkpoint
        assert np.any(np.asarray(w)), w.path


def test_a_plan_leaving_a_weight_unassigned_loads_nothing(tmp_path):
    import tfunite.porting as engine
    from tfunite.rules import Rules

    path = str(tmp_path / "c.ckpt")
    _custom_checkpoint(path)
    model = _custom_model()
    shapes, dtypes = engine.checkpoint_shapes(path)
    rules = Rules(
        [
            (r"net/conv1/weights", "features/conv1/kernel"),
            (r"net/conv1/biases", "features/conv1/bias"),
            (r"net/logits/weights", "head/kernel"),
            (r"net/logits/biases", "head/bias"),
        ]
    )
    transforms = [(r"net/logits/weights", tu.Reshape((144, 3), source_shape=(6, 6, 4, 3)))]
    plan = engine.make_plan(shapes, dtypes, model, rules, transforms, [("global_step", "x")])
    assert plan.report.ok and len(plan.assignments) == 4
    before = [np.array(w) for w in model.weights]
    plan.steps = [s for s in plan.steps if s.source != "net/conv1/biases"]
    with pytest.raises(LoadError, match=r"assigns no checkpoint entry to 1 weight.*conv1/bias"):
        engine.execute(plan, path)
    for w, b in zip(model.weights, before):
        np.testing.assert_array_equal(np.array(w), b)
