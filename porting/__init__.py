"""Port TF-Slim checkpoints into Keras 3 models, verified, and back.

>>> import tfunite as tu
>>> from tfunite.porting import _slim  # a random inception_v1 checkpoint, 1001 classes:
>>> _ = _slim.write_random_checkpoint("inception_v1", "inception_v1.ckpt", (224, 224, 3), 1001)
>>> model, report = tu.port("inception_v1.ckpt", recipe="slim:inception_v1")
>>> report.ok, model.output_shape  # the background class 0 is dropped by default
(True, (None, 1000))

Recipes for all 16 networks of `tf_slim.nets` are registered (`recipes()` lists them);
`port` plans before it loads, refuses a checkpoint that does not fit, verifies against
Slim on request and writes `.keras` files atomically; `export` goes back to a
Slim-named checkpoint; `port_custom` ports a custom Slim model with your own rules onto
your own Keras model. See porting/README.md.
"""

from __future__ import annotations

from tfunite.rules import Chain, StagedRules, parse_rules

from .checkpoint import checkpoint_shapes, looks_like, open_reader
from .convert import ConvertError, ConvertReport, convert
from .custom import port_custom
from .errors import OutputError, PortArgumentError, VerificationError
from .export import export
from .load import DeferredBuild, execute
from .output import check_output, save_atomic, write_checkpoint
from .plan import Plan, keras_weight_names, make_plan
from .progress import Phases
from .recipe_port import port
from .recipes import RECIPES, BuildSpec, Recipe, RecipeError, get_recipe, register_recipe
from .report import Entry, PortReport
from .verify import DEFAULT_RTOL, verify_port


def recipes() -> list[str]:
    """Names of every registered recipe."""
    return sorted(RECIPES)


__all__ = [
    "ConvertError",
    "ConvertReport",
    "convert",
    "DEFAULT_RTOL",
    "BuildSpec",
    "Chain",
    "DeferredBuild",
    "Phases",
    "check_output",
    "execute",
    "open_reader",
    "save_atomic",
    "write_checkpoint",
    "Entry",
    "OutputError",
    "Plan",
    "PortArgumentError",
    "PortReport",
    "RECIPES",
    "Recipe",
    "RecipeError",
    "StagedRules",
    "VerificationError",
    "checkpoint_shapes",
    "export",
    "get_recipe",
    "keras_weight_names",
    "looks_like",
    "make_plan",
    "parse_rules",
    "port",
    "port_custom",
    "recipes",
    "register_recipe",
    "verify_port",
]
