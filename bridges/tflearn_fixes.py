"""The tflearn bridge's legacy fixes: the global state it patches so TFLearn runs on current TF.

Global state patched (only once `tfunite.fixes.ensure("tflearn")` runs; each undoable):

- `tensorflow.python.util.nest`: attribute `is_sequence` added (alias of `is_nested`);
- `PIL.Image`: attribute `ANTIALIAS` added (alias of `LANCZOS`, removed in Pillow 10);
- `tensorflow.compat.v1.disable_v2_behavior`: replaced by a wrapper that ignores the
  call `import tflearn` makes (any other caller still switches TF2 behaviour off);
- `tflearn.layers.embedding_ops.embedding`: its code object (one line fixed);
- `tflearn.variables.variable`, rebound in every loaded tflearn module: a wrapper that
  keeps layer regularizers with the running owner;
- `tflearn.input_data` / `tflearn.regression`, rebound in every loaded tflearn module:
  wrappers that raise `GraphModeError` eagerly inside an owner.

Importing this module registers the fixes and imports no framework; the import fixes
run before TFLearn is imported, the layer fixes import it. `import_tflearn()` imports
TFLearn with them applied. This module is the `fixes` of the tflearn record
(bridges/__init__.py); the owner (bridges/tflearn.py) tells the layer fixes which owner
is running through `running(owner)`.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import inspect
import linecache
import sys
import threading
import types
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, cast

import tensorflow as tf
from tfunite import fixes
from tfunite.errors import GraphModeError, missing_dependency
from tfunite.fixes import Fix, register_fix
from tfunite.owner import outer_graph

if TYPE_CHECKING:
    from .tflearn import TFLearnOwner

IS_TRAINING = "is_training"  # TFLearn's name (collection and variable) for the flag

GRAPH_ONLY_LAYER = (
    "tflearn.{layer} was called inside TFLearn owner {owner!r} {where}. It creates a "
    "tf.placeholder, which exists only in a TF1 graph (expected: building in a "
    "tf.Graph; got: {where}). Fix: the owner's fn receives its input tensor, so "
    "start fn from `inputs` instead of tflearn.input_data, and compute the loss "
    "outside fn instead of tflearn.regression; or build the owner in a TF1 graph "
    "(with tf.Graph().as_default(): ...), where tflearn.{layer} and DNN work."
)

_local = threading.local()


def _active() -> TFLearnOwner | None:
    """The TFLearn owner whose fn is running in this thread (innermost), or None."""
    stack = getattr(_local, "owners", None)
    return stack[-1] if stack else None


@contextlib.contextmanager
def running(owner: TFLearnOwner) -> Iterator[None]:
    """Mark `owner` as the TFLearn owner whose fn runs in this thread (for the layer fixes)."""
    if not hasattr(_local, "owners"):
        _local.owners = []
    _local.owners.append(owner)
    try:
        yield
    finally:
        _local.owners.pop()


# ============================================================== legacy fixes: imports


def _nest() -> Any:
    return importlib.import_module("tensorflow.python.util.nest")


def _nest_apply() -> object:
    nest = _nest()
    nest.is_sequence = nest.is_nested
    return nest.is_nested


def _nest_undo(value: object) -> None:
    nest = _nest()
    if getattr(nest, "is_sequence", None) is value:
        del nest.is_sequence


register_fix(
    Fix(
        name="tflearn-nest-is-sequence",
        bridges=("tflearn",),
        summary="tflearn.layers.recurrent imports tensorflow.python.util.nest.is_sequence, "
        "renamed is_nested in TF 2.x; restore the old name as an alias.",
        apply=_nest_apply,
        undo=_nest_undo,
        needed=lambda: not hasattr(_nest(), "is_sequence"),
    )
)


def _pil_image() -> Any:
    try:
        return importlib.import_module("PIL.Image")
    except ImportError:
        return None


def _pil_apply() -> object:
    image = _pil_image()
    image.ANTIALIAS = image.LANCZOS
    return image.LANCZOS


def _pil_undo(value: object) -> None:
    image = _pil_image()
    if image is not None and getattr(image, "ANTIALIAS", None) is value:
        del image.ANTIALIAS


register_fix(
    Fix(
        name="tflearn-pil-antialias",
        bridges=("tflearn",),
        summary="tflearn.data_utils uses PIL.Image.ANTIALIAS as a default argument, removed "
        "in Pillow 10; restore it as an alias of LANCZOS.",
        apply=_pil_apply,
        undo=_pil_undo,
        needed=lambda: (image := _pil_image()) is not None and not hasattr(image, "ANTIALIAS"),
    )
)


def _compat_v1() -> Any:
    # The object `import tensorflow.compat.v1 as tf` binds in TFLearn: patching the
    # `tf.compat.v1` attribute before that import can patch a different wrapper.
    return importlib.import_module("tensorflow.compat.v1")


def _keep_eager_apply() -> object:
    v1 = _compat_v1()
    original = v1.disable_v2_behavior

    @functools.wraps(original)
    def disable_v2_behavior() -> None:
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if caller == "tflearn":
            return  # `import tflearn` must not switch eager off for the whole process
        original()

    disable_v2_behavior._tfunite_original = original  # type: ignore[attr-defined]  # a marker on a function
    v1.disable_v2_behavior = disable_v2_behavior
    return original


def _keep_eager_undo(original: object) -> None:
    _compat_v1().disable_v2_behavior = original


register_fix(
    Fix(
        name="tflearn-keep-eager",
        bridges=("tflearn",),
        summary="`import tflearn` calls tf.compat.v1.disable_v2_behavior(), switching eager "
        "execution off for the whole process; ignore that one call (others still work).",
        apply=_keep_eager_apply,
        undo=_keep_eager_undo,
        needed=lambda: not hasattr(_compat_v1().disable_v2_behavior, "_tfunite_original"),
    )
)


def _import_tflearn_raw() -> Any:
    """`import tflearn` after the import fixes; drops the stray eager training flag."""
    already = "tflearn" in sys.modules
    module = importlib.import_module("tflearn")
    if not already and outer_graph() is None:
        # `import tflearn` creates the global `is_training` variable in the eager
        # default graph's collections; nobody owns it and the owners never read it.
        graph = tf.compat.v1.get_default_graph()
        for key in (IS_TRAINING, "is_training_ops"):
            graph.clear_collection(key)
    return module


# ============================================================ legacy fixes: layers

_EMBEDDING_BUG = "inference.get_shape().as_list()[1:3] + [1]"
_EMBEDDING_FIX = "inference.get_shape().as_list()[1:2] + [1]"


def _embedding_function() -> Callable[..., Any]:
    return importlib.import_module("tflearn.layers.embedding_ops").embedding


def _unpatched(module: str, attr: str) -> bool:
    """Whether tflearn's `module.attr` still lacks tfunite's wrapper. Asked before TFLearn
    is imported (`tfunite doctor`), it is not imported for the answer: a raw `import
    tflearn` switches eager execution off for the whole process."""
    if module not in sys.modules:
        return True
    return not hasattr(getattr(sys.modules[module], attr), "_tfunite_original")


def _embedding_needed() -> bool:
    try:
        if "tflearn.layers.embedding_ops" in sys.modules:
            source = inspect.getsource(_embedding_function())
        else:  # read the file: importing tflearn unfixed would switch eager off
            spec = importlib.util.find_spec("tflearn")
            if spec is None or not spec.submodule_search_locations:
                return False
            path = f"{list(spec.submodule_search_locations)[0]}/layers/embedding_ops.py"
            with open(path, encoding="utf-8") as f:
                source = f.read()
        return _EMBEDDING_BUG in source
    except (OSError, TypeError):  # no source: cannot tell, leave it alone
        return False


def _embedding_apply() -> object:
    function = _embedding_function()
    source = inspect.getsource(function).replace(_EMBEDDING_BUG, _EMBEDDING_FIX)
    # A file name of its own, registered in linecache: tracebacks and AutoGraph (which
    # converts from source inside tf.function) read the fixed source, not the file's.
    filename = "<tfunite fix tflearn-embedding-seq-length>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {}
    code = compile(source, filename, "exec")
    exec(code, function.__globals__, namespace)  # noqa: S102 - TFLearn's own source, one line changed
    original_code = function.__code__
    function.__code__ = namespace[function.__name__].__code__  # every alias sees the fix
    return original_code


def _embedding_undo(original_code: object) -> None:
    # The undo state is what _embedding_apply returned: the function's original code.
    _embedding_function().__code__ = cast(types.CodeType, original_code)


register_fix(
    Fix(
        name="tflearn-embedding-seq-length",
        bridges=("tflearn",),
        summary="tflearn.embedding reshapes its ids to [-1, steps, dim, 1] to compute "
        "seq_length; graph mode prunes that op, eager execution fails on it. Reshape to "
        "[-1, steps, 1] (the ids' own shape).",
        apply=_embedding_apply,
        undo=_embedding_undo,
        needed=_embedding_needed,
    )
)


def _variables_module() -> Any:
    return importlib.import_module("tflearn.variables")


def _owned_regularizers_apply() -> object:
    module = _variables_module()
    original = module.variable
    arg_scope = importlib.import_module("tflearn.vendor.arg_scope")

    @functools.wraps(original)
    def variable(name: str, *args: Any, **kwargs: Any) -> tf.Variable:
        owner = _active()
        if owner is None or owner.in_graph:
            return original(name, *args, **kwargs)
        # Eager / tf.function inside an owner: keep the regularizer function with the
        # owner instead of one stale eager tensor in a global collection.
        scoped = arg_scope.current_arg_scope().get(arg_scope.arg_scope_func_key(original), {})
        bound = inspect.signature(original).bind_partial(name, *args, **{**scoped, **kwargs})
        regularizer = bound.arguments.pop("regularizer", None)
        var = original(**bound.arguments)
        if regularizer is not None:
            if isinstance(regularizer, str):
                regularizer = importlib.import_module("tflearn.regularizers").get(regularizer)
            owner._regularizers.setdefault(id(var), (var, regularizer))
        return var

    plain = _plain_python(variable)
    plain._tfunite_original = original  # type: ignore[attr-defined]  # a marker on a function
    replaced = _replace_everywhere(original, plain)
    return original, plain, replaced


def _owned_regularizers_undo(state: Any) -> None:
    original, patched, replaced = state
    for module in replaced:
        setattr(module, original.__name__, original)


register_fix(
    Fix(
        name="tflearn-owned-regularizers",
        bridges=("tflearn",),
        summary="Layer regularizers (regularizer='L2') land as one tensor in a global "
        "collection, computed once eagerly and then stale; inside an owner, keep the "
        "regularizer functions with the owner so owner.losses recomputes them.",
        apply=_owned_regularizers_apply,
        undo=_owned_regularizers_undo,
        needed=lambda: _unpatched("tflearn.variables", "variable"),
    )
)


def _plain_python(function: Callable[..., Any]) -> Callable[..., Any]:
    """Keep AutoGraph out of a wrapper (it has no tensor-dependent Python control flow;
    converted, its frames would be reported under the wrapped function's file)."""
    return tf.autograph.experimental.do_not_convert(function)


def _replace_everywhere(original: Any, replacement: Any) -> list[Any]:
    """Rebind `original` to `replacement` in every loaded tflearn module that exports it."""
    name = original.__name__
    replaced: list[Any] = []
    for module_name, module in list(sys.modules.items()):
        if module is None or not (module_name == "tflearn" or module_name.startswith("tflearn.")):
            continue
        if getattr(module, name, None) is original:
            setattr(module, name, replacement)
            replaced.append(module)
    return replaced


def _graph_only_apply() -> object:
    originals = [
        importlib.import_module("tflearn.layers.core").input_data,
        importlib.import_module("tflearn.layers.estimator").regression,
    ]
    state = []
    for original in originals:

        def guarded(*args: Any, _wrapped: Any = original, **kwargs: Any) -> Any:
            owner = _active()
            if owner is not None and not owner.in_graph:
                where = "inside tf.function" if not tf.executing_eagerly() else "eagerly"
                raise GraphModeError(
                    GRAPH_ONLY_LAYER.format(layer=_wrapped.__name__, owner=owner.name, where=where)
                )
            return _wrapped(*args, **kwargs)

        functools.update_wrapper(guarded, original)
        guarded = _plain_python(guarded)
        guarded._tfunite_original = original  # type: ignore[attr-defined]  # a marker on a function
        state.append((original, _replace_everywhere(original, guarded)))
    return state


def _graph_only_undo(state: Any) -> None:
    for original, modules in state:
        for module in modules:
            setattr(module, original.__name__, original)


register_fix(
    Fix(
        name="tflearn-graph-only-layers",
        bridges=("tflearn",),
        summary="tflearn.input_data and tflearn.regression create placeholders; eagerly "
        "inside an owner that fails obscurely (or, in tf.function, computes on an unfed "
        "placeholder). Raise a GraphModeError that says what to do instead.",
        apply=_graph_only_apply,
        undo=_graph_only_undo,
        needed=lambda: _unpatched("tflearn.layers.core", "input_data"),
    )
)


def import_tflearn() -> Any:
    """Import TFLearn with the legacy fixes applied; eager execution stays on.

    Returns:
        The `tflearn` module.

    Raises:
        MissingDependencyError: TFLearn is not installed (the message has the pip command).
    """
    if importlib.util.find_spec("tflearn") is None:
        raise missing_dependency("tflearn", "tflearn", "The TFLearn bridge (tu.tflearn)")
    # Fixes run in registration order: the import fixes first, then the layer fixes,
    # whose `apply` imports tflearn (by then importable, and eager stays on).
    fixes.ensure("tflearn")
    return _import_tflearn_raw()


TFLEARN_FIXES = (
    "tflearn-nest-is-sequence",
    "tflearn-pil-antialias",
    "tflearn-keep-eager",
    "tflearn-embedding-seq-length",
    "tflearn-owned-regularizers",
    "tflearn-graph-only-layers",
)

__all__ = ["GRAPH_ONLY_LAYER", "IS_TRAINING", "TFLEARN_FIXES", "import_tflearn", "running"]
