"""Compat probes of `tu.convert` and of the Keras backends a converted model runs on.

``convert``: a small Slim network function (slim bridge) and a small TFLearn one
(tflearn bridge) become Keras 3 models of built-in layers whose logits equal the TF1
graph's at rtol 1e-5 relative (`verify=True` compares every layer). ``keras_jax`` and
``keras_torch``: the converted model's ``.keras`` file, loaded in a fresh process with
``KERAS_BACKEND=jax`` / ``torch`` (no tfunite, no tf_slim imported), gives the same
logits as under TensorFlow (<= 1e-5 relative). Skipped when that backend's package is
not installed (torch is not required). Imported at the bottom of `probes.py`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from .cases import Case, keras3_gate
from .probes import NOT_PROBED, PROBES, Skip, _record, probe

CONVERT_RTOL = 1e-5  # float32 through a few layers, graph vs Keras: relative to max |logit|
BACKENDS = ("jax", "torch")


def _slim_net(inputs: Any, num_classes: int = 3, is_training: bool = False) -> Any:
    import tensorflow as tf
    import tf_slim as slim

    with tf.compat.v1.variable_scope("Net"):
        with slim.arg_scope([slim.batch_norm], is_training=is_training):
            net = slim.conv2d(inputs, 4, 3, stride=2, normalizer_fn=slim.batch_norm, scope="c1")
            a = slim.separable_conv2d(net, None, 3, activation_fn=tf.nn.relu6, scope="dw")
            net = tf.concat([net, a + net], 3)
            net = slim.avg_pool2d(net, 3, stride=2, padding="SAME", scope="pool")
            net = slim.fully_connected(slim.flatten(net), num_classes, activation_fn=None)
            return net


def _tflearn_net(inputs: Any) -> Any:
    from tfunite.bridges.tflearn_fixes import import_tflearn

    tflearn = import_tflearn()
    n = tflearn.conv_2d(inputs, 4, 3, activation="relu", scope="conv")
    n = tflearn.batch_normalization(n, scope="bn")
    n = tflearn.max_pool_2d(n, 2)
    return tflearn.fully_connected(tflearn.flatten(n), 3, scope="fc")


def _convert(case: Case, fn: Any, tmp: Path) -> tuple[Any, str]:
    import tfunite as tu

    keras = _record("keras")
    if importlib.util.find_spec(keras.import_name) is None:
        raise Skip(f"tu.convert builds Keras 3 models; {keras.distribution} is not installed")
    gate = keras3_gate()
    if gate:
        raise Skip(f"tu.convert builds Keras 3 models: {gate.split(';')[0]}")
    case.build()  # through the bridge first: it applies its legacy fixes
    out = str(tmp / f"{case.bridge}.keras")
    model, report = tu.convert(fn, None, (8, 8, 3), verify=True, rtol=CONVERT_RTOL, output=out)
    v = report.verification
    if not v["ok"]:
        raise AssertionError(
            f"converted model differs from the graph at layer {v['first_failure']!r} "
            f"(> {CONVERT_RTOL:g} relative)"
        )
    return model, out


@probe("convert", "slim")
def probe_convert_slim(case: Case, tmp: Path) -> None:
    """tu.convert of a Slim function: built-in layers only, every layer equal to Slim's."""
    model, _ = _convert(case, _slim_net, tmp)
    import keras

    if any(isinstance(layer, keras.layers.Lambda) for layer in model.layers):
        raise AssertionError("the converted model holds a Lambda layer")


@probe("convert", "tflearn")
def probe_convert_tflearn(case: Case, tmp: Path) -> None:
    """tu.convert of a TFLearn function (conv, batch norm, pool, fully connected)."""
    _convert(case, _tflearn_net, tmp)


_LOAD = """
import json, os, sys
import numpy as np, keras
model = keras.saving.load_model(sys.argv[1])
out = np.asarray(model.predict(np.load(sys.argv[2]), verbose=0))
leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("tfunite", "tf_slim"))
print(json.dumps({"backend": keras.backend.backend(), "leaked": leaked, "out": out.tolist()}))
"""


def _backend_probe(case: Case, tmp: Path, backend: str) -> None:
    import numpy as np

    if importlib.util.find_spec(backend) is None:
        raise Skip(f"the Keras {backend} backend needs {backend}, which is not installed")
    model, path = _convert(case, _slim_net, tmp)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype(np.float32)
    np.save(tmp / "x.npy", x)
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, "-c", _LOAD, path, str(tmp / "x.npy")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    if proc.returncode:
        raise AssertionError(f"loading under {backend} failed: {proc.stderr[-1500:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    if res["backend"] != backend or res["leaked"]:
        raise AssertionError(f"backend {res['backend']}, modules imported: {res['leaked']}")
    want = np.asarray(model(x))
    got = np.asarray(res["out"])
    rel = float(np.max(np.abs(got - want)) / max(float(np.max(np.abs(want))), 1e-12))
    if rel > CONVERT_RTOL:
        raise AssertionError(f"{backend} logits differ by {rel:.3g} relative > {CONVERT_RTOL:g}")


@probe("keras_jax", "slim")
def probe_keras_jax(case: Case, tmp: Path) -> None:
    """A converted Slim model's .keras under KERAS_BACKEND=jax, in a fresh process."""
    _backend_probe(case, tmp, "jax")


@probe("keras_torch", "slim")
def probe_keras_torch(case: Case, tmp: Path) -> None:
    """A converted Slim model's .keras under KERAS_BACKEND=torch (skipped without torch)."""
    _backend_probe(case, tmp, "torch")


def _not_probed() -> dict[tuple[str, str], str]:
    from .probes import registered_bridges

    why = {
        "convert": "tu.convert traces TF1 graphs of Slim and TFLearn network functions; "
        "{title} models are already Keras or TF2 objects",
        "keras_jax": "probed once, on the model converted from Slim (the slim cell): a "
        "converted .keras holds built-in Keras layers only, whichever its source ({title})",
        "keras_torch": "probed once, on the model converted from Slim (the slim cell): a "
        "converted .keras holds built-in Keras layers only, whichever its source ({title})",
    }
    return {
        (name, feature): text.format(title=_record(name).title)
        for name in registered_bridges()
        for feature, text in why.items()
        if (name, feature) not in PROBES
    }


NOT_PROBED.update(_not_probed())
