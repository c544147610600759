"""Benchmark: save and load of ~100 MB of float32 variables, tfunite vs tf.train.Checkpoint.

Model: a Keras 3 MLP of `--layers` Dense(2048) layers on a 2048-wide input (default 6:
25.2M parameters, 100.7 MB, largest tensor 16.8 MB), wrapped with `tu.wrap`.

- tfunite: `tu.save(owner, dir)` (atomic checkpoint directory) and `tu.load(owner, dir)`
  (strict, validated, all-or-nothing).
- native:  `tf.train.Checkpoint(model=model).write(prefix)` and `.read(prefix)` followed
  by `.assert_consumed()` (the same strictness), in the same temporary directory.

Times: warm-up, then rounds interleaved with alternating order; the ratio is the median
over rounds of tfunite/native. A correctness check first loads a checkpoint written
from different values and compares every variable.

Memory: each load is run in a fresh subprocess that builds the model, resets the RSS
high-water mark (`/proc/self/clear_refs`, falling back to `ru_maxrss`), loads, and
reports peak RSS minus RSS before the load. TensorFlow's CPU allocator keeps memory
it freed (here the initializers' temporaries, ~40 MB), and a load may reuse it, so the
growth is what a real "build, then load" process adds, not the bytes allocated.

Targets: save ratio <= 1.2; load ratio <= 1.0; peak RSS growth of a tfunite load
<= the native load's peak growth + the largest tensor (that is, the whole process peak
stays within model + largest tensor + what the baseline needs).

    python bench/bench_checkpoint.py [--strict] [--quick] [--layers N] [--repeats N]
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from common import (  # noqa: E402
    Target,
    finish,
    interleaved,
    machine,
    median,
    paired_ratio,
    parser,
    ratios,
    spread,
    timed,
)

WIDTH = 2048
SAVE_TARGET = 1.2
LOAD_TARGET = 1.0  # a checked, all-or-nothing load at most as slow as TF's read
MB = 1e6


def build(layers: int):
    """The Keras 3 model and its tfunite owner."""
    import keras
    import tfunite as tu

    model = keras.Sequential(
        [keras.Input((WIDTH,))] + [keras.layers.Dense(WIDTH) for _ in range(layers)], name="big"
    )
    return model, tu.wrap(model, name="big")


def sizes(owner) -> tuple[int, int]:
    """(total bytes, largest tensor bytes) of the owner's variables."""
    nbytes = [v.shape.num_elements() * v.dtype.size for v in owner.variables.values()]
    return sum(nbytes), max(nbytes)


# ---------------------------------------------------------------- memory (child process)
def _status(field: str) -> int:
    """A field of /proc/self/status in bytes (0 where /proc is missing)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def child_load(mode: str, path: str, layers: int) -> dict[str, float]:
    """In a fresh process: build the model, then load `path` once, measuring peak RSS."""
    import gc

    import tensorflow as tf
    import tfunite as tu

    model, owner = build(layers)
    if mode == "native":
        ckpt = tf.train.Checkpoint(model=model)
    gc.collect()
    reset = _reset_peak()
    rss0 = _status("VmRSS")
    maxrss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if mode == "native":
        ckpt.read(path).assert_consumed()
    else:
        tu.load(owner, path)
    if reset:
        peak = _status("VmHWM")
    else:  # ru_maxrss cannot be reset: only growth beyond the earlier peak is seen
        peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, maxrss0)
    return {"rss_before": rss0, "peak": peak, "growth": peak - rss0, "reset": reset}


def measure_memory(paths: dict[str, str], layers: int, repeats: int) -> dict[str, list[dict]]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out: dict[str, list[dict]] = {mode: [] for mode in paths}
    modes = list(paths)
    for i in range(repeats):
        for mode in modes if i % 2 == 0 else modes[::-1]:
            proc = subprocess.run(
                [
                    sys.executable,
                    os.path.abspath(__file__),
                    "--child",
                    mode,
                    paths[mode],
                    "--layers",
                    str(layers),
                ],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
            if proc.returncode != 0 or not lines:
                raise RuntimeError(f"memory child {mode} failed:\n{proc.stdout}\n{proc.stderr}")
            out[mode].append(json.loads(lines[-1]))
    return out


# ---------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--mem-repeats", type=int, default=3)
    p.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse_hidden())
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child_load(args.child[0], args.child[1], args.layers)))
        return 0
    if args.quick:
        args.repeats, args.mem_repeats = 3, 1

    import numpy as np
    import tensorflow as tf
    import tfunite as tu

    model, owner = build(args.layers)
    total, largest = sizes(owner)
    ckpt = tf.train.Checkpoint(model=model)
    tmp = tempfile.mkdtemp(prefix="tfunite-bench-ckpt-")
    try:
        native_prefix = os.path.join(tmp, "native", "ckpt")
        tu_dir = os.path.join(tmp, "tfunite")

        # Correctness: a load restores values written from a different state.
        written = [v.numpy() for v in owner.variables.values()]
        tu.save(owner, tu_dir)
        ckpt.write(native_prefix)
        for v in owner.variables.values():
            v.assign(tf.zeros_like(v))
        tu.load(owner, tu_dir)
        for (name, v), w in zip(owner.variables.items(), written):
            if not np.array_equal(v.numpy(), w):
                print(f"ERROR: after tu.load, {name} differs from the saved value.")
                return 2
        del written

        times = interleaved(
            {
                "native_save": timed(lambda: ckpt.write(native_prefix)),
                "tfunite_save": timed(lambda: tu.save(owner, tu_dir)),
                "native_load": timed(lambda: ckpt.read(native_prefix).assert_consumed()),
                "tfunite_load": timed(lambda: tu.load(owner, tu_dir)),
            },
            repeats=args.repeats,
            warmup=1,
        )
        save_ratio = paired_ratio(times["tfunite_save"], times["native_save"])
        load_ratio = paired_ratio(times["tfunite_load"], times["native_load"])

        mem = measure_memory(
            {"native": native_prefix, "tfunite": tu_dir}, args.layers, args.mem_repeats
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    growth = {mode: median([r["growth"] for r in runs]) for mode, runs in mem.items()}
    peak = {mode: median([r["peak"] for r in runs]) for mode, runs in mem.items()}
    before = {mode: median([r["rss_before"] for r in runs]) for mode, runs in mem.items()}
    mem_limit = growth["native"] + largest

    print(
        f"checkpoint: Keras 3 model, {args.layers} x Dense({WIDTH}), "
        f"{len(owner.variables)} variables, {total / MB:.1f} MB float32, largest tensor "
        f"{largest / MB:.1f} MB; temp dir {tempfile.gettempdir()}"
    )
    print(f"  {args.repeats} interleaved rounds; {machine()}")
    for kind in ("save", "load"):
        for side in ("native", "tfunite"):
            ts = times[f"{side}_{kind}"]
            print(f"  {kind} {side:8s}: {spread(ts)}  ({total / MB / median(ts):.0f} MB/s)")
        print(f"    {ratios(times[f'tfunite_{kind}'], times[f'native_{kind}'])}")
    print(
        f"  load memory, fresh process each ({args.mem_repeats} runs per side, median; "
        f"peak reset via clear_refs: {all(r['reset'] for rs in mem.values() for r in rs)}):"
    )
    for side in ("native", "tfunite"):
        print(
            f"    {side:8s}: RSS before {before[side] / MB:.1f} MB, peak {peak[side] / MB:.1f} MB, "
            f"peak growth {growth[side] / MB:.1f} MB ({growth[side] / total:.2f} x model)"
        )
    return finish(
        [
            Target("checkpoint", "save tfunite/native", save_ratio, SAVE_TARGET),
            Target("checkpoint", "load tfunite/native", load_ratio, LOAD_TARGET),
            Target(
                "checkpoint",
                "load peak RSS growth",
                growth["tfunite"] / MB,
                mem_limit / MB,
                unit="MB",
                detail=f"(native {growth['native'] / MB:.1f} MB + largest tensor "
                f"{largest / MB:.1f} MB)",
            ),
        ],
        args.strict,
    )


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    sys.exit(main())
