"""The processes tests/test_faults.py kills: a zygote that imports TensorFlow once, and
workers forked from it that save in a loop until they are SIGKILLed.

Importing TensorFlow, Keras and Sonnet takes seconds; the zygote does it once, runs no
TensorFlow op (TF's runtime and thread pools start with the first op, in the worker,
after the fork), then forks one worker per command line read on stdin:

    <scenario> <directory> <first index>

and prints ``pid <pid>`` for it, then ``exit <pid> <status>`` when it died. Workers
print ``ready`` once built, then ``saved <i>`` after each save returned, so the test
knows which states were complete when it killed the worker. Every save ``i`` writes
values that are all ``i``, so a state read back names the save that wrote it.

Scenarios:
- ``save``: a ~50 MB mixed owner (Keras 3 + Sonnet + a tf.Module with an int64 and a
  string variable, in a tu.Parameters) saved with `tu.save` to the directory, forever.
- ``port``: a Slim-named checkpoint of values ``i`` ported with `port_custom(...,
  output=...)` (the loader and atomic `.keras` write of ``tfunite port -o``), forever.
- ``save-full`` / ``port-full``: one good save, then RLIMIT_FSIZE (a full disk for this
  process), then one save of new values; prints ``error <json message>`` or ``no-error``.
- ``save-once`` / ``port-once``: one save, then exit 0.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys

WIDTH = 1024  # mixed owner: Dense(1024 -> 4096) + Dense(4096 -> 2048) = 50.3 MB of float32
FULL_LIMIT = 4 << 20  # bytes a process may write in the full-disk scenarios
SLIM_RULES = [(r"net/(.+)/weights", r"\1/kernel"), (r"net/(.+)/biases", r"\1/bias")]


def say(line: str) -> None:
    """One line to the test, in one write(2): a SIGKILL never leaves half a line."""
    os.write(1, (line + "\n").encode())


def mixed_owner():
    """A tu.Parameters of Keras 3, Sonnet and tf.Module owners (~50 MB)."""
    import keras
    import numpy as np
    import sonnet as snt
    import tensorflow as tf
    import tfunite as tu

    dense = keras.Sequential(
        [
            keras.Input((WIDTH,)),
            keras.layers.Dense(4 * WIDTH, kernel_initializer="zeros"),
            keras.layers.Dense(2 * WIDTH, kernel_initializer="zeros"),
        ],
        name="dense",
    )
    linear = tu.wrap(snt.Linear(16, name="linear"), name="linear")
    linear.initialize(np.zeros([1, 8], np.float32))
    module = tf.Module(name="state")
    module.step = tf.Variable(np.int64(0), name="step")
    module.tag = tf.Variable(b"", name="tag")
    return tu.Parameters(
        "mixed",
        keras=tu.wrap(dense, name="dense"),
        sonnet=linear,
        state=tu.wrap(module, name="state"),
    )


def fill(owner, i: int) -> None:
    """Set every variable of `owner` to `i` (strings to str(i))."""
    import tensorflow as tf

    for var in owner.variables.values():
        if var.dtype == tf.string:
            var.assign(str(i).encode())
        else:
            var.assign(tf.fill(var.shape, tf.cast(i, var.dtype)))


def states(values) -> set[str]:
    """The distinct values in a {name: array} mapping, as strings."""
    import numpy as np

    out = set()
    for value in values:
        flat = np.asarray(value).reshape(-1)
        if flat.dtype.kind in "OS":
            out.update(x.decode() for x in flat)
        elif flat.size:
            out.update({str(int(flat.min())), str(int(flat.max()))})
    return out


def port_model():
    """The Keras 3 model the `port` scenario writes (~8 MB)."""
    import keras

    return keras.Sequential(
        [
            keras.Input((512,)),
            keras.layers.Dense(2048, name="fc1", kernel_initializer="zeros"),
            keras.layers.Dense(512, name="fc2", kernel_initializer="zeros"),
        ],
        name="ported",
    )


def slim_checkpoint(model, directory: str, i: int) -> str:
    """A Slim-named checkpoint (``net/fc1/weights``, ...) of `model`'s shapes, values i."""
    import numpy as np
    import tensorflow as tf

    names, tensors = [], []
    for layer in model.layers:
        for weight, slim in zip(layer.weights, ("weights", "biases")):
            names.append(f"net/{layer.name}/{slim}")
            tensors.append(np.full(weight.shape, i, np.float32))
    prefix = os.path.join(directory, f"slim-{i}")
    tf.raw_ops.SaveV2(
        prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names), tensors=tensors
    )
    return prefix


def _source(model, directory: str, i: int) -> str:
    src = os.path.join(directory, "src")
    os.makedirs(src, exist_ok=True)
    return slim_checkpoint(model, src, i)


def _save(owner_or_model, directory: str, i: int, scenario: str, source: str = "") -> None:
    import tfunite as tu

    if scenario.startswith("save"):
        fill(owner_or_model, i)
        tu.save(owner_or_model, directory)
        return
    from tfunite.porting import port_custom

    prefix = source or _source(owner_or_model, directory, i)
    port_custom(
        prefix,
        owner_or_model,
        SLIM_RULES,
        output=os.path.join(directory, "out.keras"),
        print_plan=False,
    )
    src = os.path.dirname(prefix)
    for name in os.listdir(src):  # only the newest source checkpoint is kept
        if not name.startswith(os.path.basename(prefix) + "."):
            os.remove(os.path.join(src, name))


def worker(scenario: str, directory: str, first: int) -> None:
    """Build, print ``ready``, then save `first`, `first` + 1, ... (see the module doc)."""
    target = mixed_owner() if scenario.startswith("save") else port_model()
    say("ready")
    if scenario.endswith("-once"):
        _save(target, directory, first, scenario)
        say(f"saved {first}")
        return
    if scenario.endswith("-full"):
        from tfunite.errors import TfuniteError

        _save(target, directory, first, scenario)
        say(f"saved {first}")
        source = "" if scenario.startswith("save") else _source(target, directory, first + 1)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit: EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (FULL_LIMIT, FULL_LIMIT))
        try:
            _save(target, directory, first + 1, scenario, source)
        except TfuniteError as e:
            say(f"error {json.dumps([type(e).__name__, str(e)])}")
        else:
            say("no-error")
        return
    i = first
    while True:
        _save(target, directory, i, scenario)
        say(f"saved {i}")
        i += 1


def zygote() -> None:
    """Import once, then fork a worker per command on stdin (see the module doc)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras  # noqa: F401
    import numpy  # noqa: F401
    import sonnet  # noqa: F401
    import tensorflow  # noqa: F401
    import tfunite  # noqa: F401
    import tfunite.porting  # noqa: F401

    say("zygote")
    for line in sys.stdin:
        scenario, directory, first = line.split()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                worker(scenario, directory, int(first))
            except BaseException as e:  # the test reads this line, then the exit status
                say(f"crash {json.dumps(repr(e))}")
                code = 1
            finally:
                sys.stdout.flush()
                os._exit(code)
        say(f"pid {pid}")
        _, status = os.waitpid(pid, 0)
        say(f"exit {pid} {status}")


if __name__ == "__main__":
    zygote()
