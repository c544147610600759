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

import glob
import os
import re
import weakref
from collections.abc import Mapping
from typing import Any, cast

import numpy as np
import tensorflow as tf

from .aliases import normalize
from .distribute import check_replicas, worker_scratch
from .errors import CheckpointError, LoadError
from .plan import Assign, OwnerLike, Step, assign_all, check_data, is_owner, plan
from .readers import H5Reader, Reader, TFReader, object_paths, open_checkpoint
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
        check_data(reader, steps)  # every checksum, before the first assignment
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
    directory holds one checkpoint (use a new directory to keep several).
    Returns the prefix of the bundle written (what TF1 `Saver.restore` takes).
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
    numbers = [
        int(m.group(1)) for f in os.listdir(path) if (m := re.match(r"ckpt-(\d+)\.index$", f))
    ]
    prefix = os.path.join(path, f"ckpt-{max(numbers, default=0) + 1}")
    names = list(targets)
    variables = [targets[n] for n in names]
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
    # The commit point: the state file is replaced by an atomic rename.
    from tensorflow.python.checkpoint import checkpoint_management

    checkpoint_management.update_checkpoint_state_internal(
        save_dir=path,
        model_checkpoint_path=prefix,
        all_model_checkpoint_paths=[prefix],
        save_relative_paths=True,
    )
    for old in glob.glob(os.path.join(glob.escape(path), "ckpt-*")):
        if not os.path.basename(old).startswith(os.path.basename(prefix) + "."):
            os.remove(old)
    return prefix


# The bundle's keys are canonical names; beside them, TF's object graph (the key
# `tf.train.Checkpoint` reads first) says: the root's child "model" (the owner) has one
# child per variable, named by its canonical name, whose value is stored under that same
# canonical key (Owner's children restore from any key), and the root's "save_counter"
# is 1. So `tf.train.Checkpoint(model=owner).restore(...)
# .assert_consumed()` works on a tu.save directory, while name-based readers (tu.load,
# `tf.train.load_checkpoint`, TF1 `Saver`) see canonical keys.
_OBJECT_GRAPH = "_CHECKPOINTABLE_OBJECT_GRAPH"
_SAVE_COUNTER = "save_counter/.ATTRIBUTES/VARIABLE_VALUE"


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
    return [_OBJECT_GRAPH, _SAVE_COUNTER], [graph, tf.constant(1, tf.int64)]


# ============================================================================ inspect
def inspect(path: str | os.PathLike) -> list[dict[str, Any]]:
    """``[{name, shape, dtype, elements, bytes}]`` of every tensor in a checkpoint,
    sorted by name: `elements` is the number of values, `bytes` their size in memory
    (elements x the dtype's item size)."""
    reader = open_checkpoint(path)
    try:
        rows = []
        for name, (shape, dtype) in sorted(reader.entries.items()):
            elements = int(np.prod(shape, dtype=np.int64))
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
