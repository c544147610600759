"""Recipes named by where they are defined: ``path/to/file.py:NAME`` or
``package.module:NAME`` (what ``tfunite port --recipe`` and `get_recipe` accept besides
registered names such as ``slim:vgg_16``).

The file is run as a module of its own (not registered in ``sys.modules``), the module
is imported; ``NAME`` must be a `Recipe` there. Any failure is a `RecipeError` naming the
file or module, raised before a checkpoint is read or anything is written.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from typing import Any

from .recipes import Recipe, RecipeError


def is_reference(text: str) -> bool:
    """Whether `text` names a recipe by file or module (``where:NAME``), judged by form:
    a ``.py`` file or a path before the last ``:``, or a dotted module name."""
    where, sep, name = text.rpartition(":")
    if not sep or not where or not name.isidentifier():
        return False
    return where.endswith(".py") or "/" in where or os.sep in where or "." in where


def load_recipe(reference: str) -> Recipe:
    """The `Recipe` called NAME in ``path/to/file.py:NAME`` or ``package.module:NAME``."""
    where, _, name = reference.rpartition(":")
    fix_name = (
        f"Fix: define {name} = tfunite.porting.Recipe(...) in {where}, or name one it defines"
    )
    if where.endswith(".py") or "/" in where or os.sep in where:
        module = _run_file(where, reference)
    else:
        try:
            module = importlib.import_module(where)
        except Exception as e:  # ImportError, or the module's own code failing
            raise RecipeError(
                f"Recipe {reference!r}: cannot import module {where!r} ({type(e).__name__}: "
                f"{e}). Expected an importable module defining {name}. Fix: check the module "
                "name and that it is on PYTHONPATH, or give the file: path/to/file.py:NAME."
            ) from None
    if not hasattr(module, name):
        defined = sorted(k for k, v in vars(module).items() if isinstance(v, Recipe))
        raise RecipeError(
            f"Recipe {reference!r}: {where} does not define {name!r} (Recipes it defines: "
            f"{', '.join(defined) or 'none'}). Nothing was read or written. {fix_name}."
        )
    recipe = getattr(module, name)
    if not isinstance(recipe, Recipe):
        raise RecipeError(
            f"Recipe {reference!r}: {name} in {where} is a {type(recipe).__name__}, not a "
            f"tfunite.porting.Recipe. {fix_name}."
        )
    return recipe


def _run_file(path: str, reference: str) -> Any:
    if not os.path.isfile(path):
        raise RecipeError(
            f"Recipe {reference!r}: the file {path!r} does not exist. Expected a Python file "
            "defining the Recipe. Fix: check the path (relative to the current directory)."
        )
    stem = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(f"_tfunite_recipe_{stem}", path)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py file always loads
        raise RecipeError(f"Recipe {reference!r}: {path!r} cannot be loaded as Python.")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        raise RecipeError(
            f"Recipe {reference!r}: running {path!r} failed ({type(e).__name__}: {e}). "
            "Nothing was read or written. Fix: run `python "
            f"{path}` to see the error and correct the file."
        ) from None
    return module
