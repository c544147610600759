"""Checkpoint readers: one uniform, index-first view of every format tfunite reads.

`open_checkpoint(path)` returns a `Reader` whose `entries` map the checkpoint's own
names to (shape, dtype) without reading a tensor: `TFReader` for TF name-based V1/V2
and object-based checkpoints, `H5Reader` for Keras `.weights.h5`, legacy `.h5` and
`.keras` files. `verify()` checks the data files are complete and `check(names)` the
CRC32C of each tensor (V2 bundles, see bundle.py) before a load assigns anything.
`object_paths` gives the object-based path of each trackable of a model.
"""

from __future__ import annotations

import glob
import io
import math
import os
import re
import zipfile
import zlib
from typing import Any

import numpy as np
import tensorflow as tf

from .bundle import Bundle, Unsupported
from .errors import CheckpointError
from .naming import canonical

_OBJ_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
_OBJ_GRAPH = "_CHECKPOINTABLE_OBJECT_GRAPH"
_SAVE_COUNTER = "save_counter" + _OBJ_SUFFIX
# What tu.save writes beside the canonical keys so that tf.train.Checkpoint restores its
# directories (checkpoint.py): every other key of a tu.save bundle is a canonical name.
TF_KEYS = frozenset({_OBJ_GRAPH, _SAVE_COUNTER})


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

    def check(self, names: list[str], deferred: bool = False) -> None:
        """Check the data of the named tensors before a load assigns the first one
        (formats without checksums: nothing to check). ``deferred``: the caller reads
        every named tensor before it assigns any (`plan.assign_all`), so what a read
        checks anyway (a checksum, a dataset HDF5 can deliver) may be left to it."""

    def checked(self, name: str) -> np.ndarray | None:
        """Tensor `name` from data `check` vouched for (its checksum checked by `check` or
        as it is read), or None: read it with `read`."""
        return None

    def release(self, name: str) -> None:
        """Done with `checked(name)`."""

    def close(self) -> None:
        pass


class TFReader(Reader):
    """TF name-based V1/V2 and object-based checkpoints, through `tf.train.load_checkpoint`."""

    def __init__(self, path: str):
        super().__init__(path)
        self._bundle: Bundle | None = _prevalidate(path)
        try:
            self._reader = tf.train.load_checkpoint(path)
            shapes = self._reader.get_variable_to_shape_map()
            dtypes = self._reader.get_variable_to_dtype_map()
        except Exception as e:  # OpError; IndexError, MemoryError, TypeError if broken
            self.close()
            raise _not_a_checkpoint(path, e) from None
        self.prefix = path
        self.v2 = os.path.exists(path + ".index")
        self._keys: dict[str, str] = {}
        # tu.save also writes an object graph (for tf.train.Checkpoint) over canonical
        # keys: object-based means keys that are object paths.
        if _OBJ_GRAPH in shapes and any(
            key.endswith(_OBJ_SUFFIX) and key not in TF_KEYS for key in shapes
        ):
            self.fmt, self.kind = "object", "tf-object"
            for key in shapes:
                if key.endswith(_OBJ_SUFFIX) and "/.OPTIMIZER_SLOT/" not in key:
                    self._keys[key[: -len(_OBJ_SUFFIX)]] = key
        else:
            self.kind = "tf-v2" if self.v2 else "tf-v1"
            self._keys = {key: key for key in shapes}
        # tu.save's object graph is not an entry, but its data is checked with the rest.
        self._extras = [key for key in sorted(TF_KEYS) if key in shapes and self.fmt == "name"]
        for name, key in self._keys.items():
            if name not in self._extras:
                self.entries[name] = (tuple(shapes[key]), np.dtype(dtypes[key].as_numpy_dtype))
        self._all = {k: (tuple(shapes[k]), dtypes[k]) for k in shapes}
        self._checked: set[str] = set()  # names whose bytes `check` verified in the bundle

    def read(self, name: str) -> np.ndarray:
        try:
            return self._reader.get_tensor(self._keys[name])
        except (tf.errors.OpError, MemoryError, IndexError, ValueError) as e:
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
            if dtype != tf.string:  # Python ints: an absurd shape cannot overflow
                numeric += math.prod(shape) * dtype.size
        if self._extras:  # and tu.save's object graph (a string: its size is indexed)
            try:
                self._bundle = self._bundle or Bundle(self.prefix)
                numeric += sum(
                    self._bundle.entries[k].size for k in self._extras if k == _OBJ_GRAPH
                )
            except (Unsupported, ImportError, KeyError):
                pass
        have = sum(os.path.getsize(s) for s in shards)
        if have < numeric:
            raise CheckpointError(
                f"Checkpoint {self.path} is truncated: its index describes {numeric} bytes of "
                f"tensor data but the data file(s) hold {have} bytes. Nothing was loaded. "
                "Fix: restore the checkpoint from a good copy (a save interrupted mid-write "
                "never replaces the previous checkpoint of a tu.save directory)."
            )

    def check(self, names: list[str], deferred: bool = False) -> None:
        """Check the data of every named tensor, before a load assigns the first one.

        In a V2 bundle, each tensor's CRC32C is computed over its bytes in the data file
        and compared with its index entry (bundle.py); `checked` then serves the checked
        bytes of POD tensors. A tensor this cannot check (a V1 file, a bundle layout
        bundle.py does not read, an exotic dtype) is read once through TensorFlow, which
        checks it, and dropped: all-or-nothing still, at the cost of a second read.
        ``deferred``: each named POD tensor's CRC32C is checked as `checked` reads it and
        the others are left to TensorFlow's read (one read of the file, not two); the
        bundle's other entries of tu.save (`TF_KEYS`) are still checked here.
        """
        requested = set(names) if deferred else set()
        names = [*names, *(e for e in self._extras if e not in names)]
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
                    # a POD tensor's checksum is left to its read (bundle.check knows which)
                    if self._bundle.check(key, name, crc=name not in requested):
                        self._checked.add(name)
                    else:
                        rest.append(name)
            except (Unsupported, ImportError):
                self._checked.clear()
                rest = names
        for name in rest:
            if name not in requested:
                self.read(name)

    def checked(self, name: str) -> np.ndarray | None:
        """POD tensor `name` from the bundle `check` checked, its CRC32C checked as it is
        read (None if not available: read it with `read`/`read_tensor`)."""
        if name not in self._checked or self._bundle is None:  # check() sets both
            return None
        return self._bundle.array(self._keys[name], name=name)

    def checked_tensor(self, name: str) -> tf.Tensor | None:
        """`checked(name)` as a new eager CPU tf.Tensor, read straight into its memory.

        The tensor is allocated by TensorFlow (`Empty`), so an eager assign takes its
        buffer over as the variable's storage (no copy), and the variable's old buffer
        goes back to TensorFlow's allocator, which the next load's tensors reuse. Where
        TensorFlow gives no writable view of that very memory (a 0-d tensor, see
        `_writable_view`), the bytes are copied instead.
        """
        key = self._keys.get(name, "")
        if name not in self._checked or self._bundle is None or not self._bundle.pod(key):
            return None
        shape, dtype = self._all[key]
        with tf.device("CPU:0"):
            tensor = tf.raw_ops.Empty(shape=shape, dtype=dtype, init=False)
        view = _writable_view(tensor)
        if view is None:
            return tf.convert_to_tensor(self._bundle.array(key, name=name))
        self._bundle.array(key, into=view, name=name)
        return tensor

    def release(self, name: str) -> None:
        """Done with `checked(name)`: its pages leave this process's resident memory."""
        if name in self._checked and self._bundle is not None:  # check() sets both
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

        self._file: Any = None
        try:
            if path.endswith(".keras"):
                self.kind = "keras-zip"
                try:
                    data = _keras_weights(path)
                except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as e:
                    raise CheckpointError(
                        f"{path} is a damaged .keras archive ({_first_line(e)}). Expected a "
                        "zip file written by keras model.save(). Nothing was loaded. Fix: "
                        "save the model again, or restore the file from a good copy."
                    ) from None
                self._size = len(data)
                self._file = h5py.File(io.BytesIO(data), "r")
            else:
                self._size = os.path.getsize(path)
                self._file = h5py.File(path, "r")
            self._index(h5py)
        except CheckpointError:
            self.close()
            raise
        except (OSError, zipfile.BadZipFile) as e:
            self.close()
            raise _not_a_checkpoint(path, e) from None
        except Exception as e:  # HDF5 reports damage as RuntimeError, KeyError, ValueError...
            self.close()
            raise CheckpointError(
                f"{path} is a damaged HDF5 file ({_first_line(e)}). Expected a Keras "
                ".weights.h5/.h5 file (or the model.weights.h5 of a .keras archive). Nothing "
                "was loaded. Fix: save the weights again, or restore the file from a good copy."
            ) from None

    def _index(self, h5py: Any) -> None:
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
            if not isinstance(ds, h5py.Dataset):
                raise CheckpointError(
                    f"{self.path}: weight {name!r} is a {type(ds).__name__}, expected a "
                    "dataset: not a Keras weights file, or a damaged one. Nothing was loaded. "
                    "Fix: save the weights again, or restore the file from a good copy."
                )
            self._check_size(name, ds)
            self.entries[canonical(name)] = (tuple(ds.shape), np.dtype(ds.dtype))
        self._names = {canonical(n): n for n in self._datasets}

    def _check_size(self, name: str, ds: Any) -> None:
        """Refuse a dataset whose shape claims more bytes than the file can hold: reading
        it would allocate memory sized by that field alone."""
        nbytes = math.prod(ds.shape or ()) * ds.dtype.itemsize
        filtered = ds.id.get_create_plist().get_nfilters() > 0  # compressed
        limit = self._size * (_MAX_EXPANSION if filtered else 1)
        if nbytes > limit:
            raise CheckpointError(
                f"{self.path}: dataset {name!r} ({ds.dtype} {list(ds.shape)}) claims {nbytes} "
                f"bytes, more than the {self._size}-byte file can hold"
                + (f" even compressed {_MAX_EXPANSION}x" if filtered else "")
                + ": the file is damaged or hostile. Nothing was loaded. Fix: save the "
                "weights again, or restore the file from a good copy."
            )

    def check(self, names: list[str], deferred: bool = False) -> None:
        """HDF5 stores no checksums: read every named weight once before the first
        assignment, so a dataset the file cannot deliver refuses the whole load (left to
        the caller's reads when ``deferred``)."""
        if deferred:
            return
        for name in names:
            self.read(name)

    def read(self, name: str) -> np.ndarray:
        try:
            return np.asarray(self._datasets[self._names[name]][()])
        except (OSError, RuntimeError, ValueError, KeyError, MemoryError) as e:
            raise CheckpointError(
                f"{self.path}: weight {name!r} cannot be read ({_first_line(e)}): the file is "
                "damaged. Fix: save the weights again, or restore the file from a good copy."
            ) from None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


# A .keras member or HDF5 dataset that expands more than this is a bomb: Keras stores
# its members uncompressed, DEFLATE cannot exceed ~1032x (Keras itself uses 100x).
_MAX_EXPANSION = 100
_BOMB_FLOOR = 1 << 28  # members up to 256 MiB are read whatever their ratio


_WRITES_REACH_TENSORS: bool | None = None  # see _writable_view


def _writable_view(tensor: tf.Tensor) -> np.ndarray | None:
    """A writable numpy view of eager CPU `tensor`'s own memory, or None.

    TensorFlow's `__array__` aliases a CPU tensor's memory (a copy for what it cannot
    alias). Two calls giving the same address show this tensor is aliased, not copied;
    a once-per-process probe shows a write through the view reaches the tensor.
    """
    global _WRITES_REACH_TENSORS
    if _WRITES_REACH_TENSORS is None:
        with tf.device("CPU:0"):
            probe = tf.raw_ops.Empty(shape=[4], dtype=tf.float32, init=False)
        view = probe.__array__()
        ok = isinstance(view, np.ndarray) and view.flags.writeable
        if ok:
            view[:] = [1.5, -2.0, 3.25, 0.0]
            ok = probe.numpy().tolist() == [1.5, -2.0, 3.25, 0.0]
        _WRITES_REACH_TENSORS = ok
    if not _WRITES_REACH_TENSORS:
        return None
    view, again = tensor.__array__(), tensor.__array__()
    if not (isinstance(view, np.ndarray) and view.flags.writeable and view.flags.c_contiguous):
        return None
    if view.nbytes and view.ctypes.data != again.ctypes.data:
        return None
    return view


def _keras_weights(path: str) -> bytes:
    """The bytes of model.weights.h5 in the .keras archive `path`; nothing else of the
    archive is read (never config.json: no layer is deserialized, no code runs)."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        unsafe = [n for n in names if n.startswith(("/", "\\")) or ".." in re.split(r"[/\\]", n)]
        if unsafe:
            raise CheckpointError(
                f"{path} holds archive members with absolute or parent paths ({unsafe[:3]}): "
                "keras model.save() never writes those; the archive is hostile or damaged. "
                "Nothing was loaded. Fix: pass a .keras file written by Keras."
            )
        if "model.weights.h5" not in names:
            raise CheckpointError(
                f"{path} is a zip file without model.weights.h5: not a .keras "
                "archive. Expected a file written by keras model.save(). Fix: "
                "pass the .keras file keras wrote, or its model.weights.h5."
            )
        info = archive.getinfo("model.weights.h5")
        if info.file_size > _BOMB_FLOOR and info.file_size > _MAX_EXPANSION * info.compress_size:
            raise CheckpointError(
                f"{path}: its model.weights.h5 declares {info.file_size} bytes stored in "
                f"{info.compress_size} (more than {_MAX_EXPANSION}x): a decompression bomb, "
                "not a file Keras wrote (Keras stores members uncompressed). Nothing was "
                "loaded. Fix: pass a .keras file written by Keras."
            )
        return archive.read("model.weights.h5")


def _prevalidate(path: str) -> Bundle | None:
    """The parsed index of the V2 bundle `path` (None if not one, or one bundle.py does
    not read), read before TensorFlow reads it: an index that is not a well-formed table
    is refused here (TF's reader can allocate memory sized by its broken fields)."""
    if not os.path.exists(path + ".index"):
        return None
    try:
        return Bundle(path)
    except ImportError:  # no CRC32C package: TensorFlow reads and checks everything
        return None
    except Unsupported as e:
        if not e.corrupt:
            return None
        raise CheckpointError(
            f"{path} is not a readable checkpoint: its index file {path}.index is corrupted "
            f"or truncated ({e}). Expected a TensorFlow V2 bundle index. Nothing was loaded. Fix: "
            "restore the checkpoint from a good copy (a save interrupted mid-write never "
            "replaces the previous checkpoint of a tu.save directory)."
        ) from None


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


def open_checkpoint(path: str | os.PathLike[str]) -> Reader:
    """Open any supported checkpoint; raises CheckpointError naming the path if it is not one."""
    return _open_checkpoint(os.fspath(path))


def _open_checkpoint(path: str) -> Reader:
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
