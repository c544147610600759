"""Maintainer scripts, run from a checkout (not installed with tfunite): golden.py writes
tests/golden, matrix.py writes compat_matrix.md."""
