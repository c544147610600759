"""Benchmark: one training step of a mixed Keras 3 + Sonnet model, tfunite vs native.

Model: a Keras 3 MLP encoder (128 -> 384 -> 384) feeding a Sonnet MLP head
(384 -> 384 -> 10), about 350K parameters, batch 64, softmax cross-entropy.

- tfunite: `tu.wrap` each part, `tu.Parameters("net", encoder=..., head=...)`, one
  `tu.Optimizer("adam", params)`, `opt.minimize(loss_fn)` inside `tf.function`.
- native:  a second copy of the same model (same initial weights), a Keras 3 Adam over
  `[v.value for v in keras_model.trainable_variables] + snt_module.trainable_variables`,
  a `tf.GradientTape`, inside `tf.function`.

Both copies are first checked to compute the same losses for a few steps (so the two
sides do the same work), then timed: each round runs `--steps` steps of one side,
rounds are interleaved and alternate order; the ratio is the median over rounds of
(tfunite time / native time). Rounds are short (10 steps) and many (101), so the two
sides of a pair see the same machine load. The op counts of both traced graphs are
printed: identical graphs mean any measured difference is noise.

Target: ratio <= 1.05.

    python bench/bench_train_step.py [--strict] [--quick] [--steps N] [--repeats N]
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from common import Target, compare_steps, finish, parser  # noqa: E402

IN, HIDDEN, CLASSES, BATCH = 128, 384, 10, 64
TARGET = 1.05


def build(seed: int):
    """A Keras 3 encoder and a Sonnet head, built (variables created) from `seed`."""
    import keras
    import sonnet as snt
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    encoder = keras.Sequential(
        [
            keras.Input((IN,)),
            keras.layers.Dense(HIDDEN, activation="relu"),
            keras.layers.Dense(HIDDEN, activation="relu"),
        ],
        name="encoder",
    )
    head = snt.nets.MLP([HIDDEN, CLASSES], name="head")
    head(encoder(tf.zeros([1, IN])))
    return encoder, head


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=101)
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.repeats = 10, 15

    import keras
    import tensorflow as tf
    import tfunite as tu

    # ---- tfunite side
    enc_t, head_t = build(0)
    g = tu.wrap(enc_t, name="encoder")
    d = tu.wrap(head_t, name="head")
    d(g(tf.zeros([1, IN])))  # an owner is built by its first call
    params = tu.Parameters("net", encoder=g, head=d)
    opt_t = tu.Optimizer("adam", params, learning_rate=1e-3)

    # ---- native side: same architecture, same initial weights
    enc_n, head_n = build(1)
    for src, dst in zip(enc_t.weights, enc_n.weights):
        dst.assign(src)
    for src, dst in zip(head_t.variables, head_n.variables):
        dst.assign(src)
    native_vars = [v.value for v in enc_n.trainable_variables] + list(head_n.trainable_variables)
    opt_n = keras.optimizers.Adam(learning_rate=1e-3)
    opt_n.build(native_vars)

    n_params = sum(int(np.prod(v.shape)) for v in params.trainable_variables)

    def loss_of(logits, y):
        return tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
        )

    @tf.function
    def step_tfunite(x, y):
        return opt_t.minimize(lambda: loss_of(d(g(x, training=True), training=True), y))

    @tf.function
    def step_native(x, y):
        with tf.GradientTape() as tape:
            loss = loss_of(head_n(enc_n(x, training=True)), y)
        grads = tape.gradient(loss, native_vars)
        opt_n.apply(grads, native_vars)
        return loss

    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((BATCH, IN), dtype=np.float32))
    y = tf.constant(rng.integers(0, CLASSES, BATCH, dtype=np.int32))

    # Same work on both sides: identical losses step by step (float32 tolerance).
    for i in range(3):
        lt, ln = float(step_tfunite(x, y)), float(step_native(x, y))
        if not np.isclose(lt, ln, rtol=1e-6, atol=1e-6):
            print(
                f"ERROR: step {i}: tfunite loss {lt} != native loss {ln}; the two sides "
                "do not compute the same thing, timings would be meaningless."
            )
            return 2

    print(
        f"train step: Keras 3 MLP {IN}->{HIDDEN}->{HIDDEN} + Sonnet MLP {HIDDEN}->{HIDDEN}->"
        f"{CLASSES}, {n_params} trainable parameters, batch {BATCH}, adam, tf.function"
    )
    ratio = compare_steps(step_native, step_tfunite, x, y, args.steps, args.repeats)
    return finish(
        [
            Target(
                "train_step",
                "tfunite/native step time",
                ratio,
                TARGET,
                detail=f"({n_params} params, batch {BATCH})",
            )
        ],
        args.strict,
    )


if __name__ == "__main__":
    sys.exit(main())
