"""What a Slim checkpoint is, from its index alone: its entries' shapes and dtypes
(`checkpoint_shapes`), which registered recipes it looks like (`looks_like`), whether
it is the network a recipe expects, and how many classes its classifier has."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence

from tfunite.errors import LoadError
from tfunite.plan import dtype_name
from tfunite.readers import Reader, open_checkpoint

from .recipes import RECIPES, Recipe


def open_reader(checkpoint: str | os.PathLike) -> Reader:
    """Open `checkpoint` with tfunite's reader and check that its data files are complete.

    Raises `CheckpointError` naming the path if it is not a checkpoint, or if its data
    files are missing or truncated, before any tensor is read.
    """
    reader = open_checkpoint(checkpoint)
    try:
        reader.verify()
    except BaseException:
        reader.close()
        raise
    return reader


def checkpoint_shapes(
    checkpoint: str | os.PathLike | Reader,
) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """``({name: shape}, {name: dtype name})`` of a checkpoint's entries (index only).

    `checkpoint` is a path (opened and checked with `open_reader`) or an open `Reader`.
    """
    if isinstance(checkpoint, Reader):
        reader = checkpoint
    else:
        reader = open_reader(checkpoint)
        reader.close()
    shapes = {k: tuple(int(d) for d in shape) for k, (shape, _) in reader.entries.items()}
    dtypes = {k: str(dtype_name(dtype)) for k, (_, dtype) in reader.entries.items()}
    return shapes, dtypes


def _matches(pattern: str, names: Sequence[str]) -> list[str]:
    rx = re.compile(pattern)
    return [n for n in names if rx.fullmatch(n)]


def _signature_matches(recipe: Recipe, shapes: Mapping[str, Sequence[int]]) -> bool:
    """Whether a checkpoint has `recipe`'s tell-tale keys (and shapes)."""
    sig = recipe.signature
    if not sig:
        return False
    names = list(shapes)
    ok = all(any(re.search(r"(^|/)" + p, n) for n in names) for p in sig["required"])
    ok = ok and not any(any(re.search(r"(^|/)" + p, n) for n in names) for p in sig["forbidden"])
    for key, shape in sig.get("shapes", {}).items():
        hits = [n for n in names if n.endswith("/" + key)]
        ok = ok and bool(hits) and all(tuple(shapes[h]) == tuple(shape) for h in hits)
    return ok


def looks_like(shapes: Mapping[str, Sequence[int]]) -> list[str]:
    """Registered recipes whose tell-tale keys (and shapes) a checkpoint matches."""
    return [recipe.name for recipe in RECIPES.values() if _signature_matches(recipe, shapes)]


def _check_identity(
    recipe: Recipe, shapes: Mapping[str, Sequence[int]], scope: str, checkpoint: str
) -> None:
    if not recipe.signature:
        return
    in_scope = any(n.startswith(scope + "/") for n in shapes)
    if in_scope and _signature_matches(recipe, shapes):
        return  # the usual case: the other recipes' signatures are only read to say why not
    candidates = looks_like(shapes)
    tops = sorted({n.split("/", 1)[0] for n in shapes if "/" in n})
    if recipe.name in candidates:
        raise LoadError(
            f"Checkpoint {checkpoint!r} looks like {recipe.name} but has no variables under "
            f"the scope {scope!r} (top scopes found: {tops}). Fix: pass scope={tops[0]!r} "
            f"(CLI: --scope {tops[0]})."
        )
    like = (
        f"it looks like {', '.join(candidates)} (from tell-tale keys)"
        if candidates
        else f"it matches no registered recipe (top scopes: {tops[:5]})"
    )
    fix = (
        f"Fix: use recipe={candidates[0]!r} (CLI: --recipe {candidates[0]})"
        if candidates
        else "Fix: check the file, or port it with your own rules (see "
        "tfunite/porting/README.md, 'Custom models')"
    )
    raise LoadError(f"Checkpoint {checkpoint!r} is not a {recipe.name} checkpoint: {like}. {fix}.")


def num_classes(recipe: Recipe, shapes: Mapping[str, tuple[int, ...]], scope: str) -> int | None:
    """The class count of the checkpoint's classifier (the recipe's logits), if found."""
    for pattern in recipe.logits:
        for name in _matches(recipe.expand(pattern, scope), list(shapes)):
            if name.endswith("biases") or name.endswith("weights"):
                return int(shapes[name][-1])
    return None
