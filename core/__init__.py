"""tfunite: make TensorFlow's meta-frameworks work together.

Every variable is owned by an `Owner` that lists its variables with stable names,
initializes, saves and loads them; one bridge per framework wraps Keras 3, tf_keras,
Sonnet, TF-Slim and TFLearn code into owners. `import tfunite` imports no framework:
TensorFlow when the API is first used (`tu.wrap`, `tu.save`, ...), a framework when its
bridge is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    CheckpointError,
    DistributeError,
    DuplicateVariablesError,
    GraphModeError,
    LoadError,
    NoBridgeError,
    NotBuiltError,
    NotSerializableError,
    OwnershipError,
    RuleError,
    TfuniteError,
)

# The rest of the API imports TensorFlow: loaded on first use (PEP 562), so that the
# `tfunite` command answers --help and --version without TensorFlow's start-up.
_LAZY = {
    "strict": ".capture",
    "Entry": ".report",
    "LoadReport": ".report",
    "TRAINING_STATE": ".training_state",
    "inspect": ".checkpoint",
    "load": ".checkpoint",
    "save": ".checkpoint",
    "Optimizer": ".optimizer",
    "Owner": ".owner",
    "Parameters": ".parameters",
    "wrap": ".registry",
    # tu.port is porting's own function (its full signature and docstring in help()).
    "port": "tfunite.porting",
    # tu.export is interop's (SavedModel / ONNX export), loaded on first use.
    "export": "tfunite.interop.export",
    # Keras fit/saving and TensorBoard (interop/), loaded on first use.
    "keras_layer": "tfunite.interop.keras_layer",
    "summaries": "tfunite.interop.summaries",
    "convert": "tfunite.porting",
    **dict.fromkeys(
        (
            "Chain",
            "DropIndex",
            "FlipChannels",
            "Reshape",
            "Rules",
            "Squeeze",
            "Transform",
            "Transpose",
        ),
        ".rules",
    ),
    "enable_fixes": ".fixes",  # tfunite.fixes imports no framework; kept lazy like the rest
}

if TYPE_CHECKING:
    from collections.abc import Callable

    from tfunite.interop.export import export
    from tfunite.interop.keras_layer import keras_layer
    from tfunite.interop.summaries import summaries
    from tfunite.porting import convert, port

    from .capture import strict
    from .checkpoint import inspect, load, save
    from .fixes import enable_fixes
    from .optimizer import Optimizer
    from .owner import Owner
    from .parameters import Parameters
    from .registry import wrap
    from .report import Entry, LoadReport
    from .rules import (
        Chain,
        DropIndex,
        FlipChannels,
        Reshape,
        Rules,
        Squeeze,
        Transform,
        Transpose,
    )
    from .training_state import TRAINING_STATE


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tfunite' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__version__ = "0.1.0"


def slim(fn: Any, name: str, arg_scope: Any = None) -> Owner:
    """Wrap a TF-Slim function `fn(inputs, is_training) -> net or (net, end_points)`."""
    import tfunite.bridges as bridges

    from .registry import BRIDGES  # noqa: F401

    # Each bridge's Owner subclass has its own constructor: call it as a plain callable.
    owner_class: Callable[..., Owner] = bridges.SLIM.load()
    return owner_class(fn, name=name, arg_scope=arg_scope)


def tflearn(fn: Any, name: str) -> Owner:
    """Wrap a TFLearn function `fn(inputs) -> net`."""
    import tfunite.bridges as bridges

    owner_class: Callable[..., Owner] = bridges.TFLEARN.load()
    return owner_class(fn, name=name)


__all__ = [
    "Chain",
    "CheckpointError",
    "DistributeError",
    "DropIndex",
    "DuplicateVariablesError",
    "Entry",
    "FlipChannels",
    "GraphModeError",
    "LoadError",
    "LoadReport",
    "NoBridgeError",
    "NotBuiltError",
    "NotSerializableError",
    "Optimizer",
    "Owner",
    "OwnershipError",
    "Parameters",
    "Reshape",
    "RuleError",
    "Rules",
    "Squeeze",
    "TRAINING_STATE",
    "TfuniteError",
    "Transform",
    "Transpose",
    "export",
    "inspect",
    "keras_layer",
    "load",
    "port",
    "convert",
    "save",
    "slim",
    "strict",
    "summaries",
    "tflearn",
    "wrap",
    "enable_fixes",
]
