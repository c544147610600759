"""Registry of legacy fixes: named, idempotent patches that make unmaintained libraries
(TF-Slim, TFLearn) work on current TensorFlow.

A fix is registered by the bridge that needs it and applied only when that bridge is
first used (`ensure("slim")`), never at `import tfunite`. Each fix knows whether it is
needed (`check`), applies itself once (`apply`), and can be undone (`undo`) when it
patches shared state. `tfunite doctor` lists them with `status()`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import LegacyFixError


@dataclass
class Fix:
    name: str  # "slim-batch-norm-import"
    bridges: tuple[str, ...]  # bridges that need it
    summary: str  # one line: what breaks and what the fix does
    apply: Callable[[], object]  # applies the patch; returns undo state
    undo: Callable[[object], None] | None = None
    needed: Callable[[], bool] = lambda: True  # False when this TF/library has no bug
    applied: bool = False
    state: object = field(default=None, repr=False)


FIXES: dict[str, Fix] = {}


def register_fix(fix: Fix) -> Fix:
    if fix.name in FIXES:
        return FIXES[fix.name]  # idempotent: a module imported twice registers once
    FIXES[fix.name] = fix
    return fix


def ensure(bridge: str) -> list[str]:
    """Apply every fix the bridge needs (idempotent); returns the names now applied.

    Bridges call this when first used. Call it yourself to prepare a framework before
    your own code touches it, e.g. `ensure("sonnet")` before building Sonnet modules in
    a TF1 graph. Imports the bridge (and so its framework), which registers its fixes.
    """
    import importlib

    import tfunite.bridges  # noqa: F401  (registers the bridges; imports no framework)

    from .registry import BRIDGES

    if bridge not in BRIDGES:
        raise ValueError(f"Unknown bridge {bridge!r}; registered: {', '.join(BRIDGES)}.")
    importlib.import_module(BRIDGES[bridge].module)
    done = []
    for fix in FIXES.values():
        if bridge not in fix.bridges:
            continue
        if not fix.applied and fix.needed():
            try:
                fix.state = fix.apply()
            except Exception as e:  # pragma: no cover - reported with its name
                raise LegacyFixError(
                    f"Legacy fix {fix.name!r} for the {bridge} bridge failed: {e}. "
                    "Run `tfunite doctor` to see the versions involved."
                ) from e
            fix.applied = True
        if fix.applied:
            done.append(fix.name)
    return done


def undo(name: str) -> None:
    """Undo one applied fix (restores the patched objects)."""
    fix = FIXES[name]
    if fix.applied:
        if fix.undo is None:
            raise LegacyFixError(
                f"Legacy fix {name!r} cannot be undone (it patches no shared state)."
            )
        fix.undo(fix.state)
        fix.applied = False
        fix.state = None


def status() -> list[dict[str, object]]:
    return [
        {
            "name": f.name,
            "bridges": list(f.bridges),
            "applied": f.applied,
            "summary": f.summary,
            "undoable": f.undo is not None,
        }
        for f in FIXES.values()
    ]
