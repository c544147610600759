"""Compatibility probe: which bridge x feature works in this environment, proven by running it.

`tfunite compat` (or `python -m tfunite.tools.compat`) runs one real probe per registered
bridge x feature, each bridge in its own subprocess (a clean, time-bounded process), and
prints a table of pass / fail / skip / n/a with the reason for everything that is not a
pass. The bridges are the registered records (`tfunite.registry.BRIDGES`); each record
names its small model, a `Case` in `cases.py` (`compat_case = "module:attr"`).

    python -m tfunite.tools.compat                  # table for every bridge
    python -m tfunite.tools.compat --bridge slim    # one bridge
    python -m tfunite.tools.compat --json           # machine-readable (used by maint/matrix.py)
    python -m tfunite.tools.compat --check compat_matrix.md   # CI: exit 1 if the matrix is stale

Statuses: ``pass`` (the assertion held), ``fail`` (it did not, or the code raised: the
reason is the real error), ``skip`` (the framework is not installed here), ``n/a`` (the
feature does not exist for this bridge by design: either a probe verified that tfunite
says so with a clear error, as for Keras 3 in a TF1 graph, or the cell is on the
`NOT_PROBED` allow-list, whose reason is printed, as for porting anything but Slim).

The package, by concern: `cases` (one small model per bridge), `helpers` (values and
comparisons), `probes` (the checks, `PROBES`, `NOT_PROBED`), `goldens` (reading the
checkout's golden checkpoints), `runner` (in-process, worker, subprocesses), `table`
(report, table, compat_matrix.md and `--check`), `cli` (the command line).
"""

from .cases import Case, CaseError, case_for, resolve
from .cli import build_parser, main
from .helpers import (
    ATOL,
    RTOL,
    assign,
    built,
    check_close,
    check_names,
    check_same_values,
    deterministic,
    fill,
    graph_session,
    values,
)
from .probes import (
    FEATURE_DOCS,
    FEATURES,
    NOT_PROBED,
    PROBES,
    NotApplicable,
    Skip,
    coverage_gaps,
    probe,
    registered_bridges,
)
from .runner import FRESH, MARK, POISONED, STATUSES, Result, run, run_probe, worker
from .table import (
    PROVENANCE_ROWS,
    check,
    format_table,
    parse_matrix,
    render_matrix,
    report,
    source_commit,
)

__all__ = [
    "ATOL",
    "FEATURES",
    "FEATURE_DOCS",
    "FRESH",
    "MARK",
    "NOT_PROBED",
    "POISONED",
    "PROBES",
    "PROVENANCE_ROWS",
    "RTOL",
    "STATUSES",
    "Case",
    "CaseError",
    "NotApplicable",
    "Result",
    "Skip",
    "assign",
    "build_parser",
    "built",
    "case_for",
    "check",
    "check_close",
    "check_names",
    "check_same_values",
    "coverage_gaps",
    "deterministic",
    "fill",
    "format_table",
    "graph_session",
    "main",
    "parse_matrix",
    "probe",
    "registered_bridges",
    "render_matrix",
    "report",
    "resolve",
    "run",
    "run_probe",
    "source_commit",
    "values",
    "worker",
]
