"""The framework records: one `Bridge` per framework, the only list of frameworks.

A record is data (strings and flags): reading one imports neither TensorFlow nor a
framework, so `tfunite doctor` can list a framework that is missing or broken. The
registry (`registry.py`), `tfunite doctor`, the compatibility probes, golden
generation, capture (`capture.py`), `tu.Optimizer`, the legacy fixes (`fixes.ensure`)
and the tests read these records; none of them keeps a list of frameworks of its own.

The records themselves are registered by `tfunite.bridges` (bridges/__init__.py).
`records()` imports that package on first use: the one import from core to outside it,
kept lazy so that core stays importable on its own.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # typing only: owner.py imports TensorFlow
    from .owner import Owner


@dataclass(frozen=True)
class Bridge:
    """The one record of a framework: everything tfunite needs to know about it.

    Adding a bridge means adding its files (the bridge module, its fixes module if it
    patches global state, a conformance case) and one record in bridges/__init__.py.
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
    graph: bool = True  # runs in a TF1 graph + Session (the owner's `supports_graph`)
    optimizers: bool = False  # tu.Optimizer accepts this framework's optimizers
    compat_case: str | None = None  # "module:attr" of its small model case (compat probes, goldens)
    golden_formats: tuple[str, ...] = ()  # native formats written beside tu.save's
    # "module:function" run (with the owner) after each owner call while `import_name` is
    # imported: raises when a host object of this framework (a Keras layer) runs an owner
    # without tracking its variables. Loaded by capture.py only once the framework is.
    host_check: str | None = None

    def load(self) -> type[Owner]:
        """The owner class (imports the bridge module, and so its framework)."""
        return getattr(importlib.import_module(self.module), self.owner_class)

    def owns_class(self, cls: type) -> bool:
        """Whether `cls` or one of its bases comes from one of `class_prefixes`."""
        modules = [c.__module__ or "" for c in cls.__mro__]
        return any(m == p or m.startswith(p + ".") for m in modules for p in self.class_prefixes)

    def decline_reason(self, obj: Any) -> str | None:
        """None if this bridge accepts `obj`, else why not."""
        if not self.wrappable:
            return f"wraps functions through tu.{self.name}(fn, name=...), not objects"
        if not self.owns_class(type(obj)):
            return f"{type(obj).__qualname__} is not a class from {', '.join(self.class_prefixes)}"
        return self.load().decline_reason(obj)

    @property
    def pip_command(self) -> str:
        """The command that installs this framework for tfunite."""
        return f"pip install 'tfunite[{self.extra}]'" if self.extra else "pip install tfunite"


BRIDGES: dict[str, Bridge] = {}


def register(bridge: Bridge) -> Bridge:
    """Add `bridge` to `BRIDGES`; registering a name twice raises."""
    if bridge.name in BRIDGES:
        raise ValueError(
            f"Bridge {bridge.name!r} is already registered ({BRIDGES[bridge.name].module}). "
            "Fix: give the new bridge a name of its own."
        )
    BRIDGES[bridge.name] = bridge
    return bridge


def records() -> dict[str, Bridge]:
    """Every registered record, in registration order (most specific framework first).

    Imports `tfunite.bridges`, which registers them and imports no framework.
    """
    import tfunite.bridges  # noqa: F401  (registers the records; imports no framework)

    return BRIDGES
