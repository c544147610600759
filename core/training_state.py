"""Training state recognised once: the `TRAINING_STATE` rule set.

A training checkpoint holds more than the model: optimizer slots, step counters,
moving averages. `TRAINING_STATE` is a `Rules` whose every rule drops such entries with
a reason and marks them kind ``training_state`` in a `LoadReport` (never
``unexpected``). Pass it wherever rules are accepted, alone or with your own::

    tu.load(owner, "model.ckpt-10000", rules=tu.TRAINING_STATE)
    owner.load(path, rules=[*tu.TRAINING_STATE, *my_rules])       # one stage
    port_custom(path, model, rules=[tu.TRAINING_STATE, {"net/": ""}, ...])  # stages

In one stage the first full match wins: a broad rule of yours placed before the set
(``(r"net/(.*)", ...)``) would rename slot entries too, so put the set first, or make it
a stage of its own (a list holding the `Rules` object itself).

`tu.port` applies it by default. It recognises:

* TF1 optimizer slots: ``<var>/Momentum``, ``Adam``/``Adam_1``, ``RMSProp``/``RMSProp_1``,
  ``Adagrad``, ``Ftrl``/``Ftrl_1``, ``Adadelta``/``Adadelta_1`` (each with an optional
  ``_N`` suffix, as a second optimizer names them) and Adam's ``beta1_power``/``beta2_power``;
* ``global_step``;
* ExponentialMovingAverage shadows: ``<var>/ExponentialMovingAverage``;
* Keras 3 and tf_keras optimizer state (``optimizer/...``) and `tf.train.Checkpoint`'s
  ``save_counter``, in object-based, ``.weights.h5`` and ``.keras`` files;
* TFLearn ``DNN.save`` extras: the slots of its optimizers (Adam, SGD, Momentum,
  RMSProp, AdaGrad, AdaDelta, Ftrl, Nesterov), ``Global_Step``, ``Training_step``,
  ``val_loss``, ``val_acc`` and the ``.../moving_avg`` of its summaries.

An optimizer given another name has other slot names: add a rule for them,
``[(r".+/MyAdam(?:_\\d+)?", None), *tu.TRAINING_STATE]``.

Moving averages instead of raw weights (`moving_average_rules`): a checkpoint trained
with ``tf.train.ExponentialMovingAverage`` (Slim's ``train_image_classifier.py
--moving_average_decay``) holds a shadow ``<var>/ExponentialMovingAverage`` next to each
averaged variable ``<var>``, and the shadows are the weights people evaluate with.
``moving_average_rules(names)`` is a rule stage that renames each shadow to its
variable's name and drops the raw variable it replaces (kind ``training_state``);
put it first, before `TRAINING_STATE` and your own rules::

    stages = [moving_average_rules(reader.entries), tu.TRAINING_STATE, my_rules]

Transforms are keyed by checkpoint names, so a transform of ``<var>`` must also match
its shadow: `moving_average_transforms` widens each pattern to cover it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .rules import Rule, Rules, Transform, TransformSpec

_TF1_SLOTS = "Momentum|Adam|Adam_1|RMSProp|RMSProp_1|Adagrad|Ftrl|Ftrl_1|Adadelta|Adadelta_1"
_TFLEARN_OPTIMIZERS = "Adam|SGD|Momentum|RMSProp|AdaGrad|AdaDelta|Ftrl|Nesterov"


def _rule(pattern: str, reason: str) -> Rule:
    return Rule(pattern, None, reason=f"training state ({reason})", training_state=True)


TRAINING_STATE = Rules(
    [
        _rule(r"(?:.+/)?global_step", "step counter"),
        _rule(rf".+/(?:{_TF1_SLOTS})(?:_\d+)?", "TF1 optimizer slot"),
        _rule(r"(?:.+/)?beta[12]_power(?:_\d+)?", "TF1 Adam accumulator"),
        _rule(r".+/ExponentialMovingAverage(?:_\d+)?", "ExponentialMovingAverage shadow"),
        _rule(r"(?:.+/)?optimizer(?:/.*)?", "Keras optimizer state"),
        _rule(r"(?:.+/)?save_counter", "tf.train.Checkpoint save counter"),
        _rule(rf".+/(?:{_TFLEARN_OPTIMIZERS})(?:_\d+)?", "TFLearn optimizer slot"),
        _rule(r"Global_Step|Training_step|val_loss|val_acc", "TFLearn trainer counter"),
        _rule(r".+/moving_avg", "TFLearn summary moving average"),
    ]
)
"""Rules that drop a checkpoint's training state, each entry reported as kind
``training_state`` with its reason (see the module docstring for what it covers)."""


def training_state_reason(name: str) -> str | None:
    """The reason `TRAINING_STATE` gives for checkpoint entry `name`, or None if it is
    not training state."""
    _, rule = TRAINING_STATE.apply(name)
    return rule.reason if rule is not None else None


EMA_SHADOW = "ExponentialMovingAverage"
"""The leaf name `tf.train.ExponentialMovingAverage` gives each shadow variable."""


def shadows(names: Iterable[str]) -> dict[str, str]:
    """``{variable: its ExponentialMovingAverage shadow}`` among checkpoint `names`."""
    suffix = "/" + EMA_SHADOW
    return {n[: -len(suffix)]: n for n in sorted(names) if n.endswith(suffix) and n != suffix}


def moving_average_rules(names: Iterable[str]) -> Rules:
    """A rule stage that loads each variable from its ExponentialMovingAverage shadow.

    For every ``<var>/ExponentialMovingAverage`` among `names`, the shadow is renamed
    ``<var>`` (what later rule stages see) and the raw ``<var>`` entry is dropped as kind
    ``training_state``. Variables without a shadow go on unchanged: whether that is
    acceptable is the caller's decision (`tu.port(weights="ema")` refuses it).
    """
    names = list(names)
    averaged = shadows(names)
    present = set(names)
    raw = [re.escape(var) for var in averaged if var in present]
    rules = []
    if raw:
        rules.append(
            Rule(
                "(?:" + "|".join(raw) + ")",
                None,
                reason="training state (raw weight: its ExponentialMovingAverage shadow "
                "is loaded instead)",
                training_state=True,
            )
        )
    if averaged:
        rules.append(Rule(r"(.+)/" + EMA_SHADOW, r"\1"))
    return Rules(rules)


def moving_average_transforms(spec: TransformSpec) -> list[tuple[str, Transform]]:
    """`spec`'s ``(regex, Transform)`` pairs, each regex widened to match the variable's
    ExponentialMovingAverage shadow too (transforms are keyed by checkpoint names)."""
    if spec is None:
        return []
    pairs = list(spec.items()) if hasattr(spec, "items") else list(spec)
    out = []
    for pattern, transform in pairs:
        text = getattr(pattern, "pattern", pattern)
        out.append((f"(?:{text})(?:/{EMA_SHADOW})?", transform))
    return out
