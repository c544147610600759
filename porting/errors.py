"""The errors of porting (besides core's LoadError, CheckpointError and RuleError)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tfunite.errors import TfuniteError

if TYPE_CHECKING:
    from .report import PortReport


class OutputError(TfuniteError, OSError):
    """The output file cannot be written (nothing was written)."""


class PortArgumentError(TfuniteError, ValueError):
    """An argument of `port` is invalid (an input size too small for the net, or two
    arguments that contradict each other); nothing was read or written."""


class VerificationError(TfuniteError):
    """The ported model's outputs differ from Slim's by more than the tolerance."""

    def __init__(self, message: str, report: PortReport | None = None):
        super().__init__(message)
        self.report = report
