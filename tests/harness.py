"""The conformance harness every bridge goes through.

A `Case` says how to build a component natively and what tfunite must report for it.
`check_*` functions each assert one property of the protocol; test_conformance.py runs
all of them for every case, so every bridge is held to the same bar:

* names: exactly the expected canonical names, the same count as the framework tracks;
* forward: the owner's output equals the native call (rtol=atol=1e-6), eagerly and in
  tf.function, and a second call creates no variables;
* checkpoint: save -> scramble -> load restores every variable bit for bit;
* fresh process: the same model code, built after unrelated layers, reports the same
  names and reproduces the outputs from the checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf
import tfunite as tu

RTOL = ATOL = 1e-6


@dataclass
class Case:
    name: str
    factory: str  # attribute of tests.models
    framework: str
    names: list[str]
    native: Callable[[Any, Any, Any], Any]  # native forward: native(obj, x, owner)
    native_count: Callable[[Any, Any], int]  # variables the framework tracks: (obj, owner)
    input_shape: tuple[int, ...] = (4, 6)
    wrap: Callable[[Any, str], Any] = field(default=lambda obj, name: tu.wrap(obj, name=name))


def build(case: Case) -> tuple[Any, Any, np.ndarray]:
    from tests import models

    obj = getattr(models, case.factory)()
    x = models.example(case.input_shape)
    owner = case.wrap(obj, case.name)
    owner(x)
    return obj, owner, x


def check_names(case: Case, obj: Any, owner: Any) -> None:
    assert owner.framework == case.framework
    assert list(owner.variables) == case.names
    assert len(owner.variables) == case.native_count(obj, owner)
    assert all(":" not in n for n in owner.variables)
    parts = {id(v) for v in owner.trainable_variables} | {
        id(v) for v in owner.non_trainable_variables
    }
    assert parts == {id(v) for v in owner.variables.values()}


def check_forward(case: Case, obj: Any, owner: Any, x: np.ndarray) -> None:
    want = np.asarray(case.native(obj, x, owner))
    np.testing.assert_allclose(np.asarray(owner(x)), want, rtol=RTOL, atol=ATOL)
    traced = tf.function(lambda t: owner(t))
    np.testing.assert_allclose(np.asarray(traced(tf.constant(x))), want, rtol=RTOL, atol=ATOL)
    assert list(owner.variables) == case.names  # no new variables on later calls


def scramble(owner: Any, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    for v in owner.variables.values():
        if v.dtype.is_floating:
            v.assign(rng.normal(size=v.shape).astype(v.dtype.as_numpy_dtype))
        else:
            v.assign(rng.integers(0, 100, size=v.shape).astype(v.dtype.as_numpy_dtype))


def check_roundtrip(owner: Any, x: np.ndarray, path: str) -> dict[str, np.ndarray]:
    scramble(owner, seed=7)  # non-trivial values (BatchNorm statistics included)
    out = np.asarray(owner(x))  # before the snapshot: a call may set state (TFLearn's flag)
    saved = {k: v.numpy().copy() for k, v in owner.variables.items()}
    tu.save(owner, path)
    scramble(owner, seed=8)
    report = tu.load(owner, path)
    assert report.applied and len(report.matched) == len(saved)
    assert not (report.missing or report.unexpected or report.mismatched)
    for k, v in owner.variables.items():
        np.testing.assert_array_equal(v.numpy(), saved[k], err_msg=k)
    np.testing.assert_array_equal(np.asarray(owner(x)), out)
    return saved


FRESH = """
import json, numpy as np
from tests import models
models.pollute()
import tfunite as tu
from tests.test_conformance import CASES
case = CASES[{name!r}]
from tests.harness import build
obj, owner, x = build(case)
report = tu.load(owner, {path!r})
print(json.dumps({{"names": list(owner.variables), "matched": len(report.matched),
                  "out": np.asarray(owner(x)).tolist()}}))
"""


def check_fresh_process(case: Case, owner: Any, x: np.ndarray, path: str) -> None:
    from tests.conftest import run_fresh

    result = run_fresh(FRESH.format(name=case.name, path=path))
    assert result["names"] == case.names
    assert result["matched"] == len(case.names)
    out = np.asarray(owner(x))
    np.testing.assert_allclose(np.array(result["out"], out.dtype), out, rtol=RTOL, atol=ATOL)


def dumps(value: Any) -> str:
    return json.dumps(value)
