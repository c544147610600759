"""Variable capture: which owner created which `tf.Variable`.

`tf.variable_creator_scope` sees every `tf.Variable` any TF-based library creates,
eagerly, inside `tf.function` and in TF1 graphs. An owner runs its framework code
inside `capturing(owner)`; `strict()` makes a variable created outside any owner an
error (the manifesto's first principle: every variable has an owner).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import re
import sys
import threading
import traceback
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import tensorflow as tf

from .distribute import aggregation_for
from .errors import OwnershipError

_local = threading.local()


def _stack() -> list[Any]:
    if not hasattr(_local, "owners"):
        _local.owners = []
    return _local.owners


def current_owner() -> Any | None:
    """The innermost owner whose framework code is running, or None."""
    stack = _stack()
    return stack[-1] if stack else None


@contextlib.contextmanager
def capturing(owner: Any) -> Iterator[list[tf.Variable]]:
    """Run framework code on behalf of `owner`; yields the list of variables it creates.

    Only variables created while `owner` is the innermost running owner are recorded,
    so a child owner called from a parent's code keeps its own variables.
    """
    created: list[tf.Variable] = []

    def creator(next_creator: Any, **kwargs: Any) -> Any:
        # Inside strategy.scope() this runs before the strategy's own creator, which
        # then makes the MirroredVariable recorded here (see distribute.py).
        aggregation = aggregation_for(kwargs)
        if aggregation is not None:
            kwargs["aggregation"] = aggregation
        variable = next_creator(**kwargs)
        if current_owner() is owner:
            created.append(variable)
        return variable

    stack = _stack()
    stack.append(owner)
    try:
        with tf.variable_creator_scope(creator):
            yield created
    finally:
        stack.pop()
    run_host_checks(owner)


_host_checks: list[tuple[str, str, Callable[[Any], None] | None]] | None = None


def run_host_checks(owner: Any) -> None:
    """Run the records' `host_check`s for `owner`, once its framework code has run.

    A framework whose objects can host an owner (a Keras 3 layer calling it) declares in
    its record a "module:function" that raises when the host does not track the owner's
    variables (they would silently not train). Core names no framework: the check is
    loaded from the record, and only once that framework is imported (a Keras layer
    cannot be running before `keras` is), so this costs a dict lookup per call otherwise.
    """
    global _host_checks
    if _host_checks is None:
        from .records import records

        _host_checks = [
            (r.import_name, r.host_check, None) for r in records().values() if r.host_check
        ]
    for i, (import_name, spec, check) in enumerate(_host_checks):
        if import_name not in sys.modules:
            continue
        if check is None:
            module, _, function = spec.partition(":")
            check = getattr(importlib.import_module(module), function)
            _host_checks[i] = (import_name, spec, check)
        check(owner)


# Besides the frameworks of the records: TensorFlow's own tree libraries and tfunite.
_LIBRARIES = (
    "tensorflow",
    "tree",
    "optree",
    "tfunite",
    *(f"tfunite.{p}" for p in ("bridges", "porting", "tools")),
)


def _library_names() -> tuple[str, ...]:
    """Import names of TensorFlow, every registered framework (from the records) and tfunite."""
    from .records import records

    names = [r.import_name for r in records().values()]
    return tuple(dict.fromkeys((*_LIBRARIES[:1], *names, *_LIBRARIES[1:])))


_library_dirs: tuple[str, ...] | None = None


def _own_dirs() -> tuple[str, ...]:
    """Install folders of TensorFlow, the frameworks and tfunite (found without importing
    them), so a user's own folder named `keras/` is still the user's."""
    global _library_dirs
    if _library_dirs is None:
        dirs = []
        for name in _library_names():
            try:
                spec = importlib.util.find_spec(name)
            except (ImportError, ValueError):
                spec = None
            for folder in (spec.submodule_search_locations or []) if spec else []:
                dirs.append(os.path.realpath(folder) + os.sep)
        _library_dirs = tuple(dirs)
    return _library_dirs


def _user_frame() -> str:
    """`file:line in function` of the innermost frame outside TF, frameworks and tfunite."""
    skip = _own_dirs()
    for frame in reversed(traceback.extract_stack()[:-2]):
        path = os.path.realpath(frame.filename)
        if not path.startswith(skip) and not frame.filename.endswith("contextlib.py"):
            return f"{frame.filename}:{frame.lineno} in {frame.name}"
    return "<unknown>"


_OWNERS: weakref.WeakSet[Any] = weakref.WeakSet()


def register_owner(owner: Any) -> None:
    """Remember `owner` (weakly): `strict()` asks every owner which variables it lists."""
    _OWNERS.add(owner)


def _owned_ids() -> set[int]:
    ids: set[int] = set()
    for owner in list(_OWNERS):
        if owner.built:
            try:
                ids.update(id(v) for v in owner.variables.values())
            except Exception:  # noqa: BLE001 - an owner that cannot list now adopts nothing
                continue
    return ids


@contextlib.contextmanager
def strict() -> Iterator[None]:
    """Inside this block, every `tf.Variable` created must belong to an owner.

    A variable created while an owner runs belongs to it. One created outside any owner
    (a framework constructor, such as Keras' `Dropout` seed state or Sonnet's BatchNorm
    counters, or a loose `tf.Variable`) must be listed by an owner built by the end of
    the block (`tu.wrap(model)` then a call or `initialize`); otherwise leaving the
    block raises `OwnershipError` naming each such variable and the line that made it.

    >>> with tu.strict():
    ...     loose = tf.Variable(1.0, name="loose")  # OwnershipError at the end of the block
    Traceback (most recent call last):
    tfunite.errors.OwnershipError: Variable 'loose' at ... was created outside any owner ...
    """
    loose: list[tuple[tf.Variable, str, str]] = []

    def creator(next_creator: Any, **kwargs: Any) -> Any:
        variable = next_creator(**kwargs)
        if current_owner() is None:
            name = getattr(variable, "name", None) or kwargs.get("name") or "<unnamed>"
            loose.append((variable, re.sub(r":\d+$", "", name), _user_frame()))
        return variable

    with tf.variable_creator_scope(creator):
        yield
    owned = _owned_ids() if loose else set()
    orphans = [(name, where) for var, name, where in loose if id(var) not in owned]
    if orphans:
        listed = "; ".join(f"{name!r} at {where}" for name, where in orphans[:5])
        more = f" (and {len(orphans) - 5} more)" if len(orphans) > 5 else ""
        raise OwnershipError(
            f"Variable {listed}{more} was created outside any owner and no owner listed it "
            "by the end of the tu.strict() block. Expected every variable to belong to an "
            "owner. Fix: wrap the object that holds it (tu.wrap(model), tu.slim(fn), "
            "tu.tflearn(fn)) and call or initialize the owner inside the block, or create "
            "it outside the strict block."
        )
