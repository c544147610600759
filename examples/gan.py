"""A 1-D GAN the tfunite way: a Keras 3 generator against a Sonnet discriminator.

The model from the "TensorFlow 2.0: models migration" post, with tfunite owning every
variable: `tu.wrap` turns the Keras generator and the Sonnet discriminator into owners,
the discriminator is called twice per step (real and fake) on the same variables, two
`tu.Optimizer`s train `G.trainable_variables` and `D.trainable_variables`, and one
`tu.Parameters` holding models *and* optimizers is checkpointed mid-run.

Running this script (no arguments) does the whole demonstration:

1. trains for --steps steps, saving a checkpoint at --checkpoint-at, and records every
   step's losses (the uninterrupted run);
2. starts a fresh Python process that builds the same code, loads the checkpoint and
   trains the remaining steps;
3. checks the resumed losses equal the uninterrupted ones bit for bit, and that the
   generated mean is near the real mean. Exit code 0 only if both hold.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import sonnet as snt  # noqa: E402
import tensorflow as tf  # noqa: E402
import tfunite as tu  # noqa: E402

REAL_MEAN, REAL_STD, NOISE, BATCH = 4.0, 1.25, 4, 64


def build(seed: int = 0):
    """The same model code for the first run and the resumed one."""
    keras.utils.set_random_seed(seed)
    generator = keras.Sequential(
        [
            keras.Input((NOISE,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(1),
        ]
    )
    discriminator = snt.nets.MLP([16, 16, 1], activation=tf.nn.relu, name="discriminator")
    G = tu.wrap(generator, name="generator")
    D = tu.wrap(discriminator, name="discriminator")
    G.initialize(np.zeros([1, NOISE], np.float32))
    D.initialize(np.zeros([1, 1], np.float32))
    opt_g = tu.Optimizer("adam", G, name="opt_g", learning_rate=1e-3, beta_1=0.5)
    opt_d = tu.Optimizer("adam", D, name="opt_d", learning_rate=1e-3, beta_1=0.5)
    opt_g.build()
    opt_d.build()
    run = tu.Parameters("gan", G=G, D=D, opt_g=opt_g, opt_d=opt_d)

    bce = keras.losses.BinaryCrossentropy(from_logits=True)

    @tf.function
    def step(z, real):
        def d_loss():
            fake = G(z, training=True)
            real_logits, fake_logits = D(real), D(fake)  # D twice, same variables
            return bce(tf.ones_like(real_logits), real_logits) + bce(
                tf.zeros_like(fake_logits), fake_logits
            )

        def g_loss():
            fake_logits = D(G(z, training=True))
            return bce(tf.ones_like(fake_logits), fake_logits)

        return opt_d.minimize(d_loss), opt_g.minimize(g_loss)

    return run, step


def batch(step: int) -> tuple[np.ndarray, np.ndarray]:
    """The data of a step depends only on the step number, so a resumed run sees the same."""
    rng = np.random.default_rng(1000 + step)
    z = rng.normal(size=(BATCH, NOISE)).astype(np.float32)
    real = rng.normal(REAL_MEAN, REAL_STD, size=(BATCH, 1)).astype(np.float32)
    return z, real


def train(run, step, start: int, stop: int, save_at: int | None, ckpt: str) -> list[list[float]]:
    losses = []
    for i in range(start, stop):
        if i == save_at:
            tu.save(run, ckpt)
        d, g = step(*batch(i))
        losses.append([float(d), float(g)])  # float64 repr of the float32 loss: exact
    return losses


def generated_mean(run) -> float:
    z = np.random.default_rng(7).normal(size=(4096, NOISE)).astype(np.float32)
    return float(np.mean(run["G"](z)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--checkpoint-at", type=int, default=750)
    parser.add_argument(
        "--dir", default=None, help="where checkpoints and logs go (default: a temp dir)"
    )
    parser.add_argument("--resume", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 0 < args.checkpoint_at < args.steps:
        parser.error("--checkpoint-at must be between 0 and --steps")
    workdir = args.dir or tempfile.mkdtemp(prefix="tfunite-gan-")
    os.makedirs(workdir, exist_ok=True)
    ckpt = os.path.join(workdir, "ckpt")

    run, step = build()
    if args.resume:  # the fresh process
        report = tu.load(run, ckpt)
        losses = train(run, step, args.checkpoint_at, args.steps, None, ckpt)
        with open(os.path.join(workdir, "resumed.json"), "w") as f:
            json.dump({"losses": losses, "matched": len(report.matched)}, f)
        return 0

    losses = train(run, step, 0, args.steps, args.checkpoint_at, ckpt)
    mean = generated_mean(run)
    print(
        f"trained {args.steps} steps: generated mean {mean:.3f}, real mean {REAL_MEAN} "
        f"(d_loss {losses[-1][0]:.4f}, g_loss {losses[-1][1]:.4f})"
    )
    print(
        f"checkpoint at step {args.checkpoint_at}: {len(run.variables)} variables in {ckpt} "
        f"(models and both optimizers)"
    )

    subprocess.run(
        [
            sys.executable,
            os.path.abspath(__file__),
            "--steps",
            str(args.steps),
            "--checkpoint-at",
            str(args.checkpoint_at),
            "--dir",
            workdir,
            "--resume",
        ],
        check=True,
    )
    with open(os.path.join(workdir, "resumed.json")) as f:
        resumed = json.load(f)
    expected = losses[args.checkpoint_at :]
    same = resumed["losses"] == expected
    first_diff = next(
        (i for i, (a, b) in enumerate(zip(resumed["losses"], expected)) if a != b), None
    )
    print(
        f"resumed in a fresh process: {resumed['matched']} variables loaded, "
        f"{len(expected)} steps replayed: losses "
        + (
            "identical bit for bit"
            if same
            else f"DIFFER from step {args.checkpoint_at + first_diff}"
        )
    )
    near = abs(mean - REAL_MEAN) < 0.5
    print(f"generated mean within 0.5 of the real mean: {'yes' if near else 'NO'}")
    return 0 if same and near else 1


if __name__ == "__main__":
    sys.exit(main())
