"""Every error tfunite raises.

Each message says what failed, where, expected vs. got, and how to fix it. The
templates live here so that tests can match them and so that a reader sees every
failure mode of the library in one place.
"""

from __future__ import annotations


class TfuniteError(Exception):
    """Base class of every error raised by tfunite."""


class NoBridgeError(TfuniteError, TypeError):
    """No registered bridge accepts an object; the message lists each bridge tried."""


class OwnershipError(TfuniteError):
    """A variable was created outside any owner inside `tu.strict()`."""


class DuplicateVariablesError(TfuniteError):
    """An owner created new variables after its first call, or two variables share a name."""


class GraphModeError(TfuniteError):
    """An owner was used in a graph or mode it cannot run in."""


class NotBuiltError(TfuniteError):
    """An owner's variables were asked for before the owner was built."""


class CheckpointError(TfuniteError):
    """A checkpoint could not be found, read or written."""


class LoadError(TfuniteError):
    """A load was refused; nothing was assigned. ``.report`` holds the full report."""

    def __init__(self, message: str, report: object | None = None):
        super().__init__(message)
        self.report = report


class RuleError(TfuniteError, ValueError):
    """A rename rule or transform is invalid or maps two entries onto one variable."""


class NotSerializableError(TfuniteError, TypeError):
    """An object cannot be written in a format that must rebuild it (a `.keras` file of a
    `tu.keras_layer` without a factory)."""


class LegacyFixError(TfuniteError):
    """A legacy-library fix could not be applied."""


class MissingDependencyError(TfuniteError, ImportError):
    """A framework a bridge needs is not installed; the message has the pip command."""


def missing_dependency(package: str, extra: str, what: str) -> MissingDependencyError:
    return MissingDependencyError(
        f"{what} needs the package {package!r}, which is not installed. "
        f"Fix: pip install 'tfunite[{extra}]' (or pip install {package})."
    )


class DistributeError(TfuniteError):
    """An owner or optimizer would train wrong under a `tf.distribute` strategy."""
