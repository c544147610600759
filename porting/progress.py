"""Progress of a long port on stderr: `Phases` (one line per phase, rich)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any


def _noop() -> None:
    pass


class Phases:
    """The status of a long operation's phases on stderr (rich), one line at a time.

    ``with Phases(enabled) as phases: advance = phases.phase("Loading weights", total=n)``
    shows a spinner, the phase, a bar (a pulse without `total`), ``done/total`` and the
    elapsed time of the phase. It draws only when `enabled` and stderr is an
    interactive terminal (so logs and pipes get no escape codes); the display is
    removed when the block ends.
    """

    def __init__(self, enabled: bool):
        self._bar: Any = None
        self._task: Any = None
        if not enabled:
            return
        console = _stderr_console()
        if not console.is_interactive:
            return
        from rich.progress import (
            BarColumn,
            Progress,
            ProgressColumn,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.text import Text

        class _Count(ProgressColumn):
            def render(self, task: Any) -> Text:
                if task.total is None:
                    return Text("")
                return Text(f"{int(task.completed)}/{int(task.total)}", style="progress.download")

        self._bar = Progress(
            SpinnerColumn(),
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            _Count(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )

    @property
    def active(self) -> bool:
        """Whether anything is drawn."""
        return self._bar is not None

    def __enter__(self) -> Phases:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()

    def phase(self, label: str, total: int | None = None) -> Callable[[], None]:
        """Start the next phase (the previous one is done); returns ``advance()``."""
        if self._bar is None:
            return _noop
        if self._task is not None:
            self._bar.update(self._task, visible=False)
        task = self._task = self._bar.add_task(label, total=total)
        self._bar.refresh()
        return lambda: self._bar.advance(task)


@contextlib.contextmanager
def _as_phases(progress: bool | Phases) -> Iterator[Phases]:
    """`progress` itself if it is a running `Phases`, else a new one for this block."""
    if isinstance(progress, Phases):
        yield progress
        return
    with Phases(bool(progress)) as phases:
        yield phases


@contextlib.contextmanager
def _progress(enabled: bool, total: int, label: str) -> Iterator[Callable[[], None]]:
    """A single-phase progress bar on stderr: yields ``advance()``."""
    with Phases(enabled) as phases:
        yield phases.phase(label, total=total)


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)
