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
}

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from .capture import strict
    from .checkpoint import inspect, load, save
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


def port(
    checkpoint: str,
    recipe: str | Any,
    *,
    keep_background: bool = False,
    input_shape: Sequence[int] | None = None,
    scope: str | None = None,
    strict: bool = True,
    dry_run: bool = False,
    verify: bool = False,
    rtol: float = 1e-5,
    output: str | None = None,
    progress: bool = False,
    batch: int = 2,
    seed: int = 0,
    rules: Any = None,
) -> tuple[Any, Any]:
    """Port a TF-Slim checkpoint into a Keras 3 model: returns ``(model, PortReport)``.

    `recipe` is a registered recipe name (``"slim:vgg_16"``) or a `Recipe`. The options
    are those of `tfunite.porting.port` (see its docstring): `keep_background` keeps
    class 0 of a 1001-class classifier; `input_shape` is ``(height, width, channels)``;
    `scope` the net's top scope in the checkpoint; `strict` refuses checkpoint entries
    that map to no weight; `dry_run` only plans; `verify` compares with Slim within
    `rtol`; `output` writes a ``.keras`` file atomically; `progress` shows the phases on
    stderr; `batch`/`seed` make the verification inputs; `rules` (default
    `tfunite.TRAINING_STATE`) says which extra entries to leave out on purpose.
    """
    from tfunite.porting import port as _port

    return _port(
        checkpoint,
        recipe,
        keep_background=keep_background,
        input_shape=input_shape,
        scope=scope,
        strict=strict,
        dry_run=dry_run,
        verify=verify,
        rtol=rtol,
        output=output,
        progress=progress,
        batch=batch,
        seed=seed,
        rules=rules,
    )


__all__ = [
    "Chain",
    "CheckpointError",
    "DropIndex",
    "DuplicateVariablesError",
    "Entry",
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
    "TRAINING_STATE",
    "TfuniteError",
    "Transform",
    "Transpose",
    "inspect",
    "load",
    "port",
    "save",
    "slim",
    "strict",
    "tflearn",
    "wrap",
]
