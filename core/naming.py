"""Stable names for Keras-style layer trees.

Keras numbers auto-generated layer names per process (`dense`, `dense_1`, ...), so the
same model code gets different names depending on what was built before it. Owners name
a layer by its path in the model's own structure instead, renumbering auto-generated
names among siblings in order: the first unnamed `Dense` child is `dense`, the second
`dense_1`, whatever the process built earlier. Names a user gave are kept, except a
name of the auto-generated form (`dense_7` on a `Dense`), which is renumbered too.
Unnamed weights inside one layer are renumbered likewise (`variable`, `variable_1`).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import tensorflow as tf

AutoBase = Callable[[Any], str]


def canonical(name: str) -> str:
    """A TF variable name without its `:0` output suffix."""
    return re.sub(r":\d+$", "", name)


def snake_case(name: str) -> str:
    """Keras' `to_snake_case` (the base of its auto-generated layer names)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def stable_child_names(children: Iterable[Any]) -> list[tuple[str, Any]]:
    """[(stable name, child)] for one parent's children, in order."""
    counts: dict[str, int] = {}
    out = []
    for child in children:
        name = child.name
        for base in _auto_bases(type(child)):
            if re.fullmatch(re.escape(base) + r"(_\d+)?", name):  # auto-generated: renumber
                n = counts.get(base, 0)
                counts[base] = n + 1
                name = base if n == 0 else f"{base}_{n}"
                break
        out.append((name, child))
    return out


def _auto_bases(cls: type) -> list[str]:
    """The names a layer of class `cls` may be auto-named after: its class and its bases
    up to `Layer` (tf_keras names a `Functional` model `model_N`, after its base)."""
    bases = []
    for klass in cls.__mro__:
        if klass.__name__ in ("Layer", "Module", "object"):
            break
        bases.append(snake_case(klass.__name__))
    return bases or [snake_case(cls.__name__)]


def distinct_child_names(children: Iterable[Any]) -> list[tuple[str, Any]]:
    """[(name, child)] keeping given names; a repeated name gets `_1`, `_2`, ... in order
    (Sonnet does not uniquify module names, so siblings may share one)."""
    seen: dict[str, int] = {}
    out = []
    for child in children:
        n = seen.get(child.name, 0)
        seen[child.name] = n + 1
        out.append((child.name if n == 0 else f"{child.name}_{n}", child))
    return out


_UNNAMED = re.compile(r"^(variable|Variable)(_\d+)?$")


def distinct_variable_names(pairs: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """One layer's own (name, variable) pairs with unnamed variables renumbered in order:
    Keras 3 numbers unnamed weights per process (`variable_7`), tf_keras and Sonnet give
    them all the same name (`Variable`); here they are `variable`, `variable_1`, ... in
    creation order, and any other repeated name gets `_1`, `_2` (as a TF1 graph would)."""
    out = []
    counts: dict[str, int] = {}
    for name, var in pairs:
        match = _UNNAMED.match(name)
        base = match.group(1) if match else name
        n = counts.get(base, 0)
        counts[base] = n + 1
        out.append((base if n == 0 else f"{base}_{n}", var))
    return out


def walk(
    root: Any,
    children: Callable[[Any], list[Any]],
    own_variables: Callable[[Any], list[tuple[str, Any]]],
    child_names: Callable[[Iterable[Any]], list[tuple[str, Any]]] = stable_child_names,
) -> list[tuple[str, Any]]:
    """[(path, variable)] for a layer tree: `own_variables(layer)` gives (name, var) pairs
    a layer holds itself, `children(layer)` its direct sub-layers, `child_names` names
    them. Shared layers and variables are listed once, at their first path."""
    out: list[tuple[str, Any]] = []
    seen_layers: set[int] = set()
    seen_vars: set[int] = set()

    def visit(layer: Any, prefix: str) -> None:
        if id(layer) in seen_layers:
            return
        seen_layers.add(id(layer))
        for name, var in distinct_variable_names(own_variables(layer)):
            if id(var) not in seen_vars:
                seen_vars.add(id(var))
                out.append((prefix + name, var))
        for name, child in child_names(children(layer)):
            visit(child, f"{prefix}{name}/")

    visit(root, "")
    return out


def _parameters(fn: Any) -> Any:
    """The parameters of `fn`, looking through decorators that hide them behind
    (*args, **kwargs) (Sonnet wraps every module method so), by `__wrapped__` or by
    the closure holding the original function of the same name."""
    name = getattr(fn, "__name__", None)
    queue, seen = [fn], set()
    while queue:
        f = queue.pop(0)
        if id(f) in seen or not callable(f):
            continue
        seen.add(id(f))
        params: Mapping[str, inspect.Parameter]
        try:
            params = inspect.signature(f).parameters
        except (TypeError, ValueError):
            params = {}
        named = [
            p
            for p in params.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"
        ]
        if named:
            return params
        inner = [getattr(f, "__wrapped__", None)] + [
            c.cell_contents
            for c in (getattr(f, "__closure__", None) or ())
            if inspect.isfunction(getattr(c, "cell_contents", None))
            and c.cell_contents.__name__ in (name, "__call__")
        ]
        queue.extend(x for x in inner if x is not None)
    return {}


def training_kwargs(fn: Any, training: bool) -> dict[str, bool]:
    """Pass `training` as `is_training=` or `training=`, whichever `fn` accepts."""
    params = _parameters(getattr(fn, "__func__", fn))
    for key in ("is_training", "training"):
        if key in params:
            return {key: training}
    return {}


def attribute_names(module: tf.Module, prefix: str) -> list[tuple[str, tf.Variable]]:
    """[(prefix + attribute path, variable)] for every variable of a tf.Module."""
    out, seen = [], set()
    for path, var in module._flatten(
        predicate=lambda v: isinstance(v, tf.Variable), with_path=True
    ):
        if id(var) not in seen:
            seen.add(id(var))
            out.append((prefix + "/".join(str(p).lstrip("_") for p in path), var))
    return out


def legacy_h5_positions(layers: Iterable[Any]) -> dict[int, str]:
    """{id(weight): "k/j"}: weight j of the k-th layer with weights, the order in which
    Keras' legacy .h5 format stores and loads weights (trainable, then non-trainable)."""
    out: dict[int, str] = {}
    k = 0
    for layer in layers:
        weights = list(layer.trainable_weights) + list(layer.non_trainable_weights)
        for j, weight in enumerate(weights):
            out[id(weight)] = f"{k}/{j}"
        k += bool(weights)
    return out
