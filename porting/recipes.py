"""Porting recipes: how each `tf_slim.nets` checkpoint becomes a Keras 3 model, as data.

A `Recipe` says which Keras model to build and how checkpoint names map onto its
weights: an ordered list of ``(regex, replacement)`` rules in tfunite's `Rules`
grammar (``{scope}`` stands for the network's top scope, ``re.escape``d), per-variable
shape transforms, entries dropped on purpose (with the reason), the logits variables
(for the 1001-class background logic) and tell-tale keys that recognise the network
in a checkpoint. Recipes live in one registry; registering a name twice raises.

Keras-side names are ``layer/weight`` with ``.`` in a layer name read as ``/``
(see `tfunite.porting.trace`); for keras.applications models whose layers Keras
numbers automatically (InceptionV3's ``conv2d_37``) the name uses the layer's rank
among the auto-numbered layers of its kind, which is its creation order.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tfunite.errors import TfuniteError
from tfunite.rules import Reshape, Squeeze, Transform

BN = "(beta|gamma|moving_mean|moving_variance)"


class RecipeError(TfuniteError, ValueError):
    """A recipe name is unknown, or a recipe was registered twice."""


@dataclass(frozen=True)
class BuildSpec:
    """What a recipe's builder needs to make the Keras model."""

    num_classes: int
    input_shape: tuple[int | None, int | None, int]  # (None, None, C): any size
    scope: str
    name: str
    default_size: int = 224  # a builder that needs a static size builds at this one


def dynamic(spec: BuildSpec) -> bool:
    """Whether `spec` asks for a model taking any input size (``(None, None, C)``)."""
    return None in spec.input_shape[:2]


def _static_shape(spec: BuildSpec) -> tuple[int, int, int]:
    """The input shape to build or trace at: `spec`'s, or its default size if dynamic."""
    h, w, c = spec.input_shape
    if dynamic(spec):
        return (spec.default_size, spec.default_size, c)
    assert h is not None and w is not None
    return (h, w, c)


@dataclass(frozen=True)
class Recipe:
    """How to port one kind of Slim checkpoint into one kind of Keras model.

    Attributes:
        name: registry key, ``"slim:vgg_16"``.
        net: the Slim network that verification runs and export reads names from:
            a `tf_slim.nets` function name (``"vgg_16"``), or, for a custom model, your
            Slim network function, called as ``net(inputs, num_classes=...,
            is_training=False, scope=...)`` and returning ``(logits, end_points)``;
            ``None`` when there is none (`port` works, `verify_port` and `export`
            refuse with a `RecipeError`).
        scope: the network's default top variable scope in a checkpoint.
        target: a human description of the Keras model built.
        build: ``build(spec) -> keras.Model`` with fresh weights.
        rules: ordered ``(regex, replacement)`` pairs from checkpoint to Keras names;
            ``{scope}`` is replaced by the escaped scope.
        transforms: ``(regex, Transform)`` pairs on checkpoint names; the first match
            applies.
        drops: ``(regex, reason)`` pairs: entries not ported, on purpose.
        logits: regexes of the classifier weight and bias (background-class handling).
        signature: regexes (scope-free) that a checkpoint of this net must match
            (``required``) and must not match (``forbidden``); optional shapes.
        default_size: Slim's default image size; ``min_size``: smallest that works;
            ``max_size``: largest that works (``None``: no limit), for nets whose
            classifier is fully connected over a feature map of one fixed size.
        endpoints: ``(slim end_point, keras layer)`` pairs checked by verification;
            a keras layer of ``None`` means "the traced layer of that tensor".
        naming: ``"layers"`` or ``"ordinal"`` (see module docstring).
        net_kwargs: extra keyword arguments for the Slim net function.
        arg_scope: for a custom `net` function, a function returning the Slim
            ``arg_scope`` to build it in (``tf_slim.nets`` nets use their own).
        channels: the input's channel count (3 for RGB, 1 for grayscale...), the
            default input shape's last dimension.
        any_size: the net is fully convolutional up to a global pooling, so the Keras
            model takes any input size of at least `min_size`: its input is ``(None,
            None, channels)`` unless `port` is given ``input_shape=``; `build` then gets
            ``spec.input_shape == (None, None, channels)``.
        fixed_size: why the Keras model needs one input size (when not `any_size`),
            shown by ``tfunite recipes``.
    """

    name: str
    net: str | Callable[..., Any] | None
    scope: str
    target: str
    build: Callable[[BuildSpec], Any]
    rules: tuple[tuple[str, str | None], ...]
    transforms: tuple[tuple[str, Transform], ...] = ()
    drops: tuple[tuple[str, str], ...] = ()
    logits: tuple[str, ...] = ()
    signature: dict[str, Any] = field(default_factory=dict)
    default_size: int = 224
    min_size: int = 224
    max_size: int | None = None
    endpoints: tuple[tuple[str, str | None], ...] = ()
    naming: str = "layers"
    net_kwargs: dict[str, Any] = field(default_factory=dict)
    arg_scope: Callable[[], Any] | None = None
    channels: int = 3
    any_size: bool = False
    fixed_size: str = "a custom recipe: the input size is fixed unless any_size=True"

    @property
    def net_name(self) -> str:
        """The net's short name: `net` if it is a name, else the part after ``:``."""
        return self.net if isinstance(self.net, str) else self.name.split(":")[-1]

    def expand(self, template: str, scope: str | None = None) -> str:
        return template.replace("{scope}", re.escape(scope or self.scope))


RECIPES: dict[str, Recipe] = {}


def register_recipe(recipe: Recipe) -> Recipe:
    """Add `recipe` to the registry; a name registered twice raises `RecipeError`."""
    if recipe.name in RECIPES:
        raise RecipeError(
            f"A recipe named {recipe.name!r} is already registered "
            f"(target: {RECIPES[recipe.name].target}). Fix: choose another name, e.g. "
            f"'custom:{recipe.name.split(':')[-1]}'."
        )
    RECIPES[recipe.name] = recipe
    return recipe


def get_recipe(name: str | Recipe) -> Recipe:
    """The registered recipe `name` (``"slim:vgg_16"``; ``"vgg_16"`` also works), or the
    `Recipe` NAME defined in ``path/to/file.py:NAME`` or ``package.module:NAME``."""
    if isinstance(name, Recipe):
        return name
    key = name if name in RECIPES else f"slim:{name}"
    if key not in RECIPES:
        from .recipe_files import is_reference, load_recipe

        if is_reference(name):  # "path/to/file.py:NAME" or "package.module:NAME"
            return load_recipe(name)
        raise RecipeError(
            f"Unknown recipe {name!r}. Known recipes: {', '.join(sorted(RECIPES))}. "
            "Fix: pass one of these, your own Recipe as path/to/file.py:NAME or "
            "package.module:NAME, or register it with tfunite.porting.register_recipe (see "
            "tfunite/porting/README.md)."
        )
    return RECIPES[key]


# ----------------------------------------------------------------------- builders
def _traced(
    net: str, net_kwargs: dict[str, Any] | None = None, global_pool: str | None = None
) -> Callable[[BuildSpec], Any]:
    def build(spec: BuildSpec) -> Any:
        from . import _layouts, trace

        layout = _layouts.get_layout(
            net, _static_shape(spec), spec.num_classes, spec.scope, spec.name, net_kwargs
        )
        if dynamic(spec):
            layout = _any_size_layout(layout, global_pool)
        return trace.build_layout(layout)

    return build


def _any_size_layout(layout: dict[str, Any], global_pool: str | None = None) -> dict[str, Any]:
    """A traced layout whose input takes any height and width: for nets whose layers up
    to a global pooling do not depend on the input size (traced at the default size).

    `global_pool`: the name prefix of an average pool whose kernel Slim sets to the
    whole feature map (``_reduced_kernel_size_for_small_input``: at most 7x7, VALID, so
    Slim only builds where it gives 1x1): it becomes a global average pool, the same
    computation wherever Slim builds.
    """
    layers = []
    for entry in layout["layers"]:
        name = entry["config"]["name"]
        if global_pool and entry["class"] == "AveragePooling2D" and name.startswith(global_pool):
            entry = {
                **entry,
                "class": "GlobalAveragePooling2D",
                "config": {"keepdims": True, "name": name},
            }
        layers.append(entry)
    return {**layout, "input_shape": [None, None, layout["input_shape"][-1]], "layers": layers}


def _any_size_clone(model: Any, spec: BuildSpec, clone_function: Any = None) -> Any:
    """`model` (built at a static size) rebuilt on an input of ``spec.input_shape``."""
    import keras

    return keras.models.clone_model(
        model,
        input_tensors=keras.Input(spec.input_shape, name=model.inputs[0].name),
        clone_function=clone_function,
    )


def _application(fn_name: str, static: bool = False, **extra: Any) -> Callable[[BuildSpec], Any]:
    """A keras.applications builder; for a dynamic spec the model is rebuilt on an input
    of any size, unless `static` (the caller clones it anyway)."""

    def build(spec: BuildSpec) -> Any:
        import keras

        fn = getattr(keras.applications, fn_name)
        model = fn(
            weights=None,
            include_top=True,  # which needs a static input shape: cloned below if dynamic
            input_shape=_static_shape(spec),
            classes=spec.num_classes,
            classifier_activation=None,
            **extra,
        )
        return _any_size_clone(model, spec) if dynamic(spec) and not static else model

    return build


def _resnet_v2_application(fn_name: str) -> Callable[[BuildSpec], Any]:
    """keras.applications ResNetV2 with Slim's pool1 (3x3/2 SAME max pool, no zero pad)
    and Slim's batch-norm epsilon (1e-5 instead of Keras' 1.001e-5)."""
    base = _application(fn_name, static=True)

    def build(spec: BuildSpec) -> Any:
        import keras

        stock = base(spec)

        def clone(layer: Any) -> Any:
            if layer.name == "pool1_pad":
                return keras.layers.Identity(name="pool1_pad")
            if layer.name == "pool1_pool":
                return keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool1_pool")
            config = layer.get_config()
            if isinstance(layer, keras.layers.BatchNormalization):
                config["epsilon"] = 1e-5
            return layer.__class__.from_config(config)

        if dynamic(spec):
            return _any_size_clone(stock, spec, clone)
        return keras.models.clone_model(stock, clone_function=clone)

    return build


# ------------------------------------------------------------------------- rules
_TRACED_RULES: tuple[tuple[str, str | None], ...] = (
    (r"{scope}/(.+)/(depthwise|pointwise)_weights", r"\1/\2/kernel"),
    (r"{scope}/(.+)/weights", r"\1/kernel"),
    (r"{scope}/(.+)/biases", r"\1/bias"),
    (r"{scope}/(.+)/" + BN, r"\1/\2"),  # batch norms: .../BatchNorm/beta, .../preact/beta
)


def _signature(required: Sequence[str], forbidden: Sequence[str] = (), shapes=None) -> dict:
    return {"required": tuple(required), "forbidden": tuple(forbidden), "shapes": shapes or {}}


_RESNET_UNITS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3), 200: (3, 24, 36, 3)}


def _resnet_signature(version: int, depth: int) -> dict:
    units = _RESNET_UNITS[depth]
    kind = f"bottleneck_v{version}"
    return _signature(
        [rf"block{b + 1}/unit_{n}/{kind}/conv1/weights" for b, n in enumerate(units)],
        [rf"block{b + 1}/unit_{n + 1}/" for b, n in enumerate(units)],
    )


def _vgg_rules(fc6: str = "fc1", fc7: str = "fc2", fc8: str = "predictions"):
    return (
        (r"{scope}/conv(\d)/conv\d_(\d)/weights", r"block\1_conv\2/kernel"),
        (r"{scope}/conv(\d)/conv\d_(\d)/biases", r"block\1_conv\2/bias"),
        (r"{scope}/fc6/weights", fc6 + "/kernel"),
        (r"{scope}/fc6/biases", fc6 + "/bias"),
        (r"{scope}/fc7/weights", fc7 + "/kernel"),
        (r"{scope}/fc7/biases", fc7 + "/bias"),
        (r"{scope}/fc8/weights", fc8 + "/kernel"),
        (r"{scope}/fc8/biases", fc8 + "/bias"),
    )


def _resnet_v2_rules() -> tuple[tuple[str, str | None], ...]:
    rules: list[tuple[str, str | None]] = [
        (r"{scope}/conv1/weights", "conv1_conv/kernel"),
        (r"{scope}/conv1/biases", "conv1_conv/bias"),
        (r"{scope}/postnorm/" + BN, r"post_bn/\1"),
        (r"{scope}/logits/weights", "predictions/kernel"),
        (r"{scope}/logits/biases", "predictions/bias"),
    ]
    for b in range(1, 5):  # Slim block b is Keras stage conv{b+1}
        unit = rf"{{scope}}/block{b}/unit_(\d+)/bottleneck_v2"
        k = rf"conv{b + 1}_block\1"
        rules += [
            (unit + "/preact/" + BN, k + r"_preact_bn/\2"),
            (unit + "/shortcut/weights", k + "_0_conv/kernel"),
            (unit + "/shortcut/biases", k + "_0_conv/bias"),
            (unit + "/conv1/weights", k + "_1_conv/kernel"),
            (unit + "/conv1/BatchNorm/" + BN, k + r"_1_bn/\2"),
            (unit + "/conv2/weights", k + "_2_conv/kernel"),
            (unit + "/conv2/BatchNorm/" + BN, k + r"_2_bn/\2"),
            (unit + "/conv3/weights", k + "_3_conv/kernel"),
            (unit + "/conv3/biases", k + "_3_conv/bias"),
        ]
    return tuple(rules)


# Slim InceptionV3's 94 convolutions in creation order, which is also the order in which
# keras.applications.InceptionV3 creates its (auto-numbered) conv2d/batch_normalization.
INCEPTION_V3_CONVS: tuple[str, ...] = tuple(
    """
    Conv2d_1a_3x3 Conv2d_2a_3x3 Conv2d_2b_3x3 Conv2d_3b_1x1 Conv2d_4a_3x3
    Mixed_5b/Branch_0/Conv2d_0a_1x1 Mixed_5b/Branch_1/Conv2d_0a_1x1
    Mixed_5b/Branch_1/Conv2d_0b_5x5 Mixed_5b/Branch_2/Conv2d_0a_1x1
    Mixed_5b/Branch_2/Conv2d_0b_3x3 Mixed_5b/Branch_2/Conv2d_0c_3x3
    Mixed_5b/Branch_3/Conv2d_0b_1x1 Mixed_5c/Branch_0/Conv2d_0a_1x1
    Mixed_5c/Branch_1/Conv2d_0b_1x1 Mixed_5c/Branch_1/Conv_1_0c_5x5
    Mixed_5c/Branch_2/Conv2d_0a_1x1 Mixed_5c/Branch_2/Conv2d_0b_3x3
    Mixed_5c/Branch_2/Conv2d_0c_3x3 Mixed_5c/Branch_3/Conv2d_0b_1x1
    Mixed_5d/Branch_0/Conv2d_0a_1x1 Mixed_5d/Branch_1/Conv2d_0a_1x1
    Mixed_5d/Branch_1/Conv2d_0b_5x5 Mixed_5d/Branch_2/Conv2d_0a_1x1
    Mixed_5d/Branch_2/Conv2d_0b_3x3 Mixed_5d/Branch_2/Conv2d_0c_3x3
    Mixed_5d/Branch_3/Conv2d_0b_1x1 Mixed_6a/Branch_0/Conv2d_1a_1x1
    Mixed_6a/Branch_1/Conv2d_0a_1x1 Mixed_6a/Branch_1/Conv2d_0b_3x3
    Mixed_6a/Branch_1/Conv2d_1a_1x1 Mixed_6b/Branch_0/Conv2d_0a_1x1
    Mixed_6b/Branch_1/Conv2d_0a_1x1 Mixed_6b/Branch_1/Conv2d_0b_1x7
    Mixed_6b/Branch_1/Conv2d_0c_7x1 Mixed_6b/Branch_2/Conv2d_0a_1x1
    Mixed_6b/Branch_2/Conv2d_0b_7x1 Mixed_6b/Branch_2/Conv2d_0c_1x7
    Mixed_6b/Branch_2/Conv2d_0d_7x1 Mixed_6b/Branch_2/Conv2d_0e_1x7
    Mixed_6b/Branch_3/Conv2d_0b_1x1 Mixed_6c/Branch_0/Conv2d_0a_1x1
    Mixed_6c/Branch_1/Conv2d_0a_1x1 Mixed_6c/Branch_1/Conv2d_0b_1x7
    Mixed_6c/Branch_1/Conv2d_0c_7x1 Mixed_6c/Branch_2/Conv2d_0a_1x1
    Mixed_6c/Branch_2/Conv2d_0b_7x1 Mixed_6c/Branch_2/Conv2d_0c_1x7
    Mixed_6c/Branch_2/Conv2d_0d_7x1 Mixed_6c/Branch_2/Conv2d_0e_1x7
    Mixed_6c/Branch_3/Conv2d_0b_1x1 Mixed_6d/Branch_0/Conv2d_0a_1x1
    Mixed_6d/Branch_1/Conv2d_0a_1x1 Mixed_6d/Branch_1/Conv2d_0b_1x7
    Mixed_6d/Branch_1/Conv2d_0c_7x1 Mixed_6d/Branch_2/Conv2d_0a_1x1
    Mixed_6d/Branch_2/Conv2d_0b_7x1 Mixed_6d/Branch_2/Conv2d_0c_1x7
    Mixed_6d/Branch_2/Conv2d_0d_7x1 Mixed_6d/Branch_2/Conv2d_0e_1x7
    Mixed_6d/Branch_3/Conv2d_0b_1x1 Mixed_6e/Branch_0/Conv2d_0a_1x1
    Mixed_6e/Branch_1/Conv2d_0a_1x1 Mixed_6e/Branch_1/Conv2d_0b_1x7
    Mixed_6e/Branch_1/Conv2d_0c_7x1 Mixed_6e/Branch_2/Conv2d_0a_1x1
    Mixed_6e/Branch_2/Conv2d_0b_7x1 Mixed_6e/Branch_2/Conv2d_0c_1x7
    Mixed_6e/Branch_2/Conv2d_0d_7x1 Mixed_6e/Branch_2/Conv2d_0e_1x7
    Mixed_6e/Branch_3/Conv2d_0b_1x1 Mixed_7a/Branch_0/Conv2d_0a_1x1
    Mixed_7a/Branch_0/Conv2d_1a_3x3 Mixed_7a/Branch_1/Conv2d_0a_1x1
    Mixed_7a/Branch_1/Conv2d_0b_1x7 Mixed_7a/Branch_1/Conv2d_0c_7x1
    Mixed_7a/Branch_1/Conv2d_1a_3x3 Mixed_7b/Branch_0/Conv2d_0a_1x1
    Mixed_7b/Branch_1/Conv2d_0a_1x1 Mixed_7b/Branch_1/Conv2d_0b_1x3
    Mixed_7b/Branch_1/Conv2d_0b_3x1 Mixed_7b/Branch_2/Conv2d_0a_1x1
    Mixed_7b/Branch_2/Conv2d_0b_3x3 Mixed_7b/Branch_2/Conv2d_0c_1x3
    Mixed_7b/Branch_2/Conv2d_0d_3x1 Mixed_7b/Branch_3/Conv2d_0b_1x1
    Mixed_7c/Branch_0/Conv2d_0a_1x1 Mixed_7c/Branch_1/Conv2d_0a_1x1
    Mixed_7c/Branch_1/Conv2d_0b_1x3 Mixed_7c/Branch_1/Conv2d_0c_3x1
    Mixed_7c/Branch_2/Conv2d_0a_1x1 Mixed_7c/Branch_2/Conv2d_0b_3x3
    Mixed_7c/Branch_2/Conv2d_0c_1x3 Mixed_7c/Branch_2/Conv2d_0d_3x1
    Mixed_7c/Branch_3/Conv2d_0b_1x1
    """.split()
)


def _inception_v3_rules() -> tuple[tuple[str, str | None], ...]:
    rules: list[tuple[str, str | None]] = []
    for k, conv in enumerate(INCEPTION_V3_CONVS):
        rules.append(("{scope}/" + re.escape(conv) + "/weights", f"conv2d_{k}/kernel"))
        rules.append(
            ("{scope}/" + re.escape(conv) + "/BatchNorm/" + BN, rf"batch_normalization_{k}/\1")
        )
    rules.append((r"{scope}/Logits/Conv2d_1c_1x1/weights", "predictions/kernel"))
    rules.append((r"{scope}/Logits/Conv2d_1c_1x1/biases", "predictions/bias"))
    return tuple(rules)


_FC_SQUEEZE = Squeeze((0, 1))  # a 1x1 Slim conv "fully connected" -> Keras Dense kernel
_AUX = ((r"{scope}/AuxLogits/.*", "auxiliary classifier (training only; Keras has none)"),)


_FC_FIXED = (
    "its classifier is fully connected (fc6 is a VALID convolution) over a feature map of one size"
)
_FIXED = {
    "inception_v1": "its final 7x7 VALID average pool needs a 7x7 feature map",
}


def _register_all() -> None:
    # (net, scope, default size, (min, max) size, ...): sizes measured by building the
    # Slim net; beyond max its fully connected fc6 sees a 2x2 map and fc8's squeeze fails.
    for net, scope, size, (min_size, max_size), required, forbidden, shapes, logits, eps in [
        (
            "alexnet_v2",
            "alexnet_v2",
            224,
            (195, 226),
            ["conv5/weights", "fc8/weights"],
            [r"conv\d/conv\d_\d"],
            {"conv2/weights": (5, 5, 64, 192)},
            "fc8",
            ["{scope}/pool5", "{scope}/fc7"],
        ),
        (
            "overfeat",
            "overfeat",
            231,
            (231, 262),
            ["conv5/weights", "fc8/weights"],
            [r"conv\d/conv\d_\d"],
            {"conv2/weights": (5, 5, 64, 256)},
            "fc8",
            ["{scope}/pool5", "{scope}/fc7"],
        ),
        (
            "vgg_a",
            "vgg_a",
            224,
            (224, 255),
            ["conv1/conv1_1/weights", "conv5/conv5_2/weights"],
            ["conv1/conv1_2/"],
            None,
            "fc8",
            ["{scope}/pool5", "{scope}/fc7"],
        ),
        (
            "inception_v1",
            "InceptionV1",
            224,
            (224, None),
            ["Mixed_5c/", "Conv2d_1a_7x7/weights"],
            ["Mixed_6a/", "Mixed_4a/"],
            None,
            "Logits/Conv2d_0c_1x1",
            ["Mixed_4f", "Mixed_5c"],
        ),
        (
            "inception_v2",
            "InceptionV2",
            224,
            (32, None),
            ["Mixed_5c/", "Conv2d_1a_7x7/depthwise_weights"],
            ["Mixed_6a/"],
            None,
            "Logits/Conv2d_1c_1x1",
            ["Mixed_4e", "Mixed_5c"],
        ),
    ]:
        rules = _TRACED_RULES
        if net == "inception_v2":  # the separable first conv's bias follows its pointwise conv
            rules = ((r"{scope}/Conv2d_1a_7x7/biases", "Conv2d_1a_7x7/pointwise/bias"), *rules)
        # Inception V2's final pool is min(7x7, the map): a global pool wherever Slim builds
        any_size = net == "inception_v2"
        pool = "Logits.AvgPool_1a_" if any_size else None
        register_recipe(
            Recipe(
                name=f"slim:{net}",
                net=net,
                scope=scope,
                target="Keras 3 functional model traced from Slim's graph (same layout and names)",
                build=_traced(net, global_pool=pool),
                rules=rules,
                logits=(rf"{{scope}}/{logits}/(weights|biases)",),
                signature=_signature(required, forbidden, shapes),
                default_size=size,
                min_size=min_size,
                max_size=max_size,
                endpoints=tuple((e, None) for e in eps),
                any_size=any_size,
                fixed_size="" if any_size else _FIXED.get(net, _FC_FIXED),
            )
        )

    for depth in (50, 101, 152, 200):
        net = f"resnet_v1_{depth}"
        register_recipe(
            Recipe(
                name=f"slim:{net}",
                net=net,
                scope=net,
                target="Keras 3 functional model traced from Slim's graph (same layout and names); "
                "keras.applications.ResNet puts strides elsewhere",
                build=_traced(net),
                rules=_TRACED_RULES,
                logits=(r"{scope}/logits/(weights|biases)",),
                signature=_resnet_signature(1, depth),
                default_size=224,
                min_size=32,
                endpoints=(("{scope}/block2", None), ("{scope}/block4", None)),
                any_size=True,
                fixed_size="",
            )
        )
    for depth in (50, 101, 152, 200):
        net = f"resnet_v2_{depth}"
        common = dict(
            name=f"slim:{net}",
            net=net,
            scope=net,
            logits=(r"{scope}/logits/(weights|biases)",),
            signature=_resnet_signature(2, depth),
            default_size=224,
            min_size=32,
            any_size=True,
            fixed_size="",
        )
        if depth == 200:  # keras.applications has no ResNet200V2
            register_recipe(
                Recipe(
                    target="Keras 3 functional model traced from Slim's graph (same layout and names)",
                    build=_traced(net),
                    rules=_TRACED_RULES,
                    endpoints=(("{scope}/block2", None), ("{scope}/block4", None)),
                    **common,
                )
            )
        else:
            register_recipe(
                Recipe(
                    target=f"keras.applications.ResNet{depth}V2 with Slim's pool1 (SAME max pool) "
                    "and batch-norm epsilon 1e-5",
                    build=_resnet_v2_application(f"ResNet{depth}V2"),
                    rules=_resnet_v2_rules(),
                    transforms=((r"{scope}/logits/weights", _FC_SQUEEZE),),
                    endpoints=(
                        (
                            "{scope}/block2",
                            "conv3_block4_out"
                            if depth == 50
                            else ("conv3_block4_out" if depth == 101 else "conv3_block8_out"),
                        ),
                        ("{scope}/block4", "conv5_block3_out"),
                    ),
                    **common,
                )
            )

    vgg_fc6 = Reshape((25088, 4096), source_shape=(7, 7, 512, 4096))
    for net, app, last in (
        ("vgg_16", "VGG16", "conv5/conv5_3/"),
        ("vgg_19", "VGG19", "conv5/conv5_4/"),
    ):
        forbidden = ["conv5/conv5_4/"] if net == "vgg_16" else []
        register_recipe(
            Recipe(
                name=f"slim:{net}",
                net=net,
                scope=net,
                target=f"keras.applications.{app}",
                build=_application(app),
                rules=_vgg_rules(),
                transforms=(
                    (r"{scope}/fc6/weights", vgg_fc6),
                    (r"{scope}/fc[78]/weights", _FC_SQUEEZE),
                ),
                logits=(r"{scope}/fc8/(weights|biases)",),
                signature=_signature(["conv1/conv1_2/weights", last + "weights"], forbidden),
                default_size=224,
                min_size=224,
                max_size=255,  # Slim's 7x7 fc6, Keras' Flatten + Dense: pool5 must be 7x7
                endpoints=(("{scope}/pool5", "block5_pool"), ("{scope}/fc7", "fc2")),
                fixed_size=_FC_FIXED,
            )
        )

    register_recipe(
        Recipe(
            name="slim:inception_v3",
            net="inception_v3",
            scope="InceptionV3",
            target="keras.applications.InceptionV3",
            build=_application("InceptionV3"),
            rules=_inception_v3_rules(),
            transforms=((r"{scope}/Logits/Conv2d_1c_1x1/weights", _FC_SQUEEZE),),
            drops=_AUX,
            logits=(r"{scope}/Logits/Conv2d_1c_1x1/(weights|biases)",),
            signature=_signature(["Mixed_7c/", "Mixed_6e/"]),
            default_size=299,
            min_size=75,
            naming="ordinal",
            endpoints=(("Mixed_6e", "mixed7"), ("Mixed_7c", "mixed10")),
            net_kwargs={"create_aux_logits": False},
            # Slim's final pool is min(8x8, the map): a global pool wherever Slim builds
            any_size=True,
            fixed_size="",
        )
    )


_register_all()
