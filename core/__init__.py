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
    DuplicateVariablesError,
    GraphModeError,
    LoadError,
    NoBridgeError,
    NotBuiltError,
    OwnershipError,
    RuleError,
    TfuniteError,
)

# The rest of the API imports TensorFlow: loaded on first use (PEP 562), so that the
# `tfunite` command answers --help and --version without TensorFlow's start-up.
_LAZY = {
    "strict": ".capture",
    "LoadReport": ".checkpoint",
    "inspect": ".checkpoint",
    "load": ".checkpoint",
    "save": ".checkpoint",
    "Optimizer": ".optimizer",
    "Owner": ".owner",
    "Parameters": ".parameters",
    "wrap": ".registry",
    **dict.fromkeys(
        ("DropIndex", "FlipChannels", "Reshape", "Rules", "Squeeze", "Transform", "Transpose"),
        ".rules",
    ),
}

if TYPE_CHECKING:
    from .capture import strict
    from .checkpoint import LoadReport, inspect, load, save
    from .optimizer import Optimizer
    from .owner import Owner
    from .parameters import Parameters
    from .registry import wrap
    from .rules import DropIndex, FlipChannels, Reshape, Rules, Squeeze, Transform, Transpose


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

    return bridges.SLIM.load()(fn, name=name, arg_scope=arg_scope)


def tflearn(fn: Any, name: str) -> Owner:
    """Wrap a TFLearn function `fn(inputs) -> net`."""
    import tfunite.bridges as bridges

    return bridges.TFLEARN.load()(fn, name=name)


def port(checkpoint: str, recipe: str, **options: Any):
    """Port a TF-Slim checkpoint into a Keras 3 model: returns (model, report)."""
    from tfunite.porting import port as _port

    return _port(checkpoint, recipe=recipe, **options)


def keras_layer(owner: Owner):
    """A keras.Layer through which Keras 3 sees `owner`'s variables (not yet available)."""
    raise NotImplementedError(
        "tu.keras_layer is planned (see DESIGN.md, 'Coming next') and not implemented yet."
    )


__all__ = [
    "CheckpointError",
    "DropIndex",
    "DuplicateVariablesError",
    "FlipChannels",
    "GraphModeError",
    "LoadError",
    "LoadReport",
    "NoBridgeError",
    "NotBuiltError",
    "Optimizer",
    "Owner",
    "OwnershipError",
    "Parameters",
    "Reshape",
    "RuleError",
    "Rules",
    "Squeeze",
    "TfuniteError",
    "Transform",
    "Transpose",
    "inspect",
    "keras_layer",
    "load",
    "port",
    "save",
    "slim",
    "strict",
    "tflearn",
    "wrap",
]
