"""Benchmark: the import cost of tfunite, and that `import tfunite` imports no framework.

In fresh subprocesses (interleaved, alternating order), times `import tensorflow`
(baseline) and `import tensorflow; import tfunite` (candidate) with a clock started
inside the child just before the first import, so interpreter start-up is excluded.
The overhead checked against the target is the median of the in-process time of
`import tfunite` and of loading every name of `tfunite.__all__` (the core API loads on
first use) right after `import tensorflow` in the candidate children: it is exactly the
time added over `import tensorflow`. median(candidate) - median(baseline)
is printed as a cross-check; on a busy 2-core machine `import tensorflow` itself varies
by a second or more between processes, which swamps that difference.

Every candidate child also compares `sys.modules` before and after `import tfunite`:
no module of a framework (keras, tf_keras, sonnet, tf_slim, tflearn, or a submodule)
may appear that `import tensorflow` had not already imported.

Targets: overhead <= 0.3 s; no framework module imported by tfunite.

    python bench/bench_import.py [--strict] [--quick] [--repeats N]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from common import Target, finish, machine, median, parser
from tfunite.records import records  # data only: imports neither TensorFlow nor a framework

# Every framework of the records (TensorFlow itself aside).
FRAMEWORKS = tuple(r.import_name for r in records().values() if r.import_name != "tensorflow")
OVERHEAD_TARGET = 0.3  # seconds

_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import tensorflow
t1 = time.perf_counter()
before = set(sys.modules)
if {candidate}:
    import tfunite
    for name in tfunite.__all__:  # the core API loads on first use: load all of it
        getattr(tfunite, name)
t2 = time.perf_counter()
frameworks = {frameworks!r}
new = sorted(m for m in set(sys.modules) - before if m.split(".")[0] in frameworks)
print(json.dumps({{"tf": t1 - t0, "tfunite": t2 - t1, "total": t2 - t0, "new_framework_modules": new,
                  "preloaded": sorted(m for m in before if m in frameworks)}}))
"""


def run_child(candidate: bool) -> dict:
    code = _CHILD.format(candidate=candidate, frameworks=FRAMEWORKS)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"import child failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args(argv)
    if args.quick:
        args.repeats = 3

    run_child(True)  # warm-up: fills the OS file cache for both variants
    runs: dict[str, list[dict]] = {"tensorflow": [], "tensorflow+tfunite": []}
    for i in range(args.repeats):
        order = [False, True] if i % 2 == 0 else [True, False]
        for candidate in order:
            runs["tensorflow+tfunite" if candidate else "tensorflow"].append(run_child(candidate))

    base = [r["total"] for r in runs["tensorflow"]]
    cand = [r["total"] for r in runs["tensorflow+tfunite"]]
    alone = [r["tfunite"] for r in runs["tensorflow+tfunite"]]
    overhead = median(alone)
    difference = median(cand) - median(base)
    leaked = sorted({m for r in runs["tensorflow+tfunite"] for m in r["new_framework_modules"]})
    preloaded = sorted({m for r in runs["tensorflow"] for m in r["preloaded"]})

    print(f"import: {args.repeats} fresh subprocesses per variant, interleaved; {machine()}")
    print(
        f"  import tensorflow                 : median {median(base):.3f} s "
        f"[{min(base):.3f}..{max(base):.3f}]"
    )
    print(
        f"  import tensorflow; import tfunite : median {median(cand):.3f} s "
        f"[{min(cand):.3f}..{max(cand):.3f}]"
    )
    print(
        f"  import tfunite alone (after tf)   : median {median(alone):.3f} s "
        f"[{min(alone):.3f}..{max(alone):.3f}]"
    )
    print(f"  difference of medians             : {difference:+.3f} s (noisy cross-check)")
    print(
        f"  framework top-level modules already loaded by `import tensorflow`: "
        f"{preloaded or 'none'}"
    )
    print(f"  framework modules added by `import tfunite`: {leaked or 'none'}")
    return finish(
        [
            Target(
                "import",
                "import tfunite after tensorflow",
                overhead,
                OVERHEAD_TARGET,
                unit="s",
                detail=f"(difference of medians {difference:+.3f} s)",
            ),
            Target(
                "import",
                "framework modules added",
                float(len(leaked)),
                0,
                unit="modules",
                detail=f"({', '.join(leaked[:5])}{' ...' if len(leaked) > 5 else ''})"
                if leaked
                else "",
            ),
        ],
        args.strict,
    )


if __name__ == "__main__":
    sys.exit(main())
