"""The sonnet bridge's legacy fix: the global state it patches so Sonnet 2 builds in TF1 graphs.

Global state patched (only once `tfunite.fixes.ensure("sonnet")` runs; undoable):

- `sonnet.src.base.assert_tf2.checked`: Sonnet's once-per-process "is this TF2?" check
  is run eagerly and marked done.

Sonnet checks once per process, when its first module is constructed, that it runs
eagerly ("Sonnet v2 requires TensorFlow 2"); inside a TF1 graph that check fails even
with TF2 behaviour on. The fix ``sonnet-tf1-graph-check`` runs the check eagerly
instead: it is applied when the bridge is first used, or by
`tfunite.fixes.ensure("sonnet")` before the first module is built in a graph.

This module is the `fixes` of the sonnet record (bridges/__init__.py). Importing it
only registers the fix and imports no framework; Sonnet is imported when the fix is
checked or applied.
"""

from __future__ import annotations

from typing import Any

from tensorflow.python import tf2
from tensorflow.python.eager.context import eager_mode
from tfunite.fixes import Fix, register_fix


def _tf2_check() -> Any:
    from sonnet.src import base

    return base.assert_tf2


def _tf2_check_apply() -> object:
    check = _tf2_check()
    before = check.checked
    if tf2.enabled():  # TF2 behaviour is on: the check holds, run it where it can see so
        with eager_mode():
            check()
    return before


def _tf2_check_undo(before: object) -> None:
    _tf2_check().checked = before


SONNET_TF1_GRAPH_CHECK = register_fix(
    Fix(
        name="sonnet-tf1-graph-check",
        bridges=("sonnet",),
        summary="Sonnet 2 asserts eager execution when its first module is constructed, so a "
        "module built first inside a TF1 graph fails ('Sonnet v2 requires TensorFlow 2') "
        "although TF2 behaviour is on; run that one-time check eagerly instead.",
        apply=_tf2_check_apply,
        undo=_tf2_check_undo,
        needed=lambda: not _tf2_check().checked,
    )
)

SONNET_FIXES = (SONNET_TF1_GRAPH_CHECK.name,)
