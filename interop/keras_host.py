"""The Keras record's host check: an owner run by a Keras 3 layer that does not track it.

core/capture.py runs `check_host(owner)` after every owner call once `keras` is imported
(the record's `host_check`). Inside a Keras call (Keras' call context names the entry
layer) whose entry layer does not track all of the owner's variables, `fit` would train
none of them and `save` would leave them out: raise `OwnershipError` pointing to
`tu.keras_layer`. A `tu.keras_layer` marks its own owner's calls (`hosting`), so they
pass at no cost. This module imports no Keras at import time: with Keras 2 installed as
`keras` (TensorFlow <= 2.15) there is no Keras 3 call context and the check passes.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from tfunite.errors import OwnershipError

_local = threading.local()


def _hosted() -> set[int]:
    if not hasattr(_local, "hosted"):
        _local.hosted = set()
    hosted: set[int] = _local.hosted
    return hosted


@contextlib.contextmanager
def hosting(owner: Any) -> Iterator[None]:
    """Mark `owner`'s calls in this block as run by its own `tu.keras_layer`."""
    hosted = _hosted()
    hosted.add(id(owner))
    try:
        yield
    finally:
        hosted.discard(id(owner))


def _call_context_layer() -> Any:
    try:
        from keras.src.backend.common import global_state
    except ImportError:  # Keras 2: no Keras 3 layer can be running
        return None
    ctx = global_state.get_global_attribute("current_call_ctx")
    return getattr(ctx, "entry_layer", None)


def _variable_ids(layer: Any) -> set[int]:
    ids = set()
    for v in layer.variables:
        ids.add(id(v))
        value = getattr(v, "_value", None)  # a keras.Variable's tf.Variable
        if value is not None:
            ids.add(id(value))
    return ids


def check_host(owner: Any) -> None:
    """Raise `OwnershipError` when `owner` ran inside a Keras call whose entry layer does
    not track its variables."""
    if id(owner) in _hosted():
        return
    host = _call_context_layer()
    if host is None:
        return
    try:
        listed = owner._collect()
    except Exception:  # noqa: BLE001 - an owner that cannot list (not built) is not judged
        return
    tracked = _variable_ids(host)
    untracked = [name for name, var, _ in listed if id(var) not in tracked]
    if untracked:
        raise OwnershipError(
            f"Owner {owner.name!r} ({owner.framework}) ran inside Keras layer "
            f"{host.name!r} ({type(host).__name__}), which does not track its variables "
            f"({len(untracked)} of {len(listed)}, first: {untracked[0]!r}): fit would not "
            "train them and save would not include them. Expected the owner to be "
            "called through a Keras layer holding its variables. Fix: in __init__, "
            f"self.{owner.name} = tu.keras_layer(owner), and call self.{owner.name}(x)."
        )
