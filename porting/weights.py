"""Which weights a port takes: the raw variables (default) or their moving averages.

``weights="ema"`` uses core's one mechanism, `tfunite.training_state.moving_average_rules`:
a first rule stage renames each ``<var>/ExponentialMovingAverage`` shadow to ``<var>``
and drops the raw ``<var>`` as training state; transforms are widened to the shadows
(`moving_average_transforms`). After the plan, every weight the port loads must come
from a shadow, or the port is refused naming the variables without one (nothing is
loaded or written). Batch-norm moving statistics are themselves moving averages and
``ema.apply(tf.trainable_variables())`` leaves them without shadows: when none of them
has one, they are loaded raw (as `ExponentialMovingAverage.variables_to_restore` does).
Slim's ``train_image_classifier.py --moving_average_decay`` averages every model
variable, statistics included.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from tfunite.errors import LoadError
from tfunite.rules import Rules
from tfunite.training_state import EMA_SHADOW, moving_average_rules, shadows

from .errors import PortArgumentError

WEIGHTS = ("raw", "ema")
_STATISTIC = re.compile(r".*/moving_(?:mean|variance)")


def check_weights(weights: str) -> str:
    """`weights` if it is one of `WEIGHTS`, else `PortArgumentError`."""
    if weights not in WEIGHTS:
        raise PortArgumentError(
            f"weights={weights!r} is not a choice: expected 'raw' (the trained variables) or "
            "'ema' (their ExponentialMovingAverage shadows). Fix: pass weights='raw' or "
            "weights='ema' (CLI: --weights raw|ema)."
        )
    return weights


def ema_stage(names: Iterable[str], checkpoint: str) -> Rules:
    """The rule stage of ``weights="ema"``; a checkpoint without any shadow refuses."""
    names = list(names)
    if not shadows(names):
        raise LoadError(
            f"weights='ema': checkpoint {checkpoint!r} holds no ExponentialMovingAverage "
            f"shadow (no entry named '<variable>/{EMA_SHADOW}'), so it was not trained with "
            "moving averages (Slim: --moving_average_decay). Nothing was loaded. Fix: port "
            "its raw weights (weights='raw', CLI: --weights raw)."
        )
    return moving_average_rules(names)


def check_shadows(report: Any, names: Iterable[str]) -> list[str]:
    """Refuse (LoadError, nothing loaded) a ``weights="ema"`` plan that would load a
    weight without a shadow; returns the batch-norm statistics loaded raw."""
    averaged = shadows(names)
    suffix = "/" + EMA_SHADOW
    loaded = [e.source for e in report.entries if e.kind in ("matched", "transformed")]
    raw = [n for n in loaded if not n.endswith(suffix)]
    statistics_averaged = any(_STATISTIC.fullmatch(v) for v in averaged)
    exempt = [] if statistics_averaged else [n for n in raw if _STATISTIC.fullmatch(n)]
    missing = [n for n in raw if n not in exempt]
    if missing:
        shown = ", ".join(missing[:8]) + (
            f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        )
        raise LoadError(
            f"weights='ema': {len(missing)} of the {len(loaded)} weights to port from "
            f"{report.checkpoint!r} have no ExponentialMovingAverage shadow: {shown}. "
            f"Expected '<variable>/{EMA_SHADOW}' for each (Slim's train_image_classifier.py "
            "averages every model variable). Nothing was loaded. Fix: port the raw weights "
            "(weights='raw', CLI: --weights raw), or a checkpoint whose moving averages "
            "cover every variable.",
            report,
        )
    return exempt
