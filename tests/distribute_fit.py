"""`model.fit` of `tu.keras_layer`s under tf.distribute (issue 11 item 5).

One Keras 3 model: a TF-Slim trunk and a Sonnet MLP, each a `tu.keras_layer`, then a
Keras `Dense`; owners, layers, model and `compile` inside `strategy.scope()`. `fit_run`
trains it for STEPS global batches (one per epoch, so each epoch's "loss" is that
batch's loss) and returns the losses and the weights by canonical name.

- MirroredStrategy (two logical CPUs): `fit_mirrored`, called from
  tests/distribute_case.py (the fresh process that configured the devices).
- MultiWorkerMirroredStrategy: `python -m tests.distribute_fit --worker I --ports P0,P1`
  runs one worker (TF_CONFIG from the ports) and prints one JSON line; `launch_pair`
  starts both (tests/test_distribute.py).

Every run sees the same global batches: Keras distributes the dataset, each worker
(DATA auto-sharding) and each replica takes its consecutive slice of every batch.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import warnings
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore", message=r".*(deprecated|will be removed).*")

import numpy as np  # noqa: E402

GLOBAL, FEATURES, STEPS = 8, 6, 3
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build(strategy: Any) -> tuple[Any, dict[str, Any]]:
    """The Keras model of keras_layers and {layer name: layer}; deterministic weights."""
    import keras
    import sonnet as snt
    import tensorflow as tf
    import tf_slim as slim
    import tfunite as tu

    def trunk_fn(x: tf.Tensor, is_training: bool) -> tf.Tensor:
        return slim.fully_connected(x, 8, scope="fc1")

    with strategy.scope():
        trunk = tu.keras_layer(tu.slim(trunk_fn, name="trunk"), input_shape=(FEATURES,))
        mlp = tu.keras_layer(
            tu.wrap(snt.nets.MLP([8], activate_final=True, name="mlp"), name="mlp"),
            input_shape=(8,),
        )
        dense = keras.layers.Dense(1, name="dense")
        model = keras.Sequential([keras.Input((FEATURES,)), trunk, mlp, dense], name="fit")
        model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    rng = np.random.default_rng(0)
    for layer in (trunk, mlp, dense):
        for w in sorted(layer.weights, key=lambda w: w.path):
            w.assign(rng.normal(0.0, 0.3, w.shape).astype(np.float32))
    return model, {"trunk": trunk, "mlp": mlp, "dense": dense}


def dataset() -> Any:
    import tensorflow as tf

    rng = np.random.default_rng(100)
    x = rng.normal(size=(GLOBAL * STEPS, FEATURES)).astype(np.float32)
    return tf.data.Dataset.from_tensor_slices((x, x[:, :1] - x[:, 1:2])).batch(GLOBAL)


def fit_run(strategy: Any, loop: bool = False) -> dict[str, Any]:
    """Fit STEPS global batches under `strategy`: {"losses", "weights", "types"}.

    `loop=True` trains the same compiled model by a custom loop of `strategy.run`
    instead of `model.fit` (same loss, same optimizer, same batches)."""
    model, layers = build(strategy)
    if loop:
        history = {"loss": custom_loop(model, strategy)}
    else:
        history = model.fit(
            dataset(), epochs=STEPS, steps_per_epoch=1, verbose=0, shuffle=False
        ).history
    weights = {w.path: np.asarray(w.numpy()).tolist() for w in model.weights}
    owners = [layers["trunk"].owner, layers["mlp"].owner]
    types = sorted({type(v).__name__ for o in owners for v in o.variables.values()})
    return {"losses": history["loss"], "weights": weights, "types": types}


def custom_loop(model: Any, strategy: Any) -> list[float]:
    """STEPS steps of `model` with its compiled optimizer under `strategy.run`."""
    import tensorflow as tf

    @tf.function
    def step(x: Any, y: Any) -> tf.Tensor:
        def replica(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
            with tf.GradientTape() as tape:  # the global batch's mean squared error
                loss = tf.reduce_sum((model(x, training=True) - y) ** 2) / GLOBAL
            variables = model.trainable_variables
            model.optimizer.apply(tape.gradient(loss, variables), variables)
            return loss

        return strategy.reduce("SUM", strategy.run(replica, (x, y)), axis=None)

    batches = strategy.experimental_distribute_dataset(dataset())
    return [float(step(x, y)) for x, y in batches]


def plain_keras_fit(strategy: Any) -> None:
    """A Keras 3 model without tfunite, fit under `strategy` (shows Keras' own bug)."""
    import keras

    with strategy.scope():
        model = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(1)])
        model.compile(optimizer="adam", loss="mse")
    model.fit(dataset(), epochs=1, steps_per_epoch=1, verbose=0)


def fit_mirrored(devices: list[str]) -> dict[str, Any]:
    """Two replicas against the default strategy, in the same (fresh) process."""
    import tensorflow as tf

    mirrored = fit_run(tf.distribute.MirroredStrategy(devices))
    single = fit_run(tf.distribute.get_strategy())
    assert mirrored["types"] == ["MirroredVariable"], mirrored["types"]
    assert list(mirrored["weights"]) == list(single["weights"])
    return {
        "fit_losses_mirrored": mirrored["losses"],
        "fit_losses_single": single["losses"],
        "fit_weight_diff": weight_diff(mirrored["weights"], single["weights"]),
        "fit_weight_names": list(single["weights"]),
    }


def weight_diff(a: dict[str, Any], b: dict[str, Any]) -> float:
    return max(float(np.abs(np.asarray(a[n]) - np.asarray(b[n])).max()) for n in b)


# ============================================================================ workers
def launch_pair(timeout: float = 240.0) -> list[dict[str, Any]]:
    """Run two local workers (free ports, TF_CONFIG each); their JSON results."""
    sys.path.insert(0, os.path.join(ROOT, "examples"))
    from distributed import free_ports

    ports = ",".join(map(str, free_ports(2)))
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.distribute_fit", "--worker", str(i), "--ports", ports],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        outs = [p.communicate(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for i, (p, (_, err)) in enumerate(zip(procs, outs, strict=True)):
        if p.returncode != 0:
            raise AssertionError(f"worker {i} exited {p.returncode}:\n{err[-4000:]}")
    return [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", type=int, required=True)
    parser.add_argument("--ports", required=True)
    args = parser.parse_args(argv)
    os.environ["TF_CONFIG"] = json.dumps(
        {
            "cluster": {"worker": [f"localhost:{p}" for p in args.ports.split(",")]},
            "task": {"type": "worker", "index": args.worker},
        }
    )
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    # Keras 3's own fit fails under MultiWorkerMirroredStrategy before the first step,
    # with or without tfunite (keras-team/keras#20585): report both errors, then train
    # the same model by a custom loop.
    errors = []
    for run in (lambda: plain_keras_fit(strategy), lambda: fit_run(strategy)):
        try:
            run()
            errors.append("")
        except ValueError as e:
            errors.append(str(e).splitlines()[0][:60])
    result = fit_run(strategy, loop=True)
    result["fit_errors"] = errors
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
