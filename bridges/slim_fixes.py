"""The slim bridge's legacy fixes: the global state it patches so TF-Slim runs on current TF.

Global state patched (only once `tfunite.fixes.ensure("slim")` runs; each undoable):

- `tensorflow.python.framework.ops`: attributes `Tensor`, `IndexedSlices` added;
- `tensorflow.python.layers.normalization`: its lazy loader's module path;
- `tf_slim.layers.layers`: its `ops` module reference (name scopes entered eagerly);
- `tf_slim.layers.layers`: its function `_add_variable_to_collections` (compared by identity);
- `warnings.filters`: one "once" filter for the legacy layers' deprecation warnings;
- `tensorflow.python.keras.utils.version_utils` and `tf_keras.src.utils.version_utils`:
  their function `swap_class`.

This module is the `fixes` of the slim record (bridges/__init__.py). Each fix is a
named, idempotent patch registered with `tfunite.fixes`. Importing this module only
*registers* the fixes; nothing is patched until a bridge calls
`tfunite.fixes.ensure("slim")` on first use. Every fix that patches
shared state can be undone with `tfunite.fixes.undo(name)`, which restores the exact
objects it replaced. No fix switches TensorFlow's global behaviour
(`disable_v2_behavior`, `TF_USE_LEGACY_KERAS`). TFLearn needs none of these (it uses
neither `ops.Tensor` nor TF's layers, and has its own batch normalization); its fixes
live in `tfunite.bridges.tflearn_fixes`.

Each fix's `needed` check asks whether the bug is there without importing tf_slim
(`tfunite doctor` runs them): it reads tf_slim's source file and probes TensorFlow.

Fixes here:

- ``tf-ops-tensor-aliases``: `tensorflow.python.framework.ops.Tensor` and
  `ops.IndexedSlices` were removed in TF 2.21; Slim (batch_norm with
  `updates_collections=None`, `create_train_op` with clipping) still uses them.
  Restores both names as aliases of the current classes.
- ``slim-batch-norm-import``: `tensorflow/python/layers/normalization.py` lazy-loads
  `tf_keras.legacy_tf_layers.normalization`, which tf_keras 2.21 moved to
  `tf_keras.src.legacy_tf_layers`; every `slim.batch_norm` fails. Points the lazy
  loader at the path that exists.
- ``slim-eager-name-scopes``: Slim's name-scope-only layers (`max_pool2d`,
  `avg_pool2d`, `dropout`, `flatten`, ...) use `ops.name_scope(...) as sc` as the alias
  of their output; eagerly that scope is skipped and `sc` is None, so any
  `outputs_collections` (every net's end_points) crashes. Gives `tf_slim.layers.layers`
  name scopes that are entered eagerly too, so the aliases equal the graph ones.
- ``slim-collections-identity``: `_add_variable_to_collections` tests `var not in
  collection`, which compares variables element-wise in TF2 (`==` is a tensor op) and
  fails with `variables_collections`. Replaces it with an identity test.
- ``slim-deprecation-warnings-once``: the deprecation UserWarnings of TF's legacy
  layers (`layer.apply`, `tf.layers.*`, `layer.updates`) are shown once per process,
  not on every call, whatever the warnings filter (a "once" filter in front).
- ``legacy-layers-swap-class``: creating any legacy layer (every Slim layer) runs
  `version_utils.swap_class`, which reassigns `cls.__bases__` even when they do not
  change, recomputing the MRO and emptying Python's type caches each time (~30% of
  building a Slim net's graph). The same function, assigning only on a change.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any, cast

from tfunite.fixes import Fix, register_fix

# ----------------------------------------------------------------- ops.Tensor aliases


def _ops_module() -> Any:
    return importlib.import_module("tensorflow.python.framework.ops")


def _ops_aliases_needed() -> bool:
    ops = _ops_module()
    return not (hasattr(ops, "Tensor") and hasattr(ops, "IndexedSlices"))


def _ops_aliases_apply() -> dict[str, Any]:
    from tensorflow.python.framework import indexed_slices, tensor

    ops = _ops_module()
    added = {}
    for name, value in (("Tensor", tensor.Tensor), ("IndexedSlices", indexed_slices.IndexedSlices)):
        if not hasattr(ops, name):
            setattr(ops, name, value)
            added[name] = value
    return added


def _ops_aliases_undo(added: Any) -> None:
    ops = _ops_module()
    for name, value in added.items():
        if getattr(ops, name, None) is value:
            delattr(ops, name)


OPS_TENSOR_ALIASES = register_fix(
    Fix(
        name="tf-ops-tensor-aliases",
        bridges=("slim",),
        summary="ops.Tensor/ops.IndexedSlices were removed from "
        "tensorflow.python.framework.ops in TF 2.21; restore them as aliases.",
        apply=_ops_aliases_apply,
        undo=_ops_aliases_undo,
        needed=_ops_aliases_needed,
    )
)

# ----------------------------------------------------------------- slim.batch_norm import

_BN_MODULE = "tensorflow.python.layers.normalization"
_BN_BROKEN_PATH = "tf_keras.legacy_tf_layers.normalization"
_BN_MOVED_PATH = "tf_keras.src.legacy_tf_layers.normalization"


def _module_exists(path: str) -> bool:
    try:
        return importlib.util.find_spec(path) is not None
    except ModuleNotFoundError:
        return False


def _bn_import_needed() -> bool:
    return not _module_exists(_BN_BROKEN_PATH) and _module_exists(_BN_MOVED_PATH)


def _bn_module() -> Any:
    return importlib.import_module(_BN_MODULE)


def _bn_import_apply() -> Any:
    from tensorflow.python.util import lazy_loader

    module = _bn_module()
    previous = module.__dict__.get("normalization")
    module.normalization = lazy_loader.LazyLoader("normalization", module.__dict__, _BN_MOVED_PATH)
    return previous


def _bn_import_undo(previous: Any) -> None:
    _bn_module().normalization = previous


SLIM_BATCH_NORM_IMPORT = register_fix(
    Fix(
        name="slim-batch-norm-import",
        bridges=("slim",),
        summary="tensorflow/python/layers/normalization.py lazy-loads "
        "tf_keras.legacy_tf_layers (moved to tf_keras.src.legacy_tf_layers in tf_keras "
        "2.21), so slim.batch_norm fails; point the lazy loader at the moved module.",
        apply=_bn_import_apply,
        undo=_bn_import_undo,
        needed=_bn_import_needed,
    )
)

# ----------------------------------------------------------------- eager name scopes


class _EagerNameScopes(types.ModuleType):
    """`tensorflow.python.framework.ops` as Slim's layers module sees it, except that
    `name_scope` is entered eagerly too (so `with name_scope(...) as sc` gives a name)."""

    def __init__(self, ops: types.ModuleType) -> None:
        super().__init__(ops.__name__, ops.__doc__)
        self._tfunite_wrapped = ops

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tfunite_wrapped, name)

    def name_scope(
        self,
        name: Any,
        default_name: str | None = None,
        values: Any = None,
        skip_on_eager: bool = False,
    ) -> Any:
        del skip_on_eager  # the whole point: never skip, the scope name is an alias
        return self._tfunite_wrapped.name_scope(name, default_name, values, skip_on_eager=False)


def _slim_layers() -> Any:
    return importlib.import_module("tf_slim.layers.layers")


def _slim_layers_source() -> str | None:
    """The source of tf_slim/layers/layers.py, read from the file (tf_slim not imported);
    None if tf_slim is not installed."""
    try:
        spec = importlib.util.find_spec("tf_slim")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = f"{list(spec.submodule_search_locations)[0]}/layers/layers.py"
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return None


def _loaded_slim_layers() -> Any:
    return sys.modules.get("tf_slim.layers.layers")


def _name_scopes_needed() -> bool:
    """Slim's layers use `ops.name_scope(...) as sc`, and TF skips that scope eagerly
    (sc is None), unless Slim's layers already see `_EagerNameScopes`."""
    layers = _loaded_slim_layers()
    if layers is not None and isinstance(layers.ops, _EagerNameScopes):
        return False
    source = _slim_layers_source()
    if source is None or "ops.name_scope(" not in source:
        return False
    from tensorflow.python.eager import context

    with context.eager_mode(), _ops_module().name_scope("tfunite_probe") as scope:
        return scope is None


def _name_scopes_apply() -> Any:
    layers = _slim_layers()
    previous = layers.ops
    if not isinstance(previous, _EagerNameScopes):
        layers.ops = _EagerNameScopes(previous)
    return previous


def _name_scopes_undo(previous: Any) -> None:
    _slim_layers().ops = previous


SLIM_EAGER_NAME_SCOPES = register_fix(
    Fix(
        name="slim-eager-name-scopes",
        bridges=("slim",),
        summary="Eagerly, ops.name_scope(...) as sc gives sc=None, so max_pool2d/dropout/"
        "flatten with outputs_collections crash; enter Slim layers' name scopes eagerly.",
        apply=_name_scopes_apply,
        undo=_name_scopes_undo,
        needed=_name_scopes_needed,
    )
)

# ----------------------------------------------------------------- collections by identity


def _add_variable_to_collections(
    variable: Any, collections_set: Any, collections_name: str
) -> None:
    """tf_slim's `_add_variable_to_collections`, with `in` by identity, not by `==`."""
    from tensorflow.python.framework import ops
    from tensorflow.python.ops import variables as tf_variables
    from tf_slim.layers import utils

    collections = utils.get_variable_collections(collections_set, collections_name) or []
    variables_list = [variable]
    if isinstance(variable, tf_variables.PartitionedVariable):
        variables_list = list(variable)
    for collection in collections:
        for var in variables_list:
            if not any(var is other for other in ops.get_collection(collection)):
                ops.add_to_collection(collection, var)


_COLLECTIONS_BUG = "if var not in ops.get_collection(collection):"


def _collections_needed() -> bool:
    """Slim's `_add_variable_to_collections` uses `var not in collection`, and TF compares
    variables element-wise (`Tensor._USE_EQUALITY`, TF2 behaviour), unless patched."""
    layers = _loaded_slim_layers()
    if layers is not None and layers._add_variable_to_collections is _add_variable_to_collections:
        return False
    source = _slim_layers_source()
    if source is None or _COLLECTIONS_BUG not in source:
        return False
    from tensorflow.python.framework import tensor

    return bool(getattr(tensor.Tensor, "_USE_EQUALITY", True))


def _collections_apply() -> Any:
    layers = _slim_layers()
    previous = layers._add_variable_to_collections
    layers._add_variable_to_collections = _add_variable_to_collections
    return previous


def _collections_undo(previous: Any) -> None:
    _slim_layers()._add_variable_to_collections = previous


SLIM_COLLECTIONS_IDENTITY = register_fix(
    Fix(
        name="slim-collections-identity",
        bridges=("slim",),
        summary="tf_slim's _add_variable_to_collections uses `var not in list`, an "
        "element-wise == on TF2 variables; compare by identity instead.",
        apply=_collections_apply,
        undo=_collections_undo,
        needed=_collections_needed,
    )
)

# ----------------------------------------------------------------- deprecation warnings once

# The UserWarnings TF's legacy layers (what every Slim layer is built on) raise on each
# call: `layer.apply` is deprecated, `tf.layers.flatten` is deprecated, `layer.updates`
# will be removed. Python shows a warning once per call site only under its default
# filter; under "always" (pytest, many notebooks and apps) they repeat on every call.
_DEPRECATIONS = r"`(layer\.apply|layer\.updates|tf\.layers\.\w+)` (is deprecated|will be removed)"


def _warnings_once_needed() -> bool:
    import warnings

    return not any(
        f[0] == "once" and f[1] is not None and f[1].pattern == _DEPRECATIONS
        for f in warnings.filters
    )


def _warnings_once_apply() -> Any:
    import warnings

    warnings.filterwarnings("once", message=_DEPRECATIONS, category=UserWarning)
    return warnings.filters[0]


def _warnings_once_undo(entry: Any) -> None:
    import warnings

    filters = cast("list[Any]", warnings.filters)  # a list at run time (typed Sequence)
    if entry in filters:
        filters.remove(entry)
        warnings._filters_mutated()  # type: ignore[attr-defined]


SLIM_WARNINGS_ONCE = register_fix(
    Fix(
        name="slim-deprecation-warnings-once",
        bridges=("slim",),
        summary="TF's legacy layers under Slim warn `layer.apply is deprecated` (and "
        "the like) on every call under an 'always' filter; show each once per process.",
        apply=_warnings_once_apply,
        undo=_warnings_once_undo,
        needed=_warnings_once_needed,
    )
)

# ----------------------------------------------------------------- swap_class

# TF's internal Keras and tf_keras pick the v1 or v2 base class of every legacy layer
# (each Slim layer) when it is created, with `version_utils.swap_class`, which assigns
# `cls.__bases__` even when nothing changes: every assignment recomputes the MRO and
# empties Python's type caches, about 30% of building a Slim net's graph.
_SWAP_MODULES = (
    "tensorflow.python.keras.utils.version_utils",
    "tf_keras.src.utils.version_utils",
)
_SWAP_SOURCE = "cls.__bases__ = tuple(new_bases)"  # the unconditional assignment


def _swap_class(cls: Any, v2_cls: Any, v1_cls: Any, use_v2: bool) -> Any:
    """`version_utils.swap_class`, assigning `cls.__bases__` only when they change."""
    if cls is object:
        return cls
    if cls in (v2_cls, v1_cls):
        return v2_cls if use_v2 else v1_cls
    bases = tuple(
        _swap_class(base, v2_cls, v1_cls, use_v2)
        if issubclass(base, v1_cls if use_v2 else v2_cls)
        else base
        for base in cls.__bases__
    )
    if bases != cls.__bases__:
        cls.__bases__ = bases
    return cls


def _swap_modules() -> list[str]:
    """The version_utils modules whose swap_class has the unconditional assignment."""
    found = []
    for path in _SWAP_MODULES:
        loaded = sys.modules.get(path)
        if loaded is not None and getattr(loaded, "swap_class", None) is _swap_class:
            continue
        try:
            spec = importlib.util.find_spec(path)
        except ModuleNotFoundError:
            continue
        try:
            with open(spec.origin or "", encoding="utf-8") as f:  # type: ignore[union-attr]
                if _SWAP_SOURCE in f.read():
                    found.append(path)
        except (OSError, AttributeError):
            continue
    return found


def _swap_apply() -> Any:
    previous = {}
    for path in _swap_modules():
        module = importlib.import_module(path)
        previous[path] = getattr(module, "swap_class")  # noqa: B009 (a ModuleType to mypy)
        setattr(module, "swap_class", _swap_class)  # noqa: B010
    return previous


def _swap_undo(previous: Any) -> None:
    for path, function in previous.items():
        setattr(importlib.import_module(path), "swap_class", function)  # noqa: B010


LEGACY_LAYERS_SWAP_CLASS = register_fix(
    Fix(
        name="legacy-layers-swap-class",
        bridges=("slim",),
        summary="TF's legacy layers reassign cls.__bases__ on every layer created "
        "(version_utils.swap_class), ~30% of building a Slim graph; assign only on change.",
        apply=_swap_apply,
        undo=_swap_undo,
        needed=lambda: bool(_swap_modules()),
    )
)

SLIM_FIXES = (
    OPS_TENSOR_ALIASES.name,
    SLIM_BATCH_NORM_IMPORT.name,
    SLIM_EAGER_NAME_SCOPES.name,
    SLIM_COLLECTIONS_IDENTITY.name,
    SLIM_WARNINGS_ONCE.name,
    LEGACY_LAYERS_SWAP_CLASS.name,
)
