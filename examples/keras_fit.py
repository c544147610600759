"""Slim + Sonnet + Keras trained with Keras `fit`, logged to TensorBoard, exported as a SavedModel.

A digit classifier (scikit-learn's 8x8 digits, all 10 classes):

    TF-Slim trunk      conv1, conv2 (batch_norm, weight decay), max_pool, flatten  tu.slim
    Sonnet 2 head      snt.nets.MLP([64])                                          tu.wrap
    Keras 3 layers     Dropout, Dense(10)

The two owners become Keras layers with `tu.keras_layer` (their own variables are the
layers' weights), so one functional `keras.Model` trains everything with
`compile`/`fit`: Slim's weight decay reaches the fit loss, batch-norm statistics move in
`fit` and not in `predict`. Keras' `TensorBoard` callback logs losses and per-weight
histograms (tagged by canonical names, `trunk/conv1/weights/histogram`), and
`tu.interop.summaries.SummaryCallback` logs each owner variable's norm. `model.export`
writes a SavedModel, which a fresh Python process that imports neither tfunite nor
Slim or Sonnet loads with `tf.saved_model.load` to predict the test set.

Exit code 0 only if the test accuracy exceeds --min-accuracy and the reloaded
SavedModel's predictions equal Keras' (rtol=atol=1e-6).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Slim's legacy layers warn about their own deprecated internals.
warnings.filterwarnings("ignore", message=r".*(deprecated|will be removed).*")
# Keras' TensorBoard callback writes the model's JSON config if it can; layers made
# without factory= have none (they save with save_weights, and export as SavedModel).
warnings.filterwarnings("ignore", message=r"Model failed to serialize as JSON")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import sonnet as snt  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_slim as slim  # noqa: E402
import tfunite as tu  # noqa: E402
from mixed_model import digits  # noqa: E402  (the same data as examples/mixed_model.py)
from tfunite.interop.summaries import SummaryCallback  # noqa: E402

tf.get_logger().setLevel("ERROR")

CLASSES, WEIGHT_DECAY = 10, 1e-4

# Run by a fresh interpreter: TensorFlow only (no tfunite, no framework), SavedModel in,
# predictions out.
RELOAD = """
import json, sys
import numpy as np
import tensorflow as tf
export, x_path, out_path = sys.argv[1:4]
loaded = tf.saved_model.load(export)
np.save(out_path, loaded.serve(tf.constant(np.load(x_path))).numpy())
frameworks = ("tfunite", "tf_slim", "sonnet", "tflearn")  # (TensorFlow imports keras itself)
print(json.dumps({"imported": sorted(m for m in sys.modules if m.split(".")[0] in frameworks)}))
"""


def slim_trunk(inputs: tf.Tensor, is_training: bool) -> tf.Tensor:
    """TF-Slim: 8x8 image -> conv features (batch_norm and weight decay)."""
    with slim.arg_scope(
        [slim.conv2d],
        weights_regularizer=slim.l2_regularizer(WEIGHT_DECAY),
        normalizer_fn=slim.batch_norm,
        normalizer_params={"is_training": is_training, "decay": 0.9},
    ):
        net = tf.reshape(inputs, [-1, 8, 8, 1])
        net = slim.conv2d(net, 16, [3, 3], scope="conv1")
        net = slim.conv2d(net, 32, [3, 3], scope="conv2")
        net = slim.max_pool2d(net, [2, 2], scope="pool2")
        return slim.flatten(net, scope="flatten")


def build(seed: int) -> tuple[keras.Model, tu.Owner, tu.Owner]:
    keras.utils.set_random_seed(seed)
    trunk = tu.slim(slim_trunk, name="trunk")
    head = tu.wrap(snt.nets.MLP([64], activate_final=True, name="mlp"), name="head")
    inputs = keras.Input((64,), name="pixels")
    features = tu.keras_layer(trunk, input_shape=(64,))(inputs)
    hidden = tu.keras_layer(head, input_shape=(features.shape[-1],))(features)
    hidden = keras.layers.Dropout(0.2)(hidden)
    logits = keras.layers.Dense(CLASSES, name="logits")(hidden)
    return keras.Model(inputs, logits, name="digits"), trunk, head


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--min-accuracy", type=float, default=0.85)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dir", default=None, help="logs and export (default: a temp dir)")
    args = parser.parse_args(argv)
    workdir = args.dir or tempfile.mkdtemp(prefix="tfunite-kerasfit-")
    os.makedirs(workdir, exist_ok=True)
    logs, export = os.path.join(workdir, "logs"), os.path.join(workdir, "export", "1")
    data = digits(args.seed)

    t0 = time.perf_counter()
    model, trunk, head = build(args.seed)
    print(
        f"model: trunk ({trunk.framework}, {len(trunk.variables)} variables), head "
        f"({head.framework}, {len(head.variables)} variables), Keras Dropout + Dense"
    )
    stats = {k: v.numpy().copy() for k, v in trunk.variables.items() if "moving" in k}
    model.predict(data["x_test"], verbose=0)
    still = all(np.array_equal(trunk.variables[k].numpy(), v) for k, v in stats.items())
    model.compile(
        keras.optimizers.Adam(3e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = model.fit(
        data["x_train"],
        data["y_train"],
        epochs=args.epochs,
        batch_size=64,
        validation_split=0.1,
        verbose=0,
        callbacks=[
            keras.callbacks.TensorBoard(logs, histogram_freq=1),
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=3),
            SummaryCallback(trunk, os.path.join(logs, "owners")),
        ],
    )
    moved = all(not np.array_equal(trunk.variables[k].numpy(), v) for k, v in stats.items())
    losses = history.history["loss"]
    print(
        f"fit: {len(losses)} epochs, loss {losses[0]:.3f} -> {losses[-1]:.3f} "
        f"(includes {len(trunk.losses)} Slim weight-decay terms)"
    )
    print(
        f"batch-norm statistics: unchanged by predict: {'yes' if still else 'NO'}, "
        f"moved by fit: {'yes' if moved else 'NO'}"
    )
    logits = model.predict(data["x_test"], verbose=0)
    acc = float(np.mean(np.argmax(logits, -1) == data["y_test"]))
    print(f"test accuracy (10 classes, {len(logits)} held-out digits): {acc:.3f}")
    tags = set()
    for path in glob.glob(os.path.join(logs, "**", "events.*"), recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(v.tag for v in event.summary.value)
    print(
        f"TensorBoard: {len(tags)} tags, e.g. "
        f"{'trunk/conv1/weights/histogram' if 'trunk/conv1/weights/histogram' in tags else '?'}"
        f", {'trunk/conv1/weights/norm' if 'trunk/conv1/weights/norm' in tags else '?'}"
    )

    model.export(export, verbose=False)  # Keras' own SavedModel export (endpoint "serve")
    x_path, out_path = os.path.join(workdir, "x_test.npy"), os.path.join(workdir, "reloaded.npy")
    np.save(x_path, data["x_test"])
    proc = subprocess.run(
        [sys.executable, "-c", RELOAD, export, x_path, out_path],
        check=True,
        capture_output=True,
        text=True,
    )
    imported = json.loads(proc.stdout.strip().splitlines()[-1])["imported"]
    reloaded = np.load(out_path)
    try:
        np.testing.assert_allclose(reloaded, logits, rtol=1e-6, atol=1e-6)
        same = True
    except AssertionError as e:
        same = False
        print(f"reloaded predictions differ: {e}")
    clean = not imported
    print(
        f"SavedModel {export} reloaded in a fresh process without tfunite "
        f"(frameworks imported there: {imported or 'none'}): predictions "
        f"{'equal' if same else 'DIFFER'}"
    )
    good = acc > args.min_accuracy and still and moved
    print(f"test accuracy > {args.min_accuracy}: {'yes' if acc > args.min_accuracy else 'NO'}")
    ok = good and same and clean
    print(f"{'OK' if ok else 'FAILED'} (total {time.perf_counter() - t0:.1f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
