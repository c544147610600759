"""Benchmark: CRC32C over a ~100 MB memoryview, google-crc32c (Apache-2.0) vs crc32c (LGPL).

tfunite checks every tensor's CRC32C before a load assigns anything (core/bundle.py),
over bytes it already holds as a memoryview. Two packages compute it in C:

- `crc32c` (LGPL-2.1-or-later): `crc32c.crc32c(view, crc)` takes any buffer, including a
  memoryview or an mmap, without copying.
- `google-crc32c` (Apache-2.0, the licence tfunite has): `google_crc32c.extend(crc, data)`
  takes only `bytes`-like objects without a release hook (it parses its argument with
  "y#"), so a memoryview must be copied first: `bytes(view)` in one go (a second 100 MB),
  or in chunks of `--chunk` bytes (a small reusable copy that stays in the CPU cache).

Rows: each way over the same random 100 MB view, interleaved rounds; ratios are
google/crc32c (median of paired ratios). All ways must give the same checksum.
Target: the chunked google-crc32c way <= 1.2x crc32c (then tfunite can drop the LGPL
dependency without a slower load).

    python bench/bench_crc32c.py [--strict] [--quick] [--mb N] [--chunk BYTES]
"""

from __future__ import annotations

import os
import sys

from common import Target, finish, interleaved, machine, median, parser, ratios, timed

TARGET = 1.2


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--mb", type=int, default=100)
    p.add_argument("--chunk", type=int, default=1 << 20)
    p.add_argument("--repeats", type=int, default=9)
    args = p.parse_args()
    if args.quick:
        args.repeats = 3
    try:
        import crc32c
        import google_crc32c
    except ImportError as e:
        print(f"needs both packages: pip install crc32c google-crc32c ({e})")
        return 0
    data = bytearray(os.urandom(args.mb * 1_000_000))
    view = memoryview(data)  # a writable view, as bundle.py reads data into a buffer
    chunk = args.chunk

    def lgpl() -> int:
        return crc32c.crc32c(view)

    def google_copy() -> int:
        return google_crc32c.value(bytes(view))

    def google_chunked() -> int:
        crc = 0
        for start in range(0, len(view), chunk):
            crc = google_crc32c.extend(crc, bytes(view[start : start + chunk]))
        return crc

    want = lgpl()
    for fn in (google_copy, google_chunked):
        if fn() != want:
            print(f"{fn.__name__} gives a different checksum")
            return 1
    times = interleaved(
        {
            "crc32c": timed(lgpl),
            "google-copy": timed(google_copy),
            "google-chunked": timed(google_chunked),
        },
        args.repeats,
    )
    print(
        f"crc32c over a {args.mb} MB memoryview; crc32c {crc32c.__version__ if hasattr(crc32c, '__version__') else ''}"
        f" google-crc32c ({google_crc32c.implementation}); chunk {chunk} bytes"
    )
    print(f"  {args.repeats} interleaved rounds; {machine()}")
    for name, ts in times.items():
        print(f"  {name:15s}: {median(ts) * 1e3:7.1f} ms  ({args.mb / median(ts):.0f} MB/s)")
    for name in ("google-copy", "google-chunked"):
        print(f"  {name}/crc32c: {ratios(times[name], times['crc32c'])}")
    from common import paired_ratio

    targets = [
        Target(
            "crc32c",
            "google-crc32c chunked / crc32c",
            paired_ratio(times["google-chunked"], times["crc32c"]),
            TARGET,
        ),
    ]
    return finish(targets, args.strict)


if __name__ == "__main__":
    sys.exit(main())
