"""Traced Keras layouts of Slim nets (`trace.trace_layout`), cached in memory and on disk.

Tracing builds the Slim network in a TF1 graph, which costs about as much as building
the Keras model itself. The layout only depends on the net, the input shape, the number
of classes, the scope, the net's keyword arguments and the tf_slim, TensorFlow and Keras
versions, so it is traced once per such key and kept as a small JSON file in the cache
folder: ``$TFUNITE_CACHE_DIR`` or ``$XDG_CACHE_HOME/tfunite`` (default
``~/.cache/tfunite``), under ``porting-layouts/``. ``TFUNITE_CACHE_DIR=off`` disables
the disk cache. A cache file that is unreadable, from another layout version or for
another key is ignored and rewritten; a folder that cannot be written only costs the
cache.

A stale layout cannot go unnoticed: the plan refuses a model whose weights do not match
the checkpoint's names and shapes, and ``verify=True`` compares with Slim itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

from . import trace

_MEMORY: dict[str, dict[str, Any]] = {}


def cache_dir() -> str | None:
    """The folder of cached layouts, or None when the disk cache is off."""
    env = os.environ.get("TFUNITE_CACHE_DIR")
    if env is not None and env.strip().lower() in ("", "0", "off", "none"):
        return None
    base = env or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "tfunite",
    )
    return os.path.join(base, "porting-layouts")


def _version(distribution: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "missing"


def _versions() -> dict[str, str]:
    """The versions a traced layout depends on: tf_slim builds the graph, TensorFlow's
    ops are what is traced, Keras builds the model from the layout."""
    import keras
    import tensorflow as tf

    return {
        "tf_slim": _version("tf-slim"),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def layout_key(
    net: str,
    input_shape: Sequence[int],
    num_classes: int,
    scope: str,
    name: str,
    net_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "layout_version": trace.LAYOUT_VERSION,
        **_versions(),
        "net": net,
        "input_shape": [int(s) for s in input_shape],
        "num_classes": int(num_classes),
        "scope": scope,
        "name": name,
        "net_kwargs": {k: net_kwargs[k] for k in sorted(net_kwargs or {})},
    }


def _path(folder: str, key: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    shape = "x".join(map(str, key["input_shape"]))
    return os.path.join(folder, f"{key['net']}-{shape}-{key['num_classes']}-{digest}.json")


def _load(path: str, key: dict[str, Any]) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != key:
        return None
    layout = data.get("layout")
    if not isinstance(layout, dict) or layout.get("version") != trace.LAYOUT_VERSION:
        return None
    return layout


def _store(path: str, key: dict[str, Any], layout: dict[str, Any]) -> None:
    folder = os.path.dirname(path)
    with contextlib.suppress(OSError):
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".layout-", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"key": key, "layout": layout}, f, separators=(",", ":"))
            os.chmod(tmp, 0o644)  # mkstemp makes it private; a cache may be shared
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(tmp)
            raise


def get_layout(
    net: str,
    input_shape: Sequence[int],
    num_classes: int,
    scope: str,
    name: str,
    net_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The traced layout of `net` for this input shape and class count (cached)."""
    key = layout_key(net, input_shape, num_classes, scope, name, net_kwargs)
    mem_key = json.dumps(key, sort_keys=True)
    if mem_key in _MEMORY:
        return _MEMORY[mem_key]
    folder = cache_dir()
    path = _path(folder, key) if folder else None
    layout = _load(path, key) if path else None
    if layout is None:
        from . import _slim

        # traced by the converter itself: a recipe is a cached tu.convert of its net
        _, layout = _slim.traced_graph(net, input_shape, num_classes, scope, name, net_kwargs)
        if path:
            _store(path, key, layout)
    _MEMORY[mem_key] = layout
    return layout
