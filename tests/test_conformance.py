"""Every bridge through the same conformance harness (tests/harness.py)."""

from __future__ import annotations

import pytest

from tests.harness import (
    Case,
    build,
    check_forward,
    check_fresh_process,
    check_names,
    check_roundtrip,
)


def _keras_count(m):
    return len(m.variables)


def _snt_count(m):
    import tensorflow as tf

    return len(tf.Module.variables.fget(m))


CASES = {c.name: c for c in [
    Case("keras_sequential", "keras_sequential", "keras",
         ["dense/kernel", "dense/bias", "batch_normalization/gamma", "batch_normalization/beta",
          "batch_normalization/moving_mean", "batch_normalization/moving_variance",
          "dropout/seed_generator/seed_generator_state", "dense_1/kernel", "dense_1/bias"],
         lambda m, x: m(x, training=False), _keras_count),
    Case("keras_functional", "keras_functional", "keras",
         ["dense/kernel", "dense/bias", "hidden/kernel", "hidden/bias", "dense_1/kernel", "dense_1/bias"],
         lambda m, x: m(x, training=False), _keras_count),
    Case("keras_subclassed", "keras_subclassed", "keras",
         ["dense/kernel", "dense/bias", "sequential/dense/kernel", "sequential/dense/bias",
          "sequential/layer_normalization/gamma", "sequential/layer_normalization/beta"],
         lambda m, x: m(x, training=False), _keras_count),
    Case("tf_keras_sequential", "tf_keras_sequential", "tf_keras",
         ["dense/kernel", "dense/bias", "batch_normalization/gamma", "batch_normalization/beta",
          "batch_normalization/moving_mean", "batch_normalization/moving_variance",
          "dense_1/kernel", "dense_1/bias"],
         lambda m, x: m(x, training=False), _keras_count),
    Case("sonnet_mlp", "sonnet_mlp", "sonnet",
         ["mlp/linear_0/b", "mlp/linear_0/w", "mlp/linear_1/b", "mlp/linear_1/w"],
         lambda m, x: m(x), _snt_count),
    Case("sonnet_bn", "sonnet_bn", "sonnet",
         # Two unnamed snt.Linear share the name "linear": attribute paths are used instead.
         ["net/bn/offset", "net/bn/scale", "net/bn/moving_mean/counter", "net/bn/moving_mean/hidden",
          "net/bn/moving_mean/average", "net/bn/moving_variance/counter",
          "net/bn/moving_variance/hidden", "net/bn/moving_variance/average",
          "net/lin/b", "net/lin/w", "net/out/b", "net/out/w"],
         lambda m, x: m(x, is_training=False), _snt_count),
    Case("tf_module", "tf_module", "tf_module", ["b", "w"],
         lambda m, x: m(x), _snt_count),
]}


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
