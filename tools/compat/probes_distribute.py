"""The `distribute` compat probe: a bridge's owner trained under `tf.distribute`.

MirroredStrategy over two logical CPU devices: the owner and `tu.Optimizer` built
inside the scope, one step with `strategy.run` (each replica on its half of the batch,
inference mode so BatchNorm uses its moving statistics), compared with the same step
without a strategy; then `tu.save` under the strategy. Logical devices must exist
before TensorFlow initialises, so the compat worker calls `prepare()` first when this
feature is asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .cases import Case
from .helpers import built, fill, values
from .probes import Skip, probe

TOLERANCE = 1e-5  # two replicas sum their gradients in another order than one device


def prepare() -> None:
    """Split the CPU into two logical devices (a no-op once TensorFlow has initialised)."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2
        )
    except RuntimeError:
        pass  # already initialised: probe_distribute skips if there is one device


@probe("distribute")
def probe_distribute(case: Case, tmp: Path) -> None:
    import numpy as np
    import tensorflow as tf
    import tfunite as tu

    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(devices) < 2:
        raise Skip(
            "needs two logical CPU devices, configured before TensorFlow initialises "
            "(`tfunite compat` runs this probe in a worker that does it first)"
        )
    strategy = tf.distribute.MirroredStrategy(devices[:2])
    x = case.example()
    target = np.linspace(-1.0, 1.0, 6, dtype=np.float32).reshape(2, 3)

    def setup(scope: Any) -> tuple[Any, Any]:
        with scope.scope():
            owner, _ = built(case)
            fill(owner, 0.05)
            optimizer = tu.Optimizer("adam", owner, learning_rate=1e-2)
            optimizer.build()
        return owner, optimizer

    owner, opt = setup(strategy)
    ref, ref_opt = setup(tf.distribute.get_strategy())
    if list(owner.variables) != list(ref.variables):
        raise AssertionError(
            f"names under the strategy {list(owner.variables)} != {list(ref.variables)}"
        )
    plain = [
        n for n, v in owner.variables.items() if not isinstance(v, tf.distribute.DistributedValues)
    ]
    if plain:
        raise AssertionError(f"variables not distributed by the strategy: {plain}")

    def step(s: Any, o: Any, optimizer: Any, xs: Any, ys: Any) -> float:
        @tf.function
        def run(xs: Any, ys: Any) -> Any:
            def replica(xb: Any, yb: Any) -> Any:
                return optimizer.minimize(lambda: tf.reduce_sum((o(xb) - yb) ** 2) / len(x))

            return s.reduce("SUM", s.run(replica, (xs, ys)), axis=None)

        return float(run(xs, ys))

    def shard(a: np.ndarray) -> Any:  # replica i takes row i of the batch of 2
        return strategy.experimental_distribute_values_from_function(
            lambda ctx: a[ctx.replica_id_in_sync_group :][:1]
        )

    got = step(strategy, owner, opt, shard(x), shard(target))
    want = step(tf.distribute.get_strategy(), ref, ref_opt, x, target)
    if abs(got - want) > TOLERANCE:
        raise AssertionError(f"loss under MirroredStrategy {got:.7g}, without {want:.7g}")
    mine, theirs = values(owner), values(ref)
    for name, want_value in theirs.items():
        if not np.allclose(mine[name], want_value, rtol=0.0, atol=TOLERANCE):
            raise AssertionError(
                f"{name} after one step differs from one device by > {TOLERANCE:g}"
            )
    path = tu.save(tu.Parameters("run", model=owner, opt=opt), str(tmp / "ckpt"))
    reader = tf.train.load_checkpoint(path)
    # tu.save also writes TF's object graph and save counter (tf.train.Checkpoint's).
    tf_own = {"_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter/.ATTRIBUTES/VARIABLE_VALUE"}
    stored = {
        k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if k not in tf_own
    }
    expected = {f"model/{n}": v for n, v in mine.items()}
    expected.update({f"opt/{n}": v.numpy() for n, v in opt.variables.items()})
    if set(stored) != set(expected):
        raise AssertionError(f"checkpoint keys {sorted(stored)} != {sorted(expected)}")
    for name, value in expected.items():
        if not np.array_equal(stored[name], value):
            raise AssertionError(f"tu.save under MirroredStrategy stored another value of {name}")
