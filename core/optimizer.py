"""Optimizer (being written)."""
class Optimizer: pass
