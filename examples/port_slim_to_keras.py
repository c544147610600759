"""Port a TF-Slim checkpoint into a Keras 3 model, verify it, save it, and go back.

Real use: ``python examples/port_slim_to_keras.py path/to/resnet_v1_50.ckpt``. Without an
argument the script writes a small random resnet_v1_50 checkpoint first (no download).
"""

from __future__ import annotations

import os
import sys
import tempfile

import numpy as np
import tfunite as tu
from tfunite.porting import _slim, export


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        if argv:
            ckpt, size = argv[0], 224
        else:
            ckpt, size = os.path.join(tmp, "resnet_v1_50.ckpt"), 64
            _slim.write_random_checkpoint("resnet_v1_50", ckpt, (size, size, 3), 1001)
        # 1. the plan, before anything is loaded
        _, plan = tu.port(
            ckpt, recipe="slim:resnet_v1_50", input_shape=(size, size, 3), dry_run=True
        )
        plan.render()
        # 2. port, verify against Slim, write the .keras file atomically
        out = os.path.join(tmp, "resnet_v1_50.keras")
        model, report = tu.port(
            ckpt, recipe="slim:resnet_v1_50", input_shape=(size, size, 3), verify=True, output=out
        )
        report.render()
        # 3. the file is a plain Keras 3 model
        import keras

        again = keras.saving.load_model(out)
        x = np.random.default_rng(0).normal(size=(1, size, size, 3)).astype(np.float32)
        np.testing.assert_allclose(again(x), model(x), rtol=1e-6, atol=1e-6)
        # 4. back to a Slim-named checkpoint
        names = export(model, "slim:resnet_v1_50", os.path.join(tmp, "back.ckpt"), background=True)
        print(f"exported {len(names)} Slim variables")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
