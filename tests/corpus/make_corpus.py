"""Writes tests/corpus/: small hand-made malformed checkpoint files, one per way to break
a reader (tests/test_fuzz.py::test_corpus checks the message each one gets).

    python -m tests.corpus.make_corpus      (from the repository root; rewrites the files)

Every bundle here is a broken copy of `good`: a tu.save of VALUES. Keras files are broken
copies of the weights of `keras_model()`. Tables are written with `table()` (a LevelDB
table as TF writes it), so a field can be made absurd while every checksum holds.
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import tempfile
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
VALUES = {"a": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.array([7, -7], np.int64)}


def keras_model():
    import keras

    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")], name="m")


# ------------------------------------------------------------------ a LevelDB table
def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def block(entries: list[tuple[bytes, bytes]]) -> bytes:
    """A block of unshared entries with one restart point, and its trailer."""
    from tfunite import bundle

    body = b"".join(varint(0) + varint(len(k)) + varint(len(v)) + k + v for k, v in entries)
    body += struct.pack("<II", 0, 1)
    crc = bundle.crc32c(b"\x00", bundle.crc32c(body))
    return body + b"\x00" + struct.pack("<I", bundle.mask(crc))


def table(entries: list[tuple[bytes, bytes]], index_size_delta: int = 0) -> bytes:
    """A TF table (`.index` file) holding `entries` (sorted keys) in one data block."""
    data = block(entries)
    meta = block([])
    last = entries[-1][0] + b"\xff" if entries else b"\xff"
    handle = varint(0) + varint(len(data) - 5)
    index = block([(last, handle)])
    meta_at, index_at = len(data), len(data) + len(meta)
    footer = varint(meta_at) + varint(len(meta) - 5)
    footer += varint(index_at) + varint(len(index) - 5 + index_size_delta)
    footer = footer.ljust(40, b"\x00") + struct.pack("<Q", 0xDB4775248B80FB57)
    return data + meta + index + footer


def entries_of(prefix: str) -> list[tuple[bytes, bytes]]:
    """The (key, value) entries of a real index, as bundle.py reads them."""
    from tfunite import bundle

    raw = open(prefix + ".index", "rb").read()
    b = bundle.Bundle.__new__(bundle.Bundle)
    b.prefix, b.index_path = prefix, prefix + ".index"
    footer = len(raw) - 48
    _, pos = bundle._varint(raw, footer, footer + 40)
    _, pos = bundle._varint(raw, pos, footer + 40)
    index_offset, pos = bundle._varint(raw, pos, footer + 40)
    index_size, _ = bundle._varint(raw, pos, footer + 40)
    out = []
    for _, handle in b._block_entries(raw, index_offset, index_size, "index"):
        offset, p = bundle._varint(handle, 0, len(handle))
        size, _ = bundle._varint(handle, p, len(handle))
        out += [(k, v) for k, v in b._block_entries(raw, offset, size, "data")]
    return out


def edit(entries, key: bytes, **fields) -> list[tuple[bytes, bytes]]:
    """`entries` with the BundleEntryProto of `key` changed (`shape=[...]` or a field)."""
    from tensorflow.core.protobuf import tensor_bundle_pb2 as pb

    out = []
    for k, v in entries:
        if k == key:
            proto = pb.BundleEntryProto.FromString(v)
            for name, value in fields.items():
                if name == "shape":
                    del proto.shape.dim[:]
                    for d in value:
                        proto.shape.dim.add().size = d
                else:
                    setattr(proto, name, value)
            v = proto.SerializeToString()
        out.append((k, v))
    return out


# ------------------------------------------------------------------ the corpus
def write_bundle(name: str, index: bytes, data: bytes | None) -> None:
    with open(os.path.join(HERE, name + ".index"), "wb") as f:
        f.write(index)
    if data is not None:
        with open(os.path.join(HERE, name + ".data-00000-of-00001"), "wb") as f:
            f.write(data)


def main() -> None:
    import tensorflow as tf
    import tfunite as tu

    for f in os.listdir(HERE):
        if not f.endswith(".py") and f != "README.md" and f != "__pycache__":
            os.remove(os.path.join(HERE, f))
    tmp = tempfile.mkdtemp()
    try:
        prefix = tu.save({k: tf.Variable(v) for k, v in VALUES.items()}, os.path.join(tmp, "g"))
        index = open(prefix + ".index", "rb").read()
        data = open(prefix + ".data-00000-of-00001", "rb").read()
        ents = entries_of(prefix)
        write_bundle("good", index, data)
        write_bundle("index_truncated", index[:-7], data)
        write_bundle("index_wrong_magic", index[:-8] + b"\x00" * 8, data)
        flipped = bytearray(index)
        flipped[12] ^= 0x10
        write_bundle("index_flipped_byte", bytes(flipped), data)
        write_bundle("index_block_past_end", table(ents, index_size_delta=1 << 40), data)
        write_bundle("index_empty", b"", data)
        write_bundle("index_absurd_shape", table(edit(ents, b"a", shape=[1 << 40])), data)
        write_bundle(
            "index_overflowing_shape", table(edit(ents, b"a", shape=[1 << 40, 1 << 40])), data
        )
        write_bundle("index_size_mismatch", table(edit(ents, b"b", size=8)), data)
        write_bundle("index_offset_past_end", table(edit(ents, b"b", offset=1 << 40)), data)
        write_bundle("index_shard_out_of_range", table(edit(ents, b"b", shard_id=3)), data)
        write_bundle("index_no_header", table(ents[1:]), data)
        bad_entry = block([(b"", ents[0][1])])
        body = bytearray(bad_entry[:-13])  # without its restart array and trailer
        body[2] = 0x7F  # the header's value length: far past its block
        write_bundle("index_entry_past_block", _reblock(body), data)
        write_bundle("data_flipped_byte", index, data[:3] + bytes([data[3] ^ 0x40]) + data[4:])
        write_bundle("data_truncated", index, data[:-5])
        write_bundle("data_missing", index, None)

        # TF1 V1 (one table file with TF's own layout).
        with tf.Graph().as_default():
            vs = [tf.compat.v1.Variable(v, name=k) for k, v in VALUES.items()]
            saver = tf.compat.v1.train.Saver(vs, write_version=tf.compat.v1.train.SaverDef.V1)
            with tf.compat.v1.Session() as sess:
                sess.run(tf.compat.v1.global_variables_initializer())
                v1 = saver.save(sess, os.path.join(tmp, "v1.ckpt"), write_meta_graph=False)
        raw = open(v1, "rb").read()
        _write("v1_truncated.ckpt", raw[: len(raw) // 2])
        _write("v1_wrong_magic.ckpt", raw[:-8] + b"\x01" * 8)

        # Keras 3 .weights.h5 / legacy .h5 / .keras.
        model = keras_model()
        model.save_weights(os.path.join(tmp, "m.weights.h5"))
        model.save(os.path.join(tmp, "m.keras"))
        h5 = open(os.path.join(tmp, "m.weights.h5"), "rb").read()
        _write("good.weights.h5", h5)
        _write("truncated.weights.h5", h5[: len(h5) // 3])
        _write("wrong_magic.weights.h5", b"\x00" * 8 + h5[8:])
        _write("absurd_shape.weights.h5", _h5_absurd_shape())
        _write("missing_group.h5", _h5_missing_group())
        keras_file = open(os.path.join(tmp, "m.keras"), "rb").read()
        _write("good.keras", keras_file)
        _write("not_a_zip.keras", b"PK\x03\x04 this is not a zip archive" * 4)
        _write("truncated.keras", keras_file[: len(keras_file) // 2])
        _write("no_weights.keras", _zip({"config.json": b"{}"}))
        _write(
            "path_traversal.keras",
            _zip({"../../evil.txt": b"x", "model.weights.h5": h5, "config.json": b"{}"}),
        )
        _write("zip_bomb.keras", _zip_bomb())
        _write("garbage_weights.keras", _zip({"model.weights.h5": b"\x89HDF\r\n" * 100}))
    finally:
        shutil.rmtree(tmp)


def _reblock(body: bytearray) -> bytes:
    """A table whose data block is `body` (a restart array is appended, checksums hold)."""
    from tfunite import bundle

    body = bytes(body) + struct.pack("<II", 0, 1)
    crc = bundle.crc32c(b"\x00", bundle.crc32c(body))
    data = body + b"\x00" + struct.pack("<I", bundle.mask(crc))
    meta = block([])
    index = block([(b"\xff", varint(0) + varint(len(data) - 5))])
    footer = varint(len(data)) + varint(len(meta) - 5)
    footer += varint(len(data) + len(meta)) + varint(len(index) - 5)
    footer = footer.ljust(40, b"\x00") + struct.pack("<Q", 0xDB4775248B80FB57)
    return data + meta + index + footer


def _write(name: str, raw: bytes) -> None:
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(raw)


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, raw in members.items():
            z.writestr(name, raw)
    return buf.getvalue()


def _zip_bomb() -> bytes:
    """A .keras whose model.weights.h5 declares 3.75 GiB in a few hundred bytes (the
    sizes of its central directory entry patched; nothing that large is ever made)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("model.weights.h5", b"\x00" * 4096)
    raw = bytearray(buf.getvalue())
    central = raw.rfind(b"PK\x01\x02")
    struct.pack_into("<I", raw, central + 24, 0xF0000000)  # uncompressed size
    return bytes(raw)


def _h5_absurd_shape() -> bytes:
    """A .weights.h5 whose kernel dataset claims 2**40 float32 values (never written)."""
    import h5py

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        g = f.create_group("layers/dense/vars")
        g.create_dataset("0", shape=(1 << 40,), dtype="f4")
        g.create_dataset("1", data=np.zeros(2, np.float32))
    return buf.getvalue()


def _h5_missing_group() -> bytes:
    """A legacy .h5 whose layer_names lists a layer group that does not exist."""
    import h5py

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.attrs["layer_names"] = [b"d", b"ghost"]
        g = f.create_group("d")
        g.attrs["weight_names"] = [b"d/kernel:0", b"d/bias:0"]
        g.create_dataset("d/kernel:0", data=np.zeros((3, 2), np.float32))
        g.create_dataset("d/bias:0", data=np.zeros(2, np.float32))
    return buf.getvalue()


if __name__ == "__main__":
    main()
