"""Every bridge through the same conformance harness (tests/harness.py)."""

from __future__ import annotations

import pytest
import tfunite as tu

from tests import models
from tests.harness import (
    Case,
    build,
    check_forward,
    check_fresh_process,
    check_names,
    check_roundtrip,
)


def _keras_count(m, _):
    return len(m.variables)


def _snt_count(m, _):
    import tensorflow as tf

    return len(tf.Module.variables.fget(m))


def _slim_native(fn, x, owner):
    return models.native_tf1(lambda ph: fn(ph, False), x, owner)[0]


def _tflearn_native(fn, x, owner):
    return models.native_tf1(fn, x, owner)[0]


def _graph_count(native):
    def count(fn, owner):
        if native is _slim_native:
            return models.native_tf1(lambda ph: fn(ph, False), models.example(), owner)[1]
        # TFLearn's training flag lives outside any model in native TFLearn; the owner
        # owns (and checkpoints) its own `is_training`, hence one more variable.
        return models.native_tf1(fn, models.example(), owner)[1] + 1

    return count


CASES = {
    c.name: c
    for c in [
        Case(
            "keras_sequential",
            "keras_sequential",
            "keras",
            [
                "dense/kernel",
                "dense/bias",
                "batch_normalization/gamma",
                "batch_normalization/beta",
                "batch_normalization/moving_mean",
                "batch_normalization/moving_variance",
                "dropout/seed_generator/seed_generator_state",
                "dense_1/kernel",
                "dense_1/bias",
            ],
            lambda m, x, _: m(x, training=False),
            _keras_count,
        ),
        Case(
            "keras_functional",
            "keras_functional",
            "keras",
            [
                "dense/kernel",
                "dense/bias",
                "hidden/kernel",
                "hidden/bias",
                "dense_1/kernel",
                "dense_1/bias",
            ],
            lambda m, x, _: m(x, training=False),
            _keras_count,
        ),
        Case(
            "keras_subclassed",
            "keras_subclassed",
            "keras",
            [
                "dense/kernel",
                "dense/bias",
                "sequential/dense/kernel",
                "sequential/dense/bias",
                "sequential/layer_normalization/gamma",
                "sequential/layer_normalization/beta",
            ],
            lambda m, x, _: m(x, training=False),
            _keras_count,
        ),
        Case(
            "tf_keras_sequential",
            "tf_keras_sequential",
            "tf_keras",
            [
                "dense/kernel",
                "dense/bias",
                "batch_normalization/gamma",
                "batch_normalization/beta",
                "batch_normalization/moving_mean",
                "batch_normalization/moving_variance",
                "dense_1/kernel",
                "dense_1/bias",
            ],
            lambda m, x, _: m(x, training=False),
            _keras_count,
        ),
        Case(
            "sonnet_mlp",
            "sonnet_mlp",
            "sonnet",
            ["mlp/linear_0/b", "mlp/linear_0/w", "mlp/linear_1/b", "mlp/linear_1/w"],
            lambda m, x, _: m(x),
            _snt_count,
        ),
        Case(
            "sonnet_bn",
            "sonnet_bn",
            "sonnet",
            # Two unnamed snt.Linear siblings share the name "linear": the second is linear_1.
            [
                "net/batch_norm/offset",
                "net/batch_norm/scale",
                "net/batch_norm/moving_mean/counter",
                "net/batch_norm/moving_mean/hidden",
                "net/batch_norm/moving_mean/average",
                "net/batch_norm/moving_variance/counter",
                "net/batch_norm/moving_variance/hidden",
                "net/batch_norm/moving_variance/average",
                "net/linear/b",
                "net/linear/w",
                "net/linear_1/b",
                "net/linear_1/w",
            ],
            lambda m, x, _: m(x, is_training=False),
            _snt_count,
        ),
        Case("tf_module", "tf_module", "tf_module", ["b", "w"], lambda m, x, _: m(x), _snt_count),
        # Function-based bridges: the native run is the same function in a TF1 graph+Session.
        Case(
            "slim_net",
            "slim_net",
            "tf_slim",
            [
                "net/fc1/weights",
                "net/fc1/biases",
                "net/bn/beta",
                "net/bn/moving_mean",
                "net/bn/moving_variance",
                "net/logits/weights",
                "net/logits/biases",
            ],
            _slim_native,
            _graph_count(_slim_native),
            wrap=lambda fn, name: tu.slim(fn, name=name),
        ),
        Case(
            "tflearn_net",
            "tflearn_net",
            "tflearn",
            ["is_training", "fc1/W", "fc1/b", "logits/W", "logits/b"],
            _tflearn_native,
            _graph_count(_tflearn_native),
            wrap=lambda fn, name: tu.tflearn(fn, name=name),
        ),
    ]
}


@pytest.fixture(scope="module", params=sorted(CASES))
def built(request):
    case = CASES[request.param]
    obj, owner, x = build(case)
    return case, obj, owner, x


def test_names(built):
    case, obj, owner, _ = built
    check_names(case, obj, owner)


def test_forward_matches_native(built):
    case, obj, owner, x = built
    check_forward(case, obj, owner, x)


def test_roundtrip_and_fresh_process(built, tmp_path):
    case, obj, owner, x = built
    path = str(tmp_path / "ckpt")
    check_roundtrip(owner, x, path)
    check_fresh_process(case, owner, x, path)
