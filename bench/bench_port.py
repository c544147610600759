"""Benchmark: porting a resnet_v1_50 checkpoint vs. reading all its tensors.

Baseline: ``tf.train.load_checkpoint`` + ``get_tensor`` of every entry, in this process.
Measured: ``tfunite.porting.port`` (plan, model build, load) of the same checkpoint.
Targets (issue 12): the whole port <= 1.5x (reading every tensor + Keras building the
same model with no variables: the floor of any port) and <= 0.35x
``keras.saving.load_model`` of the same model's ``.keras`` file; the weight transfer
alone <= 1.5x the read; peak memory <= baseline + 2x checkpoint size.

Time is reported several ways: the whole port with the traced layout already cached
on disk (every port after the first of a net and input size; the cache folder is a
temporary one here), the first port (cold cache: Slim's graph is built and traced), the
weight transfer alone (plan + read + transform + assign, into a model built the
ordinary way), which is what compares with reading, and the floor: Keras building the
layers of the same model from the cached layout, variables deferred as in a port (no
value created), and ``keras.applications.ResNet50(weights=None)`` for reference.
Memory is the process' peak RSS growth, each phase measured in a fresh subprocess so
the numbers do not hide each other.

    python bench/bench_port.py [--size 224] [--classes 1001] [--repeat 3]
"""

from __future__ import annotations

import os
import sys
import tempfile

from common import Target, finish, parser, run_phase

PHASE = r"""
import json, os, resource, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf, keras, numpy as np
import tfunite.porting as P
from tfunite.porting import _slim
import tfunite.porting as engine
from tfunite import TRAINING_STATE, DropIndex, Rules
_slim.ensure_slim()
phase, ckpt, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) * 1024
base = rss()
t0 = time.perf_counter()
out = {}
if phase == "read":
    r = tf.train.load_checkpoint(ckpt)
    tensors = {k: r.get_tensor(k) for k in r.get_variable_to_shape_map()}
    out["seconds"] = time.perf_counter() - t0
elif phase == "build":
    from tfunite.porting import _layouts, trace
    layout = _layouts.get_layout("resnet_v1_50", (size, size, 3), 1000, "resnet_v1_50",
                                 "resnet_v1_50")
    t0 = time.perf_counter()
    with engine.DeferredBuild():  # as port() builds: the layers, no variable values yet
        trace.build_layout(layout)
    out["seconds"] = time.perf_counter() - t0
elif phase == "save":  # setup, not timed: the ported model as a .keras file
    model, _ = P.port(ckpt, "slim:resnet_v1_50", input_shape=(size, size, 3))
    model.save(sys.argv[4])
elif phase == "load_model":
    keras.saving.load_model(sys.argv[4])
    out["seconds"] = time.perf_counter() - t0
elif phase == "resnet50":
    keras.applications.ResNet50(weights=None, input_shape=(size, size, 3))
    out["seconds"] = time.perf_counter() - t0
elif phase == "port":
    model, report = P.port(ckpt, "slim:resnet_v1_50", input_shape=(size, size, 3))
    out["seconds"] = time.perf_counter() - t0
    # weight transfer alone, model already built (as in a second port of the same net)
    shapes, dtypes = engine.checkpoint_shapes(ckpt)
    rec = P.get_recipe("slim:resnet_v1_50")
    t1 = time.perf_counter()
    # as port() does: a 1001-class checkpoint loses the background class on the logits
    bg = [(rec.expand(p), DropIndex(axis=-1, index=0)) for p in rec.logits
          if report.background == "dropped"]
    plan = engine.make_plan(shapes, dtypes, model,
                            [TRAINING_STATE, Rules([(rec.expand(p), r) for p, r in rec.rules])],
                            bg, [(rec.expand(p), r) for p, r in rec.drops],
                            rec.naming)
    assert plan.report.ok and len(plan.assignments) == len(model.weights)
    engine.execute(plan, ckpt)
    out["transfer_seconds"] = time.perf_counter() - t1
out["peak_growth"] = rss() - base
print(json.dumps(out))
"""


def _phase(phase: str, ckpt: str, size: int, keras_file: str = "") -> dict:
    return run_phase(PHASE, phase, ckpt, str(size), keras_file)


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--classes", type=int, default=1001)
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs per phase")
    args = ap.parse_args(argv)
    if args.quick:
        args.repeat = 1
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from tfunite.porting import _slim

    def best(phase: str) -> dict:
        runs = [_phase(phase, ckpt, args.size, keras_file) for _ in range(args.repeat)]
        return min(runs, key=lambda d: d["seconds"])

    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as cache:
        os.environ["TFUNITE_CACHE_DIR"] = cache  # the phases inherit it
        ckpt = os.path.join(tmp, "resnet_v1_50.ckpt")
        _slim.write_random_checkpoint("resnet_v1_50", ckpt, (args.size, args.size, 3), args.classes)
        size = sum(os.path.getsize(os.path.join(tmp, f)) for f in os.listdir(tmp))
        keras_file = os.path.join(tmp, "resnet_v1_50.keras")
        read = best("read")
        cold = _phase("port", ckpt, args.size)  # empty cache: builds and traces Slim's graph
        port = best("port")
        build = best("build")
        resnet50 = best("resnet50")
        _phase("save", ckpt, args.size, keras_file)
        load_model = best("load_model")
    print(f"resnet_v1_50 checkpoint: {size / 2**20:.1f} MiB ({args.classes} classes)")
    print(
        f"read all tensors (baseline): {read['seconds']:.3f} s, peak +"
        f"{read['peak_growth'] / 2**20:.0f} MiB"
    )
    print(
        f"port (build model + load):   {port['seconds']:.3f} s, peak +"
        f"{port['peak_growth'] / 2**20:.0f} MiB"
    )
    print(f"  first port (cold cache):   {cold['seconds']:.3f} s")
    print(f"weight transfer alone:       {port['transfer_seconds']:.3f} s")
    print(f"floor: Keras builds the layers, no variable values: {build['seconds']:.3f} s")
    print(f"       keras.applications.ResNet50(weights=None):    {resnet50['seconds']:.3f} s")
    print(f"keras.saving.load_model of the ported .keras:       {load_model['seconds']:.3f} s")
    floor_s = read["seconds"] + build["seconds"]
    print(f"time ratio, whole port / read:    {port['seconds'] / read['seconds']:.2f}")
    print(f"time ratio, first port / read:    {cold['seconds'] / read['seconds']:.2f}")
    print(f"time ratio, floor (build) / read: {build['seconds'] / read['seconds']:.2f}")
    print(
        f"time ratio, transfer / read:      {port['transfer_seconds'] / read['seconds']:.2f}"
        "  (target <= 1.5)"
    )
    extra = (port["peak_growth"] - read["peak_growth"]) / size
    print(f"peak memory: port = baseline + {extra:.2f}x checkpoint size  (target <= 2.0)")
    floor = f"(Keras building the model's layers alone: {build['seconds'] / read['seconds']:.2f}x)"
    return finish(
        [
            Target(
                "port",
                "whole port / (read + Keras build, no variables) time",
                port["seconds"] / floor_s,
                1.5,
                detail=f"(whole port / read alone: {port['seconds'] / read['seconds']:.2f}x)",
            ),
            Target(
                "port",
                "whole port / keras.saving.load_model time",
                port["seconds"] / load_model["seconds"],
                0.35,
                detail=floor,
            ),
            Target(
                "port",
                "weight transfer / read time",
                port["transfer_seconds"] / read["seconds"],
                1.5,
            ),
            Target("port", "peak memory over baseline / checkpoint size", extra, 2.0),
        ],
        args.strict,
    )


if __name__ == "__main__":
    sys.exit(main())
