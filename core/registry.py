"""The bridge registry: `tu.wrap(obj)` asks each bridge in turn whether it accepts `obj`.

A bridge is registered with the module path of its implementation and the module
prefixes of the classes it handles, so that `import tfunite` never imports a framework:
a bridge module (and its framework) is imported only when an object of its framework
is wrapped. When no bridge accepts an object, the error lists every bridge tried and
why it declined (the TF-Hub registry habit).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from .errors import NoBridgeError
from .owner import Owner


@dataclass(frozen=True)
class Bridge:
    """The one record of a framework: everything tfunite needs to know about it.

    The registry, `tfunite doctor`, the compatibility probes, golden generation,
    capture, `tu.Optimizer` and the tests read these records; none of them keeps a list
    of frameworks of its own. Records are data (strings, no imports), so reading them
    imports no framework. Adding a bridge means adding its files and one record
    (bridges/__init__.py).
    """

    name: str  # "keras", "tf_keras", "sonnet", ...: the key everywhere
    title: str  # what it is, for people: "TF-Slim"
    module: str  # "tfunite.bridges.keras": the bridge's implementation
    owner_class: str  # the Owner subclass in that module
    class_prefixes: tuple[str, ...]  # module prefixes of the classes it may accept
    import_name: str  # the framework's import name ("tf_slim")
    distribution: str  # its pip distribution ("tf-slim")
    extra: str  # the tfunite extra that installs it ("slim"; "" when TensorFlow itself)
    wrappable: bool = True  # False for bridges built from functions (slim, tflearn)
    fixes: str | None = None  # module registering its legacy fixes (patches global state)
    graph: bool = True  # runs in a TF1 graph + Session
    optimizers: bool = False  # tu.Optimizer accepts this framework's optimizers
    compat_case: str | None = None  # "module:attr" of its small model case (compat probes, goldens)
    golden_formats: tuple[str, ...] = ()  # native formats written beside tu.save's

    def load(self) -> type[Owner]:
        return getattr(importlib.import_module(self.module), self.owner_class)

    def decline_reason(self, obj: Any) -> str | None:
        """None if this bridge accepts `obj`, else why not."""
        if not self.wrappable:
            return f"wraps functions through tu.{self.name}(fn, name=...), not objects"
        modules = [c.__module__ or "" for c in type(obj).__mro__]
        if not any(m == p or m.startswith(p + ".") for m in modules for p in self.class_prefixes):
            return f"{type(obj).__qualname__} is not a class from {', '.join(self.class_prefixes)}"
        return self.load().decline_reason(obj)


BRIDGES: dict[str, Bridge] = {}


def register(bridge: Bridge) -> Bridge:
    if bridge.name in BRIDGES:
        raise ValueError(
            f"Bridge {bridge.name!r} is already registered ({BRIDGES[bridge.name].module})."
        )
    BRIDGES[bridge.name] = bridge
    return bridge


def wrap(obj: Any, name: str | None = None, **options: Any) -> Owner:
    """Wrap a Keras 3 / tf_keras model or layer, a Sonnet module or a tf.Module into an Owner."""
    import tfunite.bridges  # noqa: F401  (registers the bridges; imports no framework)

    if isinstance(obj, Owner):
        return obj
    reasons = []
    for bridge in BRIDGES.values():
        reason = bridge.decline_reason(obj)
        if reason is None:
            return bridge.load()(obj, name=name, **options)
        reasons.append(f"  - {bridge.name}: {reason}")
    raise NoBridgeError(
        f"No bridge accepts {type(obj).__module__}.{type(obj).__qualname__}. Tried:\n"
        + "\n".join(reasons)
        + "\nFix: pass a Keras 3 or tf_keras model/layer, a Sonnet module or a tf.Module; "
        "wrap Slim code with tu.slim(fn, name=...) and TFLearn code with tu.tflearn(fn, name=...)."
    )
