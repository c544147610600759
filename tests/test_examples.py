"""The runnable examples, run as a user runs them: fresh processes, short schedules.

`examples/manifesto.py` (TF1 Session and `--eager`), `examples/mixed_model.py` and
`examples/distributed.py` each check their own claims and exit 0 only if they hold; here
they run with fewer steps and the key lines of their output are checked too.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytest.importorskip("sklearn")
pytest.importorskip("tf_slim")


def run_example(script: str, *args: str, tmp_path, timeout: int = 240) -> str:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", script), *args, "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=timeout,
    )
    assert proc.returncode == 0, (
        f"{script} {args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    )
    return proc.stdout


def number(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    assert match, f"no line matching {pattern!r} in:\n{text}"
    return float(match.group(1))


@pytest.mark.parametrize("mode", ["graph", "eager"])
def test_manifesto(mode, tmp_path):
    pytest.importorskip("tf_keras")
    args = ["--pretrain-steps", "200", "--finetune-steps", "200"] + (
        ["--eager"] if mode == "eager" else []
    )
    out = run_example("manifesto.py", *args, tmp_path=tmp_path)
    assert ("mode: eager + tf.function" if mode == "eager" else "mode: TF1 graph + Session") in out
    assert number(r"digits 0-4: test accuracy ([\d.]+)", out) > 0.9
    assert (
        "12 variables matched, 2 old-head entries dropped by rule, 0 missing, 0 unexpected" in out
    )
    assert number(r"before ([\d.]+)", out) < 0.5  # a fresh head: about chance (0.2)
    assert number(r"after ([\d.]+)", out) > 0.8
    assert "(2 trainable variables, trunk frozen)" in out
    for check in (
        "loaded trunk equals the pretrained checkpoint exactly: yes",
        "trunk unchanged by fine-tuning (frozen): yes",
        "saved trunk equals the pretrained checkpoint exactly: yes",
    ):
        assert check in out
    assert re.search(r"^OK in", out, re.M)
    # The final checkpoint holds trunk, head and the optimizer's own variables.
    import tensorflow as tf

    names = tf.train.load_checkpoint(str(tmp_path / "finetuned")).get_variable_to_shape_map()
    assert "trunk/digits/conv1/weights" in names and "head/kernel" in names
    assert any(n.startswith("opt/") for n in names)
    assert not any("digits/logits" in n for n in names)


def test_mixed_model(tmp_path):
    pytest.importorskip("sonnet")
    pytest.importorskip("keras")
    out = run_example("mixed_model.py", "--steps", "300", tmp_path=tmp_path)
    assert "trunk (tf_slim, 8 variables), block (tflearn, 3 variables), mlp (sonnet" in out
    assert "head (keras" in out
    assert "regularization losses: 4" in out
    assert number(r"test accuracy \(10 classes, \d+ held-out digits\): ([\d.]+)", out) > 0.8
    assert "fresh process: 43 variables loaded" in out
    assert "test-set logits identical" in out
    assert re.search(r"^OK ", out, re.M)


def test_keras_fit(tmp_path):
    pytest.importorskip("sonnet")
    pytest.importorskip("tensorboard")
    out = run_example("keras_fit.py", "--epochs", "4", tmp_path=tmp_path)
    assert "trunk (tf_slim, 8 variables), head (sonnet, 2 variables)" in out
    assert "unchanged by predict: yes, moved by fit: yes" in out
    assert number(r"test accuracy \(10 classes, \d+ held-out digits\): ([\d.]+)", out) > 0.85
    assert "trunk/conv1/weights/histogram, trunk/conv1/weights/norm" in out
    assert "without tfunite (frameworks imported there: none): predictions equal" in out
    assert re.search(r"^OK ", out, re.M)
    assert os.path.exists(tmp_path / "export" / "1" / "saved_model.pb")


def test_gan_resumes_bit_for_bit(tmp_path):
    """The main job (`make demo`) as it runs: full schedule (about 10 s)."""
    out = run_example("gan.py", tmp_path=tmp_path)
    assert "losses identical bit for bit" in out
    assert abs(number(r"generated mean (-?[\d.]+)", out) - 4.0) < 0.5


def test_distributed(tmp_path):
    """Two MultiWorkerMirroredStrategy workers on localhost: worker 1 killed mid-run, both
    restarted from the chief's checkpoint, compared with one process (the example exits 0
    only if every loss and the final checkpoint agree to atol 1e-5 and nothing is left)."""
    pytest.importorskip("sonnet")
    out = run_example("distributed.py", "--steps", "4", tmp_path=tmp_path, timeout=480)
    assert "run 1: worker 1 killed after step 3; last checkpoint ckpt-1" in out
    assert "run 2: resumed at step 3, finished step 4" in out
    assert "checkpoint vs one process: 20 variables" in out
    assert re.search(r"^OK in", out, re.M)
    assert sorted(os.listdir(tmp_path)) == ["ckpt"]  # no scratch directory of worker 1
