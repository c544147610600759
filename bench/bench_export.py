"""Benchmark: inference of a `tu.export` SavedModel vs the owner itself in a tf.function.

Model: a small TF-Slim CNN (three 3x3 conv + batch norm blocks, 32/64/128 channels, max
pooling, a 10-way logits layer), batch 32 of 32x32x3 images, wrapped with `tu.slim`.

- native: the owner called in a `tf.function` (`owner(x, training=False)`), the way a
  tfunite user runs inference;
- export: `tu.export(owner, dir, input_signature=[...])`, reloaded with
  `tf.saved_model.load` in the same process, called through its `serving_default`
  signature (what TF Serving runs).

Both take the same input tensor. Outputs are first checked to agree (rtol=atol=1e-6),
then rounds of `--runs` calls are timed, interleaved and alternating order; the ratio is
the median over rounds of (export time / native time).

    python bench/bench_export.py [--repeats 15] [--runs 10] [--quick] [--strict]
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
BATCH, SIZE = 32, 32
TOLERANCE = 1e-6  # same graph, same weights, float32


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=15, help="timed rounds per side")
    p.add_argument("--runs", type=int, default=10, help="inference calls per round")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.runs = 5, 3

    import numpy as np
    import tensorflow as tf
    import tfunite as tu

    def cnn(images: tf.Tensor, is_training: bool) -> tf.Tensor:
        import tf_slim as slim

        with slim.arg_scope(
            [slim.conv2d],
            normalizer_fn=slim.batch_norm,
            normalizer_params={"is_training": is_training},
        ):
            net = images
            for i, depth in enumerate((32, 64, 128)):
                net = slim.conv2d(net, depth, [3, 3], scope=f"conv{i}")
                net = slim.max_pool2d(net, [2, 2], scope=f"pool{i}")
            net = slim.flatten(net)
            return slim.fully_connected(net, 10, activation_fn=None, scope="logits")

    rng = np.random.default_rng(0)
    batch = tf.constant(rng.uniform(-1, 1, (BATCH, SIZE, SIZE, 3)).astype(np.float32))
    owner = tu.slim(cnn, name="cnn")
    owner.initialize(batch[:1])
    native = tf.function(lambda x: owner(x, training=False))

    workdir = tempfile.mkdtemp(prefix="tfunite-bench-export-")
    path = tu.export(
        owner, os.path.join(workdir, "1"), [tf.TensorSpec([None, SIZE, SIZE, 3], tf.float32)]
    )
    serve = tf.saved_model.load(path).signatures["serving_default"]

    out_native = native(batch).numpy()
    out_export = serve(inputs=batch)["output_0"].numpy()
    np.testing.assert_allclose(out_export, out_native, rtol=TOLERANCE, atol=TOLERANCE)
    max_diff = float(np.max(np.abs(out_export - out_native)))

    def loop_native() -> None:
        for _ in range(args.runs):
            out = native(batch)
        out.numpy()

    def loop_export() -> None:
        for _ in range(args.runs):
            out = serve(inputs=batch)["output_0"]
        out.numpy()

    times = interleaved(
        {"native": timed(loop_native), "export": timed(loop_export)},
        repeats=args.repeats,
        warmup=1,
    )
    ratio = paired_ratio(times["export"], times["native"])
    per_run = {k: [t / args.runs for t in v] for k, v in times.items()}
    n_params = sum(int(np.prod(v.shape)) for v in owner.variables.values())
    print(f"export: slim CNN ({n_params} parameters), batch {BATCH}x{SIZE}x{SIZE}x3")
    print(f"  outputs agree: max |export - native| = {max_diff:.2e} (tolerance {TOLERANCE:g})")
    print(f"  {args.repeats} interleaved rounds x {args.runs} calls; {machine()}")
    print(f"  native (owner in tf.function) per call: {spread(per_run['native'])}")
    print(f"  export (SavedModel signature) per call: {spread(per_run['export'])}")
    print(f"  {ratios(times['export'], times['native'])}")
    return finish(
        [
            Target(
                "export",
                "exported SavedModel / owner in tf.function inference time",
                ratio,
                TARGET,
                detail=f"(slim CNN, batch {BATCH})",
            )
        ],
        args.strict,
    )


if __name__ == "__main__":
    sys.exit(main())
