"""One model from four frameworks, one optimizer, one checkpoint, restored exactly.

A digit classifier (scikit-learn's 8x8 digits, all 10 classes) built from:

    TF-Slim trunk      conv1, conv2 (weight decay + batch_norm via arg_scope), max_pool, flatten
    TFLearn block      fully_connected(128, L2 regularizer) + dropout(0.8)
    Sonnet 2 MLP       snt.nets.MLP([64, 64])
    Keras 3 head       Dense(10, L2 kernel regularizer)

Each part is wrapped into an owner (`tu.slim`, `tu.tflearn`, `tu.wrap`), they are composed
with `tu.Parameters`, and ONE `tu.Optimizer("adam", model)` trains all of them inside
`tf.function`, on cross-entropy plus every owner's regularization `losses` (Slim's
weight decay, TFLearn's L2, Keras' kernel regularizer). Model and optimizer are saved
with `tu.save`; then a fresh Python process runs this same file with `--restore`, builds
the same code, loads the checkpoint (strict: every name, shape and dtype) and writes its
logits on the test set, which must equal this process's logits exactly.

Exit code 0 only if the test accuracy exceeds --min-accuracy and the restored logits are
identical (`np.testing.assert_array_equal`).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import warnings
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Slim, TFLearn and tf_keras' legacy layers warn about their own deprecated internals.
warnings.filterwarnings("ignore", message=r".*(deprecated|will be removed).*")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import sonnet as snt  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_slim as slim  # noqa: E402
import tfunite as tu  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

tf.get_logger().setLevel("ERROR")

CLASSES, BATCH, WEIGHT_DECAY = 10, 64, 1e-4


# ============================================================================ data
def digits(seed: int = 0) -> dict[str, np.ndarray]:
    """All 10 classes of scikit-learn's digits, scaled to [0, 1], 75/25 train/test split."""
    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    n = int(0.75 * len(x))
    return {"x_train": x[:n], "y_train": y[:n], "x_test": x[n:], "y_test": y[n:]}


# ============================================================================ model
def slim_trunk(inputs: tf.Tensor, is_training: bool) -> tf.Tensor:
    """TF-Slim: 8x8 image -> conv features (batch_norm, weight decay from the arg_scope)."""
    with slim.arg_scope([slim.batch_norm], is_training=is_training, decay=0.9):
        net = tf.reshape(inputs, [-1, 8, 8, 1])
        net = slim.conv2d(net, 32, [3, 3], scope="conv1")
        net = slim.conv2d(net, 64, [3, 3], scope="conv2")
        net = slim.max_pool2d(net, [2, 2], scope="pool2")
        return slim.flatten(net, scope="flatten")


def slim_arg_scope() -> dict:
    with slim.arg_scope(
        [slim.conv2d],
        weights_regularizer=slim.l2_regularizer(WEIGHT_DECAY),
        normalizer_fn=slim.batch_norm,
    ) as scope:
        return scope


def tflearn_block(inputs: tf.Tensor) -> tf.Tensor:
    """TFLearn: a regularized fully-connected layer and dropout (on only when training)."""
    import tflearn  # importable once a TFLearn owner exists (the bridge's fixes are applied)

    net = tflearn.fully_connected(
        inputs, 128, activation="relu", regularizer="L2", weight_decay=WEIGHT_DECAY, scope="fc"
    )
    return tflearn.dropout(net, 0.8, name="dropout")


def build(seed: int = 0) -> tuple[tu.Parameters, tu.Optimizer, Any]:
    """The same model code for training and for the fresh-process restore.

    Returns (everything to checkpoint, the optimizer, forward(x, training) -> logits).
    """
    keras.utils.set_random_seed(seed)
    trunk = tu.slim(slim_trunk, name="trunk", arg_scope=slim_arg_scope())
    block = tu.tflearn(tflearn_block, name="block")
    mlp = tu.wrap(snt.nets.MLP([64, 64], activate_final=True, name="mlp"), name="mlp")
    head = tu.wrap(
        keras.Sequential(
            [
                keras.Input((64,)),
                keras.layers.Dense(CLASSES, kernel_regularizer=keras.regularizers.L2(WEIGHT_DECAY)),
            ],
            name="head",
        ),
        name="head",
    )

    def forward(x: tf.Tensor, training: bool = False) -> tf.Tensor:
        return head(mlp(block(trunk(x, training=training), training=training)), training=training)

    forward(np.zeros([1, 64], np.float32))  # builds every owner
    model = tu.Parameters("model", trunk=trunk, block=block, mlp=mlp, head=head)
    opt = tu.Optimizer("adam", model, name="opt", learning_rate=2e-3)
    opt.build()
    return tu.Parameters("run", model=model, opt=opt), opt, forward


def train(
    run: tu.Parameters, opt: tu.Optimizer, forward: Any, data: dict, steps: int, seed: int
) -> list[float]:
    """`steps` Adam steps in tf.function on cross-entropy + every owner's regularization loss."""
    model = run["model"]

    @tf.function
    def step(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        def loss_fn() -> tf.Tensor:
            logits = forward(x, training=True)
            xent = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
            )
            return xent + tf.add_n(model.losses)

        return opt.minimize(loss_fn), tf.add_n(model.losses)

    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(steps):
        idx = rng.integers(0, len(data["x_train"]), BATCH)
        loss, reg = step(data["x_train"][idx], data["y_train"][idx])
        losses.append(float(loss))
    losses.append(float(reg))
    return losses


def predictor(forward: Any) -> Any:
    return tf.function(lambda x: forward(x, training=False))


# ============================================================================ main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--min-accuracy", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--dir", default=None, help="where the checkpoint goes (default: a temp dir)"
    )
    parser.add_argument("--restore", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    workdir = args.dir or tempfile.mkdtemp(prefix="tfunite-mixed-")
    os.makedirs(workdir, exist_ok=True)
    ckpt = os.path.join(workdir, "ckpt")
    data = digits(args.seed)

    if args.restore:  # the fresh process: same code, different random init, then load
        run, _, forward = build(seed=args.seed + 12345)
        report = tu.load(run, ckpt)  # strict: every name, shape and dtype
        np.save(
            os.path.join(workdir, "restored_logits.npy"), predictor(forward)(data["x_test"]).numpy()
        )
        print(f"fresh process: {len(report.matched)} variables loaded from {ckpt}")
        return 0

    t0 = time.perf_counter()
    run, opt, forward = build(args.seed)
    model = run["model"]
    print(
        "model: "
        + ", ".join(
            f"{key} ({child.framework}, {len(child.variables)} variables)"
            for key, child in model.items()
        )
    )
    print(f"regularization losses: {len(model.losses)} (Slim weight decay, TFLearn L2, Keras L2)")
    losses = train(run, opt, forward, data, args.steps, args.seed)
    logits = predictor(forward)(data["x_test"]).numpy()
    acc = float(np.mean(np.argmax(logits, -1) == data["y_test"]))
    print(
        f"trained {args.steps} steps with one tu.Optimizer('adam') over "
        f"{len(model.trainable_variables)} trainable variables: loss {losses[0]:.3f} -> "
        f"{losses[-2]:.3f} (regularization {losses[-1]:.4f})"
    )
    print(f"test accuracy (10 classes, {len(logits)} held-out digits): {acc:.3f}")
    prefix = tu.save(run, ckpt)
    print(f"saved {len(run.variables)} variables (model and optimizer) to {prefix}")
    train_seconds = time.perf_counter() - t0

    subprocess.run(
        [
            sys.executable,
            os.path.abspath(__file__),
            "--restore",
            "--dir",
            workdir,
            "--seed",
            str(args.seed),
        ],
        check=True,
    )
    restored = np.load(os.path.join(workdir, "restored_logits.npy"))
    try:
        np.testing.assert_array_equal(restored, logits)
        same = True
    except AssertionError as e:
        same = False
        print(f"restored logits differ: {e}")
    print(f"restored in a fresh process: test-set logits {'identical' if same else 'DIFFER'}")
    good = acc > args.min_accuracy
    print(f"test accuracy > {args.min_accuracy}: {'yes' if good else 'NO'}")
    print(
        f"{'OK' if good and same else 'FAILED'} (training {train_seconds:.1f} s, "
        f"total {time.perf_counter() - t0:.1f} s)"
    )
    return 0 if good and same else 1


if __name__ == "__main__":
    sys.exit(main())
