"""Direct access to a TF V2 checkpoint bundle: its index, and checksums of its data.

TensorFlow checks a tensor's CRC32C only when it reads that tensor, so a load that reads
and assigns one tensor at a time would find a flipped byte in the data file only after
the tensors before it were assigned. `Bundle` reads the bundle's `.index` itself, so a
load can check every tensor it is about to assign before it assigns the first one:
`check` (every checksum, or only where the bytes lie) and `array` (one POD tensor read
into a given buffer, its checksum checked as it is read).

The `.index` file is a LevelDB-format table (TF's `tsl/lib/io/table`): a 48-byte footer
(two varint block handles, zero padding, the magic number), an index block whose values
are the handles of the data blocks, and data blocks of prefix-compressed entries
(varint shared, non-shared and value lengths, the key's new bytes, the value) followed
by a restart array; every block ends with a trailer (compression byte, masked CRC32C).
The entry of the empty key is a serialized `BundleHeaderProto`; every other value is a
`BundleEntryProto` (dtype, shape, shard, offset, size, masked CRC32C of the data).

Data files are read with pread (into one reused buffer for checksums, then into the
array or tensor memory a value goes to), never memory-mapped, so a file truncated or
rewritten while it loads is an error, not a SIGBUS.

Anything this module does not know for sure how to read (a compressed block, a
big-endian bundle, an entry TensorFlow does not list the same way, a data file that
cannot be opened) raises `Unsupported`: the caller then checks the data by reading each
tensor once through TensorFlow instead. A checksum, size or structure that is wrong
raises `CheckpointError`.
"""

from __future__ import annotations

import math
import os
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import CheckpointError

_MAGIC = 0xDB4775248B80FB57
_FOOTER = 48
_TRAILER = 5  # compression type byte + masked CRC32C of the block and that byte
_MASK_DELTA = 0xA282EAD8
_DT_STRING = 7
_CHUNK = 1 << 22  # bytes per read while checksumming (a buffer that stays in the cache)
_MAX_READ = 1 << 30  # bytes per pread call (Linux reads at most ~2 GiB at a time)
_RESTORE_FIX = (
    "Fix: restore the checkpoint from a good copy (a save interrupted mid-write never "
    "replaces the previous checkpoint of a tu.save directory)."
)


class Unsupported(Exception):
    """The bundle uses something this module does not read; load as TF reads instead.

    `corrupt` is True when the index is not a well-formed table at all (truncated, no
    footer, a block or entry running outside its bounds, undecodable entries): no
    TensorFlow writer makes one, and TensorFlow's own reader can allocate memory sized
    by the broken fields, so readers.py refuses it instead of handing it to TensorFlow.
    """

    def __init__(self, message: str, corrupt: bool = False):
        super().__init__(message)
        self.corrupt = corrupt


def mask(crc: int) -> int:
    """TF's (and LevelDB's) masked CRC32C, as stored in the index."""
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def unmask(masked: int) -> int:
    rot = (masked - _MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


_LGPL_MISSING = False


def _preadinto(fd: int, buf: memoryview, offset: int) -> int:
    """Read into `buf` from `offset` of `fd` (os.preadv where the OS has it); the count."""
    if hasattr(os, "preadv"):
        return os.preadv(fd, [buf], offset)
    data = os.pread(fd, len(buf), offset)
    buf[: len(data)] = data
    return len(data)


def crc32c(data: bytes | memoryview, crc: int = 0) -> int:
    """CRC32C of `data`, extending `crc` (hardware-accelerated where the CPU has it).

    Computed by the `crc32c` package (LGPL-2.1+, a dependency of tfunite: ~1.8x faster
    over the same bytes, bench/bench_crc32c.py), or by `google-crc32c` (Apache-2.0,
    `pip install 'tfunite[apache-crc]'`) where `crc32c` is not installed. ImportError if
    neither is.
    """
    global _LGPL_MISSING
    if not _LGPL_MISSING:
        try:
            import crc32c as _lgpl
        except ImportError:
            _LGPL_MISSING = True  # a failed import is not cached by Python: remember it
        else:
            return int(_lgpl.crc32c(data, crc))
    import google_crc32c

    # It takes bytes only (no memoryview of a buffer): one more copy, on this path only.
    return int(google_crc32c.extend(crc, data if isinstance(data, bytes) else bytes(data)))


def _varint(buf: bytes | memoryview, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise ValueError("varint runs past its block")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


# POD dtypes (TF DataType enum -> numpy dtype name) assigned straight from the checked
# bytes; TF stores them raw, in the bundle's byte order (little-endian, checked).
_POD = {
    1: "float32",
    2: "float64",
    3: "int32",
    4: "uint8",
    5: "int16",
    6: "int8",
    8: "complex64",
    9: "int64",
    10: "bool",
    14: "bfloat16",
    17: "uint16",
    18: "complex128",
    19: "float16",
    22: "uint32",
    23: "uint64",
}


def _numpy_dtype(dtype: int) -> np.dtype | None:
    name = _POD.get(dtype)
    if name is None:
        return None
    if name == "bfloat16":
        import ml_dtypes  # what TensorFlow itself uses for bfloat16 arrays

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def _sliced_name(key: str) -> str:
    """The tensor name in a slice entry's key (TF's OrderedCode: a 0 byte, then the name
    with 0x00 written 0x00 0xff and 0xff written 0xff 0x00, ended by 0x00 0x01)."""
    raw = key.encode("utf8", "surrogateescape")[1:]
    end = raw.find(b"\x00\x01")
    raw = raw[:end] if end >= 0 else raw
    return raw.replace(b"\x00\xff", b"\x00").replace(b"\xff\x00", b"\xff").decode("utf8", "replace")


@dataclass(frozen=True)
class Entry:
    key: str
    dtype: int  # TF DataType enum
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    crc: int  # masked CRC32C, as stored
    sliced: bool  # a partitioned tensor: its data is in slice entries


class Bundle:
    """The index of a V2 bundle `prefix.index`, and checked access to its data files."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.index_path = prefix + ".index"
        self.entries: dict[str, Entry] = {}
        self.slice_entries: list[Entry] = []  # the data of partitioned tensors
        self._files: dict[int, tuple[int, int]] = {}  # shard -> (descriptor, size at open)
        self._chunk: memoryview | None = None  # the checksum pass's read buffer
        try:
            with open(self.index_path, "rb") as f:
                raw = f.read()
        except OSError as e:
            raise Unsupported(f"cannot read {self.index_path}: {e.strerror}") from None
        self._parse(raw)

    # ------------------------------------------------------------------ index
    def _parse(self, raw: bytes) -> None:
        from google.protobuf.message import DecodeError
        from tensorflow.core.protobuf import tensor_bundle_pb2 as pb

        if len(raw) < _FOOTER or struct.unpack_from("<Q", raw, len(raw) - 8)[0] != _MAGIC:
            raise Unsupported("no table footer", corrupt=True)
        footer = len(raw) - _FOOTER
        try:
            _, pos = _varint(raw, footer, footer + 40)  # metaindex offset
            _, pos = _varint(raw, pos, footer + 40)  # metaindex size
            index_offset, pos = _varint(raw, pos, footer + 40)
            index_size, pos = _varint(raw, pos, footer + 40)
        except ValueError as e:
            raise Unsupported(f"footer: {e}", corrupt=True) from None
        header = None
        try:
            for _, handle in self._block_entries(raw, index_offset, index_size, "index"):
                offset, pos = _varint(handle, 0, len(handle))
                size, _ = _varint(handle, pos, len(handle))
                for key, value in self._block_entries(raw, offset, size, "data"):
                    if header is None:
                        if key != b"":
                            raise Unsupported(
                                "the first entry is not the bundle header", corrupt=True
                            )
                        header = pb.BundleHeaderProto.FromString(value)
                    else:
                        self._add(key, pb.BundleEntryProto.FromString(value))
        except (ValueError, DecodeError) as e:  # the block checksums held, the layout not
            raise Unsupported(str(e), corrupt=True) from None
        if header is None:
            raise Unsupported("no bundle header", corrupt=True)
        if header.endianness != pb.BundleHeaderProto.LITTLE or sys.byteorder != "little":
            raise Unsupported("a big-endian bundle or machine")
        self.num_shards = int(header.num_shards)
        if self.num_shards < 1:
            raise Unsupported(f"{self.num_shards} shards", corrupt=True)
        for entry in [*self.entries.values(), *self.slice_entries]:
            if not entry.sliced and not 0 <= entry.shard < self.num_shards:
                raise CheckpointError(
                    f"Checkpoint {self.prefix}: the index puts tensor {entry.key!r} in shard "
                    f"{entry.shard} of {self.num_shards}: the index file is corrupted. "
                    "Nothing was loaded. " + _RESTORE_FIX
                )

    def _add(self, key: bytes, proto: Any) -> None:  # a tensor_bundle_pb2.BundleEntryProto
        entry = Entry(
            key=key.decode("utf8", "surrogateescape"),
            dtype=int(proto.dtype),
            shape=tuple(int(d.size) for d in proto.shape.dim),
            shard=int(proto.shard_id),
            offset=int(proto.offset),
            size=int(proto.size),
            crc=int(proto.crc32c),
            sliced=len(proto.slices) > 0,
        )
        if proto.shape.unknown_rank or any(d < 0 for d in entry.shape):
            raise Unsupported(f"entry {entry.key!r} has no full shape", corrupt=True)
        if math.prod(entry.shape) >= 1 << 63:  # TensorFlow's reader aborts the process
            raise Unsupported(
                f"entry {entry.key!r} has shape {list(entry.shape)}: more than 2**63 elements",
                corrupt=True,
            )
        if key.startswith(b"\x00"):  # the keys of slices (checkpoint::EncodeTensorNameSlice)
            self.slice_entries.append(entry)
        else:
            self.entries[entry.key] = entry

    def _block_entries(
        self, raw: bytes, offset: int, size: int, what: str
    ) -> Iterator[tuple[bytes, bytes]]:
        end = offset + size
        if end + _TRAILER > len(raw) - _FOOTER or size < 4:
            raise Unsupported(f"{what} block outside the file", corrupt=True)
        kind = raw[end]
        stored = struct.unpack_from("<I", raw, end + 1)[0]
        block = raw[offset:end]
        if unmask(stored) != crc32c(raw[end : end + 1], crc32c(block)):
            raise CheckpointError(
                f"Checkpoint {self.prefix}: a block of its index file {self.index_path} fails "
                "its checksum: the index is corrupted. Nothing was loaded. " + _RESTORE_FIX
            )
        if kind != 0:
            raise Unsupported(f"compressed {what} block (type {kind})")
        restarts = struct.unpack_from("<I", block, size - 4)[0]
        limit = size - 4 * (restarts + 1)
        if restarts < 1 or limit < 0:
            raise Unsupported(f"bad restart array in a {what} block", corrupt=True)
        pos, key = 0, b""
        try:
            while pos < limit:
                shared, pos = _varint(block, pos, limit)
                non_shared, pos = _varint(block, pos, limit)
                length, pos = _varint(block, pos, limit)
                if shared > len(key) or pos + non_shared + length > limit:
                    raise ValueError("entry runs past its block")
                key = key[:shared] + block[pos : pos + non_shared]
                pos += non_shared
                yield key, block[pos : pos + length]
                pos += length
        except ValueError as e:
            raise Unsupported(f"{what} block: {e}", corrupt=True) from None

    # ------------------------------------------------------------------ data
    def data_path(self, shard: int) -> str:
        return f"{self.prefix}.data-{shard:05d}-of-{self.num_shards:05d}"

    def _open(self, shard: int) -> tuple[int, int]:
        """(file descriptor, size at open) of data shard `shard`, opened once per load.

        Data is read with pread into buffers, never memory-mapped: a file truncated
        or rewritten during the load gives short reads or wrong checksums (errors), never
        a SIGBUS. A file replaced by rename (what tu.save and TF do) is not seen at all:
        the open descriptor keeps the old file.
        """
        if shard not in self._files:
            path = self.data_path(shard)
            try:
                fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            except FileNotFoundError:
                raise CheckpointError(
                    f"Checkpoint {self.prefix}: data file {path} is missing. Expected all "
                    f"{self.num_shards} data file(s) next to the .index file. Nothing was "
                    "loaded. Fix: copy the .data-* file(s) there."
                ) from None
            except OSError as e:
                raise Unsupported(f"cannot open {path}: {e.strerror}") from None
            st = os.fstat(fd)
            self._files[shard] = (fd, st.st_size)
        return self._files[shard]

    def _check_range(self, entry: Entry, what: str) -> int:
        """The descriptor of `entry`'s shard, after checking its bytes lie in the file."""
        fd, have = self._open(entry.shard)
        if entry.offset < 0 or entry.size < 0:
            raise CheckpointError(
                f"Checkpoint {self.prefix}: the index puts {what} at offset {entry.offset} "
                f"with size {entry.size} in {self.data_path(entry.shard)}; expected both >= 0: "
                "the index file is corrupted. Nothing was loaded. " + _RESTORE_FIX
            )
        if entry.offset + entry.size > have:
            raise CheckpointError(
                f"Checkpoint {self.prefix} is truncated: {what} needs bytes "
                f"{entry.offset}..{entry.offset + entry.size} of {self.data_path(entry.shard)}, "
                f"which holds {have} bytes. Nothing was loaded. " + _RESTORE_FIX
            )
        return fd

    def _read_into(self, fd: int, entry: Entry, buf: memoryview, offset: int, what: str) -> None:
        """Fill `buf` with the bytes at `offset` of `entry`'s shard; CheckpointError if the
        file got shorter since it was opened (truncated during the load)."""
        done, size = 0, len(buf)
        while done < size:
            try:
                n = _preadinto(fd, buf[done : done + _MAX_READ], offset + done)
            except OSError as e:
                raise CheckpointError(
                    f"Checkpoint {self.prefix}: reading {what} from "
                    f"{self.data_path(entry.shard)} failed: {e.strerror}. Fix: check the "
                    "disk and load again."
                ) from None
            if not n:
                raise CheckpointError(
                    f"Checkpoint {self.prefix}: data file {self.data_path(entry.shard)} was "
                    f"truncated during the load: {what} needs bytes "
                    f"{entry.offset}..{entry.offset + entry.size}, the file now holds "
                    f"{os.fstat(fd).st_size} bytes. Fix: do not write to a checkpoint while "
                    "it loads; load it again."
                )
            done += n

    def _read(self, entry: Entry, what: str, into: np.ndarray | None = None) -> np.ndarray:
        """The bytes of `entry` (bounded by the file's size, checked first), read into
        `into` (a writable uint8 array of entry.size bytes) or a fresh array."""
        fd = self._check_range(entry, what)
        data = np.empty(entry.size, np.uint8) if into is None else into
        if entry.size:
            self._read_into(fd, entry, data.data, entry.offset, what)
        return data

    def _crc_of(self, entry: Entry, what: str) -> int:
        """CRC32C of `entry`'s bytes, read in chunks into one reused buffer (it stays in
        the CPU cache, and no fresh pages are touched per chunk)."""
        fd = self._check_range(entry, what)
        if self._chunk is None:
            self._chunk = memoryview(bytearray(_CHUNK))
        crc, offset, end = 0, entry.offset, entry.offset + entry.size
        while offset < end:
            view = self._chunk[: min(_CHUNK, end - offset)]
            self._read_into(fd, entry, view, offset, what)
            crc = crc32c(view, crc)
            offset += len(view)
        return crc

    def release(self, key: str) -> None:
        """Done with `array(key)` (kept for callers; reads hold no pages of the file)."""

    def checkable(self, entry: Entry) -> bool:
        if entry.sliced:
            return all(not part.sliced and self.checkable(part) for part in self.slice_entries)
        return _numpy_dtype(entry.dtype) is not None or entry.dtype == _DT_STRING

    def check(self, key: str, name: str, crc: bool = True) -> bool:
        """Check the CRC32C of tensor `key` against the index; `name` is what errors call
        it. False if this module cannot check its dtype (the caller reads it through
        TensorFlow instead); raises CheckpointError if its data is wrong. ``crc=False``
        checks only where a POD tensor's bytes lie (size and range): `array(key)` checks
        its CRC32C as it reads it (one read, not two)."""
        entry = self.entries[key]
        if not self.checkable(entry):
            return False
        if entry.sliced:
            # Check every slice entry (the data of all partitioned tensors of the bundle):
            # a superset, so no decoding of slice specs decides what is checked.
            for part in self.slice_entries:
                self._check_one(part, f"a slice of tensor {_sliced_name(part.key)!r}")
        else:
            self._check_one(entry, f"tensor {name!r}", crc=crc or not self.pod(key))
        return True

    def _check_one(self, entry: Entry, what: str, crc: bool = True) -> None:
        dtype = _numpy_dtype(entry.dtype)
        got: int | None
        if dtype is not None:
            count = math.prod(entry.shape)  # Python ints: an absurd shape cannot overflow
            if entry.size != count * dtype.itemsize:
                raise CheckpointError(
                    f"Checkpoint {self.prefix}: the index gives {what} "
                    f"({dtype.name} {list(entry.shape)}) {entry.size} bytes of data, expected "
                    f"{count * dtype.itemsize}: the index file is corrupted. Nothing was "
                    "loaded. " + _RESTORE_FIX
                )
            if not crc:
                self._check_range(entry, what)
                return
            got = self._crc_of(entry, what)
        else:
            got = self._string_crc(entry, what)
            if got is None:
                raise CheckpointError(
                    f"Checkpoint {self.prefix}: {what} is corrupted: its string "
                    f"lengths run past its {entry.size} bytes at offset {entry.offset} of "
                    f"{os.path.basename(self.data_path(entry.shard))}. Nothing was loaded. "
                    + _RESTORE_FIX
                )
        if got != unmask(entry.crc):
            raise self._corrupt(entry, what, got)

    def _corrupt(self, entry: Entry, what: str, got: int) -> CheckpointError:
        return CheckpointError(
            f"Checkpoint {self.prefix}: {what} is corrupted: its "
            f"{entry.size} bytes at offset {entry.offset} of data file "
            f"{os.path.basename(self.data_path(entry.shard))} should have CRC32C "
            f"{unmask(entry.crc):08x} (from the index) but have {got:08x}. Nothing was "
            "loaded. " + _RESTORE_FIX
        )

    def _string_crc(self, entry: Entry, what: str) -> int | None:
        """The CRC TF's ReadStringTensor computes: each length as uint32 (uint64 if it
        does not fit), the 4 stored bytes of the lengths' checksum, the string bytes.
        None if the lengths run past the tensor's bytes."""
        count = math.prod(entry.shape)
        if count == 0 or entry.size == 0:
            return 0
        raw = self._read(entry, what).data  # entry.size is at most the file's size (checked)
        pos, total, end = 0, 0, entry.size
        packed = bytearray()
        for _ in range(count):  # each length takes >= 1 byte: at most entry.size rounds
            try:
                n, pos = _varint(raw, pos, end)
            except ValueError:
                return None
            packed += struct.pack("<I", n) if n <= 0xFFFFFFFF else struct.pack("<Q", n)
            total += n
        crc = crc32c(bytes(packed))
        if pos + 4 + total > end:
            return None
        return crc32c(raw[pos : pos + 4 + total], crc)

    def pod(self, key: str) -> bool:
        """True if `array(key)` gives an array: a POD dtype, not partitioned."""
        entry = self.entries[key]
        return _numpy_dtype(entry.dtype) is not None and not entry.sliced

    def array(self, key: str, into: np.ndarray | None = None, name: str = "") -> np.ndarray | None:
        """Tensor `key` as a numpy array over a fresh read of its bytes, its CRC32C
        checked against the index as it is read (CheckpointError if it differs: the file
        is corrupt or changed since `check`), or None if it is not POD (strings) or is
        partitioned. `into`: a writable C-contiguous array of the tensor's size to read
        into instead of a new one; `name`: what errors call it (default `key`)."""
        entry = self.entries[key]
        dtype = _numpy_dtype(entry.dtype)
        if dtype is None or entry.sliced:  # not self.pod(key)
            return None
        if into is not None:
            into = into.reshape(-1).view(np.uint8)
            if into.size != entry.size:
                raise ValueError(f"{key!r} has {entry.size} bytes, the buffer {into.size}")
        what = f"tensor {name or key!r}"
        data = self._read(entry, what, into)
        if entry.size:
            got = crc32c(data.data)
            if got != unmask(entry.crc):
                raise self._corrupt(entry, what, got)
        return data.view(dtype).reshape(entry.shape)

    def close(self) -> None:
        files, self._files = self._files, {}
        for fd, _ in files.values():
            os.close(fd)
