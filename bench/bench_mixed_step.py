"""Benchmark: one training step of the mixed Slim + TFLearn + Sonnet + Keras 3 model,
tfunite vs the same layers driven with native APIs.

Model: the one of `examples/mixed_model.py` (its code is imported, not copied): a TF-Slim
conv trunk (weight decay, batch_norm), a TFLearn fully_connected + dropout block, a
Sonnet MLP and a Keras 3 Dense head; 8x8x1 inputs, batch 64, softmax cross-entropy plus
every regularization loss, Adam.

- tfunite: `tu.slim`, `tu.tflearn`, `tu.wrap` x 2, `tu.Parameters`, one
  `tu.Optimizer("adam", params)`, `opt.minimize(loss_fn)` inside `tf.function`.
- native:  the Slim and TFLearn code inside a tf_keras layer whose `call` is decorated
  with `track_tf1_style_variables` (Slim's regularizers reach `layer.losses`; TFLearn's
  L2 loss, which that shim drops, is written out with `tflearn.regularizers.L2`; TFLearn's
  training-mode flag is one `tf.Variable` set before training, as TFLearn's own TF1 code
  does), a Sonnet MLP and a Keras 3 model as they are, one Keras 3 Adam over all
  trainable variables, a `tf.GradientTape`, inside `tf.function`. Same initial weights.
  (TFLearn and Slim only import/run on current TensorFlow with tfunite's legacy fixes,
  which the tfunite side applies first; the native side uses them too.)

Both sides are first checked to compute the same losses and weights for 3 steps with
training=False (batch norm in inference mode, dropout off: deterministic); the timed
steps use training=True. Rounds of `--steps` steps are interleaved and alternate order;
the ratio is the median over rounds of (tfunite time / native time). The op counts of
both traced steps are printed: they differ by TFLearn's own L2 tensor, which its layer
builds during the call and nobody uses (native; pruned at run time), and by the TFLearn
owner's per-call assignment of its training flag (tfunite).

    python bench/bench_mixed_step.py [--steps 10] [--repeats 61] [--quick] [--strict]
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from common import Target, compare_steps, finish, parser  # noqa: E402

TARGET = 1.05
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "mixed_model.py"
# float32, same ops in the same order on both sides: the default tolerance.
RTOL = ATOL = 1e-6


def load_example() -> Any:
    spec = importlib.util.spec_from_file_location("mixed_model", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=10, help="steps per timed round")
    p.add_argument("--repeats", type=int, default=61, help="timed rounds per side")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.repeats = 10, 15

    import keras
    import numpy as np
    import sonnet as snt
    import tensorflow as tf
    import tf_keras
    import tf_slim as slim
    from tf_keras.src.legacy_tf_layers.variable_scope_shim import track_tf1_style_variables

    mm = load_example()
    data = mm.digits(0)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(data["x_train"]), mm.BATCH)
    x, y = tf.constant(data["x_train"][idx]), tf.constant(data["y_train"][idx])

    def xent(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
        return tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        )

    # ---- tfunite side: exactly the example's model and optimizer
    run, opt, forward = mm.build(seed=0)
    model = run["model"]

    def make_tfunite_step(training: bool) -> Any:
        @tf.function
        def step(xb: tf.Tensor, yb: tf.Tensor) -> tf.Tensor:
            return opt.minimize(
                lambda: xent(yb, forward(xb, training=training)) + tf.add_n(model.losses)
            )

        return step

    # ---- native side
    import tflearn  # importable now: the tfunite side applied the legacy fixes

    @contextlib.contextmanager
    def tflearn_training_flag(flag: tf.Variable) -> Iterator[None]:
        """Show TFLearn's layers `flag` as the training mode (its global collection)."""
        graph = tf.compat.v1.get_default_graph()
        saved = list(graph.get_collection("is_training"))
        graph.get_collection_ref("is_training")[:] = [flag]
        try:
            yield
        finally:
            graph.get_collection_ref("is_training")[:] = saved

    class NativeTF1(tf_keras.layers.Layer):
        """The Slim trunk and the TFLearn block, run by tf_keras' TF1-variables shim."""

        def __init__(self) -> None:
            super().__init__(name="tf1")
            self.flag = tf.Variable(False, trainable=False, name="is_training")

        @track_tf1_style_variables
        def call(self, inputs: tf.Tensor, training: bool = False) -> tf.Tensor:
            with slim.arg_scope(mm.slim_arg_scope()):
                net = mm.slim_trunk(inputs, training)
            with tflearn_training_flag(self.flag):
                return mm.tflearn_block(net)

    keras.utils.set_random_seed(1)
    tf1_native = NativeTF1()
    mlp_native = snt.nets.MLP([64, 64], activate_final=True, name="mlp")
    head_native = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(
                mm.CLASSES, kernel_regularizer=keras.regularizers.L2(mm.WEIGHT_DECAY)
            ),
        ],
        name="head",
    )
    head_native(mlp_native(tf1_native(x[:1])))

    # Same initial weights: copy the tfunite side's values, part by part, in order.
    store = tf1_native._tf1_style_var_store._vars
    pairs = list(
        zip(
            model["trunk"].variables.values(), list(store.values())[: len(model["trunk"].variables)]
        )
    )
    block = [v for n, v in model["block"].variables.items() if n != "is_training"]
    pairs += list(zip(block, list(store.values())[len(pairs) :]))
    pairs += list(zip(tf.Module.variables.fget(model["mlp"].module), mlp_native.variables))
    pairs += [(a.value, b.value) for a, b in zip(model["head"].model.weights, head_native.weights)]
    assert len(pairs) == len(model.variables) - 1, (len(pairs), len(model.variables))
    for a, b in pairs:
        assert a.shape == b.shape, (a.name, b.name)
        b.assign(a)
    fc_w = store["fc/W"]

    var_native = (
        [v for v in store.values() if v.trainable]
        + list(mlp_native.trainable_variables)
        + [v.value for v in head_native.trainable_variables]
    )
    adam = keras.optimizers.Adam(learning_rate=2e-3)
    adam.build(var_native)
    n_params = sum(int(np.prod(v.shape)) for v in var_native)
    assert len(var_native) == len(model.trainable_variables)

    def make_native_step(training: bool) -> Any:
        @tf.function
        def step(xb: tf.Tensor, yb: tf.Tensor) -> tf.Tensor:
            with tf.GradientTape() as tape:
                logits = head_native(
                    mlp_native(tf1_native(xb, training=training)), training=training
                )
                reg = (
                    tf1_native.losses
                    + [tflearn.regularizers.L2(fc_w, mm.WEIGHT_DECAY)]
                    + head_native.losses
                )
                loss = xent(yb, logits) + tf.add_n(reg)
            adam.apply(tape.gradient(loss, var_native), var_native)
            return loss

        return step

    # ---- the same computation: 3 deterministic steps (training=False) on both sides
    check_native, check_tfunite = make_native_step(False), make_tfunite_step(False)
    tf1_native.flag.assign(False)
    for _ in range(3):
        ln, lt = check_native(x, y).numpy(), check_tfunite(x, y).numpy()
        np.testing.assert_allclose(lt, ln, rtol=RTOL, atol=ATOL)
    for a, b in pairs:
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=RTOL, atol=ATOL)

    # ---- timed: training steps (batch-norm statistics update, dropout on)
    step_native, step_tfunite = make_native_step(True), make_tfunite_step(True)
    tf1_native.flag.assign(True)  # TFLearn's way: set the mode once, not per step
    print(
        f"mixed step: Slim conv trunk + TFLearn fc/dropout + Sonnet MLP + Keras 3 Dense, "
        f"{n_params} trainable parameters, batch {mm.BATCH}, adam, tf.function"
    )
    print(f"  same losses and weights for 3 steps (training=False, rtol=atol={RTOL:g})")
    ratio = compare_steps(step_native, step_tfunite, x, y, args.steps, args.repeats)
    return finish(
        [
            Target(
                "mixed_step",
                "tfunite/native step time",
                ratio,
                TARGET,
                detail=f"({n_params} params, batch {mm.BATCH})",
            )
        ],
        args.strict,
    )


if __name__ == "__main__":
    sys.exit(main())
