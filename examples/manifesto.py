"""The "TensorFlow Manifesto" demonstration: pretrain, load, fine-tune the top layer, save.

The manifesto asks that every variable have an owner that can list, initialize, save
and load it, and that optimizers track their own variables. This script does what it
describes, on scikit-learn's digits (8x8 images, shipped with the package):

1. **Pretrain** a small TF-Slim convnet (conv + batch_norm trunk, `logits` layer) on
   digits 0-4 the way the Slim model zoo's checkpoints were made: plain Slim code in a
   TF1 graph (no tfunite: `slim.learning.create_train_op`, which runs the batch-norm
   `UPDATE_OPS`), saved by a `tf.compat.v1.train.Saver` of the model variables. That
   file, with Slim's own names (`digits/conv1/weights`), is the "pretrained network".
2. **Fine-tune** on digits 5-9 in a fresh model: the same Slim trunk (`tu.slim`) under a
   new top layer (a tf_keras `Dense`, another framework), composed with
   `tu.Parameters`; `tu.load` restores the trunk from the native Slim checkpoint with a
   rule that drops the old head; the trunk is frozen by giving the optimizer
   (`tu.Optimizer`, which owns its slots) only the head; then everything (trunk, head,
   optimizer) is saved with `tu.save`.
3. **Check**: the fine-tuned accuracy on held-out 5-9 digits is > --min-accuracy, the
   loaded trunk equals the pretrained checkpoint exactly (right after the load and
   still after fine-tuning: frozen), and the final checkpoint holds it unchanged.

By default fine-tuning runs in a TF1 `tf.Graph` + `Session`, as in the manifesto
(`owner.initialize(session=sess)`, `opt.train_op(loss)` with a tf_keras optimizer,
since Keras 3 optimizers do not run in Sessions); `--eager` runs it eagerly with
`tf.function` training steps. Pretraining is plain Slim in a TF1 graph either way (it
stands for a downloaded checkpoint). Exit code 0 only if every check holds.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Slim, TFLearn and tf_keras' legacy layers warn about their own deprecated internals.
warnings.filterwarnings("ignore", message=r".*(deprecated|will be removed).*")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402
import tf_slim as slim  # noqa: E402
import tfunite as tu  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from tfunite import fixes  # noqa: E402

tf.get_logger().setLevel("ERROR")

SCOPE = "digits"  # the Slim scope of the net: checkpoint names are digits/conv1/weights, ...
CLASSES = 5  # each task has five classes: 0-4 (pretraining), 5-9 (fine-tuning)
BATCH = 64
HEAD_RULES = [(rf"{SCOPE}/logits/.*", None)]  # load the trunk, drop the old head on purpose


# ============================================================================ data
def split(digits: tuple[int, ...], seed: int = 0) -> dict[str, np.ndarray]:
    """Train/test split (70/30) of the given digit classes; labels relabelled to 0..4."""
    data = load_digits()
    keep = np.isin(data.target, digits)
    x = (data.data[keep] / 16.0).astype(np.float32)
    y = (data.target[keep] - min(digits)).astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    n = int(0.7 * len(x))
    return {"x_train": x[:n], "y_train": y[:n], "x_test": x[n:], "y_test": y[n:]}


def batches(x: np.ndarray, y: np.ndarray, steps: int, seed: int):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        idx = rng.integers(0, len(x), BATCH)
        yield x[idx], y[idx]


# ============================================================================ model
def arg_scope() -> dict:
    """Slim's usual arg_scope: weight decay and batch norm on every conv/fc layer."""
    with slim.arg_scope(
        [slim.conv2d, slim.fully_connected],
        weights_regularizer=slim.l2_regularizer(1e-4),
        normalizer_fn=slim.batch_norm,
    ) as scope:
        return scope


def _trunk_layers(inputs: tf.Tensor, is_training: bool) -> tf.Tensor:
    with slim.arg_scope([slim.batch_norm], is_training=is_training, decay=0.9):
        net = tf.reshape(inputs, [-1, 8, 8, 1])
        net = slim.conv2d(net, 32, [3, 3], scope="conv1")
        net = slim.conv2d(net, 64, [3, 3], scope="conv2")
        net = slim.max_pool2d(net, [2, 2], scope="pool2")
        net = slim.flatten(net, scope="flatten")
        return slim.fully_connected(net, 128, scope="fc3")


def trunk_fn(inputs: tf.Tensor, is_training: bool) -> tf.Tensor:
    """The feature extractor: 8x8 digit -> 128 features."""
    with tf.compat.v1.variable_scope(SCOPE):
        return _trunk_layers(inputs, is_training)


def pretrained_fn(inputs: tf.Tensor, is_training: bool) -> tf.Tensor:
    """The pretraining net: the trunk plus its own 5-way `logits` layer."""
    with tf.compat.v1.variable_scope(SCOPE):
        net = _trunk_layers(inputs, is_training)
        return slim.fully_connected(
            net, CLASSES, activation_fn=None, normalizer_fn=None, scope="logits"
        )


def new_head() -> Any:
    """The new top layer, from another framework (tf_keras runs in Sessions too)."""
    return tf_keras.layers.Dense(CLASSES, name="logits")


def xent(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    )


# ============================================================================ checks
def checkpoint_values(path: str, prefix: str = "") -> dict[str, np.ndarray]:
    reader = tf.train.load_checkpoint(path)
    return {
        k[len(prefix) :]: reader.get_tensor(k)
        for k in reader.get_variable_to_shape_map()
        if k.startswith(prefix)
    }


def same_as_checkpoint(values: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> list[str]:
    """Names whose value differs from (or is absent in) `expected`; [] if all are equal."""
    return [n for n, v in values.items() if n not in expected or not np.array_equal(v, expected[n])]


def trunk_expected(
    pretrained: dict[str, np.ndarray], trunk_names: list[str]
) -> dict[str, np.ndarray]:
    return {n: pretrained[n] for n in trunk_names}


# ============================================================================ pretraining
def pretrain_native(args: argparse.Namespace, pre: dict, workdir: str) -> dict[str, Any]:
    """1. Plain Slim in a TF1 graph, saved by a Saver of the model variables (no tfunite
    besides the legacy fixes that let Slim's batch_norm import on current TensorFlow)."""
    fixes.ensure("slim")
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        tf.compat.v1.set_random_seed(args.seed)
        x = tf.compat.v1.placeholder(tf.float32, [None, 64], name="x")
        y = tf.compat.v1.placeholder(tf.int32, [None], name="y")
        with slim.arg_scope(arg_scope()):
            train_logits = pretrained_fn(x, is_training=True)
            reuse = tf.compat.v1.variable_scope(tf.compat.v1.get_variable_scope(), reuse=True)
            with reuse:  # the same variables, batch norm in inference mode
                test_logits = pretrained_fn(x, is_training=False)
        loss = xent(y, train_logits) + tf.add_n(tf.compat.v1.losses.get_regularization_losses())
        train_op = slim.learning.create_train_op(loss, tf.compat.v1.train.AdamOptimizer(1e-2))
        saver = tf.compat.v1.train.Saver(slim.get_model_variables())  # no optimizer slots
        sess.run(tf.compat.v1.global_variables_initializer())
        for xb, yb in batches(pre["x_train"], pre["y_train"], args.pretrain_steps, args.seed):
            sess.run(train_op, {x: xb, y: yb})
        return {
            "pretrained_acc": accuracy(sess.run(test_logits, {x: pre["x_test"]}), pre["y_test"]),
            "pretrained_ckpt": saver.save(sess, os.path.join(workdir, "pretrained", SCOPE)),
        }


# ============================================================================ graph mode
def run_graph(args: argparse.Namespace, pre: dict, fine: dict, workdir: str) -> dict[str, Any]:
    """The demonstration in TF1 graphs + Sessions, one graph per phase."""
    result: dict[str, Any] = {"mode": "TF1 graph + Session"}

    # ---- 1. pretrain on digits 0-4: a native Slim checkpoint
    result.update(pretrain_native(args, pre, workdir))

    # ---- 2. fine-tune a new head on digits 5-9, trunk loaded and frozen; save
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        tf.compat.v1.set_random_seed(args.seed + 1)
        x = tf.compat.v1.placeholder(tf.float32, [None, 64], name="x")
        y = tf.compat.v1.placeholder(tf.int32, [None], name="y")
        trunk = tu.slim(trunk_fn, name="trunk", arg_scope=arg_scope())
        head = tu.wrap(new_head(), name="head")
        logits = head(trunk(x, training=False))  # frozen trunk: BN statistics stay as loaded
        opt = tu.Optimizer(tf_keras.optimizers.Adam(1e-2), head, name="opt")  # only the head
        train_op = opt.train_op(xent(y, logits))
        params = tu.Parameters("manifesto", trunk=trunk, head=head, opt=opt)
        params.initialize(session=sess)

        report = tu.load(trunk, result["pretrained_ckpt"], rules=HEAD_RULES, session=sess)
        result["load_report"] = report
        pretrained = checkpoint_values(result["pretrained_ckpt"])
        expected = trunk_expected(pretrained, list(trunk.variables))
        result["loaded_diff"] = same_as_checkpoint(sess.run(dict(trunk.variables)), expected)

        result["before_acc"] = accuracy(sess.run(logits, {x: fine["x_test"]}), fine["y_test"])
        for xb, yb in batches(fine["x_train"], fine["y_train"], args.finetune_steps, args.seed + 1):
            sess.run(train_op, {x: xb, y: yb})
        result["after_acc"] = accuracy(sess.run(logits, {x: fine["x_test"]}), fine["y_test"])
        result["frozen_diff"] = same_as_checkpoint(sess.run(dict(trunk.variables)), expected)
        result["final_ckpt"] = tu.save(params, os.path.join(workdir, "finetuned"), session=sess)
        result["n_variables"] = len(params.variables)
        result["n_trainable"] = len(opt.owner.trainable_variables)
        result["opt_variables"] = list(opt.variables)
    result["saved_diff"] = same_as_checkpoint(
        checkpoint_values(result["final_ckpt"], "trunk/"), expected
    )
    return result


# ============================================================================ eager mode
def run_eager(args: argparse.Namespace, pre: dict, fine: dict, workdir: str) -> dict[str, Any]:
    """The same fine-tuning eagerly, with tf.function training steps."""
    result: dict[str, Any] = {"mode": "eager + tf.function"}
    tf.random.set_seed(args.seed)

    def train(
        opt: tu.Optimizer,
        loss_fn: Callable[[tf.Tensor, tf.Tensor], tf.Tensor],
        data: dict,
        steps: int,
        seed: int,
    ) -> None:
        @tf.function
        def step(xb: tf.Tensor, yb: tf.Tensor) -> tf.Tensor:
            return opt.minimize(lambda: loss_fn(xb, yb))

        for xb, yb in batches(data["x_train"], data["y_train"], steps, seed):
            step(xb, yb)

    # ---- 1. pretrain on digits 0-4: a native Slim checkpoint (made in a TF1 graph)
    result.update(pretrain_native(args, pre, workdir))

    # ---- 2. fine-tune a new head on digits 5-9, trunk loaded and frozen; save
    trunk = tu.slim(trunk_fn, name="trunk", arg_scope=arg_scope())
    head = tu.wrap(new_head(), name="head")
    trunk.initialize(fine["x_train"][:1])
    head.initialize(trunk(fine["x_train"][:1]))
    opt = tu.Optimizer(tf_keras.optimizers.Adam(1e-2), head, name="opt")  # only the head
    opt.build()
    params = tu.Parameters("manifesto", trunk=trunk, head=head, opt=opt)

    report = tu.load(trunk, result["pretrained_ckpt"], rules=HEAD_RULES)
    result["load_report"] = report
    pretrained = checkpoint_values(result["pretrained_ckpt"])
    expected = trunk_expected(pretrained, list(trunk.variables))
    values = lambda: {n: v.numpy() for n, v in trunk.variables.items()}  # noqa: E731
    result["loaded_diff"] = same_as_checkpoint(values(), expected)

    predict = tf.function(lambda xb: head(trunk(xb, training=False)))
    result["before_acc"] = accuracy(predict(fine["x_test"]).numpy(), fine["y_test"])
    train(
        opt,
        lambda xb, yb: xent(yb, head(trunk(xb, training=False), training=True)),
        fine,
        args.finetune_steps,
        args.seed + 1,
    )
    result["after_acc"] = accuracy(predict(fine["x_test"]).numpy(), fine["y_test"])
    result["frozen_diff"] = same_as_checkpoint(values(), expected)
    result["final_ckpt"] = tu.save(params, os.path.join(workdir, "finetuned"))
    result["n_variables"] = len(params.variables)
    result["n_trainable"] = len(opt.owner.trainable_variables)
    result["opt_variables"] = list(opt.variables)
    result["saved_diff"] = same_as_checkpoint(
        checkpoint_values(result["final_ckpt"], "trunk/"), expected
    )
    return result


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(logits, axis=-1) == labels))


# ============================================================================ main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--eager", action="store_true", help="eager + tf.function instead of TF1 Session"
    )
    parser.add_argument("--pretrain-steps", type=int, default=400)
    parser.add_argument("--finetune-steps", type=int, default=300)
    parser.add_argument(
        "--min-accuracy",
        type=float,
        default=0.8,
        help="fine-tuned accuracy on held-out 5-9 digits must exceed this",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dir", default=None, help="where checkpoints go (default: a temp dir)")
    args = parser.parse_args(argv)
    workdir = args.dir or tempfile.mkdtemp(prefix="tfunite-manifesto-")
    os.makedirs(workdir, exist_ok=True)

    pre, fine = split((0, 1, 2, 3, 4), args.seed), split((5, 6, 7, 8, 9), args.seed)
    t0 = time.perf_counter()
    r = (run_eager if args.eager else run_graph)(args, pre, fine, workdir)
    seconds = time.perf_counter() - t0

    report = r["load_report"]
    print(f"mode: {r['mode']}")
    print(
        f"pretrained plain Slim net (TF1 graph, Saver) on digits 0-4: test accuracy "
        f"{r['pretrained_acc']:.3f} ({args.pretrain_steps} steps), saved to {r['pretrained_ckpt']}"
    )
    print(
        f"loaded trunk: {len(report.matched)} variables matched, "
        f"{len(report.dropped)} old-head entries dropped by rule, "
        f"{len(report.missing)} missing, {len(report.unexpected)} unexpected"
    )
    print(
        f"fine-tuning the new head on digits 5-9 ({r['n_trainable']} trainable variables, "
        f"trunk frozen): test accuracy before {r['before_acc']:.3f}, after {r['after_acc']:.3f} "
        f"({args.finetune_steps} steps)"
    )
    checks = {
        f"fine-tuned accuracy > {args.min_accuracy}": r["after_acc"] > args.min_accuracy,
        "loaded trunk equals the pretrained checkpoint exactly": not r["loaded_diff"],
        "trunk unchanged by fine-tuning (frozen)": not r["frozen_diff"],
        "saved trunk equals the pretrained checkpoint exactly": not r["saved_diff"],
    }
    print(
        f"the optimizer owns {len(r['opt_variables'])} variables: {', '.join(r['opt_variables'])}"
    )
    print(f"saved {r['n_variables']} variables (trunk, head, optimizer) to {r['final_ckpt']}")
    for what, ok in checks.items():
        print(f"check: {what}: {'yes' if ok else 'NO'}")
    for key in ("loaded_diff", "frozen_diff", "saved_diff"):
        if r[key]:
            print(f"  {key}: {r[key][:5]}")
    ok = all(checks.values())
    print(f"{'OK' if ok else 'FAILED'} in {seconds:.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
