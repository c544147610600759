"""Benchmark: one training step of the mixed Slim + Sonnet + Keras 3 model under
tf.distribute, tfunite vs the same layers driven natively under the same strategy.

Model: the one of `examples/distributed.py` (its code is imported, not copied): a TF-Slim
fully_connected trunk, a Sonnet MLP and a Keras 3 Dense head; global batch 16, Adam,
stepped with `strategy.run`, each replica on its shard.

- tfunite: the example's `build` (owners and `tu.Optimizer("adam")` inside the scope).
- native:  the Slim code inside a tf_keras layer whose `call` is decorated with
  `track_tf1_style_variables`, a Sonnet MLP and a Keras 3 model as they are, one Keras 3
  Adam created inside the scope over all trainable variables, a `tf.GradientTape` and
  `adam.apply` inside `strategy.run`, in `tf.function`. Same initial weights.

Strategies: `MirroredStrategy` over two logical CPU devices (this process), and
`MultiWorkerMirroredStrategy` with two worker processes on localhost (`TF_CONFIG`, free
ports), each running this file with `--worker`; the chief prints its result lines,
relayed here. Both sides are first checked to give the same losses for 3 steps
(rtol=atol=1e-6: the same ops in the same order). Rounds of `--steps` steps are
interleaved; the ratio is the median over rounds of tfunite time / native time.

    python bench/bench_distribute.py [--steps 10] [--repeats 31] [--quick] [--strict]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from common import RESULT_PREFIX, Target, compare_steps, finish, parser  # noqa: E402

TARGET = 1.05
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "distributed.py"
RTOL = ATOL = 1e-6  # float32, the same ops in the same order on both sides


def load_example() -> Any:
    spec = importlib.util.spec_from_file_location("distributed_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measure(strategy: Any, label: str, steps: int, repeats: int) -> Target:
    """Build both sides under `strategy`, check they agree, time them; one Target."""
    import keras
    import numpy as np
    import sonnet as snt
    import tensorflow as tf
    import tf_keras
    import tf_slim as slim
    from tf_keras.src.legacy_tf_layers.variable_scope_shim import track_tf1_style_variables

    ex = load_example()
    run, opt, forward = ex.build(strategy)  # tfunite side
    model = run["model"]

    class NativeSlim(tf_keras.layers.Layer):
        @track_tf1_style_variables
        def call(self, inputs: tf.Tensor) -> tf.Tensor:
            return slim.fully_connected(inputs, 16, scope="fc1")

    with strategy.scope():
        trunk = NativeSlim(name="trunk")
        mlp = snt.nets.MLP([16], activate_final=True, name="mlp")
        head = keras.Sequential([keras.layers.Dense(1)], name="head")
        head(mlp(trunk(np.zeros([1, ex.FEATURES], np.float32))))
        native_vars = (
            list(trunk._tf1_style_var_store._vars.values())
            + list(tf.Module.variables.fget(mlp))
            + [w.value for w in head.weights]
        )
        adam = keras.optimizers.Adam(learning_rate=0.05)
        adam.build(native_vars)
    owned = list(model.variables.values())
    for mine, theirs in zip(owned, native_vars):
        assert mine.shape == theirs.shape, (mine.name, theirs.name)
        theirs.assign(mine)

    def make(side: str) -> Any:
        @tf.function
        def step(x: Any, y: Any) -> tf.Tensor:
            def replica(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
                if side == "tfunite":
                    return opt.minimize(
                        lambda: (
                            tf.reduce_sum((forward(x, training=True) - y) ** 2) / ex.GLOBAL_BATCH
                        )
                    )
                with tf.GradientTape() as tape:
                    loss = tf.reduce_sum((head(mlp(trunk(x))) - y) ** 2) / ex.GLOBAL_BATCH
                adam.apply(tape.gradient(loss, native_vars), native_vars)
                return loss

            return strategy.reduce("SUM", strategy.run(replica, (x, y)), axis=None)

        return step

    n = strategy.num_replicas_in_sync
    per = ex.GLOBAL_BATCH // n

    def shard(a: np.ndarray) -> Any:
        return strategy.experimental_distribute_values_from_function(
            lambda ctx: tf.constant(a[ctx.replica_id_in_sync_group * per :][:per])
        )

    x, y = (shard(a) for a in ex.batch(1))
    native, tfunite = make("native"), make("tfunite")
    for _ in range(3):
        np.testing.assert_allclose(tfunite(x, y).numpy(), native(x, y).numpy(), RTOL, ATOL)
    for mine, theirs in zip(owned, native_vars):
        np.testing.assert_allclose(mine.numpy(), theirs.numpy(), RTOL, ATOL)
    print(f"{label}: {n} replicas, global batch {ex.GLOBAL_BATCH}, adam, tf.function")
    print(f"  same losses and weights for 3 steps (rtol=atol={RTOL:g})")
    ratio = compare_steps(native, tfunite, x, y, steps, repeats)
    return Target(f"distribute_{label}", "tfunite/native step time", ratio, TARGET)


def multi_worker(steps: int, repeats: int, extra: list[str]) -> tuple[int, list[str]]:
    """Run the two workers; (exit status of the chief, the chief's result lines)."""
    ports = ",".join(map(str, load_example().free_ports(2)))
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", str(i), "--ports", ports]
            + ["--steps", str(steps), "--repeats", str(repeats), *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=1200) for p in procs]
    for i, (p, (_, err)) in enumerate(zip(procs, outs)):
        if p.returncode != 0:
            print(f"worker {i} exited {p.returncode}:\n{err[-3000:]}")
            return 1, []
    lines = outs[0][0].splitlines()
    print("\n".join(line for line in lines if not line.startswith(RESULT_PREFIX)))
    return 0, [line for line in lines if line.startswith(RESULT_PREFIX)]


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=10, help="steps per timed round")
    p.add_argument("--repeats", type=int, default=31, help="timed rounds per side")
    p.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--ports", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.repeats = 5, 9

    if args.worker is not None:
        os.environ["TF_CONFIG"] = json.dumps(
            {
                "cluster": {"worker": [f"localhost:{q}" for q in args.ports.split(",")]},
                "task": {"type": "worker", "index": args.worker},
            }
        )
        import tensorflow as tf

        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        target = measure(strategy, "multi_worker", args.steps, args.repeats)
        if args.worker == 0:  # relayed by the parent, which reports it
            print(RESULT_PREFIX + json.dumps(asdict(target)), flush=True)
        return 0

    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    targets = [measure(mirrored, "mirrored", args.steps, args.repeats)]
    status, lines = multi_worker(args.steps, args.repeats, ["--quick"] if args.quick else [])
    if status != 0:
        return status
    for line in lines:
        targets.append(Target(**json.loads(line[len(RESULT_PREFIX) :])))
    return finish(targets, args.strict)


if __name__ == "__main__":
    sys.exit(main())
