"""`tu.export`: SavedModels that load in a process with TensorFlow only (no tfunite, no
framework installed on its path), serve the owner's inference outputs at rtol=atol=1e-6
and name their variables canonically; ONNX through tf2onnx checked with onnxruntime;
bad signatures refused with nothing written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tfunite as tu

from tests import models
from tests.harness import ATOL, RTOL, scramble

SPEC = [tf.TensorSpec([None, 6], tf.float32)]
FRAMEWORKS = ("keras", "tf_keras", "sonnet", "tf_slim", "tflearn", "tfunite")


def _owners() -> dict[str, tu.Owner]:
    x = models.example()
    owners = {
        "keras": tu.wrap(models.keras_sequential(), name="keras"),
        "tf_keras": tu.wrap(models.tf_keras_sequential(), name="tf_keras"),
        "sonnet": tu.wrap(models.sonnet_bn(), name="sonnet"),
        "slim": tu.slim(models.slim_net(), name="slim"),
        "tflearn": tu.tflearn(models.tflearn_net(), name="tflearn"),
    }
    for owner in owners.values():
        owner(x)
        scramble(owner, seed=11)  # BatchNorm statistics away from 0/1: inference shows
        for name, var in owner.variables.items():
            if "variance" in name and var.dtype.is_floating:  # positive: no NaN from sqrt
                var.assign(tf.abs(var) + 0.5)
    return owners


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[dict[str, tu.Owner], dict[str, str], np.ndarray]:
    root = tmp_path_factory.mktemp("export")
    owners = _owners()
    paths = {key: tu.export(o, root / key / "1", SPEC) for key, o in owners.items()}
    # Parameters of a Keras generator and a Sonnet head: served through `fn`.
    g = tu.wrap(models.keras_functional(), name="g")
    d = tu.wrap(models.sonnet_mlp(), name="d")
    d(g(models.example()))
    owners["params"] = params = tu.Parameters("gan", g=g, d=d)
    paths["params"] = tu.export(
        params, root / "params" / "1", SPEC, fn=lambda x: params["d"](params["g"](x))
    )
    return owners, {k: os.fspath(p) for k, p in paths.items()}, models.example(seed=5)


def _python_without_frameworks(tmp: str) -> str:
    """A folder of links to site-packages minus the frameworks and tfunite."""
    import site

    sp = next(p for p in site.getsitepackages() if os.path.isdir(os.path.join(p, "tensorflow")))
    os.makedirs(tmp, exist_ok=True)
    for entry in os.listdir(sp):
        low = entry.lower()
        if low.endswith(".pth") or low.startswith(("__editable__", "dm_sonnet")):
            continue
        if any(low.startswith(f) for f in FRAMEWORKS):
            continue
        os.symlink(os.path.join(sp, entry), os.path.join(tmp, entry))
    return tmp


FRESH = """
import json, sys
import numpy as np
import tensorflow as tf
paths, x = json.loads(sys.argv[1]), np.array(json.loads(sys.argv[2]), np.float32)
out = {}
for key, path in paths.items():
    loaded = tf.saved_model.load(path)
    serve = loaded.signatures["serving_default"]
    out[key] = {
        "y": serve(inputs=tf.constant(x))["output_0"].numpy().tolist(),
        # the owner's variables, as attributes named by canonical name
        "names": sorted(
            f"{k}={v.name}" for k, v in vars(loaded.owner).items() if isinstance(v, tf.Variable)
        ),
    }
out["modules"] = sorted({m.split(".")[0] for m in sys.modules})
print(json.dumps(out))
"""


def test_saved_models_load_without_tfunite_or_frameworks(exported, tmp_path):
    owners, paths, x = exported
    env = dict(os.environ, PYTHONPATH=_python_without_frameworks(str(tmp_path / "sp")))
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    proc = subprocess.run(
        [sys.executable, "-S", "-c", FRESH, json.dumps(paths), json.dumps(x.tolist())],
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not set(FRAMEWORKS) & set(result["modules"])
    for key, owner in owners.items():
        if key == "params":
            want = owner["d"](owner["g"](x))
        else:
            want = owner(x, training=False)
        got = np.array(result[key]["y"], np.float32)
        np.testing.assert_allclose(got, np.asarray(want), rtol=RTOL, atol=ATOL, err_msg=key)
        # Variables keep their canonical names.
        assert result[key]["names"] == sorted(f"{n}={n}:0" for n in owner.variables), key


def test_tf_serving_layout(exported):
    _, paths, _ = exported
    path = paths["keras"]
    assert os.path.basename(path) == "1"
    assert sorted(os.listdir(path)) == ["assets", "fingerprint.pb", "saved_model.pb", "variables"]
    assert not [f for f in os.listdir(os.path.dirname(path)) if f.startswith(".tfunite")]


@pytest.mark.parametrize(
    "spec, match",
    [
        (
            [tf.TensorSpec([None, 5], tf.float32)],
            r"input 0 of the signature does not match owner 'keras': expected "
            r"float32\[None, 6\] .* got float32\[None, 5\]\. Fix: input_signature=",
        ),
        (
            [tf.TensorSpec([None, 6], tf.int32)],
            r"expected float32\[None, 6\] .* got int32\[None, 6\]",
        ),
        (
            [tf.TensorSpec([None, 6]), tf.TensorSpec([None, 6])],
            r"owner 'keras' takes 1 input\(s\) \(float32\[4, 6\]\) but input_signature has 2",
        ),
        ([], r"input_signature must be a non-empty list of tf.TensorSpec"),
    ],
)
def test_a_signature_that_does_not_match_writes_nothing(exported, tmp_path, spec, match):
    owner = exported[0]["keras"]
    with pytest.raises(ValueError, match=match):
        tu.export(owner, tmp_path / "m" / "1", spec)
    assert not os.path.exists(tmp_path / "m" / "1")
    assert not [f for f in os.listdir(tmp_path) if f != "m"]


def test_export_refuses_a_used_folder_and_an_unbuilt_owner(exported, tmp_path):
    owner = exported[0]["keras"]
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"exists and is not an empty directory.*Fix: pass a new"):
        tu.export(owner, tmp_path / "1", SPEC)
    assert os.listdir(tmp_path / "1") == ["keep.txt"]
    with pytest.raises(tu.NotBuiltError, match=r"'fresh' has no variables yet\. Fix: call it"):
        tu.export(tu.wrap(models.sonnet_mlp(), name="fresh"), tmp_path / "2", SPEC)
    params = exported[0]["params"]
    with pytest.raises(ValueError, match=r"uses variables that owner 'g' does not own"):
        tu.export(params["g"], tmp_path / "3", SPEC, fn=lambda x: params["d"](params["g"](x)))
    assert sorted(os.listdir(tmp_path)) == ["1"]


@pytest.mark.parametrize("key", ["keras", "slim"])
def test_onnx_export_matches_the_owner(exported, tmp_path, key):
    import onnxruntime

    owner, x = exported[0][key], exported[2]
    path = tu.export(owner, tmp_path / "m.onnx", SPEC, format="onnx")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"inputs": x})
    # ONNX Runtime sums in another order than TensorFlow: 1e-5 relative (the bar).
    np.testing.assert_allclose(got, np.asarray(owner(x)), rtol=1e-5, atol=1e-6)


def test_onnx_names_the_op_it_cannot_convert(tmp_path):
    class Gamma(tf.Module):
        def __init__(self) -> None:
            super().__init__(name="gamma")
            self.w = tf.Variable(tf.ones([6]))

        def __call__(self, x: tf.Tensor) -> tf.Tensor:
            return tf.math.lgamma(tf.abs(x * self.w) + 1.0)

    owner = tu.wrap(Gamma(), name="gamma")
    owner(models.example())
    with pytest.raises(ValueError, match=r"op\(s\) tf2onnx cannot convert to ONNX: \['Lgamma'\]"):
        tu.export(owner, tmp_path / "m.onnx", SPEC, format="onnx")
    assert os.listdir(tmp_path) == []


def test_cli_export_builds_loads_and_exports(tmp_path, capsys):
    from tfunite.tools.cli import main

    trained = tu.wrap(models.tf_module(), name="tf_module")
    x = models.example()
    trained(x)
    scramble(trained, seed=12)
    tu.save(trained, tmp_path / "ckpt")
    out = tmp_path / "serving" / "affine" / "1"
    args = ["export", "tests.models:tf_module", str(out), "--input-spec", "None,6"]
    assert main([*args, "--checkpoint", str(tmp_path / "ckpt"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["path"] == str(out)
    serve = tf.saved_model.load(str(out)).signatures["serving_default"]
    np.testing.assert_allclose(
        serve(inputs=tf.constant(x))["output_0"].numpy(), trained(x), rtol=RTOL, atol=ATOL
    )
    # Refusals: exit 1 with the export's message, nothing written; a bad spec is usage.
    assert main([*args, "--checkpoint", str(tmp_path / "ckpt")]) == 1
    assert "exists and is not an empty directory" in capsys.readouterr().err
    assert (
        main(["export", "tests.models:tf_module", str(tmp_path / "x"), "--input-spec", "None,a"])
        == 2
    )
    assert "expected a shape like None,6" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "x")
