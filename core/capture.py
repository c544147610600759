"""Variable capture: which owner created which `tf.Variable`.

`tf.variable_creator_scope` sees every `tf.Variable` any TF-based library creates,
eagerly, inside `tf.function` and in TF1 graphs. An owner runs its framework code
inside `capturing(owner)`; `strict()` makes a variable created outside any owner an
error (the manifesto's first principle: every variable has an owner).
"""

from __future__ import annotations

import contextlib
import os
import threading
import traceback
from collections.abc import Iterator
from typing import Any

import tensorflow as tf

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

    def creator(next_creator, **kwargs):
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


_OWN_DIRS = (
    os.sep + "tensorflow" + os.sep,
    os.sep + "keras" + os.sep,
    os.sep + "tf_keras" + os.sep,
    os.sep + "sonnet" + os.sep,
    os.sep + "tf_slim" + os.sep,
    os.sep + "tflearn" + os.sep,
    os.path.dirname(os.path.abspath(__file__)) + os.sep,
    os.sep + "contextlib.py",
)


def _user_frame() -> str:
    """`file:line in function` of the innermost frame outside TF, frameworks and tfunite."""
    for frame in reversed(traceback.extract_stack()[:-2]):
        if not any(part in frame.filename for part in _OWN_DIRS):
            return f"{frame.filename}:{frame.lineno} in {frame.name}"
    return "<unknown>"


@contextlib.contextmanager
def strict() -> Iterator[None]:
    """Inside this context, creating a `tf.Variable` outside any owner raises.

    >>> with tu.strict():
    ...     tf.Variable(1.0)            # raises OwnershipError naming the line
    """

    def creator(next_creator, **kwargs):
        if current_owner() is None:
            name = kwargs.get("name") or "<unnamed>"
            raise OwnershipError(
                f"Variable {name!r} was created outside any owner at {_user_frame()} "
                "while tu.strict() is active. Expected every variable to be created "
                "by an owner's call or initialize(). Fix: wrap the code that creates it "
                "(tu.wrap(module), tu.slim(fn), tu.tflearn(fn)) and call the owner, or "
                "create it outside the strict block."
            )
        return next_creator(**kwargs)

    with tf.variable_creator_scope(creator):
        yield
