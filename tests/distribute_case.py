"""MirroredStrategy over two logical CPUs: the scenarios of tests/test_distribute.py.

Logical devices must be configured before TensorFlow initialises its devices, so this
runs in a fresh process (`run_fresh("from tests.distribute_case import main; main(d)")`).
Each scenario asserts here (errors with `pytest.raises(match=...)`); `main` prints one
JSON object of the measured numbers that the test checks again.
"""

from __future__ import annotations

import json
import os
import warnings
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore", message=r".*(deprecated|will be removed).*")

import tensorflow as tf  # noqa: E402

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import sonnet as snt  # noqa: E402
import tf_slim as slim  # noqa: E402
import tfunite as tu  # noqa: E402
from tfunite.readers import TF_KEYS  # noqa: E402

from tests.distribute_fit import fit_mirrored  # noqa: E402

GLOBAL, FEATURES, STEPS = 8, 6, 3
DEVICES = ["/cpu:0", "/cpu:1"]


def mixed(
    strategy: Any, seed: int = 0, make_optimizer: Any = None
) -> tuple[tu.Parameters, tu.Optimizer, Any]:
    """Slim fully_connected -> Sonnet MLP -> Keras 3 Dense, Adam (or `make_optimizer()`);
    deterministic values."""

    def trunk_fn(x: tf.Tensor, is_training: bool) -> tf.Tensor:
        return slim.fully_connected(x, 8, scope="fc1")

    with strategy.scope():
        trunk = tu.slim(trunk_fn, name="trunk")
        mlp = tu.wrap(snt.nets.MLP([8], activate_final=True, name="mlp"), name="mlp")
        head = tu.wrap(keras.Sequential([keras.layers.Dense(1)], name="head"), name="head")

        def forward(x: Any, training: bool = False) -> tf.Tensor:
            return head(mlp(trunk(x, training=training), training=training), training=training)

        forward(np.zeros([1, FEATURES], np.float32))
        model = tu.Parameters("model", trunk=trunk, mlp=mlp, head=head)
        made = make_optimizer() if make_optimizer else keras.optimizers.Adam(0.05)
        opt = tu.Optimizer(made, model, name="opt")  # an instance
        opt.build()
    rng = np.random.default_rng(seed)
    for var in model.variables.values():
        var.assign(rng.normal(0.0, 0.3, var.shape).astype(np.float32))
    return tu.Parameters("run", model=model, opt=opt), opt, forward


def batch(step: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(100 + step)
    x = rng.normal(size=(GLOBAL, FEATURES)).astype(np.float32)
    return x, (x[:, :1] - x[:, 1:2]).astype(np.float32)


def shard(strategy: Any, a: np.ndarray) -> Any:
    n = strategy.num_replicas_in_sync
    if n == 1:
        return a
    per = len(a) // n
    return strategy.experimental_distribute_values_from_function(
        lambda ctx: a[ctx.replica_id_in_sync_group * per :][:per]
    )


def train(strategy: Any, opt: tu.Optimizer, forward: Any, steps: int = STEPS) -> list[float]:
    @tf.function
    def step(x: Any, y: Any) -> tf.Tensor:
        def replica(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
            return opt.minimize(
                lambda: tf.reduce_sum((forward(x, training=True) - y) ** 2) / GLOBAL
            )

        return strategy.reduce("SUM", strategy.run(replica, (x, y)), axis=None)

    return [float(step(*(shard(strategy, a) for a in batch(k)))) for k in range(1, steps + 1)]


def values(owner: Any) -> dict[str, np.ndarray]:
    return {n: v.numpy() for n, v in owner.variables.items()}


def components_agree(owner: Any) -> bool:
    return all(
        all(np.array_equal(c.numpy(), v.values[0].numpy()) for c in v.values)
        for v in owner.variables.values()
    )


# ============================================================================ scenarios
def training_and_checkpoints(workdir: str) -> dict:
    """Item 1 and 2: losses, weights, names, checkpoints with and without a strategy."""
    mirrored = tf.distribute.MirroredStrategy(DEVICES)
    default = tf.distribute.get_strategy()
    run_m, opt_m, fwd_m = mixed(mirrored)
    run_1, opt_1, fwd_1 = mixed(default)
    types = sorted({type(v).__name__ for v in run_m.variables.values()})
    assert types == ["MirroredVariable"], types
    assert list(run_m.variables) == list(run_1.variables)
    assert not any("replica" in n for n in run_m.variables)
    losses_m = train(mirrored, opt_m, fwd_m)
    losses_1 = train(default, opt_1, fwd_1)
    weights_m, weights_1 = values(run_m), values(run_1)
    assert components_agree(run_m)

    # Checkpoints: same keys, same values (within the training tolerance).
    tu.save(run_m, os.path.join(workdir, "mirrored"))
    tu.save(run_1, os.path.join(workdir, "single"))
    read_m = tf.train.load_checkpoint(os.path.join(workdir, "mirrored"))
    read_1 = tf.train.load_checkpoint(os.path.join(workdir, "single"))
    keys_m = sorted(read_m.get_variable_to_shape_map())
    keys_1 = sorted(read_1.get_variable_to_shape_map())
    assert keys_m == keys_1 == sorted([*run_1.variables, *TF_KEYS])
    ckpt_diff = max(
        float(np.abs(read_m.get_tensor(k) - read_1.get_tensor(k)).max()) for k in run_1.variables
    )

    # Written under the strategy -> loads without one (exactly); written without -> loads
    # into two replicas (every replica's copy exactly).
    plain, _, _ = mixed(default, seed=7)
    tu.load(plain, os.path.join(workdir, "mirrored"))
    for n, v in values(plain).items():
        np.testing.assert_array_equal(v, read_m.get_tensor(n))
    two, _, _ = mixed(mirrored, seed=7)
    tu.load(two, os.path.join(workdir, "single"))
    for n, v in two.variables.items():
        for c in v.values:
            np.testing.assert_array_equal(c.numpy(), read_1.get_tensor(n))

    # A checkpoint of another model, under the strategy: refused, nothing changed.
    other = tu.wrap(keras.Sequential([keras.layers.Dense(3, name="other")]), name="other")
    with mirrored.scope():
        other.initialize(np.zeros([1, 2], np.float32))
    tu.save(other, os.path.join(workdir, "other"))
    before = values(two)
    with pytest.raises(tu.LoadError, match=r"missing"):
        tu.load(two, os.path.join(workdir, "other"))
    for n, v in values(two).items():
        np.testing.assert_array_equal(v, before[n])
    return {
        "losses_mirrored": losses_m,
        "losses_single": losses_1,
        "weight_diff": max(float(np.abs(weights_m[n] - weights_1[n]).max()) for n in weights_1),
        "ckpt_diff": ckpt_diff,
        "names": list(run_m.variables),
    }


def batchnorm() -> dict:
    """BatchNorm of every bridge: moving statistics = the mean of the replicas' updates."""

    def build(strategy: Any) -> tuple[tu.Parameters, Any]:
        def slim_bn(x: tf.Tensor, is_training: bool) -> tf.Tensor:
            return slim.batch_norm(x, decay=0.9, is_training=is_training, scope="bn")

        with strategy.scope():
            parts = {
                "slim": tu.slim(slim_bn, name="slim"),
                "sonnet": tu.wrap(snt.BatchNorm(True, True, decay_rate=0.9), name="sonnet"),
                "keras": tu.wrap(
                    keras.Sequential([keras.layers.BatchNormalization(momentum=0.9)]),
                    name="keras",
                ),
            }
            for owner in parts.values():
                owner.initialize(np.zeros([2, FEATURES], np.float32))
        return tu.Parameters("bn", **parts), parts

    def stats(owner: Any) -> dict[str, np.ndarray]:
        return {n: v for n, v in values(owner).items() if "mov" in n}

    x = np.random.default_rng(3).normal(2.0, 3.0, size=(GLOBAL, FEATURES)).astype(np.float32)
    mirrored = tf.distribute.MirroredStrategy(DEVICES)
    params, parts = build(mirrored)

    @tf.function
    def update(x: Any) -> None:
        mirrored.run(lambda x: [o(x, training=True) for o in parts.values()], (x,))

    update(shard(mirrored, x))
    assert components_agree(params)
    got = stats(params)
    # The reference: one device, each replica's shard on a fresh copy, then averaged.
    halves = []
    for half in (x[: GLOBAL // 2], x[GLOBAL // 2 :]):
        ref, ref_parts = build(tf.distribute.get_strategy())
        for o in ref_parts.values():
            o(half, training=True)
        halves.append(stats(ref))
    for n in got:  # float32 default tolerance: a mean of two updates, rounded once more
        np.testing.assert_allclose(got[n], (halves[0][n] + halves[1][n]) / 2, 1e-6, 1e-6, err_msg=n)
    diff = {n: float(np.abs(got[n] - (halves[0][n] + halves[1][n]) / 2).max()) for n in got}
    moved = {n: float(np.abs(halves[0][n] - halves[1][n]).max()) for n in got}
    return {"bn_diff": diff, "bn_halves_differ": moved}


def keras_input_batchnorm(workdir: str) -> dict:
    """A Keras model built by keras.Input before its owner ran, under the strategy.

    Its statistics keep Keras' aggregation NONE: each replica moves its own copy, and
    tu.save refuses them rather than write one replica's."""
    # Keras BatchNorm built at construction (keras.Input): its statistics keep Keras'
    # aggregation NONE, each replica updates its own copy; the save refuses them.
    mirrored = tf.distribute.MirroredStrategy(DEVICES)
    with mirrored.scope():
        built = keras.Sequential([keras.Input((FEATURES,)), keras.layers.BatchNormalization()])
        owner = tu.wrap(built, name="built")
    x = np.random.default_rng(5).normal(size=(GLOBAL, FEATURES)).astype(np.float32)

    tf.function(lambda x: mirrored.run(lambda x: owner(x, training=True), (x,)))(shard(mirrored, x))
    path = os.path.join(workdir, "disagree")
    with pytest.raises(
        tu.DistributeError, match=r"replicas disagree on batch_normalization/moving_"
    ):
        tu.save(owner, path)
    assert not os.path.exists(os.path.join(path, "checkpoint"))
    return {"keras_input_bn": "refused at save"}


def refusals(workdir: str) -> dict:
    """Item 4 and bad input: clear errors, nothing changed."""
    mirrored = tf.distribute.MirroredStrategy(DEVICES)
    run_m, _, fwd_m = mixed(mirrored)
    model = run_m["model"]
    # tu.Optimizer built outside the scope for owners inside it.
    with pytest.raises(tu.DistributeError, match=r"created under no strategy .*outside"):
        tu.Optimizer("adam", model).build()
    # A Sonnet optimizer under MirroredStrategy: refused.
    with mirrored.scope():
        with pytest.raises(tu.DistributeError, match=r"Sonnet optimizers do not all-reduce"):
            tu.Optimizer(snt.optimizers.Adam(0.1), model).build()
    # An owner built outside the scope, stepped inside strategy.run.
    run_1, opt_1, fwd_1 = mixed(tf.distribute.get_strategy())
    before = values(run_1)
    with pytest.raises(tu.DistributeError, match=r"not created inside that strategy's scope"):
        train(mirrored, opt_1, fwd_1, steps=1)
    for n, v in values(run_1).items():
        np.testing.assert_array_equal(v, before[n])
    # An optimizer built inside the scope over an owner built outside it.
    with mirrored.scope():
        with pytest.raises(tu.DistributeError, match=r"owner was built outside strategy"):
            tu.Optimizer("adam", run_1["model"]).build()
    # Owners from both sides of the scope in one Parameters.
    mixed_up = tu.Parameters("both", inside=model["head"], outside=run_1["model"]["trunk"])
    with pytest.raises(tu.DistributeError, match=r"belong to different strategies"):
        tu.Optimizer("adam", mixed_up).build()
    # A keras_layer made inside the scope over an owner built outside it.
    with mirrored.scope():
        with pytest.raises(
            tu.DistributeError, match=r"tu.keras_layer\('trunk'\) is made inside .*built outside"
        ):
            tu.keras_layer(run_1["model"]["trunk"])
    for n, v in values(run_1).items():
        np.testing.assert_array_equal(v, before[n])
    return {"refusals": 6}


def sgd_sums_once() -> dict:
    """Plain SGD, which (unlike Adam) scales with the gradient: one step under the
    strategy equals one step on one device only if the replicas' gradients are summed
    exactly once (Keras 3.3-3.5 summed none; tfunite sums them for those)."""
    mirrored = tf.distribute.MirroredStrategy(DEVICES)
    default = tf.distribute.get_strategy()

    def sgd() -> Any:
        return keras.optimizers.SGD(0.1)

    run_m, opt_m, fwd_m = mixed(mirrored, make_optimizer=sgd)
    run_1, opt_1, fwd_1 = mixed(default, make_optimizer=sgd)
    start = values(run_1)
    train(mirrored, opt_m, fwd_m, steps=1)
    train(default, opt_1, fwd_1, steps=1)
    mine, theirs = values(run_m), values(run_1)
    return {
        "sgd_max_diff": max(float(np.max(np.abs(mine[n] - theirs[n]))) for n in theirs),
        "sgd_moved": max(float(np.max(np.abs(theirs[n] - start[n]))) for n in theirs),
        "sgd_components_agree": components_agree(run_m),
    }


def main(workdir: str) -> None:
    out = {
        **sgd_sums_once(),
        **keras_input_batchnorm(workdir),
        **training_and_checkpoints(workdir),
        **batchnorm(),
        **refusals(workdir),
        **fit_mirrored(DEVICES),
    }
    print(json.dumps(out))
