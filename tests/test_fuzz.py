"""Fuzzing every reader of untrusted bytes, and a corpus of hand-made malformed files.

Readers: the V2 `.index` (core/bundle.py, then TensorFlow's reader), TF1 V1 files,
Keras `.weights.h5`, legacy `.h5` and `.keras` archives, and object-based checkpoints
(the object-graph names core/aliases.py matches). Each property takes a good file,
breaks it (truncation, byte flips, bytes set, an inflated varint inserted, the magic
number wiped; or, through `make_corpus.table`, index fields made absurd with every
checksum intact) and loads it. The only acceptable outcomes: the load succeeds with
exactly the saved values (formats with checksums; HDF5 has none, so any values), or it
raises tfunite's `CheckpointError` / `LoadError` with a message naming the file, and
the model is unchanged. Anything else (another exception, a crash, a hang past the
deadline) fails.

CI runs a derandomized, bounded number of examples (settings profile "ci"); `make fuzz`
runs the "fuzz" profile (HYPOTHESIS_PROFILE=fuzz: many more, random).
"""

from __future__ import annotations

import collections
import os
import re
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tfunite as tu
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.corpus import make_corpus as mc

settings.register_profile(
    "ci",
    max_examples=60,
    derandomize=True,
    deadline=20_000,  # ms per example: a hang fails
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "fuzz",
    max_examples=2_000,
    deadline=20_000,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

STATS: collections.Counter[str] = collections.Counter()  # outcomes, for the closing note
MESSAGES: set[str] = set()  # distinct error messages (paths and numbers blanked)


def _shape(message: str, path: str) -> str:
    text = message.replace(path, "<path>")
    text = re.sub(r"/\S+", "<path>", text)
    return re.sub(r"\d+", "N", text).splitlines()[0]


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    print(
        f"\nfuzz: {sum(STATS.values())} examples {dict(STATS)}; "
        f"{len(MESSAGES)} distinct error messages"
    )
    for m in sorted(MESSAGES):
        print("  ", m[:200])


# ------------------------------------------------------------------ mutations
def _mutations(size: int):
    pos = st.integers(0, max(size - 1, 0))
    return st.lists(
        st.one_of(
            st.tuples(st.just("truncate"), pos),
            st.tuples(st.just("flip"), pos, st.integers(0, 7)),
            st.tuples(st.just("set"), pos, st.integers(0, 255)),
            st.tuples(st.just("varint"), pos, st.integers(1, 10)),
            st.tuples(st.just("magic"), st.integers(1, 8)),
        ),
        min_size=1,
        max_size=3,
    )


def _apply(raw: bytes, ops) -> bytes:
    b = bytearray(raw)
    for op in ops:
        if not b:
            break
        if op[0] == "truncate":
            del b[op[1] % len(b) :]
        elif op[0] == "flip":
            b[op[1] % len(b)] ^= 1 << op[2]
        elif op[0] == "set":
            b[op[1] % len(b)] = op[2]
        elif op[0] == "varint":  # an inflated varint: continuation bytes, then a 1
            at = op[1] % len(b)
            b[at:at] = b"\xff" * op[2] + b"\x01"
        else:  # the magic number at the end (tables) or start (HDF5, zip)
            n = min(op[1], len(b))
            b[-n:] = b"\x00" * n
            b[:n] = b"\x00" * n
    return bytes(b)


def _load_and_judge(targets, path: str, good: dict[str, np.ndarray] | None, name_in: str):
    """Load; succeed with `good` values (None: any values), or a typed error naming the
    file with the model unchanged."""
    variables = targets.variables if hasattr(targets, "variables") else targets
    before = {k: v.numpy().copy() for k, v in variables.items()}
    try:
        tu.load(targets, path)
    except (tu.CheckpointError, tu.LoadError) as e:
        STATS[type(e).__name__] += 1
        MESSAGES.add(_shape(str(e), path))
        assert name_in in str(e), f"the message does not name {name_in}: {e}"
        for k, v in variables.items():
            assert v.numpy().tobytes() == before[k].tobytes(), f"{k} changed by a refused load"
        return
    STATS["loaded"] += 1
    if good is not None:
        for k, v in variables.items():
            np.testing.assert_array_equal(v.numpy(), good[k])


# ------------------------------------------------------------------ files
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Good files of every format, written once: {kind: (path, bytes)}."""
    import keras

    root = tmp_path_factory.mktemp("fuzz")
    out = {}
    prefix = tu.save({k: tf.Variable(v) for k, v in mc.VALUES.items()}, root / "v2")
    out["index"] = prefix + ".index"
    with tf.Graph().as_default():
        vs = [tf.compat.v1.Variable(v, name=k) for k, v in mc.VALUES.items()]
        saver = tf.compat.v1.train.Saver(vs, write_version=tf.compat.v1.train.SaverDef.V1)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            out["v1"] = saver.save(sess, str(root / "v1.ckpt"), write_meta_graph=False)
    model = mc.keras_model()
    model.set_weights([np.full(w.shape, i + 1, np.float32) for i, w in enumerate(model.weights)])
    model.save_weights(str(root / "m.weights.h5"))
    out["weights_h5"] = str(root / "m.weights.h5")
    model.save(str(root / "m.keras"))
    out["keras"] = str(root / "m.keras")
    import tf_keras

    legacy = tf_keras.Sequential([tf_keras.Input((3,)), tf_keras.layers.Dense(2, name="d")])
    legacy.set_weights([np.full(w.shape, i + 1, np.float32) for i, w in enumerate(legacy.weights)])
    legacy.save_weights(str(root / "legacy.h5"))
    out["legacy_h5"] = str(root / "legacy.h5")
    obj = tf.train.Checkpoint(model=model).write(str(root / "obj"))
    out["object"] = obj + ".index"
    del keras
    return {k: (p, open(p, "rb").read()) for k, p in out.items()}


def _keras_owner():
    return tu.wrap(mc.keras_model(), name="m")


def _vars():
    return {k: tf.Variable(np.zeros_like(v)) for k, v in mc.VALUES.items()}


KERAS_GOOD = {"d/kernel": np.full((3, 2), 1, np.float32), "d/bias": np.full(2, 2, np.float32)}


def _fuzz_file(files, kind: str, ops, tmp_path) -> None:
    path, raw = files[kind]
    work = tmp_path / kind
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    for f in os.listdir(os.path.dirname(path)):  # the good companions (data files)
        full = os.path.join(os.path.dirname(path), f)
        if os.path.isfile(full):
            shutil.copy(full, work / f)
    broken = work / os.path.basename(path)
    broken.write_bytes(_apply(raw, ops))
    if kind in ("index", "object"):
        load_path = str(broken)[: -len(".index")]
    else:
        load_path = str(broken)
    if kind in ("index", "v1"):
        _load_and_judge(_vars(), load_path, mc.VALUES, os.path.basename(load_path))
    else:
        owner = _keras_owner()
        good = None if kind in ("weights_h5", "legacy_h5") else None
        if kind in ("keras", "object"):
            good = {
                k: KERAS_GOOD["d/kernel" if "kernel" in k else "d/bias"] for k in owner.variables
            }
        _load_and_judge(owner, load_path, good, os.path.basename(load_path))


@pytest.mark.parametrize("kind", ["index", "v1", "weights_h5", "legacy_h5", "keras", "object"])
def test_mutated_files_load_exactly_or_raise_typed_errors(files, kind, tmp_path):
    size = len(files[kind][1])

    @given(ops=_mutations(size))
    def run(ops):
        _fuzz_file(files, kind, ops, tmp_path)

    run()


_DIMS = st.sampled_from([0, 1, 2, 3, 4, 12, 1 << 20, 1 << 31, 1 << 40, 1 << 62, -1])
_INTS = st.sampled_from([0, 1, 8, 16, 48, 63, 64, 1 << 32, 1 << 40, (1 << 63) - 1, -1, -(1 << 40)])


@given(
    key=st.sampled_from([b"a", b"b"]),
    shape=st.lists(_DIMS, max_size=3),
    dtype=st.sampled_from([1, 2, 3, 7, 9, 10, 14, 20, 99, 1000]),
    offset=_INTS,
    size=_INTS,
    shard=st.sampled_from([0, 1, 3, -1]),
    crc=st.sampled_from([0, 0xFFFFFFFF]),
)
def test_absurd_index_fields_with_valid_checksums(
    files, tmp_path, key, shape, dtype, offset, size, shard, crc
):
    """Every field of an index entry made absurd (2**40 elements, offsets past the end,
    unknown dtypes), the table's checksums recomputed so the broken fields are read."""
    prefix = files["index"][0][: -len(".index")]
    entries = mc.entries_of(prefix)
    fields = {"shape": shape, "dtype": dtype, "offset": offset, "size": size}
    fields.update(shard_id=shard, crc32c=crc)
    try:
        broken = mc.edit(entries, key, **fields)
    except ValueError:  # a value the proto field cannot hold (e.g. a negative uint32)
        return
    work = tmp_path / "absurd"
    work.mkdir(exist_ok=True)
    shutil.copy(prefix + ".data-00000-of-00001", work / "x.data-00000-of-00001")
    (work / "x.index").write_bytes(mc.table(broken))
    _load_and_judge(_vars(), str(work / "x"), mc.VALUES, "x")


# ------------------------------------------------------------------ the corpus
CORPUS = {
    "index_truncated": r"index_truncated is not a readable checkpoint: its index file .* is "
    r"corrupted or truncated \(no table footer\)",
    "index_wrong_magic": r"index_wrong_magic is not a readable checkpoint: .*\(no table footer\)",
    "index_empty": r"index_empty is not a readable checkpoint: .*\(no table footer\)",
    "index_flipped_byte": r"a block of its index file .*index_flipped_byte\.index fails its "
    r"checksum",
    "index_block_past_end": r"index_block_past_end is not a readable checkpoint: .*\(index block "
    r"outside the file\)",
    "index_entry_past_block": r"index_entry_past_block is not a readable checkpoint: .*\(data "
    r"block: entry runs past its block\)",
    "index_no_header": r"index_no_header is not a readable checkpoint: .*\(the first entry is "
    r"not the bundle header\)",
    "index_overflowing_shape": r"index_overflowing_shape is not a readable checkpoint: .*entry "
    r"'a' has shape \[1099511627776, 1099511627776\]: more than 2\*\*63 elements",
    "index_absurd_shape": r"Refused to load .*index_absurd_shape: .*variable 'a' expects \(3, "
    r"4\) float32 but checkpoint entry 'a' is \(1099511627776,\) float32",
    "index_size_mismatch": r"index_size_mismatch: the index gives tensor 'b' \(int64 \[2\]\) 8 "
    r"bytes of data, expected 16: the index file is corrupted",
    "index_offset_past_end": r"index_offset_past_end is truncated: tensor 'b' needs bytes "
    r"1099511627776\.\.1099511627792 of .*, which holds 64 bytes",
    "index_shard_out_of_range": r"index_shard_out_of_range: the index puts tensor 'b' in shard "
    r"3 of 1",
    "data_flipped_byte": r"data_flipped_byte: tensor 'a' is corrupted: its 48 bytes at offset 0 "
    r"of data file data_flipped_byte\.data-00000-of-00001 should have CRC32C",
    "data_truncated": r"data_truncated is truncated: its index describes 64 bytes of tensor "
    r"data but the data file\(s\) hold 59 bytes",
    "data_missing": r"data_missing: the index exists but no data file",
    "v1_truncated.ckpt": r"v1_truncated\.ckpt is not a readable checkpoint \(.*not an sstable",
    "v1_wrong_magic.ckpt": r"v1_wrong_magic\.ckpt is not a readable checkpoint \(.*bad magic",
    "truncated.weights.h5": r"truncated\.weights\.h5 is not a readable checkpoint \(.*truncated "
    r"file",
    "wrong_magic.weights.h5": r"wrong_magic\.weights\.h5 is not a readable checkpoint \(.*file "
    r"signature not found",
    "absurd_shape.weights.h5": r"absurd_shape\.weights\.h5: dataset 'layers/dense/vars/0' "
    r"\(float32 \[1099511627776\]\) claims 4398046511104 bytes, more than the \d+-byte file "
    r"can hold",
    "missing_group.h5": r"missing_group\.h5 is a damaged HDF5 file \(.*'ghost' doesn't exist",
    "not_a_zip.keras": r"not_a_zip\.keras is a damaged \.keras archive \(File is not a zip file\)",
    "truncated.keras": r"truncated\.keras is a damaged \.keras archive",
    "no_weights.keras": r"no_weights\.keras is a zip file without model\.weights\.h5",
    "path_traversal.keras": r"path_traversal\.keras holds archive members with absolute or "
    r"parent paths \(\['\.\./\.\./evil\.txt'\]\)",
    "zip_bomb.keras": r"zip_bomb\.keras: its model\.weights\.h5 declares 4026531840 bytes stored "
    r"in \d+ \(more than 100x\): a decompression bomb",
    "garbage_weights.keras": r"garbage_weights\.keras is not a readable checkpoint \(.*file "
    r"signature not found",
}


def test_corpus_is_complete():
    on_disk = {
        f[: -len(".index")] if f.endswith(".index") else f
        for f in os.listdir(mc.HERE)
        if not f.endswith((".py", ".data-00000-of-00001")) and not f.startswith("__")
    }
    assert on_disk - {"good", "good.weights.h5", "good.keras"} == set(CORPUS)
    assert len(CORPUS) >= 20


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus(name):
    path = os.path.join(mc.HERE, name)
    keras_kind = name.endswith((".h5", ".keras"))
    targets = _keras_owner() if keras_kind else _vars()
    variables = targets.variables if keras_kind else targets
    before = {k: v.numpy().copy() for k, v in variables.items()}
    with pytest.raises((tu.CheckpointError, tu.LoadError), match=CORPUS[name]):
        tu.load(targets, path)
    for k, v in variables.items():
        assert v.numpy().tobytes() == before[k].tobytes()


@pytest.mark.parametrize("name", ["good", "good.weights.h5", "good.keras"])
def test_corpus_good_files_load(name):
    """The files the corpus breaks load (so each broken one fails for its one defect)."""
    path = os.path.join(mc.HERE, name)
    targets = _keras_owner() if name != "good" else _vars()
    tu.load(targets, path)
    if name == "good":
        for k, v in mc.VALUES.items():
            np.testing.assert_array_equal(targets[k].numpy(), v)


# ------------------------------------------------------------------ untrusted model files
def test_keras_file_with_a_lambda_layer_loads_weights_without_running_code(tmp_path, monkeypatch):
    """tfunite reads only model.weights.h5 of a .keras archive, never config.json: a
    Lambda layer's pickled/marshalled function is never decoded, let alone run. Keras's
    own loader keeps safe mode and refuses the file (with its fix)."""
    import marshal
    import pickle

    import keras

    inputs = keras.Input((3,))
    dense = keras.layers.Dense(2, name="d")
    hidden = keras.layers.Lambda(lambda x: x * 2.0)
    model = keras.Model(inputs, dense(hidden(inputs)), name="m")
    dense.kernel.assign(np.full((3, 2), 1, np.float32))
    dense.bias.assign(np.full(2, 2, np.float32))
    path = str(tmp_path / "lambda.keras")
    model.save(path)

    def refuse(*args, **kwargs):
        raise AssertionError("tfunite decoded code from an untrusted file")

    with pytest.raises(ValueError, match=r"(?s)Lambda.*safe_mode"):
        keras.saving.load_model(path)  # Keras's own loader: safe mode is on by default
    monkeypatch.setattr(marshal, "loads", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    twin = tu.wrap(mc.keras_model(), name="m")
    tu.load(twin, path)
    np.testing.assert_array_equal(twin.variables["d/kernel"].numpy(), np.ones((3, 2)))
    np.testing.assert_array_equal(twin.variables["d/bias"].numpy(), np.full(2, 2))
