"""Registry of legacy fixes: named, idempotent patches that make unmaintained libraries
(TF-Slim, TFLearn) work on current TensorFlow.

A fix is registered by its bridge's fixes module (`bridges/<name>_fixes.py`, named in
the bridge's record) and applied only when that bridge is first used (`ensure("slim")`),
never at `import tfunite`. Each fix knows whether it is
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
    a TF1 graph. Imports the module its record names in `fixes` (which registers them;
    a fix imports its framework only when applied or checked); a bridge without fixes
    has nothing to apply.
    """
    import importlib

    from .records import records

    known = records()
    if bridge not in known:
        raise ValueError(
            f"Unknown bridge {bridge!r} in tfunite.fixes.ensure(); expected one of: "
            f"{', '.join(known)}. Fix: pass a registered bridge name."
        )
    fixes_module = known[bridge].fixes
    if fixes_module is not None:
        importlib.import_module(fixes_module)
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


def enable_fixes(framework: str) -> list[str]:
    """Make plain code of `framework` work on this TensorFlow: apply tfunite's legacy
    fixes for it (idempotent); returns the names of the fixes now applied.

    tfunite applies them itself when one of its owners first uses a framework; call this
    when your own code uses the framework directly, before it does. On TF 2.21, plain
    TF-Slim fails with ``No module named 'tf_keras.legacy_tf_layers'`` without it.
    `framework` is a bridge name: "slim", "tflearn", "sonnet", "keras", "tf_keras",
    "tf_module" (the ones without fixes return []). `tfunite doctor` lists the fixes.

    >>> import tf_slim as slim
    >>> "slim-batch-norm-import" in tu.enable_fixes("slim")
    True
    >>> with tf.Graph().as_default():
    ...     y = slim.batch_norm(tf.ones((1, 4, 4, 2)), is_training=False)
    >>> y.shape.as_list()
    [1, 4, 4, 2]
    """
    return ensure(framework)


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
