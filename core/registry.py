"""The bridge registry: `tu.wrap(obj)` asks each bridge in turn whether it accepts `obj`.

A bridge is one record (`records.py`: the module path of its implementation and the
module prefixes of the classes it handles), so that `import tfunite` never imports a
framework: a bridge module (and its framework) is imported only when an object of its
framework is wrapped. When no bridge accepts an object, the error lists every bridge
tried and why it declined (the TF-Hub registry habit).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import NoBridgeError
from .owner import Owner
from .records import BRIDGES, Bridge, records, register

__all__ = ["BRIDGES", "Bridge", "records", "register", "wrap"]


def wrap(obj: Any, name: str | None = None, **options: Any) -> Owner:
    """Wrap a Keras 3 / tf_keras model or layer, a Sonnet module or a tf.Module into an Owner."""
    if isinstance(obj, Owner):
        return obj
    reasons = []
    for bridge in records().values():
        reason = bridge.decline_reason(obj)
        if reason is None:
            # Each bridge's Owner subclass has its own constructor (obj, name, options).
            owner_class: Callable[..., Owner] = bridge.load()
            return owner_class(obj, name=name, **options)
        reasons.append(f"  - {bridge.name}: {reason}")
    raise NoBridgeError(
        f"No bridge accepts {type(obj).__module__}.{type(obj).__qualname__}. Tried:\n"
        + "\n".join(reasons)
        + "\nFix: pass a Keras 3 or tf_keras model/layer, a Sonnet module or a tf.Module; "
        "wrap Slim code with tu.slim(fn, name=...) and TFLearn code with tu.tflearn(fn, name=...)."
    )
