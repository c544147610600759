"""Helpers of the compat probes and the golden checkpoints: deterministic values, exact
and tolerant comparisons, a TF1 graph + Session, pip hints from a bridge's record.

Nothing here imports a framework at module level.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tfunite.registry import Bridge

    from .cases import Case

RTOL = ATOL = 1e-6  # float32


def values(owner: Any, session: Any = None) -> dict[str, Any]:
    """{name: numpy value} of every variable of `owner`."""
    variables = dict(owner.variables)
    if session is not None:
        return dict(zip(variables, session.run(list(variables.values())), strict=True))
    return {name: var.numpy() for name, var in variables.items()}


def deterministic(shape: Sequence[int], dtype: Any, offset: float = 0.0) -> Any:
    """`np.arange(n).reshape(shape) * 0.01 + offset`, cast to `dtype` (golden values)."""
    import numpy as np

    n = int(np.prod(shape)) if len(shape) else 1
    return (np.arange(n, dtype=np.float64).reshape(shape) * 0.01 + offset).astype(dtype)


def fill(owner: Any, offset: float = 0.0, session: Any = None) -> dict[str, Any]:
    """Assign deterministic values to every variable of `owner`; returns them."""
    filled = {}
    for name, var in owner.variables.items():
        filled[name] = deterministic(var.shape.as_list(), var.dtype.as_numpy_dtype, offset)
    assign(owner, filled, session)
    return filled


def assign(owner: Any, new: dict[str, Any], session: Any = None) -> None:
    """Assign `{name: value}` to the variables of `owner` (in `session` when given)."""
    variables = owner.variables
    if session is None:
        for name, value in new.items():
            variables[name].assign(value)
    else:
        session.run([variables[name].assign(value) for name, value in new.items()])


def check_close(got: Any, want: Any, what: str, rtol: float = RTOL, atol: float = ATOL) -> None:
    """Raise AssertionError unless `got` is finite and allclose to `want`."""
    import numpy as np

    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        raise AssertionError(f"{what}: shape {got.shape}, expected {want.shape}")
    if not np.all(np.isfinite(got)):
        raise AssertionError(f"{what}: non-finite values {got}")
    if not np.allclose(got, want, rtol=rtol, atol=atol):
        diff = float(np.max(np.abs(got - want)))
        raise AssertionError(f"{what}: max abs difference {diff:.3g} > rtol=atol={rtol:g}")


def check_same_values(got: dict[str, Any], want: dict[str, Any], what: str) -> None:
    """Raise AssertionError unless both have the same names, in order, and equal values."""
    import numpy as np

    if list(got) != list(want):
        missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
        raise AssertionError(f"{what}: names differ (missing {missing}, unexpected {extra})")
    for name in want:
        if not np.array_equal(np.asarray(got[name]), np.asarray(want[name])):
            raise AssertionError(f"{what}: {name} is not restored exactly")


def check_names(owner: Any) -> list[str]:
    """The owner's variable names; raise AssertionError if any is not canonical."""
    names = list(owner.variables)
    if not names:
        raise AssertionError(f"{owner!r} has no variables after initialize()")
    bad = [n for n in names if n.endswith(":0") or n.startswith("/") or "//" in n]
    if bad:
        raise AssertionError(f"non-canonical names {bad} (expected '/'-joined paths without ':0')")
    return names


def built(case: Case) -> tuple[Any, Any]:
    """A fresh owner of `case`, built on its example batch, and the framework's object."""
    owner, native = case.build()
    owner.initialize(case.example())
    return owner, native


def object_key(native: Any) -> str:
    """The conventional `tf.train.Checkpoint` root name of a framework object: `model` for
    a Keras model (it has `save_weights`), `module` for a Sonnet module or tf.Module."""
    return "model" if callable(getattr(native, "save_weights", None)) else "module"


def pip_hint(record: Bridge) -> str:
    """The command that installs a bridge's framework: its tfunite extra if it has one."""
    if record.extra:
        return f"pip install 'tfunite[{record.extra}]'"
    return f"pip install {record.distribution}"


def not_installed(record: Bridge) -> str:
    """The skip reason of a bridge whose framework is not installed."""
    return f"{record.distribution} is not installed ({pip_hint(record)})"


@contextlib.contextmanager
def graph_session(bridge: str | None = None) -> Iterator[Any]:
    """A TF1 graph and its Session; with `bridge`, that bridge's legacy fixes are applied
    first, as a TF1 script does before building its first model in a graph (README)."""
    import tensorflow as tf
    from tfunite import fixes

    if bridge is not None:
        fixes.ensure(bridge)
    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        yield session
