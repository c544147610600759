"""A mixed Keras 3 + Sonnet + TF-Slim model trained by two workers, killed, resumed.

    python examples/distributed.py [--steps 6] [--dir DIR]

Launches two local worker processes (MultiWorkerMirroredStrategy, `TF_CONFIG` with free
localhost ports picked now), each training the same model code on its half of every
global batch:

    TF-Slim trunk     fully_connected(16)
    Sonnet 2 MLP      snt.nets.MLP([16])
    Keras 3 head      Dense(1)

with one `tu.Optimizer("adam", model)` built inside `strategy.scope()`, stepped with
`strategy.run`. Both workers call `tu.save` every 2 steps; only the chief (worker 0)
writes into DIR/ckpt, the other writes into a scratch directory it deletes. Worker 1
is killed (SIGKILL) in the middle of the run; the example then kills the chief too,
restarts both workers (new ports), which `tu.load` the last checkpoint and finish the
run. Finally this process trains the same model without any strategy on the same
global batches and compares: every loss and every variable of the final checkpoint
must agree (atol 1e-5: the two replicas' gradients are summed in a different order
than one device sums the whole batch). Exit code 0 only if they do and the checkpoint
directory holds nothing but the chief's checkpoint.

On a real cluster, the same worker code runs once per host with that host's TF_CONFIG
(README "Scaling out"); DIR must then be storage every worker can read.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore", message=r".*(deprecated|will be removed).*")

import numpy as np  # noqa: E402

GLOBAL_BATCH, FEATURES, SAVE_EVERY = 16, 6, 2


# ============================================================================ model
def build(strategy: Any) -> tuple[Any, Any, Any]:
    """The same model code for every worker and the single-process run.

    Returns (everything to checkpoint, the optimizer, forward(x, training))."""
    import keras
    import sonnet as snt
    import tensorflow as tf
    import tf_slim as slim
    import tfunite as tu

    def slim_trunk(x: tf.Tensor, is_training: bool) -> tf.Tensor:
        return slim.fully_connected(x, 16, scope="fc1")

    with strategy.scope():
        trunk = tu.slim(slim_trunk, name="trunk")
        mlp = tu.wrap(snt.nets.MLP([16], activate_final=True, name="mlp"), name="mlp")
        head = tu.wrap(keras.Sequential([keras.layers.Dense(1)], name="head"), name="head")

        def forward(x: Any, training: bool = False) -> tf.Tensor:
            return head(mlp(trunk(x, training=training), training=training), training=training)

        forward(np.zeros([1, FEATURES], np.float32))  # builds every owner inside the scope
        model = tu.Parameters("model", trunk=trunk, mlp=mlp, head=head)
        opt = tu.Optimizer("adam", model, name="opt", learning_rate=0.05)
        opt.build()
    # Deterministic values, the same in every process (no dependence on random seeds).
    rng = np.random.default_rng(0)
    for var in model.variables.values():
        var.assign(rng.normal(0.0, 0.3, var.shape).astype(np.float32))
    return tu.Parameters("run", model=model, opt=opt), opt, forward


def batch(step: int) -> tuple[np.ndarray, np.ndarray]:
    """The global batch of `step` (1-based): the same on every worker."""
    rng = np.random.default_rng(1000 + step)
    x = rng.normal(size=(GLOBAL_BATCH, FEATURES)).astype(np.float32)
    y = (x[:, :1] * 2.0 - x[:, 1:2] + 0.5).astype(np.float32)
    return x, y


def stepper(strategy: Any, opt: Any, forward: Any) -> Any:
    """One training step on a global batch: each replica takes its slice."""
    import tensorflow as tf

    n = strategy.num_replicas_in_sync
    per = GLOBAL_BATCH // n

    @tf.function
    def step(x: Any, y: Any) -> tf.Tensor:
        def replica(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
            def loss() -> tf.Tensor:  # the global batch's mean, summed over replicas
                return tf.reduce_sum((forward(x, training=True) - y) ** 2) / GLOBAL_BATCH

            return opt.minimize(loss)

        return strategy.reduce("SUM", strategy.run(replica, (x, y)), axis=None)

    def run(x: np.ndarray, y: np.ndarray) -> float:
        if n == 1:
            return float(step(x, y))

        def shard(a: np.ndarray) -> Any:
            return strategy.experimental_distribute_values_from_function(
                lambda ctx: a[ctx.replica_id_in_sync_group * per :][:per]
            )

        return float(step(shard(x), shard(y)))

    return run


def train(
    strategy: Any, ckpt: str | None, steps: int, die_after: int = 0, verbose: bool = True
) -> dict:
    """Train to `steps` (resuming from `ckpt` if it holds a checkpoint); returns the
    losses by step and the final variables."""
    import tensorflow as tf
    import tfunite as tu

    run, opt, forward = build(strategy)
    start = 0
    if ckpt and tf.train.latest_checkpoint(ckpt):
        tu.load(run, ckpt)  # strict: every variable, the optimizer's step and slots too
        start = int(opt.optimizer.iterations.numpy())
    step = stepper(strategy, opt, forward)
    losses = {}
    for k in range(start + 1, steps + 1):
        losses[k] = step(*batch(k))
        if verbose:
            print(json.dumps({"step": k, "loss": losses[k]}), flush=True)
        if die_after and k == die_after:
            os.kill(os.getpid(), signal.SIGKILL)  # a worker lost mid-run
        if ckpt and (k % SAVE_EVERY == 0 or k == steps):
            tu.save(run, ckpt)  # every worker; only the chief writes into ckpt
    return {"losses": losses, "variables": {n: v.numpy() for n, v in run.variables.items()}}


# ============================================================================ workers
def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def worker_main(args: argparse.Namespace) -> int:
    ports = args.ports.split(",")
    os.environ["TF_CONFIG"] = json.dumps(
        {
            "cluster": {"worker": [f"localhost:{p}" for p in ports]},
            "task": {"type": "worker", "index": args.worker},
        }
    )
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    die_after = args.die_after if args.worker == 1 else 0
    train(strategy, args.ckpt, args.steps, die_after)
    return 0


def launch(ckpt: str, steps: int, die_after: int = 0) -> list[subprocess.Popen]:
    ports = ",".join(map(str, free_ports(2)))
    procs = []
    for i in range(2):
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", str(i), "--ports", ports]
        cmd += ["--ckpt", ckpt, "--steps", str(steps), "--die-after", str(die_after)]
        procs.append(
            subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
            )
        )
    return procs


def reported_losses(out: str) -> dict[int, float]:
    rows = [json.loads(line) for line in out.splitlines() if line.startswith('{"step"')]
    return {r["step"]: r["loss"] for r in rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--dir", default=None, help="where the checkpoint goes")
    parser.add_argument("--timeout", type=float, default=240.0)
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--ports", default="", help=argparse.SUPPRESS)
    parser.add_argument("--ckpt", default="", help=argparse.SUPPRESS)
    parser.add_argument("--die-after", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        return worker_main(args)

    t0 = time.perf_counter()
    workdir = args.dir or tempfile.mkdtemp(prefix="tfunite-distributed-")
    os.makedirs(workdir, exist_ok=True)
    ckpt = os.path.join(workdir, "ckpt")
    die_after = SAVE_EVERY + 1  # after the first checkpoint, before the second

    # Run 1: two workers; worker 1 dies mid-run, then the chief is killed too.
    chief, other = launch(ckpt, args.steps, die_after)
    out1, err1 = other.communicate(timeout=args.timeout)
    chief.kill()
    out0, _ = chief.communicate(timeout=args.timeout)
    if other.returncode != -signal.SIGKILL:
        print(f"worker 1 was expected to die by SIGKILL, exited {other.returncode}:\n{err1}")
        return 1
    first = reported_losses(out0)
    saved = tf_latest(ckpt)
    print(f"run 1: worker 1 killed after step {die_after}; last checkpoint {saved}")

    # Run 2: both workers restart from the last checkpoint and finish.
    procs = launch(ckpt, args.steps)
    outs = [p.communicate(timeout=args.timeout) for p in procs]
    for i, (p, (_, err)) in enumerate(zip(procs, outs)):
        if p.returncode != 0:
            print(f"worker {i} of run 2 exited {p.returncode}:\n{err[-3000:]}")
            return 1
    resumed = reported_losses(outs[0][0])
    print(f"run 2: resumed at step {min(resumed)}, finished step {max(resumed)}")

    # The reference: one process, no strategy, the same global batches.
    import tensorflow as tf

    reference = train(tf.distribute.get_strategy(), None, args.steps, verbose=False)
    ok = True
    got = {**{k: v for k, v in first.items() if k <= SAVE_EVERY}, **resumed}
    for k in range(1, args.steps + 1):
        want = reference["losses"][k]
        same = k in got and abs(got[k] - want) <= 1e-5
        ok &= same
        print(f"step {k}: 2 workers {got.get(k, float('nan')):.6f}  one process {want:.6f}")
    reader = tf.train.load_checkpoint(ckpt)
    # tu.save also writes TF's object graph and save counter (tf.train.Checkpoint's).
    tf_own = {"_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter/.ATTRIBUTES/VARIABLE_VALUE"}
    keys = set(reader.get_variable_to_shape_map()) - tf_own
    if keys != set(reference["variables"]):
        print(f"checkpoint keys differ: {sorted(keys ^ set(reference['variables']))}")
        ok = False
    worst = max(
        float(np.abs(reader.get_tensor(n) - v).max()) for n, v in reference["variables"].items()
    )
    ok &= worst <= 1e-5
    print(f"checkpoint vs one process: {len(keys)} variables, max abs difference {worst:.2e}")
    leftovers = sorted(
        f for f in os.listdir(ckpt) if not (f == "checkpoint" or f.startswith("ckpt-"))
    )
    leftovers += sorted(f for f in os.listdir(workdir) if f.startswith(".ckpt"))
    if leftovers:
        print(f"left behind: {leftovers}")
        ok = False
    print(f"{'OK' if ok else 'FAILED'} in {time.perf_counter() - t0:.1f}s")
    return 0 if ok else 1


def tf_latest(ckpt: str) -> str | None:
    state = os.path.join(ckpt, "checkpoint")
    if not os.path.exists(state):
        return None
    with open(state) as f:
        return f.readline().split('"')[1]


if __name__ == "__main__":
    sys.exit(main())
