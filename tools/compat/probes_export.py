"""Compat probes of owners in TensorFlow's own checkpoint and export machinery.

- `checkpoint_interop`: `tf.train.Checkpoint(model=owner)` save/restore with
  `assert_consumed()`, and a `tu.save` directory restored the same way;
- `export`: `tu.export` writes a SavedModel whose `serving_default` signature gives the
  owner's inference outputs (rtol=atol=1e-6) and whose variables are named canonically;
- `onnx`: `tu.export(format="onnx")` through tf2onnx, checked with onnxruntime at 1e-5
  relative (skipped when the `onnx` extra is not installed).

Imported at the bottom of probes.py, which registers these functions with `@probe`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from .cases import Case
from .helpers import built, check_close, check_same_values, fill, values
from .probes import Skip, probe

ONNX_RTOL = 1e-5  # onnxruntime sums in another order than TensorFlow


def _spec(case: Case) -> list[Any]:
    import numpy as np
    import tensorflow as tf

    x = np.asarray(case.example())
    return [tf.TensorSpec([None, *x.shape[1:]], tf.as_dtype(x.dtype))]


@probe("checkpoint_interop")
def probe_checkpoint_interop(case: Case, tmp: Path) -> None:
    import tensorflow as tf
    import tfunite as tu

    owner, _ = built(case)
    want = fill(owner, 0.05)
    prefix = tf.train.Checkpoint(model=owner).save(str(tmp / "tf" / "ckpt"))
    fill(owner, 0.5)
    tf.train.Checkpoint(model=owner).restore(prefix).assert_consumed()
    check_same_values(values(owner), want, "tf.train.Checkpoint round trip")
    tu.save(owner, str(tmp / "tu"))
    fill(owner, 0.5)
    latest = tf.train.latest_checkpoint(str(tmp / "tu"))
    tf.train.Checkpoint(model=owner).restore(latest).assert_consumed()
    check_same_values(values(owner), want, "tu.save restored by tf.train.Checkpoint")


@probe("export")
def probe_export(case: Case, tmp: Path) -> None:
    import numpy as np
    import tensorflow as tf
    import tfunite as tu

    owner, _ = built(case)
    fill(owner, 0.05)
    x = case.example()
    path = tu.export(owner, str(tmp / "model" / "1"), _spec(case))
    loaded = tf.saved_model.load(path)
    got = loaded.signatures["serving_default"](inputs=tf.constant(x))["output_0"]
    want = np.asarray(owner(x, training=False))
    check_close(got.numpy(), want, "exported SavedModel vs owner")
    names = {k: v.name for k, v in vars(loaded.owner).items() if isinstance(v, tf.Variable)}
    expected = {n: f"{n}:0" for n in owner.variables}
    if names != expected:
        raise AssertionError(f"exported variables are named {names}, expected {expected}")


@probe("onnx")
def probe_onnx(case: Case, tmp: Path) -> None:
    import numpy as np
    import tfunite as tu

    missing = [m for m in ("tf2onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise Skip(f"{', '.join(missing)} not installed: pip install 'tfunite[onnx]'")
    import onnxruntime

    owner, _ = built(case)
    fill(owner, 0.05)
    x = np.asarray(case.example())
    path = tu.export(owner, str(tmp / "model.onnx"), _spec(case), format="onnx")
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"inputs": x})
    check_close(got, np.asarray(owner(x, training=False)), "ONNX vs owner", rtol=ONNX_RTOL)
