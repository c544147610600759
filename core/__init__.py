"""tfunite: make TensorFlow's meta-frameworks work together.

Every variable is owned by an `Owner` that lists its variables with stable names,
initializes, saves and loads them; one bridge per framework wraps Keras 3, tf_keras,
Sonnet, TF-Slim and TFLearn code into owners. `import tfunite` imports TensorFlow and
numpy only: a framework is imported when its bridge is first used.
"""

from __future__ import annotations

from typing import Any

from .capture import strict
from .checkpoint import LoadReport, inspect, load, save
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
from .optimizer import Optimizer
from .owner import Owner
from .parameters import Parameters
from .registry import wrap
from .rules import DropIndex, FlipChannels, Reshape, Rules, Squeeze, Transform, Transpose

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
