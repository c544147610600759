"""Shared pytest set-up: quiet TensorFlow, deterministic seeds, a fresh-process runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Traced layouts go to a cache of this run, never the user's ~/.cache/tfunite.
os.environ.setdefault("TFUNITE_CACHE_DIR", tempfile.mkdtemp(prefix="tfunite-test-cache-"))

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


@pytest.fixture
def rng():
    return np.random.default_rng(0)
