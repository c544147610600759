"""Checkpoints: atomic saves, validated all-or-nothing loads, and `inspect`.

Written format: a TF name-based V2 bundle, readable by `tf.train.load_checkpoint`, TF1
`Saver` and Slim tools. `save(owner, path)` treats `path` as a checkpoint directory,
like `tf.train.CheckpointManager`: the bundle is written under a fresh prefix
(`path/ckpt-N`) and becomes current only when the `checkpoint` state file is replaced
(an atomic rename), so a crash mid-save never damages the last good checkpoint.
`tf.train.load_checkpoint(path)` and `tf.train.latest_checkpoint(path)` work on it.

Read formats: TF name-based V1 (single file) and V2, TF object-based (what
`tf.train.Checkpoint` writes for Keras and Sonnet), Keras 3 `.weights.h5` and `.keras`.
A load builds a plan first (names after rules, shapes after transforms, dtypes), checks
the data files are complete, and assigns nothing unless the whole plan is valid. Tensors
are then read and assigned one at a time, so a load holds at most one extra tensor.
"""

from __future__ import annotations

import glob
import io
import os
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf

from .bundle import Bundle, Unsupported
from .errors import CheckpointError, LoadError, RuleError
from .owner import Owner, canonical
from .rules import RuleSpec, Transform, parse_rules

_OBJ_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
_OBJ_GRAPH = "_CHECKPOINTABLE_OBJECT_GRAPH"


# ============================================================================ readers
class Reader:
    """Uniform read access to one checkpoint file or bundle.

    `entries` maps the checkpoint's own names to (shape, dtype); `read(name)` returns
    one tensor as a numpy array; `fmt` is the alias format owners are asked about
    ("name", "object" or "keras_h5").
    """

    fmt = "name"
    kind = "?"

    def __init__(self, path: str):
        self.path = path
        self.entries: dict[str, tuple[tuple[int, ...], np.dtype]] = {}

    def read(self, name: str) -> np.ndarray:
        raise NotImplementedError

    def verify(self) -> None:
        """Raise CheckpointError if the data behind `entries` is visibly incomplete."""

    def close(self) -> None:
        pass


class TFReader(Reader):
    """TF name-based V1/V2 and object-based checkpoints, through `tf.train.load_checkpoint`."""

    def __init__(self, path: str):
        super().__init__(path)
        try:
            self._reader = tf.train.load_checkpoint(path)
        except (tf.errors.OpError, ValueError) as e:
            raise _not_a_checkpoint(path, e) from None
        shapes = self._reader.get_variable_to_shape_map()
        dtypes = self._reader.get_variable_to_dtype_map()
        self.prefix = path
        self.v2 = os.path.exists(path + ".index")
        self._keys: dict[str, str] = {}
        if _OBJ_GRAPH in shapes:
            self.fmt, self.kind = "object", "tf-object"
            for key in shapes:
                if key.endswith(_OBJ_SUFFIX) and "/.OPTIMIZER_SLOT/" not in key:
                    self._keys[key[: -len(_OBJ_SUFFIX)]] = key
        else:
            self.kind = "tf-v2" if self.v2 else "tf-v1"
            self._keys = {key: key for key in shapes}
        for name, key in self._keys.items():
            self.entries[name] = (tuple(shapes[key]), np.dtype(dtypes[key].as_numpy_dtype))
        self._all = {k: (tuple(shapes[k]), dtypes[k]) for k in shapes}
        self._bundle: Bundle | None = None
        self._checked: set[str] = set()  # names whose bytes `check` verified in the bundle

    def read(self, name: str) -> np.ndarray:
        try:
            return self._reader.get_tensor(self._keys[name])
        except tf.errors.OpError as e:
            raise self._corrupt(name, e) from None

    def read_tensor(self, name: str) -> tf.Tensor:
        """Eager fast path: one RestoreV2 straight into a tensor (no numpy copies)."""
        dtype = tf.as_dtype(self.entries[name][1])
        try:
            return tf.raw_ops.RestoreV2(
                prefix=self.prefix,
                tensor_names=[self._keys[name]],
                shape_and_slices=[""],
                dtypes=[dtype],
            )[0]
        except tf.errors.OpError as e:
            raise self._corrupt(name, e) from None

    def _corrupt(self, name: str, e: Exception) -> CheckpointError:
        return CheckpointError(
            f"Checkpoint {self.path}: tensor {name!r} cannot be read ({_first_line(e)}): the "
            "data file is corrupted. Fix: restore the checkpoint from a good copy."
        )

    def verify(self) -> None:
        if not self.v2:
            return  # V1 files are read in full when opened: truncation fails there.
        shards = sorted(glob.glob(glob.escape(self.prefix) + ".data-*-of-*"))
        if not shards:
            raise CheckpointError(
                f"Checkpoint {self.path}: the index exists but no data file "
                f"({self.prefix}.data-00000-of-00001) was found. Expected both files of a V2 "
                "bundle. Fix: copy the .data-* file(s) next to the .index file."
            )
        numeric = 0
        for shape, dtype in self._all.values():
            if dtype != tf.string:
                numeric += int(np.prod(shape, dtype=np.int64)) * dtype.size
        have = sum(os.path.getsize(s) for s in shards)
        if have < numeric:
            raise CheckpointError(
                f"Checkpoint {self.path} is truncated: its index describes {numeric} bytes of "
                f"tensor data but the data file(s) hold {have} bytes. Nothing was loaded. "
                "Fix: restore the checkpoint from a good copy (a save interrupted mid-write "
                "never replaces the previous checkpoint of a tu.save directory)."
            )

    def check(self, names: list[str]) -> None:
        """Check the data of every named tensor, before a load assigns the first one.

        In a V2 bundle, each tensor's CRC32C is computed over its bytes in the data file
        and compared with its index entry (bundle.py); `checked` then serves the checked
        bytes of POD tensors. A tensor this cannot check (a V1 file, a bundle layout
        bundle.py does not read, an exotic dtype) is read once through TensorFlow, which
        checks it, and dropped: all-or-nothing still, at the cost of a second read.
        """
        rest = names
        if self.v2:
            try:
                self._bundle = self._bundle or Bundle(self.prefix)
                rest = []
                for name in names:
                    key = self._keys[name]
                    entry = self._bundle.entries.get(key)
                    if entry is None or (entry.shape, entry.dtype) != (
                        self._all[key][0],
                        self._all[key][1].as_datatype_enum,
                    ):
                        raise Unsupported(f"{key!r} is not what TensorFlow reads")
                    if self._bundle.check(key, name):
                        self._checked.add(name)
                    else:
                        rest.append(name)
            except (Unsupported, ImportError):
                self._checked.clear()
                rest = names
        for name in rest:
            self.read(name)

    def checked(self, name: str) -> np.ndarray | None:
        """The bytes `check` verified of POD tensor `name`, as a read-only array (None if
        not available: read it with `read`/`read_tensor`)."""
        return self._bundle.array(self._keys[name]) if name in self._checked else None

    def release(self, name: str) -> None:
        """Done with `checked(name)`: its pages leave this process's resident memory."""
        if name in self._checked:
            self._bundle.release(self._keys[name])

    def close(self) -> None:
        if self._bundle is not None:
            self._bundle.close()


class H5Reader(Reader):
    """Keras 3 `.weights.h5` and the weights inside a `.keras` archive."""

    fmt, kind = "keras_h5", "keras-h5"

    def __init__(self, path: str):
        super().__init__(path)
        import h5py

        try:
            if path.endswith(".keras"):
                self.kind = "keras-zip"
                with zipfile.ZipFile(path) as archive:
                    if "model.weights.h5" not in archive.namelist():
                        raise CheckpointError(
                            f"{path} is a zip file without model.weights.h5: not a .keras "
                            "archive. Expected a file written by keras model.save(). Fix: "
                            "pass the .keras file keras wrote, or its model.weights.h5."
                        )
                    data = archive.read("model.weights.h5")
                self._file = h5py.File(io.BytesIO(data), "r")
            else:
                self._file = h5py.File(path, "r")
        except (OSError, zipfile.BadZipFile) as e:
            raise _not_a_checkpoint(path, e) from None
        self._datasets: dict[str, Any] = {}

        def visit(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset):
                self._datasets[name] = obj

        root = self._file
        if "model_weights" in root and "layer_names" in root["model_weights"].attrs:
            root = root["model_weights"]  # a whole model saved as .h5
        if "layer_names" in root.attrs:
            # Legacy h5 (tf_keras save_weights/save, Keras 3 .h5): groups are named after
            # auto-numbered layer names, so entries are keyed by position, as Keras itself
            # loads them: "k/j" = weight j of the k-th layer that has weights.
            self.kind, self.fmt = "keras-legacy-h5", "legacy_h5"
            k = 0
            for layer_name in root.attrs["layer_names"]:
                group = root[_text(layer_name)]
                weight_names = [_text(w) for w in group.attrs.get("weight_names", [])]
                for j, weight_name in enumerate(weight_names):
                    self._datasets[f"{k}/{j}"] = group[weight_name]
                k += bool(weight_names)
        else:
            self._file.visititems(visit)
        for name, ds in self._datasets.items():
            self.entries[canonical(name)] = (tuple(ds.shape), np.dtype(ds.dtype))
        self._names = {canonical(n): n for n in self._datasets}

    def read(self, name: str) -> np.ndarray:
        return np.asarray(self._datasets[self._names[name]][()])

    def close(self) -> None:
        self._file.close()


def _text(value: Any) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def _first_line(e: Exception) -> str:
    text = getattr(e, "message", None) or str(e)
    return text.strip().splitlines()[0] if text.strip() else type(e).__name__


def _not_a_checkpoint(path: str, e: Exception) -> CheckpointError:
    return CheckpointError(
        f"{path} is not a readable checkpoint ({_first_line(e)}). Expected a tu.save "
        "directory, a TF checkpoint prefix (name.index + name.data-*), a TF1 V1 file, a "
        "Keras .weights.h5 or a .keras file. Fix: check the path; run `tfunite inspect PATH`."
    )


def open_checkpoint(path: str | os.PathLike) -> Reader:
    """Open any supported checkpoint; raises CheckpointError naming the path if it is not one."""
    path = os.fspath(path)
    if os.path.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if latest is None:
            raise CheckpointError(
                f"{path} is a directory without a 'checkpoint' state file pointing at a "
                "bundle: not a checkpoint directory. Fix: pass the directory given to "
                "tu.save, or the prefix of a bundle (the path without .index)."
            )
        path = latest
    # A file of a V2 bundle names the bundle: TF would read a lone .index as a V1 file.
    bundle = re.sub(r"\.(index|data-\d{5}-of-\d{5})$", "", path)
    if bundle != path and os.path.exists(bundle + ".index"):
        path = bundle
    if path.endswith((".h5", ".hdf5", ".keras")):
        if not os.path.exists(path):
            raise CheckpointError(f"{path} does not exist. Fix: check the path.")
        return H5Reader(path)
    if not os.path.exists(path) and not os.path.exists(path + ".index"):
        raise CheckpointError(
            f"{path} does not exist (neither a file nor a bundle prefix with {path}.index). "
            "Fix: check the path; for a tu.save directory pass the directory itself."
        )
    return TFReader(path)


def object_paths(root: Any) -> dict[int, str]:
    """{id(trackable): object path} as `tf.train.Checkpoint(x=root)` would write it
    below `x/` (without the `/.ATTRIBUTES/VARIABLE_VALUE` suffix)."""
    from tensorflow.python.checkpoint import graph_view
    from tensorflow.python.trackable import trackable_utils

    objects, paths = graph_view.ObjectGraphView(root)._breadth_first_traversal()
    return {
        id(obj): trackable_utils.object_path_to_string(paths[obj])
        for obj in objects
        if obj in paths and paths[obj]
    }


# ============================================================================ report
@dataclass
class Match:
    source: str  # name in the checkpoint
    target: str  # canonical name in the owner
    rule: str | None = None
    transform: str | None = None


@dataclass
class Mismatch:
    source: str
    target: str
    expected: str  # the owner's shape/dtype
    got: str  # the checkpoint's (after transforms)


@dataclass
class LoadReport:
    """What a load matched, and everything it did not."""

    path: str
    kind: str
    matched: list[Match] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    dropped: list[Match] = field(default_factory=list)
    mismatched: list[Mismatch] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # outside the owner's object (object-based)
    strict: bool = True
    applied: bool = False

    @property
    def ok(self) -> bool:
        if self.mismatched:
            return False
        return not self.strict or not (self.missing or self.unexpected)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)

    def __str__(self) -> str:
        lines = [
            f"Load of {self.path} ({self.kind}): {len(self.matched)} matched, "
            f"{len(self.missing)} missing, {len(self.unexpected)} unexpected, "
            f"{len(self.mismatched)} mismatched, {len(self.dropped)} dropped"
            + ("" if self.applied else " (nothing assigned)")
        ]
        for m in self.mismatched:
            lines.append(
                f"  mismatch   {m.target} <- {m.source}: expected {m.expected}, got {m.got}"
            )
        lines += [f"  missing    {n}" for n in self.missing]
        lines += [f"  unexpected {n}" for n in self.unexpected]
        for m in self.dropped:
            lines.append(f"  dropped    {m.source} (rule {m.rule})")
        for m in self.matched:
            if m.rule or m.transform:
                how = ", ".join(x for x in (m.rule and f"rule {m.rule}", m.transform) if x)
                lines.append(f"  renamed    {m.source} -> {m.target} ({how})")
        return "\n".join(lines)


# ============================================================================ planning
def _targets(owner: Owner | Mapping[str, tf.Variable]) -> dict[str, tf.Variable]:
    return dict(owner.variables if isinstance(owner, Owner) else owner)


# Entries of a whole-model file that belong to no model variable (optimizer state, the
# tf.train.Checkpoint save counter): never "unexpected" when a model sits at the file's top.
_NOT_MODEL = re.compile(r"^(optimizer|save_counter)(/|$)")


def _pick_root(reader: Reader, key_prefix: str, leaf: Owner, aliases: dict[str, str]) -> str | None:
    """Where `leaf`'s object sits in an object-based or .h5 checkpoint: the prefix under
    which most of its variables are found, or None if none is.

    Several prefixes holding equally many (two same-architecture models in one file)
    are told apart by the leaf's key in its `Parameters` (`teacher/` for
    `Parameters(teacher=...)`, a file written by `tf.train.Checkpoint(teacher=...)`);
    if that does not decide, the load is refused rather than guessed.
    """
    counts: dict[str, int] = {}
    for rel in aliases.values():
        for entry in reader.entries:
            if entry == rel or entry.endswith("/" + rel):
                root = entry[: len(entry) - len(rel)]
                counts[root] = counts.get(root, 0) + 1
    if not counts:
        return None
    best = max(counts.values())
    roots = sorted(r for r, n in counts.items() if n == best)
    if len(roots) > 1 and key_prefix:
        keyed = [r for r in roots if r == key_prefix or r.endswith("/" + key_prefix)]
        roots = keyed or roots
    if len(roots) > 1 and "" in roots:
        roots = [""]
    if len(roots) > 1:
        raise CheckpointError(
            f"Checkpoint {reader.path} holds {len(roots)} objects that fit the "
            f"{leaf.framework} owner {leaf.name!r} equally well: {roots}. Expected one; "
            "tfunite does not guess which. Fix: wrap the owner in tu.Parameters under the "
            "key the checkpoint uses (e.g. Parameters(..., teacher=owner) for "
            "tf.train.Checkpoint(teacher=...))."
        )
    return roots[0]


def _normalize(
    reader: Reader, owner: Owner | Mapping[str, tf.Variable]
) -> tuple[dict[str, str], list[str], list[str]]:
    """{normalized name: checkpoint entry}, the entries outside the owner's object, and
    the owner's variables that this format does not store (alias None).

    For name-based checkpoints a normalized name is the entry itself. For object-based
    and .h5 checkpoints, each leaf owner says where its variables sit relative to its
    own object (`Owner._aliases`); the leaf's root inside the checkpoint is the prefix
    under which most of them exist (`_pick_root`). Entries under a root used by an
    owner but not claimed by it keep their own name, so a strict load reports them as
    unexpected.
    """
    if reader.fmt == "name" or not isinstance(owner, Owner):
        return {name: name for name in reader.entries}, [], []
    names: dict[str, str] = {}
    absent: list[str] = []
    roots_used: list[str] = []
    for key_prefix, leaf in owner.leaves():
        aliases = leaf._aliases(reader.fmt)
        if aliases is None:
            raise CheckpointError(
                f"{reader.path} is a {reader.kind} checkpoint, which the {leaf.framework} "
                f"owner {leaf.name!r} cannot read. Fix: use a TF name-based checkpoint "
                "(tu.save or a TF1 Saver)."
            )
        absent.extend(key_prefix + canon for canon, rel in aliases.items() if rel is None)
        aliases = {canon: rel for canon, rel in aliases.items() if rel is not None}
        root = _pick_root(reader, key_prefix, leaf, aliases)
        if root is None:
            continue  # nothing of this leaf is in the checkpoint: reported as missing
        roots_used.append(root)
        for canon, rel in aliases.items():
            if root + rel in reader.entries:
                names[key_prefix + canon] = root + rel
    used = set(names.values())
    leftover = []
    for entry in reader.entries:
        if entry in used:
            continue
        inside = any(entry.startswith(root) for root in roots_used if root) or (
            "" in roots_used and not _NOT_MODEL.match(entry)
        )
        if inside:
            names[entry] = entry  # inside an owner's object but not one of its variables
        else:
            leftover.append(entry)
    return names, leftover, absent


def plan(
    reader: Reader,
    owner: Owner | Mapping[str, tf.Variable],
    rules: RuleSpec = None,
    transforms: Mapping[str, Transform] | None = None,
    strict: bool = True,
) -> tuple[LoadReport, list[tuple[Match, tf.Variable, Transform | None]]]:
    """Match checkpoint entries to owner variables without reading any tensor."""
    rules = parse_rules(rules)
    transforms = {re.compile(k): t for k, t in (transforms or {}).items()}
    targets = _targets(owner)
    report = LoadReport(path=reader.path, kind=reader.kind, strict=strict)
    normalized, outside, absent = _normalize(reader, owner)
    if reader.fmt == "name":
        entries = {n: n for n in reader.entries}
    else:
        entries = normalized
        report.ignored = sorted(outside) + [
            f"{n} (not stored in {reader.kind} files)" for n in absent
        ]
    steps: list[tuple[Match, tf.Variable, Transform | None]] = []
    claimed: dict[str, str] = {}
    feeds: dict[str, str] = {}
    for name, entry in entries.items():
        target, rule = rules.apply(name)
        if target is None:
            report.dropped.append(Match(entry, "", str(rule)))
            continue
        if target not in targets:
            report.unexpected.append(entry)
            continue
        if target in claimed:
            raise RuleError(
                f"Rules map two checkpoint entries onto variable {target!r}: "
                f"{claimed[target]!r} and {entry!r} (checkpoint {reader.path}). Expected at "
                "most one entry per variable. Fix: make the rules more specific, or drop one "
                "entry with a (regex, None) rule."
            )
        claimed[target] = entry
        if entry in feeds:
            raise CheckpointError(
                f"Checkpoint entry {entry!r} of {reader.path} would feed two variables, "
                f"{feeds[entry]!r} and {target!r}: two owners found their object at the same "
                "place in the file. Expected each entry to load at most one variable. Fix: "
                "load each owner from a checkpoint of its own, or write the checkpoint with "
                "the same keys as the tu.Parameters (tf.train.Checkpoint(teacher=..., "
                "student=...))."
            )
        feeds[entry] = target
        transform = next((t for p, t in transforms.items() if p.fullmatch(target)), None)
        shape, dtype = reader.entries[entry]
        try:
            got_shape = transform.target_shape(shape) if transform else shape
        except Exception as e:
            raise RuleError(
                f"Transform {transform} cannot apply to checkpoint entry {entry!r} of shape "
                f"{shape} ({reader.path}): {e}. Fix: make the transform's pattern match only "
                "the variables it is meant for, or correct its shape arguments."
            )
        var = targets[target]
        match = Match(
            entry, target, str(rule) if rule else None, repr(transform) if transform else None
        )
        want_shape, want_dtype = tuple(var.shape.as_list()), np.dtype(var.dtype.as_numpy_dtype)
        if tuple(got_shape) != want_shape or dtype != want_dtype:
            report.mismatched.append(
                Mismatch(
                    entry,
                    target,
                    f"{want_shape} {want_dtype.name}",
                    f"{tuple(got_shape)} {dtype.name}",
                )
            )
            continue
        steps.append((match, var, transform))
        report.matched.append(match)
    report.missing = [name for name in targets if name not in claimed and name not in absent]
    return report, steps


# ============================================================================ load
def _refusal(report: LoadReport) -> str:
    parts = []
    if report.mismatched:
        m = report.mismatched[0]
        parts.append(
            f"{len(report.mismatched)} shape/dtype mismatch(es), first: variable {m.target!r} "
            f"expects {m.expected} but checkpoint entry {m.source!r} is {m.got}"
        )
    if report.strict and report.missing:
        parts.append(
            f"{len(report.missing)} variable(s) missing from the checkpoint, first: "
            f"{report.missing[0]!r}"
        )
    if report.strict and report.unexpected:
        parts.append(
            f"{len(report.unexpected)} unexpected checkpoint entr(y/ies), first: "
            f"{report.unexpected[0]!r}"
        )
    fix = (
        "Fix: map names with rules=[(regex, replacement)] or an assignment_map, or pass "
        "strict=False to load only what matches"
        if not report.mismatched
        else "Fix: load a checkpoint of the same architecture, or add a shape transform"
    )
    return (
        f"Refused to load {report.path}: "
        + "; ".join(parts)
        + f". Nothing was assigned. {fix}.\n{report}"
    )


def load(
    owner: Owner | Mapping[str, tf.Variable],
    path: str | os.PathLike,
    rules: RuleSpec = None,
    strict: bool = True,
    session: Any = None,
    transforms: Mapping[str, Transform] | None = None,
    dry_run: bool = False,
) -> LoadReport:
    """Load a checkpoint into `owner`, all or nothing; returns a LoadReport.

    Args:
        owner: an Owner, or a mapping canonical name -> tf.Variable.
        path: anything `open_checkpoint` accepts.
        rules: rename rules from checkpoint names to owner names (see rules.py).
        strict: refuse when a variable is missing or a checkpoint entry is unexpected.
        session: the TF1 Session holding the variables, in graph mode.
        transforms: {regex on owner name: Transform} applied checkpoint -> owner.
        dry_run: plan, and check the data files and checksums of what would be read,
            then report; assign nothing.
    """
    reader = open_checkpoint(path)
    try:
        report, steps = plan(reader, owner, rules, transforms, strict)
        if not report.ok:
            raise LoadError(_refusal(report), report)
        reader.verify()
        tf_file = isinstance(reader, TFReader)
        if tf_file:  # every checksum, before the first assignment (or the dry run's OK)
            reader.check([match.source for match, _, _ in steps])
        if dry_run:
            return report
        assign = _assigner(owner, session)
        fast = session is None and tf_file
        done: list[str] = []
        for match, var, transform in steps:
            try:
                value = reader.checked(match.source) if tf_file else None
                if value is None and fast and transform is None:
                    value = reader.read_tensor(match.source)
                elif value is None:
                    value = reader.read(match.source)
                value = transform.forward(value) if transform else value
            except CheckpointError as e:
                # Checked before the first assignment: the file changed during the load.
                # Say exactly what was already assigned.
                raise CheckpointError(
                    f"{e} {len(done)} of {len(steps)} variables had already been assigned "
                    f"({', '.join(done[:5])}{', ...' if len(done) > 5 else ''}); reload a good "
                    "checkpoint before using the model."
                ) from None
            assign(var, value)
            if tf_file:
                reader.release(match.source)
            done.append(match.target)
        report.applied = True
        return report
    finally:
        reader.close()


def _assigner(owner: Any, session: Any):
    if session is None:
        if not tf.executing_eagerly():
            raise CheckpointError(
                "Loading in a TF1 graph needs the Session that holds the variables. "
                "Fix: owner.load(path, session=sess)."
            )
        return lambda var, value: var.assign(value)
    graph = session.graph
    cache = _graph_ops(owner, graph)

    def assign(var: tf.Variable, value: np.ndarray) -> None:
        key = ("assign", id(var))
        if key not in cache:
            with graph.as_default():
                ph = tf.compat.v1.placeholder(var.dtype.base_dtype, var.shape)
                cache[key] = (ph, var.assign(ph, read_value=False))
        ph, op = cache[key]
        session.run(op, {ph: value})

    return assign


_GRAPH_OPS: dict[tuple[int, int], dict[Any, Any]] = {}


def _graph_ops(owner: Any, graph: tf.Graph) -> dict[Any, Any]:
    """Per (owner, graph) cache of save/assign ops, so repeated saves don't grow the graph."""
    return _GRAPH_OPS.setdefault((id(owner), id(graph)), {})


# ============================================================================ save
def save(
    owner: Owner | Mapping[str, tf.Variable], path: str | os.PathLike, session: Any = None
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
        tf.raw_ops.SaveV2(
            prefix=prefix,
            tensor_names=names,
            shape_and_slices=[""] * len(names),
            tensors=[v.read_value() for v in variables],
        )
    else:
        cache = _graph_ops(owner, session.graph)
        if "save" not in cache:
            with session.graph.as_default():
                ph = tf.compat.v1.placeholder(tf.string, [])
                cache["save"] = (
                    ph,
                    tf.raw_ops.SaveV2(
                        prefix=ph,
                        tensor_names=names,
                        shape_and_slices=[""] * len(names),
                        tensors=[v.read_value() for v in variables],
                    ),
                )
        ph, op = cache["save"]
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


# ============================================================================ inspect
def inspect(path: str | os.PathLike) -> list[dict[str, Any]]:
    """[{name, shape, dtype, size}] of every tensor in a checkpoint, sorted by name."""
    reader = open_checkpoint(path)
    try:
        return [
            {
                "name": name,
                "shape": list(shape),
                "dtype": dtype.name,
                "size": int(np.prod(shape, dtype=np.int64)) * dtype.itemsize,
            }
            for name, (shape, dtype) in sorted(reader.entries.items())
        ]
    finally:
        reader.close()
