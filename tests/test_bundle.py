"""V2 bundle loads are all-or-nothing for corruption inside the data too (core/bundle.py).

Every tensor's CRC32C is checked against the index before the first assignment, so a
flipped byte that keeps the file size refuses the whole load and leaves every variable
as it was. Values are then assigned from the checked bytes and must equal exactly.
"""

from __future__ import annotations

import os
import re
import struct

import ml_dtypes
import numpy as np
import pytest
import tensorflow as tf
import tfunite as tu
from tfunite import bundle as tub
from tfunite import readers as tuc

from tests import models

VALUES = {
    "f32": np.linspace(-3, 3, 24, dtype=np.float32).reshape(4, 6),
    "f64": np.array([np.pi, -0.0, 1e-300, np.inf], np.float64),
    "f16": np.array([[0.5, -65504.0], [6e-5, 1.0]], np.float16),
    "bf16": np.array([1.5, -2.25, 3e38], ml_dtypes.bfloat16),
    "i64": np.array([2**62, -(2**63), 7], np.int64),
    "i32": np.arange(-5, 5, dtype=np.int32),
    "u8": np.arange(250, 256, dtype=np.uint8),
    "flag": np.array([True, False, True]),
    "c64": np.array([1 + 2j, -3.5j], np.complex64),
    "scalar": np.float32(42.0),
    "empty": np.zeros((0, 3), np.float32),
    "text": np.array([b"", b"a", "\u00e9t\u00e9 \u2713".encode(), b"x" * 300], object),
}


def variables(values=VALUES, zero=False):
    """{name: tf.Variable} holding `values` (or zeros / empty strings of their shape)."""
    out = {}
    for name, value in values.items():
        value = np.asarray(value)
        if zero:
            value = np.full(value.shape, b"" if value.dtype == object else 0, value.dtype)
        out[name] = tf.Variable(
            tf.constant(value, dtype=tf.string if value.dtype == object else None)
        )
    return out


def snapshot(targets):
    return {k: v.numpy().copy() for k, v in targets.items()}


def assert_values(targets, values):
    for name, var in targets.items():
        got, want = var.numpy(), np.asarray(values[name])
        assert got.dtype == want.dtype or want.dtype == object, name
        assert got.shape == want.shape, name
        # Exact equality, bit for bit (np.inf, -0.0 and bfloat16 included).
        assert (
            got.tobytes() == want.tobytes() if want.dtype != object else list(got) == list(want)
        ), name


def flip(path: str, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x5A]))


def entry(prefix: str, key: str) -> tub.Entry:
    return tub.Bundle(prefix).entries[key]


def parse(raw: bytes, tmp_path) -> tub.Bundle:
    """bundle.py's reading of `raw` as an .index file."""
    (tmp_path / "parsed.index").write_bytes(raw)
    return tub.Bundle(str(tmp_path / "parsed"))


def data_file(prefix: str, shard: int = 0, shards: int = 1) -> str:
    return f"{prefix}.data-{shard:05d}-of-{shards:05d}"


@pytest.fixture
def saved(tmp_path):
    """A tu.save bundle of VALUES, and zeroed variables to load it into."""
    prefix = tu.save(variables(), tmp_path / "ck")
    return prefix, variables(zero=True)


# ---------------------------------------------------------------- good loads
def test_every_dtype_loads_bit_exact(saved, tmp_path):
    prefix, targets = saved
    report = tu.load(targets, tmp_path / "ck")
    assert report.applied and len(report.matched) == len(VALUES)
    assert_values(targets, VALUES)


def test_loaded_variables_own_their_memory(saved, tmp_path):
    """Values are read into tensors of their own: a write to the variables must not
    touch the file (or anything else)."""
    prefix, targets = saved
    tu.load(targets, tmp_path / "ck")
    before = open(data_file(prefix), "rb").read()
    for name in ("f32", "i64", "flag"):
        var = targets[name]
        var.assign(tf.zeros_like(var) if name != "flag" else tf.logical_not(var))
    targets["f32"].assign_add(tf.ones_like(targets["f32"]))
    np.testing.assert_array_equal(targets["f32"].numpy(), np.ones((4, 6), np.float32))
    assert open(data_file(prefix), "rb").read() == before


def test_index_parsed_as_tensorflow_reads_it(saved):
    prefix, _ = saved
    bundle = tub.Bundle(prefix)
    reader = tf.train.load_checkpoint(prefix)
    shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    assert sorted(bundle.entries) == sorted(shapes)
    for key, e in bundle.entries.items():
        assert list(e.shape) == shapes[key] and e.dtype == dtypes[key].as_datatype_enum, key
        assert bundle.check(key, key)  # every one of these dtypes is checked by bundle.py
    assert bundle.num_shards == 1
    bundle.close()


def test_crc32c_and_mask_match_tensorflow():
    assert tub.crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    for crc in (0, 1, 0xE3069283, 0xFFFFFFFF):
        assert tub.unmask(tub.mask(crc)) == crc
    # leveldb's reference: Mask(Value("foo")) differs from Value("foo"), Unmask undoes it.
    assert tub.mask(tub.crc32c(b"foo")) != tub.crc32c(b"foo")


def test_object_based_checkpoint_is_checked_too(tmp_path):
    source = models.tf_keras_sequential()
    source(models.example())
    for i, w in enumerate(source.weights):
        w.assign(tf.fill(w.shape, float(i + 1)))
    prefix = tf.train.Checkpoint(model=source).write(str(tmp_path / "obj" / "ckpt"))
    owner = tu.wrap(models.tf_keras_sequential(), name="net")
    owner(models.example())
    report = tu.load(owner, prefix)
    assert report.kind == "tf-object" and report.applied
    for w, v in zip(source.weights, owner.variables.values()):
        np.testing.assert_array_equal(v.numpy(), w.numpy())
    # A flipped byte in the last-written model tensor: nothing is assigned.
    bundle = tub.Bundle(prefix)
    key = max(
        (e for e in bundle.entries.values() if "VARIABLE_VALUE" in e.key and e.size),
        key=lambda e: e.offset,
    ).key
    flip(data_file(prefix), entry(prefix, key).offset + entry(prefix, key).size // 2)
    for v in owner.variables.values():
        v.assign(tf.zeros_like(v))
    before = snapshot(owner.variables)
    name = re.escape(key[: -len(tuc._OBJ_SUFFIX)])
    with pytest.raises(tu.CheckpointError, match=rf"tensor '{name}' is corrupted"):
        tu.load(owner, prefix)
    for k, v in owner.variables.items():
        np.testing.assert_array_equal(v.numpy(), before[k], err_msg=k)


def test_multi_shard_bundle(tmp_path):
    a, b = np.arange(10, dtype=np.float32), np.arange(12, dtype=np.int64).reshape(3, 4)
    tf.raw_ops.SaveV2(
        prefix=str(tmp_path / "p0"),
        tensor_names=["a", "s"],
        shape_and_slices=["", ""],
        tensors=[a, tf.constant([b"x", b"yy"])],
    )
    tf.raw_ops.SaveV2(
        prefix=str(tmp_path / "p1"), tensor_names=["b"], shape_and_slices=[""], tensors=[b]
    )
    prefix = str(tmp_path / "m")
    tf.raw_ops.MergeV2Checkpoints(
        checkpoint_prefixes=[str(tmp_path / "p0"), str(tmp_path / "p1")], destination_prefix=prefix
    )
    assert os.path.exists(data_file(prefix, 1, 2))
    assert tub.Bundle(prefix).entries["b"].shard == 1
    want = {"a": a, "b": b, "s": np.array([b"x", b"yy"], object)}
    targets = variables(want, zero=True)
    tu.load(targets, prefix)
    assert_values(targets, want)
    flip(data_file(prefix, 1, 2), 40)
    targets = variables(want, zero=True)
    before = snapshot(targets)
    with pytest.raises(
        tu.CheckpointError,
        match=r"tensor 'b' is corrupted: its 96 bytes at offset 0 "
        r"of data file m\.data-00001-of-00002",
    ):
        tu.load(targets, prefix)
    assert_values(targets, before)


def test_partitioned_tensor(tmp_path):
    w = np.arange(18, dtype=np.float32).reshape(6, 3)
    prefix = str(tmp_path / "part")
    tf.raw_ops.SaveV2(
        prefix=prefix,
        tensor_names=["w", "w", "c"],
        shape_and_slices=["6 3 0,3:-", "6 3 3,3:-", ""],
        tensors=[w[:3], w[3:], tf.constant(7)],
    )
    bundle = tub.Bundle(prefix)
    assert bundle.entries["w"].sliced and len(bundle.slice_entries) == 2
    targets = variables({"w": w, "c": np.int32(7)}, zero=True)
    tu.load(targets, prefix)
    assert_values(targets, {"w": w, "c": np.int32(7)})
    flip(data_file(prefix), bundle.slice_entries[1].offset + 5)
    targets = variables({"w": w, "c": np.int32(7)}, zero=True)
    with pytest.raises(tu.CheckpointError, match=r"a slice of tensor 'w' is corrupted"):
        tu.load(targets, prefix)
    assert not targets["c"].numpy()


def test_transforms_apply_to_checked_bytes(tmp_path):
    w = np.arange(18, dtype=np.float32).reshape(3, 6)
    prefix = tu.save(
        {"w": tf.Variable(w), "b": tf.Variable(np.ones(3, np.float32))}, tmp_path / "ck"
    )
    o = tu.wrap(models.tf_module(), name="affine")
    tu.load(o, prefix, transforms={"w": tu.Transpose((1, 0))})
    np.testing.assert_array_equal(o.variables["w"].numpy(), w.T)


def test_tf1_session_load_is_checked(tmp_path):
    prefix = tu.save(
        variables({"f32": VALUES["f32"], "i64": VALUES["i64"], "text": VALUES["text"]}),
        tmp_path / "ck",
    )
    want = {"f32": VALUES["f32"], "i64": VALUES["i64"], "text": VALUES["text"]}
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        targets = {
            n: tf.compat.v1.Variable(np.zeros_like(v) if v.dtype != object else [b""] * 4, name=n)
            for n, v in want.items()
        }
        sess.run(tf.compat.v1.global_variables_initializer())
        tu.load(targets, prefix, session=sess)
        got = sess.run(targets)
        for n, v in want.items():
            assert got[n].tobytes() == v.tobytes() if v.dtype != object else list(got[n]) == list(v)
        sess.run([v.assign(tf.zeros_like(v)) for n, v in targets.items() if n != "text"])
        flip(data_file(prefix), entry(prefix, "i64").offset + 3)
        with pytest.raises(tu.CheckpointError, match=r"tensor 'i64' is corrupted"):
            tu.load(targets, prefix, session=sess)
        assert not sess.run(targets["f32"]).any()


# ---------------------------------------------------------------- bad data
@pytest.mark.parametrize("key", ["f32", "f64", "bf16", "i64", "flag", "text"])
def test_flipped_byte_in_a_tensor_refuses_the_whole_load(saved, tmp_path, key):
    prefix, targets = saved
    e = entry(prefix, key)
    flip(data_file(prefix), e.offset + e.size // 2)
    before = snapshot(targets)
    with pytest.raises(tu.CheckpointError) as info:
        tu.load(targets, tmp_path / "ck")
    message = str(info.value)
    assert f"Checkpoint {prefix}: tensor '{key}' is corrupted" in message
    assert "Nothing was loaded. Fix: restore the checkpoint from a good copy" in message
    assert key == "text" or (
        f"at offset {e.offset}" in message
        and f"should have CRC32C {tub.unmask(e.crc):08x} (from the index)" in message
    )
    for name, var in targets.items():  # every variable, before and after the bad one
        assert var.numpy().tobytes() == before[name].tobytes() or list(var.numpy()) == list(
            before[name]
        ), name


def test_dry_run_checks_what_a_load_would_read(saved, tmp_path):
    """A dry run that says OK means the load would succeed: sizes and checksums included."""
    prefix, targets = saved
    assert tu.load(targets, tmp_path / "ck", dry_run=True).ok
    e = entry(prefix, "f32")
    flip(data_file(prefix), e.offset + 1)
    with pytest.raises(tu.CheckpointError, match=r"tensor 'f32' is corrupted"):
        tu.load(targets, tmp_path / "ck", dry_run=True)
    with open(data_file(prefix), "r+b") as f:
        f.truncate(e.offset + 2)
    with pytest.raises(tu.CheckpointError, match=r"is truncated"):
        tu.load(targets, tmp_path / "ck", dry_run=True)


def test_corrupt_string_lengths_refuse_the_load(saved, tmp_path):
    prefix, targets = saved
    e = entry(prefix, "text")
    flip(data_file(prefix), e.offset + 3)  # the varint length of the 4th string
    with pytest.raises(tu.CheckpointError, match=r"tensor 'text' is corrupted"):
        tu.load(targets, tmp_path / "ck")
    assert list(targets["text"].numpy()) == [b""] * 4


def test_truncated_data_file(saved, tmp_path):
    prefix, targets = saved
    with open(data_file(prefix), "r+b") as f:
        f.truncate(entry(prefix, "i64").offset + 4)
    before = snapshot(targets)
    with pytest.raises(tu.CheckpointError, match=r"is truncated: .*Nothing was loaded"):
        tu.load(targets, tmp_path / "ck")
    assert_values(targets, before)


def test_truncated_string_tensor_past_the_numeric_size_check(tmp_path):
    """The size check of all numeric tensors cannot see string bytes: the per-tensor
    range check of the bundle does."""
    values = {"a": np.ones(4, np.float32), "z": np.array([b"s" * 1000], object)}
    prefix = tu.save(variables(values), tmp_path / "ck")
    assert entry(prefix, "z").offset > entry(prefix, "a").offset  # keys are sorted
    with open(data_file(prefix), "r+b") as f:
        f.truncate(os.path.getsize(data_file(prefix)) - 10)
    targets = variables(values, zero=True)
    with pytest.raises(
        tu.CheckpointError,
        match=r"is truncated: tensor 'z' needs bytes \d+\.\.\d+ "
        r"of .*data-00000-of-00001, which holds \d+ bytes\. Nothing was loaded",
    ):
        tu.load(targets, tmp_path / "ck")
    assert not targets["a"].numpy().any()


def test_index_that_is_not_a_bundle(saved, tmp_path):
    prefix, targets = saved
    with pytest.raises(tub.Unsupported, match="no table footer"):
        parse(b"not an index at all" * 10, tmp_path)
    # A flipped byte inside the index's data block: its block checksum fails.
    raw = bytearray(open(prefix + ".index", "rb").read())
    raw[20] ^= 0x01
    with pytest.raises(tu.CheckpointError, match=r"index file .* fails its checksum"):
        parse(bytes(raw), tmp_path)
    # Through a load, TensorFlow's own reader refuses the file first.
    open(prefix + ".index", "wb").write(bytes(raw))
    before = snapshot(targets)
    with pytest.raises(tu.CheckpointError):
        tu.load(targets, tmp_path / "ck")
    assert_values(targets, before)


def test_compressed_index_block_is_not_guessed(saved, tmp_path):
    """A block marked compressed (TF writes none) is Unsupported, never parsed."""
    prefix, _ = saved
    raw = bytearray(open(prefix + ".index", "rb").read())
    footer = len(raw) - 48
    pos = footer
    for _ in range(2):  # skip the metaindex handle
        while raw[pos] & 0x80:
            pos += 1
        pos += 1
    index_offset, pos = tub._varint(bytes(raw), pos, footer + 40)
    index_size, _ = tub._varint(bytes(raw), pos, footer + 40)
    end = index_offset + index_size
    raw[end] = 1  # snappy
    crc = tub.crc32c(bytes(raw[end : end + 1]), tub.crc32c(bytes(raw[index_offset:end])))
    raw[end + 1 : end + 5] = struct.pack("<I", tub.mask(crc))
    with pytest.raises(tub.Unsupported, match="compressed index block"):
        parse(bytes(raw), tmp_path)


def test_unsupported_bundle_falls_back_to_reading_everything_first(saved, tmp_path, monkeypatch):
    """Where bundle.py cannot read the index, each tensor is read once through TF (which
    checks its CRC) before the first assignment: still all-or-nothing."""
    prefix, targets = saved

    def unsupported(prefix):
        raise tub.Unsupported("test")

    monkeypatch.setattr(tuc, "Bundle", unsupported)
    tu.load(targets, tmp_path / "ck")
    assert_values(targets, VALUES)
    flip(data_file(prefix), entry(prefix, "text").offset + 10)
    targets = variables(zero=True)
    before = snapshot(targets)
    with pytest.raises(
        tu.CheckpointError, match=r"tensor 'text' cannot be read .*Checksum does not match"
    ):
        tu.load(targets, tmp_path / "ck")
    for name, var in targets.items():
        assert var.numpy().tobytes() == before[name].tobytes() or list(var.numpy()) == list(
            before[name]
        ), name


def test_v1_corruption_is_found_before_anything_is_assigned(tmp_path):
    values = {
        "a": np.arange(100000, dtype=np.float32),
        "b": np.ones(100000, np.float32),
        "c": np.full(50000, 3, np.float32),
    }
    with tf.Graph().as_default():
        vs = [tf.compat.v1.Variable(v, name=n) for n, v in values.items()]
        saver = tf.compat.v1.train.Saver(vs, write_version=tf.compat.v1.train.SaverDef.V1)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            path = saver.save(sess, str(tmp_path / "v1.ckpt"), write_meta_graph=False)
    targets = variables(values, zero=True)
    tu.load(targets, path)
    assert_values(targets, values)
    flip(path, int(os.path.getsize(path) * 0.8))
    targets = variables(values, zero=True)
    with pytest.raises(tu.CheckpointError, match=r"cannot be read"):
        tu.load(targets, path)
    assert_values(targets, {k: np.zeros_like(v) for k, v in values.items()})


def test_pod_tensors_are_assigned_from_the_checked_bytes(saved, tmp_path, monkeypatch):
    """Only tensors bundle.py does not serve as arrays (strings) are read again by TF."""
    _, targets = saved
    read = []
    original = tuc.TFReader.read_tensor
    monkeypatch.setattr(
        tuc.TFReader, "read_tensor", lambda self, name: read.append(name) or original(self, name)
    )
    tu.load(targets, tmp_path / "ck")
    assert read == ["text"]
    assert_values(targets, VALUES)


def test_eager_loads_read_into_tensorflow_tensors(saved, tmp_path, monkeypatch):
    """Eager loads read each POD tensor straight into a new TF tensor's own memory (no
    numpy copy); only the 0-d one, which TF shows read-only, takes the copying way."""
    _, targets = saved
    views = []
    original = tuc._writable_view

    def spy(tensor):
        view = original(tensor)
        views.append((tuple(tensor.shape), view is not None))
        return view

    monkeypatch.setattr(tuc, "_writable_view", spy)
    tu.load(targets, tmp_path / "ck")
    assert_values(targets, VALUES)
    pod = [n for n, v in VALUES.items() if np.asarray(v).dtype != object]
    assert len(views) == len(pod)
    assert [shape for shape, direct in views if not direct] == [()]


def test_without_a_writable_view_loads_copy_the_checked_bytes(saved, tmp_path, monkeypatch):
    _, targets = saved
    monkeypatch.setattr(tuc, "_writable_view", lambda tensor: None)
    tu.load(targets, tmp_path / "ck")
    assert_values(targets, VALUES)


def test_without_the_crc32c_module_loads_read_everything_first(saved, tmp_path, monkeypatch):
    """Neither CRC32C package importable: every tensor is read through TF first."""
    import sys

    prefix, targets = saved
    offset = entry(prefix, "i64").offset
    monkeypatch.setitem(sys.modules, "crc32c", None)  # import crc32c raises ImportError
    monkeypatch.setitem(sys.modules, "google_crc32c", None)
    tu.load(targets, tmp_path / "ck")
    assert_values(targets, VALUES)
    flip(data_file(prefix), offset + 1)
    targets = variables(zero=True)
    with pytest.raises(tu.CheckpointError, match=r"tensor 'i64' cannot be read .*Checksum"):
        tu.load(targets, tmp_path / "ck")
    assert not targets["f32"].numpy().any()


def test_google_crc32c_alone_checks_the_bundle(saved, tmp_path, monkeypatch):
    """Without the LGPL `crc32c` package, google-crc32c (the dependency) computes the
    same checksums: a flipped byte is found by bundle.py, not by a TF read."""
    import sys

    prefix, targets = saved
    data = os.urandom(100_003)
    fast = tub.crc32c(data[7:], tub.crc32c(data[:7]))
    monkeypatch.setitem(sys.modules, "crc32c", None)
    assert tub.crc32c(data[7:], tub.crc32c(data[:7])) == fast == tub.crc32c(data)
    assert tub.crc32c(b"123456789") == 0xE3069283
    flip(data_file(prefix), entry(prefix, "i64").offset + 1)
    targets = variables(zero=True)
    with pytest.raises(
        tu.CheckpointError, match=r"tensor 'i64' is corrupted: .*should have CRC32C"
    ):
        tu.load(targets, tmp_path / "ck")
    assert not targets["f32"].numpy().any()


def test_a_file_changed_after_the_check_is_caught_before_its_tensor_is_assigned(
    saved, tmp_path, monkeypatch
):
    """Each value is checksummed as it is read: a write into the data file between the
    check and the reads is an error, and nothing is assigned."""
    prefix, targets = saved
    original = tuc.TFReader.check

    def check_then_write(self, names, **kw):
        original(self, names, **kw)
        flip(data_file(prefix), entry(prefix, "i64").offset)  # in place: the map sees it

    monkeypatch.setattr(tuc.TFReader, "check", check_then_write)
    with pytest.raises(
        tu.CheckpointError,
        match=r"tensor 'i64' is corrupted: its 24 bytes at offset \d+ of data file .* should "
        r"have CRC32C [0-9a-f]{8} \(from the index\) but have [0-9a-f]{8}\. Nothing was loaded",
    ):
        tu.load(targets, tmp_path / "ck")
    assert not any(v.numpy().any() for n, v in targets.items() if n != "text")


def test_missing_shard_refuses_the_load(tmp_path):
    tf.raw_ops.SaveV2(
        prefix=str(tmp_path / "p0"),
        tensor_names=["a"],
        shape_and_slices=[""],
        tensors=[np.ones(4, np.float32)],
    )
    tf.raw_ops.SaveV2(
        prefix=str(tmp_path / "p1"),
        tensor_names=["b"],
        shape_and_slices=[""],
        tensors=[np.ones(2, np.float32)],
    )
    prefix = str(tmp_path / "m")
    tf.raw_ops.MergeV2Checkpoints(
        checkpoint_prefixes=[str(tmp_path / "p0"), str(tmp_path / "p1")], destination_prefix=prefix
    )
    os.replace(data_file(prefix, 0, 2), str(tmp_path / "elsewhere"))
    # Shard 1 alone is larger than tensor 'a': the size check of verify() passes.
    with open(data_file(prefix, 1, 2), "ab") as f:
        f.write(b"\0" * 64)
    targets = variables({"a": np.ones(4, np.float32), "b": np.ones(2, np.float32)}, zero=True)
    with pytest.raises(tu.CheckpointError, match=r"data file .*m\.data-00000-of-00002 is missing"):
        tu.load(targets, prefix)
    assert not targets["b"].numpy().any()
