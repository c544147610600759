"""Shared pytest set-up: quiet TensorFlow, deterministic seeds, a fresh-process runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_fresh(code: str, timeout: int = 300) -> dict:
    """Run `code` in a fresh Python process (repo root on sys.path); it must print one
    JSON object on its last stdout line, which is returned."""
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise AssertionError(f"fresh process failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session", autouse=True)
def _layout_cache(tmp_path_factory):
    """Traced layouts (tfunite.porting) go to a folder of this test session, never the
    user's ~/.cache/tfunite."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TFUNITE_CACHE_DIR", str(tmp_path_factory.mktemp("tfunite_cache")))
        yield


@pytest.fixture
def rng():
    return np.random.default_rng(0)
