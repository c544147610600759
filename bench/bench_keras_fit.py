"""Benchmark: Keras `fit` through `tu.keras_layer` vs the same owner trained with tu.Optimizer.

Model: a Sonnet MLP (128 -> 384 -> 384 -> 10, about 200K parameters), wrapped by
`tu.wrap`, batch 64, softmax cross-entropy, Adam (lr 1e-3).

- keras_layer: `keras.Sequential([keras.Input((128,)), tu.keras_layer(owner)])`,
  `compile(keras.optimizers.Adam, SparseCategoricalCrossentropy(from_logits=True),
  steps_per_execution=--steps)`, one round = `model.fit(dataset, epochs=1,
  steps_per_epoch=--steps, verbose=0)` over a `tf.data` dataset repeating one batch
  (Keras' own loop: iterator, callbacks, loss metric). The same with Keras' default
  `steps_per_execution=1` is printed too, not a target: Keras then pays its Python loop
  (iterator, callbacks, metrics) on every step, whatever layers the model has.
- native: a second copy of the same owner (same initial weights), `tu.Optimizer("adam",
  owner)`, `opt.minimize(loss_fn)` in a `tf.function`, called --steps times per round.

Both sides are first checked to compute the same losses for three steps (Keras'
`train_on_batch` against the tf.function step, float32 tolerance), then timed in
interleaved rounds of alternating order; the ratio is the median over rounds of
(keras_layer round time / native round time).

Target: ratio <= 1.05.

    python bench/bench_keras_fit.py [--strict] [--quick] [--steps N] [--repeats N]
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from common import Target, finish, interleaved, machine, paired_ratio, parser, ratios, spread, timed  # noqa: E402

IN, HIDDEN, CLASSES, BATCH = 128, 384, 10, 64
TARGET = 1.05


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--repeats", type=int, default=31)
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.repeats = 20, 7

    import keras
    import sonnet as snt
    import tensorflow as tf
    import tfunite as tu

    def owner(name: str) -> tu.Owner:
        o = tu.wrap(snt.nets.MLP([HIDDEN, HIDDEN, CLASSES], name="mlp"), name=name)
        o.initialize(tf.zeros([1, IN]))
        return o

    fit_owner, native_owner = owner("fit"), owner("native")
    for src, dst in zip(fit_owner.variables.values(), native_owner.variables.values()):
        dst.assign(src)
    n_params = sum(int(np.prod(v.shape)) for v in native_owner.trainable_variables)

    # ---- keras_layer side: Keras' own compile/fit. Two models over the same owner (their
    # layers alias the same variables): `steps_per_execution=--steps` (Keras runs the
    # round's steps in one graph call) is the target; 1 (Keras' default) is shown.
    def keras_model(steps_per_execution: int) -> keras.Model:
        m = keras.Sequential([keras.Input((IN,)), tu.keras_layer(fit_owner)])
        m.compile(
            keras.optimizers.Adam(1e-3),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            steps_per_execution=steps_per_execution,
        )
        return m

    model, model_default = keras_model(args.steps), keras_model(1)

    # ---- native side: tu.Optimizer in tf.function
    opt = tu.Optimizer("adam", native_owner, learning_rate=1e-3)

    @tf.function
    def step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        def loss_fn() -> tf.Tensor:
            logits = native_owner(x, training=True)
            return tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
            )

        return opt.minimize(loss_fn)

    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((BATCH, IN), dtype=np.float32))
    y = tf.constant(rng.integers(0, CLASSES, BATCH, dtype=np.int32))

    # Same work on both sides: identical losses step by step (float32 tolerance).
    for i in range(3):
        lk, ln = float(model_default.train_on_batch(x, y)), float(step(x, y))
        if not np.isclose(lk, ln, rtol=1e-5, atol=1e-6):  # two graphs' float32 reductions
            print(
                f"ERROR: step {i}: keras_layer fit loss {lk} != tu.Optimizer loss {ln}; the "
                "two sides do not compute the same thing, timings would be meaningless."
            )
            return 2

    dataset = tf.data.Dataset.from_tensors((x, y)).repeat()

    def fit_round() -> None:
        model.fit(dataset, epochs=1, steps_per_epoch=args.steps, verbose=0)

    def fit_default_round() -> None:
        model_default.fit(dataset, epochs=1, steps_per_epoch=args.steps, verbose=0)

    def native_round() -> None:
        for _ in range(args.steps):
            loss = step(x, y)
        loss.numpy()  # wait for the last step

    print(
        f"fit step: Sonnet MLP {IN}->{HIDDEN}->{HIDDEN}->{CLASSES}, {n_params} trainable "
        f"parameters, batch {BATCH}, adam; Keras fit ({args.steps} steps per round) vs "
        "tu.Optimizer in tf.function"
    )
    runs = {
        "native": timed(native_round),
        "keras_layer": timed(fit_round),
        "keras_layer_spe1": timed(fit_default_round),
    }
    times = interleaved(runs, args.repeats, warmup=2)
    per_step = {k: [t / args.steps for t in v] for k, v in times.items()}
    print(f"  {args.repeats} interleaved rounds x {args.steps} steps; {machine()}")
    print(f"  native (tu.Optimizer)                   per step: {spread(per_step['native'])}")
    print(
        f"  fit, steps_per_execution={args.steps:<3}          per step: {spread(per_step['keras_layer'])}"
    )
    print(
        f"  fit, steps_per_execution=1 (default) per step: {spread(per_step['keras_layer_spe1'])}"
    )
    print(f"  steps_per_execution={args.steps}: {ratios(times['keras_layer'], times['native'])}")
    print(
        f"  steps_per_execution=1 (Keras' per-step Python loop, not a target): "
        f"{ratios(times['keras_layer_spe1'], times['native'])}"
    )
    ratio = paired_ratio(times["keras_layer"], times["native"])
    return finish(
        [
            Target(
                "keras_fit",
                "keras_layer fit / tu.Optimizer step time",
                ratio,
                TARGET,
                detail=f"({n_params} params, batch {BATCH}, {args.steps} steps per fit)",
            )
        ],
        args.strict,
    )


if __name__ == "__main__":
    sys.exit(main())
