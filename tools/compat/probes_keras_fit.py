"""Compat probe of the `keras_fit` feature: an owner of each bridge inside Keras 3 `fit`.

`tu.keras_layer(owner)` in a Sequential model: the layer's weights are the owner's own
variables, `fit` lowers the loss and moves every trainable variable, and
`save_weights`/`load_weights` (`.weights.h5`, keyed by canonical names) restore every
value exactly. Registered in `probes.PROBES` by importing this module (at the bottom of
probes.py).
"""

from __future__ import annotations

from pathlib import Path

from .cases import Case, keras3_gate
from .helpers import built
from .probes import Skip, probe


@probe("keras_fit")
def probe_keras_fit(case: Case, tmp: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("keras") is None:
        raise Skip("tu.keras_layer needs Keras 3, which is not installed (pip install keras)")
    gate = keras3_gate()
    if gate:
        raise Skip(f"tu.keras_layer needs Keras 3: {gate.split(';')[0]}")
    import keras
    import numpy as np
    import tfunite as tu

    owner, _ = built(case)
    x = np.asarray(case.example(), np.float32)
    layer = tu.keras_layer(owner)
    weights = {id(w.value) for w in layer.weights}
    aliased = [name for name, v in owner.variables.items() if id(v) in weights]
    if len(aliased) != len(owner.variables):
        raise AssertionError(
            f"{len(owner.variables) - len(aliased)} of the owner's variables are not the "
            "layer's weights (expected the same tf.Variables)"
        )
    model = keras.Sequential([keras.Input(x.shape[1:]), layer])
    target = np.linspace(-1.0, 1.0, int(np.prod(model.output_shape[1:])) * len(x))
    target = target.reshape((len(x), *model.output_shape[1:])).astype(np.float32)
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    before = [v.numpy() for v in owner.trainable_variables]
    # Training-mode losses (fit's own): batch-norm inference statistics lag behind.
    losses = model.fit(x, target, epochs=6, batch_size=len(x), verbose=0).history["loss"]
    first, after = losses[0], losses[-1]
    if not after < first:
        raise AssertionError(f"fit did not lower the loss in 6 steps: {first:.6g} -> {after:.6g}")
    changed = sum(
        not np.array_equal(b, v.numpy())
        for b, v in zip(before, owner.trainable_variables, strict=True)
    )
    if changed != len(before):
        raise AssertionError(f"fit changed only {changed} of {len(before)} trainable variables")
    path = str(tmp / "keras_fit.weights.h5")
    model.save_weights(path)
    saved = {name: v.numpy() for name, v in owner.variables.items()}
    for v in owner.variables.values():
        if v.dtype.is_floating:
            v.assign(v * 0.0 + 0.5)
    model.load_weights(path)
    for name, v in owner.variables.items():
        if not np.array_equal(v.numpy(), saved[name]):
            raise AssertionError(f"load_weights did not restore {name!r} exactly")
