"""TensorBoard summaries of an owner's variables, tagged by canonical names.

`tu.summaries(owner, step)` writes, under the default `tf.summary` writer, one
histogram (`<owner>/<canonical name>/histogram`) and one norm
(`<owner>/<canonical name>/norm`) per variable; `SummaryCallback` does it from Keras
`fit` at the end of every epoch. Keras' own `keras.callbacks.TensorBoard(histogram_freq=1)`
works through `tu.keras_layer` too: its tags are the weights' paths,
`<layer name>/<canonical name>/histogram`. Histograms need the `tensorboard` package
(`pip install 'tfunite[all]'`).
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf
from tfunite.errors import missing_dependency
from tfunite.owner import Owner


def _tags(owner: Owner) -> list[tuple[str, str, tf.Variable]]:
    """[(histogram tag, norm tag, variable)]: unique, since an owner's canonical names are
    (checked when it is built) and the two suffixes differ."""
    return [
        (f"{owner.name}/{name}/histogram", f"{owner.name}/{name}/norm", var)
        for name, var in owner.variables.items()
    ]


def summaries(owner: Owner, step: int | tf.Tensor) -> bool:
    """Write a histogram and a norm of each of `owner`'s variables at `step`.

    Written under the default writer (`with writer.as_default():`); returns False,
    writing nothing, when there is none (as `tf.summary` does). Works eagerly and in
    `tf.function`.

    >>> owner = tu.wrap(keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)]), name="net")
    >>> with tf.summary.create_file_writer("logs").as_default():
    ...     tu.summaries(owner, step=0)
    True
    """
    try:  # without it, tf.summary.histogram is a stub that raises
        import tensorboard  # noqa: F401
    except ImportError:
        raise missing_dependency("tensorboard", "all", "tu.summaries (tf.summary.histogram)")
    written = True
    for histogram_tag, norm_tag, var in _tags(owner):
        written &= bool(tf.summary.histogram(histogram_tag, var, step=step))
        written &= bool(tf.summary.scalar(norm_tag, tf.norm(tf.cast(var, tf.float32)), step=step))
    return written


class SummaryCallback(keras.callbacks.Callback):
    """Keras callback: `tu.summaries(owner, epoch)` at the end of each epoch, into
    `log_dir` (a writer of its own, beside Keras' TensorBoard logs if you like)."""

    def __init__(self, owner: Owner, log_dir: str) -> None:
        super().__init__()
        self.owner = owner
        self.log_dir = log_dir
        self._writer: Any = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        with self._writer.as_default():
            summaries(self.owner, epoch)
        self._writer.flush()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
