"""Writing results atomically: `.keras` files (`save_atomic`) and Slim-named V2
checkpoints (`write_checkpoint`); `check_output` refuses a bad path before any work."""

from __future__ import annotations

import contextlib
import glob
import os
import re
import tempfile
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from .errors import OutputError


def check_output(path: str) -> str:
    """Refuse early an output path that cannot be written; returns the absolute path."""
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    if os.path.isdir(path):
        raise OutputError(
            f"Output path {path!r} is a directory. Fix: give a file name ending in .keras."
        )
    if not path.endswith(".keras"):
        raise OutputError(
            f"Output path {path!r} must end in '.keras' (Keras 3 saves whole models only in "
            f"that format). Fix: use {os.path.splitext(path)[0] + '.keras'!r}."
        )
    if not os.path.isdir(folder):
        raise OutputError(
            f"Cannot write {path!r}: the directory {folder!r} does not exist. "
            "Fix: create it first or choose another path."
        )
    if not os.access(folder, os.W_OK):
        raise OutputError(
            f"Cannot write {path!r}: the directory {folder!r} is not writable. "
            "Fix: choose a writable directory."
        )
    return path


def _umask() -> int:
    """The process umask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def remove_stale_temporaries(folder: str, base: str) -> list[str]:
    """Remove the temporary files of `save_atomic` calls for `base` whose process is
    gone (killed mid-write: ``.<base>.<pid>.<random>.tmp.keras``); returns their names."""
    pattern = re.compile(rf"\.{re.escape(base)}\.(\d+)\.[^.]+\.tmp\.keras$")
    removed = []
    for name in os.listdir(folder):
        m = pattern.match(name)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            with contextlib.suppress(OSError):
                os.remove(os.path.join(folder, name))
                removed.append(name)
    return removed


def save_atomic(model: Any, path: str) -> str:
    """Save `model` to `path` via a temporary file in the same folder and a rename.

    The temporary file's name holds this process's id, so a later call removes those of
    processes killed mid-write (`remove_stale_temporaries`); a reader of `path` sees the
    previous file or the new one, never a part of one.
    """
    path = check_output(path)
    folder, base = os.path.split(path)
    remove_stale_temporaries(folder, base)
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.{os.getpid()}.", suffix=".tmp.keras", dir=folder)
    os.close(fd)
    try:
        model.save(tmp)
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(e, OSError):
            raise OutputError(f"Writing {path!r} failed: {e}. Nothing was written.") from e
        raise
    return path


def write_checkpoint(values: Mapping[str, np.ndarray], path: str) -> str:
    """Write a name-based V2 checkpoint as atomically as a pair of files allows.

    TF writes the bundle under a temporary prefix in the same folder; then the data
    file(s) are renamed into place and the index last, so a reader never finds the new
    index without its data. Shards of an older checkpoint at `path` that the new one
    does not have are removed after the index is in place. If writing fails, the
    temporary files are removed and `OutputError` is raised.
    """
    path = os.path.abspath(os.fspath(path))
    folder, base = os.path.split(path)
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise OutputError(
            f"Cannot write checkpoint {path!r}: the directory {folder!r} does not exist or "
            "is not writable. Fix: create it or choose another path."
        )
    tmp_base = f".{base}.tmp-{os.getpid()}"
    tmp = os.path.join(folder, tmp_base)
    names = sorted(values)

    moved: list[str] = []

    def temporary_files() -> list[str]:
        return sorted(f for f in os.listdir(folder) if f.startswith(tmp_base + "."))

    try:
        with tf.device("/cpu:0"):
            tf.raw_ops.SaveV2(
                prefix=tmp,
                tensor_names=names,
                shape_and_slices=[""] * len(names),
                tensors=[tf.constant(values[n]) for n in names],
            )
        produced = [f for f in temporary_files() if os.path.isfile(os.path.join(folder, f))]
        data = [f for f in produced if f[len(tmp_base) :].startswith(".data-")]
        index = [f for f in produced if f == tmp_base + ".index"]
        for f in data + index:  # the index last: it is what makes the bundle visible
            os.replace(os.path.join(folder, f), os.path.join(folder, base + f[len(tmp_base) :]))
            moved.append(base + f[len(tmp_base) :])
    except BaseException as e:
        for f in temporary_files():
            with contextlib.suppress(OSError):
                if os.path.isfile(os.path.join(folder, f)):
                    os.remove(os.path.join(folder, f))
        if isinstance(e, (tf.errors.OpError, OSError)):
            text = (getattr(e, "message", None) or str(e)).strip()
            text = re.sub(r"\{\{[^}]*\}\}\s*|\s*\[Op:\w+\]", "", text)  # TF's op wrapper
            first = text.splitlines()[0] if text else type(e).__name__
            done = (
                f"Only {moved} were renamed into place: the checkpoint at {path!r} is "
                "inconsistent; delete it"
                if moved
                else "Nothing was written (the temporary files were removed)"
            )
            raise OutputError(
                f"Writing checkpoint {path!r} failed: {first}. {done}. Fix: check free disk "
                "space and that the folder is writable, then export again."
            ) from None
        raise
    written = {base + f[len(tmp_base) :] for f in data}
    for old in glob.glob(glob.escape(path) + ".data-*-of-*"):
        if os.path.basename(old) not in written:
            with contextlib.suppress(OSError):
                os.remove(old)
    return path
