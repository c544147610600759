"""Checkpoints: atomic saves, validated all-or-nothing loads, and `inspect`.

Written format: a TF name-based V2 bundle, readable by `tf.train.load_checkpoint`, TF1
`Saver` and Slim tools. `save(owner, path)` treats `path` as a checkpoint directory,
like `tf.train.CheckpointManager`: the bundle is written under a fresh prefix
(`path/ckpt-N`) and becomes current only when the `checkpoint` state file is replaced
(an atomic rename), so a crash mid-save never damages the last good checkpoint.
`tf.train.load_checkpoint(path)` and `tf.train.latest_checkpoint(path)` work on it.

Read formats (readers.py): TF name-based V1 (single file) and V2, TF object-based (what
`tf.train.Checkpoint` writes for Keras and Sonnet), Keras 3 `.weights.h5` and `.keras`.
A load goes through the one pipeline (plan.py): a plan first (names after rules, shapes
after transforms, dtypes), then the data files and checksums are checked, and nothing
is assigned unless the whole plan is valid. Tensors are then read and assigned one at a
time, so a load holds at most one extra tensor.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import weakref
from collections.abc import Mapping
from typing import Any, cast

import numpy as np
import tensorflow as tf

from .aliases import normalize
from .distribute import check_replicas, worker_scratch
from .errors import CheckpointError, LoadError
from .plan import Assign, OwnerLike, Step, assign_all, check_data, is_owner, plan
from .readers import (
    _OBJ_GRAPH,
    _SAVE_COUNTER,
    H5Reader,
    Reader,
    TFReader,
    object_paths,
    open_checkpoint,
)
from .report import Entry, LoadReport, refusal
from .rules import RuleSpec, TransformSpec

__all__ = [
    "Entry",
    "H5Reader",
    "LoadReport",
    "Reader",
    "TFReader",
    "inspect",
    "load",
    "object_paths",
    "open_checkpoint",
    "save",
]


def _targets(owner: OwnerLike | Mapping[str, tf.Variable]) -> dict[str, tf.Variable]:
    if is_owner(owner):
        return dict(owner.variables)
    # TypeGuard narrows only the true branch: what is not an owner is the mapping.
    return dict(cast("Mapping[str, tf.Variable]", owner))


# ============================================================================ load
def load(
    owner: OwnerLike | Mapping[str, tf.Variable],
    path: str | os.PathLike,
    rules: RuleSpec = None,
    strict: bool = True,
    session: Any = None,
    transforms: TransformSpec = None,
    dry_run: bool = False,
) -> LoadReport:
    """Load a checkpoint into `owner`, all or nothing; returns a `LoadReport`.

    Args:
        owner: an Owner, or a mapping canonical name -> tf.Variable.
        path: a tu.save directory, a TF checkpoint prefix or V1 file, a Keras
            ``.weights.h5``/``.h5``/``.keras`` file (see `open_checkpoint`).
        rules: rename rules from checkpoint names to owner names: ``[(regex,
            replacement)]``, an assignment_map, a list mixing both (stages), or
            `tfunite.TRAINING_STATE` (alone or combined: ``[*tu.TRAINING_STATE,
            *mine]``) to leave optimizer slots, step counters and moving
            averages out as kind ``training_state``.
        strict: refuse when a variable is missing or a checkpoint entry is unexpected.
        session: the TF1 Session holding the variables, in graph mode.
        transforms: ``{regex: Transform}`` or ``[(regex, Transform)]``, keyed by the
            **checkpoint-side name** (the name rules see, before renaming; for a
            tu.save checkpoint that is the owner's name), applied checkpoint -> owner.
        dry_run: plan, and check the data files and checksums of what would be read,
            then report; assign nothing.

    Raises:
        LoadError: the plan is not clean (nothing assigned); its message lists what.
        CheckpointError: unreadable, truncated or corrupt checkpoint (nothing assigned).
    """
    # An optimizer with no slots yet builds them now (as tf.train.Checkpoint's deferred
    # restore does): build -> make optimizers -> load -> train resumes exactly.
    getattr(owner, "_build_deferred", lambda: None)()
    reader = open_checkpoint(path)
    try:
        names, outside, absent = normalize(reader, owner)
        report, steps = plan(
            reader.entries,
            _targets(owner),
            rules,
            transforms,
            strict,
            names=names,
            outside=outside,
            absent=absent,
            path=reader.path,
            kind=reader.kind,
        )
        report.dry_run = dry_run
        if not report.ok:
            raise LoadError(refusal(report), report)
        # every checksum before the first assignment (assign_all reads all values first)
        check_data(reader, steps, deferred=not dry_run)
        if dry_run:
            return report
        assign_all(reader, steps, _assigner(session), fast=session is None)
        report.applied = True
        return report
    finally:
        reader.close()


def _assigner(session: Any) -> Assign:
    if session is None:
        if not tf.executing_eagerly():
            raise CheckpointError(
                "Loading in a TF1 graph needs the Session that holds the variables. "
                "Fix: owner.load(path, session=sess)."
            )
        return lambda var, value, step: var.assign(value)
    graph = session.graph
    cache = _graph_ops(graph)

    def assign(var: tf.Variable, value: np.ndarray, step: Step) -> None:
        key = ("assign", var.name)
        if key not in cache:
            with graph.as_default():
                ph = tf.compat.v1.placeholder(var.dtype.base_dtype, var.shape)
                cache[key] = (ph.name, var.assign(ph, read_value=False).name)
        ph, op = cache[key]
        session.run(op, {ph: value})

    return assign


# Save/assign ops built in a TF1 graph, so repeated saves and loads don't grow it: per
# graph, keyed weakly by the graph, and inside by the variables' names (unique in their
# graph), never by id() (a reused id could hit a stale entry). Values are the names of the
# placeholder and op, not the objects, which reference their graph and would keep it (and
# its cache entry) alive.
_GRAPH_OPS: weakref.WeakKeyDictionary[tf.Graph, dict[Any, tuple[str, str]]] = (
    weakref.WeakKeyDictionary()
)


def _graph_ops(graph: tf.Graph) -> dict[Any, tuple[str, str]]:
    """The cache of save/assign ops of `graph`: key -> (placeholder name, op name)."""
    cache = _GRAPH_OPS.get(graph)
    if cache is None:
        cache = _GRAPH_OPS[graph] = {}
    return cache


# ============================================================================ save
def save(
    owner: OwnerLike | Mapping[str, tf.Variable],
    path: str | os.PathLike,
    session: Any = None,
) -> str:
    """Atomically write `owner`'s variables to the checkpoint directory `path`.

    Once the new bundle is current, older ``ckpt-*`` files in `path` are removed: the
    directory holds one checkpoint (use a new directory to keep several), and so are
    the leftovers of saves killed mid-write. If writing fails (a full disk), the
    partial files are removed, `CheckpointError` is raised and the previous checkpoint
    stays current. Returns the prefix of the bundle written (what TF1 `Saver.restore`
    takes).
    """
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise CheckpointError(
            f"Cannot save to {path}: it exists and is not a directory. tu.save writes a "
            "checkpoint directory (a bundle plus a 'checkpoint' state file). Fix: pass a "
            "new or existing directory path."
        )
    targets = _targets(owner)
    if not targets:
        raise CheckpointError(
            f"Nothing to save to {path}: the owner has no variables. Fix: build it first "
            "(call it once or owner.initialize(example))."
        )
    check_replicas(targets.items(), f"Saving to {path}")
    scratch = worker_scratch(path, targets.items())  # distribute.py: multi-worker saves
    if scratch is not None:
        return scratch(lambda own_dir: save(owner, own_dir, session=session))
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise CheckpointError(
            f"Cannot create checkpoint directory {path}: {e.strerror}. "
            "Fix: choose a writable location."
        ) from None
    prefix = _next_prefix(path)
    names = list(targets)
    variables = [targets[n] for n in names]
    try:
        _write_bundle(prefix, names, variables, session)
    except (tf.errors.OpError, OSError) as e:
        raise _save_failed(path, prefix, e) from None
    _commit(path, prefix)
    _remove_all_but(path, prefix)
    return prefix


def _next_prefix(path: str) -> str:
    """`path/ckpt-N` for the next N: one above every bundle in `path`, complete or not."""
    numbers = [
        int(m.group(1))
        for f in os.listdir(path)
        if (m := re.match(r"ckpt-(\d+)\.(index|data-)", f))
    ]
    return os.path.join(path, f"ckpt-{max(numbers, default=0) + 1}")


def _write_bundle(prefix: str, names: list[str], variables: list[Any], session: Any) -> None:
    """Write the bundle `prefix` (not yet current: `_commit` makes it so)."""
    if session is None:
        if not tf.executing_eagerly():
            raise CheckpointError(
                "Saving in a TF1 graph needs the Session that holds the variables. "
                "Fix: owner.save(path, session=sess)."
            )
        extra_names, extra = _trackable_tensors(names)
        tf.raw_ops.SaveV2(
            prefix=prefix,
            tensor_names=[*extra_names, *names],
            shape_and_slices=[""] * (len(names) + len(extra)),
            tensors=[*extra, *(v.read_value() for v in variables)],
        )
    else:
        cache = _graph_ops(session.graph)
        key = ("save", tuple((n, v.name) for n, v in zip(names, variables)))
        if key not in cache:
            with session.graph.as_default():
                ph = tf.compat.v1.placeholder(tf.string, [])
                extra_names, extra = _trackable_tensors(names)
                op = tf.raw_ops.SaveV2(
                    prefix=ph,
                    tensor_names=[*extra_names, *names],
                    shape_and_slices=[""] * (len(names) + len(extra)),
                    tensors=[*extra, *(v.read_value() for v in variables)],
                )
                cache[key] = (ph.name, op.name)
        ph, op = cache[key]
        session.run(op, {ph: prefix})


def _commit(path: str, prefix: str) -> None:
    """The commit point: the `checkpoint` state file, replaced by an atomic rename."""
    from tensorflow.python.checkpoint import checkpoint_management

    try:
        checkpoint_management.update_checkpoint_state_internal(
            save_dir=path,
            model_checkpoint_path=prefix,
            all_model_checkpoint_paths=[prefix],
            save_relative_paths=True,
        )
    except (tf.errors.OpError, OSError) as e:
        raise _save_failed(path, prefix, e) from None


def _remove_all_but(path: str, prefix: str, keep_current: bool = False) -> None:
    """Remove the other bundles of `path` and what killed saves left behind (bundles
    never made current, TF's ``*.tempstate*`` files, ``checkpoint.tmp*`` state files).
    With `keep_current`, the bundle the state file names is kept too."""
    keep = os.path.basename(prefix) + "."
    current = None
    if keep_current:
        latest = tf.train.latest_checkpoint(path)
        current = os.path.basename(latest) + "." if latest else None
    for name in os.listdir(path):
        if name.startswith("checkpoint.tmp") or (
            name.startswith("ckpt-") and not name.startswith(keep)
        ):
            if current is not None and name.startswith(current):
                continue
            full = os.path.join(path, name)
            try:
                shutil.rmtree(full) if os.path.isdir(full) else os.remove(full)
            except FileNotFoundError:
                pass


def _save_failed(path: str, prefix: str, e: BaseException) -> CheckpointError:
    """The error of a save that could not write its bundle or state file; what it had
    written is removed first, so the previous checkpoint stays the current one."""
    with contextlib.suppress(OSError):
        _remove_all_but(path, prefix + ".none", keep_current=True)
    text = (getattr(e, "message", None) or str(e)).strip()
    text = re.sub(r"\{\{[^}]*\}\}\s*|\s*\[Op:\w+\]", "", text)  # TF's op wrapper
    first = text.splitlines()[0] if text else type(e).__name__
    latest = tf.train.latest_checkpoint(path)
    kept = (
        f"The previous checkpoint ({os.path.basename(latest)}) is intact and still current"
        if latest
        else "No checkpoint was written"
    )
    return CheckpointError(
        f"Saving to {path} failed: {first}. {kept}; the partial files of "
        f"{os.path.basename(prefix)} were removed. Fix: free disk space (or raise the "
        "file size limit, `ulimit -f`) and check that the directory is writable, then "
        "save again."
    )


# The bundle's keys are canonical names; beside them, TF's object graph (the key
# `tf.train.Checkpoint` reads first) says: the root's child "model" (the owner) has one
# child per variable, named by its canonical name, whose value is stored under that same
# canonical key (Owner's children restore from any key), and the root's "save_counter"
# is 1. So `tf.train.Checkpoint(model=owner).restore(...)
# .assert_consumed()` works on a tu.save directory, while name-based readers (tu.load,
# `tf.train.load_checkpoint`, TF1 `Saver`) see canonical keys.


def _object_graph(names: list[str]) -> bytes:
    from tensorflow.core.protobuf import trackable_object_graph_pb2 as pb

    graph = pb.TrackableObjectGraph()
    root, owner, counter = graph.nodes.add(), graph.nodes.add(), graph.nodes.add()
    root.children.add(node_id=1, local_name="model")
    root.children.add(node_id=2, local_name="save_counter")
    counter.attributes.add(
        name="VARIABLE_VALUE", full_name="save_counter", checkpoint_key=_SAVE_COUNTER
    )
    for i, name in enumerate(names):
        owner.children.add(node_id=3 + i, local_name=name)
        node = graph.nodes.add()
        node.attributes.add(name="VARIABLE_VALUE", full_name=name, checkpoint_key=name)
    return graph.SerializeToString()


def _trackable_tensors(names: list[str]) -> tuple[list[str], list[tf.Tensor]]:
    """The extra keys and tensors of the object graph (see above); written first, so the
    data file ends with the variables' data, as before."""
    graph = tf.constant(_object_graph(names))
    return [_OBJ_GRAPH, _SAVE_COUNTER], [graph, tf.constant(1, tf.int64)]


# ============================================================================ inspect
def inspect(path: str | os.PathLike) -> list[dict[str, Any]]:
    """``[{name, shape, dtype, elements, bytes}]`` of every tensor in a checkpoint,
    sorted by name: `elements` is the number of values, `bytes` their size in memory
    (elements x the dtype's item size)."""
    reader = open_checkpoint(path)
    try:
        rows = []
        for name, (shape, dtype) in sorted(reader.entries.items()):
            elements = math.prod(shape)  # Python ints: an absurd shape cannot overflow
            rows.append(
                {
                    "name": name,
                    "shape": list(shape),
                    "dtype": dtype.name,
                    "elements": elements,
                    "bytes": elements * dtype.itemsize,
                }
            )
        return rows
    finally:
        reader.close()
