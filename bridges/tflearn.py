"""The TFLearn bridge: `tu.tflearn(fn, name)` wraps TFLearn layer code into an Owner.

`fn(inputs) -> net` is ordinary TFLearn code (`tflearn.fully_connected`,
`tflearn.conv_2d`, `tflearn.lstm`, ...). The owner runs it eagerly, inside
`tf.function` and in a TF1 `tf.Graph`, with its variables created on the first call
and reused afterwards, named exactly as TFLearn names them in TF1 (`FullyConnected/W`,
`Conv2D/b`, ...). The machinery that runs `get_variable`-style code eagerly is shared
with the Slim bridge (`tfunite.bridges._tf1`).

What the owner adds on top of TFLearn:

- **Training mode.** TFLearn keeps it in a global `is_training` variable stored in a
  TF1 collection, owned by nobody. The owner has its own `is_training` variable
  (non-trainable, in `owner.variables`, checkpointed under TFLearn's own name), sets it
  to `training=` on every call and shows it to the layers (dropout, batch
  normalization) in place of the global one.
- **Regularizers.** `regularizer='L2'` on a layer adds one tensor to a global
  collection; eagerly that tensor is computed once and never again, so the loss is
  silently lost. The owner keeps the regularizer functions and `owner.losses`
  recomputes them from the current weights.
- **Legacy fixes**, applied when the bridge is first used (`tfunite.fixes.ensure`)
  and listed by `tfunite doctor`: TFLearn imports again on current TensorFlow and
  Pillow, `import tflearn` no longer switches eager execution off for the process,
  `embedding` runs eagerly, and `input_data`/`regression` (placeholders, TF1 graphs
  only) fail with a clear error inside an eager owner.

Import TFLearn through the bridge (`tflearn = import_tflearn()`), or build an owner
first: a plain `import tflearn` before that fails on current TensorFlow.

**Loading `DNN.save` files.** Besides the model, a TFLearn `DNN` checkpoint holds its
training state: optimizer slots (`fc1/W/Adam`, `fc1/W/Adam_1`, `Adam/beta1_power`),
step counters (`Global_Step`, `Training_step`), the moving averages of its summaries
(`Crossentropy/Mean/moving_avg`, `fc1/L2-Loss/moving_avg`), `val_loss`/`val_acc`, and
TFLearn's global training flag (named after the first layer that read it,
`bn/is_training`). `TFLEARN_DNN_EXTRAS` is a rule list that drops the training state
and loads the flag into the owner's own `is_training`, so a strict load still refuses
a model variable the file lacks:

    >>> owner.load("model.tfl", rules=TFLEARN_DNN_EXTRAS)   # strict=True

It knows TFLearn's default optimizer names (`Adam`, `SGD`, `Momentum`, `RMSProp`,
`AdaGrad`, `AdaDelta`, `Ftrl`, `Nesterov`); for an optimizer given another `name=`,
add a rule for its slots: `[(r".+/MyAdam(?:_[0-9]+)?", None), *TFLEARN_DNN_EXTRAS]`.
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
from typing import Any

import tensorflow as tf
from tensorflow.python.eager.context import eager_mode
from tfunite import fixes
from tfunite.capture import capturing
from tfunite.errors import GraphModeError, missing_dependency
from tfunite.fixes import Fix, register_fix
from tfunite.owner import Owner, outer_graph

from ._tf1 import TF1Variables

IS_TRAINING = "is_training"  # TFLearn's name (collection and variable) for the flag
REGULARIZATION_LOSSES = "regularization_losses"  # tf.GraphKeys.REGULARIZATION_LOSSES
LAYER_TENSOR = "layer_tensor/"  # tflearn.collections: tf.GraphKeys.LAYER_TENSOR + '/'

GRAPH_ONLY_LAYER = (
    "tflearn.{layer} was called inside TFLearn owner {owner!r} {where}. It creates a "
    "tf.placeholder, which exists only in a TF1 graph (expected: building in a "
    "tf.Graph; got: {where}). Fix: the owner's fn receives its input tensor, so "
    "start fn from `inputs` instead of tflearn.input_data, and compute the loss "
    "outside fn instead of tflearn.regression; or build the owner in a TF1 graph "
    "(with tf.Graph().as_default(): ...), where tflearn.{layer} and DNN work."
)

# TFLearn's optimizers' default names (tflearn/optimizers.py), which name their slots.
_DNN_OPTIMIZERS = "Adam|SGD|Momentum|RMSProp|AdaGrad|AdaDelta|Ftrl|Nesterov"

TFLEARN_DNN_EXTRAS: list[tuple[str, str | None]] = [
    # TFLearn's global training flag: the owner's own flag has TFLearn's root name.
    (rf"(?:.+/)?{IS_TRAINING}", IS_TRAINING),
    (r"Global_Step|Training_step|val_loss|val_acc", None),  # the trainer's counters
    (rf"(?:{_DNN_OPTIMIZERS})/beta[12]_power", None),  # Adam's accumulators
    (rf".+/(?:{_DNN_OPTIMIZERS})(?:_\d+)?", None),  # slots: fc1/W/Adam, fc1/W/Adam_1
    (r".+/moving_avg", None),  # moving averages of the summaries (losses, metrics)
]
"""Rules for `owner.load(dnn_save_file, rules=TFLEARN_DNN_EXTRAS)`: drop what a TFLearn
`DNN.save` file holds besides the model, map its training flag onto the owner's."""

_local = threading.local()


def _active() -> TFLearnOwner | None:
    """The TFLearn owner whose fn is running in this thread (innermost), or None."""
    stack = getattr(_local, "owners", None)
    return stack[-1] if stack else None


@contextlib.contextmanager
def _running(owner: TFLearnOwner) -> Iterator[None]:
    if not hasattr(_local, "owners"):
        _local.owners = []
    _local.owners.append(owner)
    try:
        yield
    finally:
        _local.owners.pop()


# ============================================================== legacy fixes: imports


def _nest() -> types.ModuleType:
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


def _pil_image() -> types.ModuleType | None:
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


def _compat_v1() -> types.ModuleType:
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

    disable_v2_behavior._tfunite_original = original  # type: ignore[attr-defined]
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


def _import_tflearn_raw() -> types.ModuleType:
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
    _embedding_function().__code__ = original_code


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


def _variables_module() -> types.ModuleType:
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

    variable = _plain_python(variable)
    variable._tfunite_original = original  # type: ignore[attr-defined]
    replaced = _replace_everywhere(original, variable)
    return original, variable, replaced


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


def _replace_everywhere(original: Any, replacement: Any) -> list[types.ModuleType]:
    """Rebind `original` to `replacement` in every loaded tflearn module that exports it."""
    replaced = []
    for module_name, module in list(sys.modules.items()):
        if module is None or not (module_name == "tflearn" or module_name.startswith("tflearn.")):
            continue
        if getattr(module, original.__name__, None) is original:
            setattr(module, original.__name__, replacement)
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
        guarded._tfunite_original = original  # type: ignore[attr-defined]
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


def import_tflearn() -> types.ModuleType:
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


# ================================================================== the owner


class TFLearnOwner(Owner):
    """Owns the variables of TFLearn code `fn(inputs) -> net`.

    Args:
        fn: builds the network from its input tensor with TFLearn layers. Give layers
            a `name=`/`scope=` where the checkpoint names matter; layers without one
            get TFLearn's default names (`FullyConnected`, `FullyConnected_1`, ...),
            the same on every call.
        name: the owner's name.

    Example:
        >>> tflearn = import_tflearn()
        >>> def fn(x):
        ...     x = tflearn.fully_connected(x, 32, activation="relu", scope="fc1")
        ...     x = tflearn.dropout(x, 0.5)
        ...     return tflearn.fully_connected(x, 10, scope="logits")
        >>> mlp = tu.tflearn(fn, name="mlp")
        >>> logits = mlp(tf.ones([2, 8]), training=True)
        >>> list(mlp.variables)
        ['is_training', 'fc1/W', 'fc1/b', 'logits/W', 'logits/b']
    """

    framework = "tflearn"
    supports_graph = True

    @classmethod
    def decline_reason(cls, obj: Any) -> str | None:
        if not callable(obj):
            return f"expected a function fn(inputs) -> net, got {type(obj).__qualname__}"
        return None

    def __init__(self, fn: Callable[[Any], Any], name: str):
        super().__init__(name)
        reason = self.decline_reason(fn)
        if reason is not None:
            raise TypeError(
                f"tu.tflearn(fn, name={name!r}): {reason}. Fix: pass the "
                "function that builds the network, not its result."
            )
        with capturing(self):  # `import tflearn` creates a variable: not a stray one
            self._tflearn = import_tflearn()
        self._fn = fn
        self._tf1 = TF1Variables(owner=name, framework=self.framework)
        self._flag: tf.Variable | None = None
        self._regularizers: dict[int, tuple[tf.Variable, Callable[[Any], Any]]] = {}
        self._graph_losses: list[tf.Tensor] = []
        self._last_endpoints: dict[str, Any] = {}
        self.in_graph = False

    # ------------------------------------------------------------------ hooks
    def _forward(self, inputs: Any, training: bool) -> Any:
        self.in_graph = outer_graph() is not None
        if not self.built:
            self._regularizers.clear()  # a failed first call starts over (so does _tf1)
        flag = self._training_flag()
        default = tf.compat.v1.get_default_graph()
        saved = {key: list(default.get_collection(key)) for key in (IS_TRAINING, "is_training_ops")}
        with tf.control_dependencies([flag.assign(tf.cast(training, tf.bool))]):
            mode = tf.identity(flag, name="is_training_value")
        try:
            # TFLearn's dropout and batch_normalization read the flag from this collection.
            default.get_collection_ref(IS_TRAINING)[:] = [mode]
            with _running(self), self._tf1.call() as record:
                outputs = self._fn(inputs)
        finally:
            for key, items in saved.items():
                default.get_collection_ref(key)[:] = items
        self._last_endpoints = {
            key[len(LAYER_TENSOR) :]: items[-1]
            for key, items in record.collections.items()
            if key.startswith(LAYER_TENSOR) and items
        }
        if self.in_graph and not self._graph_losses:
            self._graph_losses = list(record.collections.get(REGULARIZATION_LOSSES, []))
        return outputs

    def _collect(self) -> list[tuple[str, tf.Variable, bool]]:
        found = [] if self._flag is None else [(IS_TRAINING, self._flag, False)]
        found += [(name, var, bool(var.trainable)) for name, var in self._tf1.variables]
        return found

    def _losses(self) -> list[tf.Tensor]:
        if self.in_graph:
            return list(self._graph_losses)
        # An eager owner asked from inside a TF1 graph (not a tf.function): its variables
        # are eager, so compute the losses eagerly.
        in_tf1_graph = getattr(tf.compat.v1.get_default_graph(), "outer_graph", None) is None
        lift = (
            eager_mode()
            if in_tf1_graph and not tf.executing_eagerly()
            else contextlib.nullcontext()
        )
        with lift:
            return [regularizer(var) for var, regularizer in self._regularizers.values()]

    def _endpoints(self) -> dict[str, Any]:
        return dict(self._last_endpoints)

    def _aliases(self, fmt: str) -> dict[str, str] | None:
        return None  # TFLearn writes TF1 name-based checkpoints only: canonical names

    # ------------------------------------------------------------------ helpers
    def _training_flag(self) -> tf.Variable:
        """The owner's `is_training` variable (TFLearn's name), created once."""
        if self._flag is None:
            with tf.init_scope():
                self._flag = tf.Variable(False, trainable=False, name=IS_TRAINING, dtype=tf.bool)
        return self._flag


__all__ = ["TFLEARN_DNN_EXTRAS", "TFLearnOwner", "import_tflearn"]
