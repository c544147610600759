"""Benchmark: a TF-Slim resnet_v1_50 forward pass through tfunite vs a native TF1 Session.

Model: `tf_slim.nets.resnet_v1.resnet_v1_50` (num_classes=1000, is_training=False, the
stock `resnet_arg_scope()`), batch 8 of 224x224x3 images, about 25.6M parameters.

- tfunite: `tu.slim(resnet_v1_50, name="resnet_v1_50", arg_scope=...)`, called eagerly
  inside a `tf.function` (the TF1-style code runs on the bridge's eager variable store).
- native:  the same function built in its own `tf.Graph` in the same process and run
  with `Session.run(logits, {images: batch})`, its variables restored with a TF1
  `Saver` from the checkpoint `tu.save` wrote of the tfunite owner: same weights.

Both sides take the same numpy batch each run (so both pay for one host-to-tensor
copy). The outputs are first checked to agree (see TOLERANCE), then rounds of
`--runs` forward passes are timed, interleaved and alternating order; the ratio is the
median over rounds of (tfunite time / native time).

    python bench/bench_slim_forward.py [--repeats 15] [--runs 2] [--quick] [--strict]
"""

from __future__ import annotations

import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from common import (  # noqa: E402
    Target,
    finish,
    interleaved,
    machine,
    paired_ratio,
    parser,
    ratios,
    spread,
    timed,
)

TARGET = 1.05
BATCH, SIZE, CLASSES = 8, 224, 1000
# Same ops, same weights, float32: the default tolerance (measured: identical outputs).
TOLERANCE = 1e-6


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=15, help="timed rounds per side")
    p.add_argument("--runs", type=int, default=2, help="forward passes per round")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.runs = 5, 1

    import numpy as np
    import tensorflow as tf
    import tf_slim
    import tfunite as tu
    from tf_slim.nets import resnet_v1

    def resnet(images: tf.Tensor, is_training: bool):
        return resnet_v1.resnet_v1_50(images, num_classes=CLASSES, is_training=is_training)

    batch = np.random.default_rng(0).uniform(-1, 1, (BATCH, SIZE, SIZE, 3)).astype(np.float32)

    # ---- tfunite: eager owner, tf.function forward
    owner = tu.slim(resnet, name="resnet_v1_50", arg_scope=resnet_v1.resnet_arg_scope())
    owner.initialize(batch[:1])
    forward = tf.function(lambda x: owner(x, training=False))
    workdir = tempfile.mkdtemp(prefix="tfunite-bench-slim-")
    prefix = tu.save(owner, workdir)
    n_params = sum(int(np.prod(v.shape)) for v in owner.trainable_variables)

    # ---- native: the same function in a TF1 graph + Session, same weights (TF1 Saver)
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [None, SIZE, SIZE, 3], name="images")
        with tf_slim.arg_scope(resnet_v1.resnet_arg_scope()):
            logits, _ = resnet(images, False)
        saver = tf.compat.v1.train.Saver()
        sess = tf.compat.v1.Session(graph=graph)
        saver.restore(sess, prefix)

    out_tfunite = forward(batch).numpy()
    out_native = sess.run(logits, {images: batch})
    np.testing.assert_allclose(out_tfunite, out_native, rtol=TOLERANCE, atol=TOLERANCE)
    max_diff = float(np.max(np.abs(out_tfunite - out_native)))

    def loop_tfunite() -> None:
        for _ in range(args.runs):
            out = forward(batch)
        out.numpy()

    def loop_native() -> None:
        for _ in range(args.runs):
            sess.run(logits, {images: batch})

    times = interleaved(
        {"native": timed(loop_native), "tfunite": timed(loop_tfunite)},
        repeats=args.repeats,
        warmup=1,
    )
    ratio = paired_ratio(times["tfunite"], times["native"])
    per_run = {k: [t / args.runs for t in v] for k, v in times.items()}
    sess.close()

    print(
        f"slim forward: resnet_v1_50 ({n_params} trainable parameters), batch {BATCH}x"
        f"{SIZE}x{SIZE}x3, {CLASSES} classes, is_training=False"
    )
    print(f"  outputs agree: max |tfunite - native| = {max_diff:.2e} (tolerance {TOLERANCE:g})")
    print(f"  {args.repeats} interleaved rounds x {args.runs} forward passes; {machine()}")
    print(f"  native  (TF1 Session)       per forward: {spread(per_run['native'])}")
    print(f"  tfunite (tu.slim, tf.function) per forward: {spread(per_run['tfunite'])}")
    print(f"  {ratios(times['tfunite'], times['native'])}")
    return finish(
        [
            Target(
                "slim_forward",
                "tfunite/native forward time",
                ratio,
                TARGET,
                detail=f"(resnet_v1_50, batch {BATCH})",
            )
        ],
        args.strict,
    )


if __name__ == "__main__":
    sys.exit(main())
