"""`tu.export`: an owner as a SavedModel (or ONNX model) that loads without tfunite.

The SavedModel holds the owner's variables, named by their canonical names, and one
`serving_default` signature that runs the owner in inference mode (`training=False`).
`tf.saved_model.load(path)` needs TensorFlow only: no tfunite, no framework. For TF
Serving, export into a numbered version folder (`models/net/1`).

Every check runs before anything is written, and the export is written to a temporary
folder beside `path` and renamed into place, so a refused or failed export writes
nothing. `format="onnx"` converts the same inference function with tf2onnx (the `onnx`
extra) and checks the ONNX model against the owner with onnxruntime before writing it.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from tfunite.errors import NotBuiltError
from tfunite.owner import Owner

__all__ = ["export"]

# A float32 output of the ONNX model may differ from TensorFlow's by reordered sums.
ONNX_RTOL = 1e-5
ONNX_ATOL = 1e-6


def export(
    owner: Owner,
    path: str | os.PathLike[str],
    input_signature: Sequence[tf.TensorSpec],
    fn: Callable[..., Any] | None = None,
    format: str = "saved_model",
    opset: int | None = None,
) -> str:
    """Export `owner`'s inference as a SavedModel directory (or an ONNX file) at `path`.

    Args:
        owner: a built owner; its forward pass is served with ``training=False``.
        path: a new (or empty) directory for a SavedModel, e.g. ``models/net/1`` for
            TF Serving; a ``.onnx`` file with ``format="onnx"``.
        input_signature: one `tf.TensorSpec` per input (the owner gets the tensor, or a
            list of them). Unnamed specs are named ``inputs`` (``inputs_0``, ... when
            several): the keys of the ``serving_default`` signature.
        fn: what to serve instead of ``owner(x, training=False)``, e.g. a `Parameters`'
            children chained: ``lambda x: params["d"](params["g"](x))``; it may use only
            `owner`'s variables.
        format: ``"saved_model"`` or ``"onnx"`` (tf2onnx; ``pip install
            'tfunite[onnx]'``).
        opset: the ONNX opset (tf2onnx's default when None).

    Returns:
        `path`.

    Raises:
        ValueError: the signature does not match the owner (expected vs got), `path`
            exists and is not empty, or the ONNX conversion/check failed. Nothing written.
    """
    path = os.fspath(path)
    if format not in ("saved_model", "onnx"):
        raise ValueError(f"tu.export: unknown format {format!r}. Expected 'saved_model' or 'onnx'.")
    specs = _named_specs(input_signature)
    _check_target(path, format)
    if not owner.built:
        raise NotBuiltError(
            f"tu.export: owner {owner.name!r} has no variables yet. Fix: call it once "
            f"({owner.name}(example)) or {owner.name}.initialize(example) before exporting."
        )
    if fn is None:
        _check_signature(owner, specs)
    serve = _serving_function(owner, specs, fn)
    concrete = _trace(owner, serve, specs)
    if format == "onnx":
        return _export_onnx(owner, path, serve, specs, opset)
    root = tf.Module()
    root.owner = owner  # the SavedModel's variables: the owner's, by canonical name
    root.serve = serve
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tfunite-export-", dir=parent)
    try:
        tf.saved_model.save(root, tmp, signatures={"serving_default": concrete})
        _canonical_variable_names(tmp)
        if os.path.isdir(path):
            os.rmdir(path)  # empty (checked above)
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


# ------------------------------------------------------------------ checks
def _named_specs(input_signature: Sequence[tf.TensorSpec]) -> list[tf.TensorSpec]:
    specs = list(input_signature) if isinstance(input_signature, (list, tuple)) else None
    if not specs or not all(isinstance(s, tf.TensorSpec) for s in specs):
        raise ValueError(
            f"tu.export: input_signature must be a non-empty list of tf.TensorSpec; got "
            f"{input_signature!r}. Fix: input_signature=[tf.TensorSpec([None, 8], tf.float32)]."
        )
    if len(specs) == 1:
        return [tf.TensorSpec(specs[0].shape, specs[0].dtype, specs[0].name or "inputs")]
    return [tf.TensorSpec(s.shape, s.dtype, s.name or f"inputs_{i}") for i, s in enumerate(specs)]


def _check_target(path: str, format: str) -> None:
    if format == "onnx":
        if os.path.isdir(path):
            raise ValueError(
                f"tu.export: {path} is a directory; format='onnx' writes one file. "
                "Fix: pass a file path such as model.onnx."
            )
        return
    if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
        raise ValueError(
            f"tu.export: {path} exists and is not an empty directory; an export never "
            "overwrites. Fix: pass a new version folder (e.g. models/net/2) or remove it."
        )


def _check_signature(owner: Owner, specs: list[tf.TensorSpec]) -> None:
    """Compare with the inputs the owner was built on (when it recorded them)."""
    built_on = getattr(owner, "_input_spec", None)
    if built_on is None:
        return
    want = tf.nest.flatten(built_on)
    if len(want) != len(specs):
        raise ValueError(
            f"tu.export: owner {owner.name!r} takes {len(want)} input(s) "
            f"({_fmt(want)}) but input_signature has {len(specs)} ({_fmt(specs)}). "
            "Fix: one tf.TensorSpec per input the owner was built with."
        )
    for i, (w, g) in enumerate(zip(want, specs)):
        if w is None:
            continue
        ok = (
            w.dtype == g.dtype
            and w.shape.rank == g.shape.rank
            and (w.shape.rank is None or w.shape[1:].is_compatible_with(g.shape[1:]))
        )
        if not ok:
            raise ValueError(
                f"tu.export: input {i} of the signature does not match owner "
                f"{owner.name!r}: expected {_fmt([w], batch=True)} (the owner was built on "
                f"{_fmt([w])}), got {_fmt([g])}. Fix: input_signature="
                f"[tf.TensorSpec({[None, *w.shape.as_list()[1:]]}, tf.{w.dtype.name})]."
            )


def _fmt(specs: Sequence[Any], batch: bool = False) -> str:
    out = []
    for s in specs:
        if s is None:
            out.append("?")
            continue
        dims = s.shape.as_list() if s.shape.rank is not None else None
        if batch and dims:
            dims = [None, *dims[1:]]
        out.append(f"{s.dtype.name}{dims}")
    return ", ".join(out)


# ------------------------------------------------------------------ tracing
def _serving_function(
    owner: Owner, specs: list[tf.TensorSpec], fn: Callable[..., Any] | None
) -> Any:
    def serve(*inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        if fn is not None:
            out = fn(*inputs)
        else:
            out = owner(inputs[0] if len(inputs) == 1 else list(inputs), training=False)
        if isinstance(out, dict):
            return dict(out)
        flat = tf.nest.flatten(out)
        return {f"output_{i}": t for i, t in enumerate(flat)}

    return tf.function(serve, input_signature=specs, autograph=False)


def _trace(owner: Owner, serve: Any, specs: list[tf.TensorSpec]) -> Any:
    try:
        concrete = serve.get_concrete_function()
    except Exception as e:  # the framework's own error, re-raised with what to do
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"tu.export: owner {owner.name!r} cannot be traced on input_signature "
            f"{_fmt(specs)}: {type(e).__name__}: {first}. Fix: give the shapes and dtypes "
            "the owner takes (the batch dimension may be None)."
        ) from e
    mine = {id(v) for v in owner.variables.values()}
    foreign = sorted({v.name for v in concrete.graph.variables if id(v) not in mine})
    if foreign:
        raise ValueError(
            f"tu.export: the served function uses variables that owner {owner.name!r} does "
            f"not own: {foreign}. They would be missing from the SavedModel's names. Fix: "
            "export an owner (e.g. a tu.Parameters) holding every model the function calls."
        )
    return concrete


def _canonical_variable_names(export_dir: str) -> None:
    """Name each variable of the SavedModel by its canonical name (the loaded
    `tf.Variable`'s `.name`), instead of the framework's own (`kernel:0`)."""
    from tensorflow.core.protobuf import saved_model_pb2

    pb_path = os.path.join(export_dir, "saved_model.pb")
    model = saved_model_pb2.SavedModel()
    with open(pb_path, "rb") as f:
        model.ParseFromString(f.read())
    graph = model.meta_graphs[0].object_graph_def
    owner_id = next(c.node_id for c in graph.nodes[0].children if c.local_name == "owner")
    for child in graph.nodes[owner_id].children:
        node = graph.nodes[child.node_id]
        if node.WhichOneof("kind") == "variable":
            node.variable.name = child.local_name
    with open(pb_path, "wb") as f:
        f.write(model.SerializeToString())


# ------------------------------------------------------------------ ONNX
class _Unsupported(logging.Handler):
    """Collects the TF ops tf2onnx logs as not supported (it converts the rest)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.ops: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if "is not supported" in record.getMessage() and isinstance(args, tuple) and args:
            self.ops.append(str(args[-1]))  # "Tensorflow op [%s: %s] is not supported"


def _export_onnx(
    owner: Owner, path: str, serve: Any, specs: list[tf.TensorSpec], opset: int | None
) -> str:
    try:
        import onnxruntime
        import tf2onnx
    except ImportError as e:
        raise ImportError(
            f"tu.export(format='onnx') needs tf2onnx and onnxruntime ({e}). "
            "Fix: pip install 'tfunite[onnx]'."
        ) from None
    handler = _Unsupported()
    logger = logging.getLogger("tf2onnx")
    logger.addHandler(handler)
    try:
        model, _ = tf2onnx.convert.from_function(serve, input_signature=specs, opset=opset)
    except Exception as e:
        raise ValueError(
            f"tu.export: tf2onnx could not convert owner {owner.name!r}: "
            f"{type(e).__name__}: {e}. Nothing written."
        ) from e
    finally:
        logger.removeHandler(handler)
    if handler.ops:
        raise ValueError(
            f"tu.export: owner {owner.name!r} uses TensorFlow op(s) tf2onnx cannot convert "
            f"to ONNX: {sorted(set(handler.ops))}. Nothing written. Fix: export a "
            "SavedModel instead (format='saved_model'), or replace the op in the model."
        )
    # Check the ONNX model against the owner on one batch before writing it.
    rng = np.random.default_rng(0)
    feeds = {}
    for spec in specs:
        shape = [2 if d is None else d for d in spec.shape.as_list()]
        value = rng.normal(size=shape)
        feeds[spec.name] = value.astype(spec.dtype.as_numpy_dtype)
    want = serve(*feeds.values())
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    names = [o.name for o in session.get_outputs()]
    got = dict(zip(names, session.run(None, feeds)))
    for key, tensor in want.items():
        if not np.allclose(got[key], tensor.numpy(), rtol=ONNX_RTOL, atol=ONNX_ATOL):
            worst = float(np.max(np.abs(got[key] - tensor.numpy())))
            raise ValueError(
                f"tu.export: the ONNX model's output {key!r} differs from owner "
                f"{owner.name!r}'s: expected within rtol={ONNX_RTOL}, atol={ONNX_ATOL}, got "
                f"a max abs difference of {worst:.3g}. Nothing written. Fix: export a "
                "SavedModel (format='saved_model') or try another opset."
            )
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tfunite-export-", dir=parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(model.SerializeToString())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path
