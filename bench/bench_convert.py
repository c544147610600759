"""Benchmark: `tu.convert` of resnet_v1_50 from its Slim function vs. the recipe port.

Baseline: ``tu.port(ckpt, "slim:resnet_v1_50")`` of the same checkpoint, its traced
layout cached on disk (every port after the first; the cache folder is a temporary
one), in this run. Measured: ``tu.convert(resnet_v1.resnet_v1_50, ckpt, ...)`` of the
same checkpoint: it builds Slim's graph, traces it, builds the Keras model and loads
the weights through the same plan. The cold recipe port (the first one, which also
traces Slim's graph) is shown for reference. Each run is a fresh subprocess, best of N.
Target: convert / port <= 2.

    python bench/bench_convert.py [--size 224] [--repeat 3]
"""

from __future__ import annotations

import os
import sys
import tempfile

from common import Target, finish, parser, run_phase

PHASE = r"""
import json, os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf, keras, numpy as np
import tfunite as tu
from tfunite.porting import _slim
_slim.ensure_slim()
from tf_slim.nets import resnet_v1
phase, ckpt, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
t0 = time.perf_counter()
if phase == "port":
    model, report = tu.port(ckpt, "slim:resnet_v1_50", input_shape=(size, size, 3))
else:
    model, report = tu.convert(resnet_v1.resnet_v1_50, ckpt, (size, size, 3),
                               arg_scope=resnet_v1.resnet_arg_scope, num_classes=1001)
seconds = time.perf_counter() - t0
assert report.ok
print(json.dumps({"seconds": seconds, "layers": len(model.layers)}))
"""


def _phase(phase: str, ckpt: str, size: int) -> dict:
    return run_phase(PHASE, phase, ckpt, str(size))


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs per phase")
    args = ap.parse_args(argv)
    if args.quick:
        args.repeat = 1
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from tfunite.porting import _slim

    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as cache:
        os.environ["TFUNITE_CACHE_DIR"] = cache  # the phases inherit it
        ckpt = os.path.join(tmp, "resnet_v1_50.ckpt")
        _slim.write_random_checkpoint("resnet_v1_50", ckpt, (args.size, args.size, 3), 1001)
        cold = _phase("port", ckpt, args.size)  # empty cache: traces Slim's graph
        runs: dict[str, list[dict]] = {"port": [], "convert": []}
        for i in range(args.repeat):  # interleaved, order alternating, to cancel drift
            for phase in ("port", "convert") if i % 2 == 0 else ("convert", "port"):
                runs[phase].append(_phase(phase, ckpt, args.size))
    port = min(runs["port"], key=lambda d: d["seconds"])
    conv = min(runs["convert"], key=lambda d: d["seconds"])
    ratio = conv["seconds"] / port["seconds"]
    print(f"recipe port (layout cached): {port['seconds']:.3f} s ({port['layers']} layers)")
    print(f"recipe port, first (cold):   {cold['seconds']:.3f} s")
    print(f"tu.convert (traces Slim):    {conv['seconds']:.3f} s ({conv['layers']} layers)")
    print(f"time ratio, convert / port:  {ratio:.2f}  (target <= 2)")
    cold_ratio = conv["seconds"] / cold["seconds"]
    return finish(
        [
            Target(
                "convert",
                "convert / recipe port time (resnet_v1_50)",
                ratio,
                2.0,
                detail=f"(convert / cold port: {cold_ratio:.2f}x)",
            )
        ],
        args.strict,
    )


if __name__ == "__main__":
    sys.exit(main())
