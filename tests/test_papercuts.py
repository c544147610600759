"""Paper cuts of issue 13: a quiet CLI start-up, `tu.enable_fixes` for plain framework
code, Slim's deprecation warnings once per process, licences in `tfunite doctor`."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT, run_fresh


def test_cli_commands_that_load_tensorflow_print_no_start_up_lines():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    tfunite = os.path.join(os.path.dirname(sys.executable), "tfunite")
    proc = subprocess.run(
        [tfunite, "inspect", os.path.join(ROOT, "tests", "corpus", "good")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "2 entries" in proc.stdout
    assert proc.stderr == "", proc.stderr  # was: absl's notice, oneDNN and CUDA info lines


def test_enable_fixes_makes_plain_slim_code_work_and_warn_once():
    got = run_fresh(
        """
import json, warnings
warnings.simplefilter("always")  # what pytest and many apps set: every call warns
import numpy as np, tensorflow as tf, tf_slim as slim
import tfunite as tu
from tfunite import fixes

def plain():
    with tf.Graph().as_default():
        x = tf.compat.v1.placeholder(tf.float32, [1, 6, 6, 3])
        return slim.batch_norm(slim.conv2d(x, 4, [3, 3]), is_training=True).shape.as_list()

try:
    plain()
    before = "ran"
except Exception as e:
    before = f"{type(e).__name__}: {e}"
applied = tu.enable_fixes("slim")

def deprecations(calls):
    with warnings.catch_warnings(record=True) as seen:
        for _ in range(calls):
            plain()
    return sum("layer.apply" in str(w.message) for w in seen)

once = deprecations(3)
fixes.undo("slim-deprecation-warnings-once")
always = deprecations(3)
print(json.dumps({"before": before, "applied": applied, "shape": plain(),
                  "once": once, "always": always}))
"""
    )
    assert got["before"] == "ModuleNotFoundError: No module named 'tf_keras.legacy_tf_layers'"
    assert {"slim-batch-norm-import", "slim-deprecation-warnings-once"} <= set(got["applied"])
    assert got["shape"] == [1, 6, 6, 4]
    assert got["always"] == 3 and got["once"] == 1


def test_doctor_lists_licences_and_the_public_fix_call():
    from tfunite.tools import doctor

    found = doctor.licenses()
    assert found["google-crc32c"]["license"] == "Apache-2.0"
    assert not found["google-crc32c"]["copyleft"]
    assert found["tensorflow"]["license"].startswith("Apache")
    if "crc32c" in found:  # the optional LGPL extra (fast-crc) is flagged
        assert found["crc32c"]["copyleft"]
    data = doctor.diagnose(import_bridges=False)
    text = doctor.format_report(data)
    assert "Licences of the installed dependencies (tfunite is Apache-2.0):" in text
    assert "google-crc32c" in text and 'tu.enable_fixes("slim")' in text
    assert data["licenses"] == found
