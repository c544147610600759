"""`PortReport`: core's `LoadReport` seen as a port (recipe, target model, classes,
background class, input shape, verification, output), with a rich rendering.

Its entries are core's `Entry` with core's kinds; `ok` honours `strict` (a port always
refuses missing weights and mismatches, and unexpected entries when strict).
"""

from __future__ import annotations

from typing import Any

from tfunite.report import Entry, LoadReport, describe

__all__ = ["Entry", "PortReport"]


class PortReport(LoadReport):
    """What a port did (or, for a dry run, would do)."""

    target_noun = "Keras weight"
    lenient_missing = False  # a port must feed every weight of the model

    def __init__(
        self,
        recipe: str,
        checkpoint: str,
        target: str,
        num_classes: int | None = None,
        background: str = "none",  # none | dropped | kept
        input_shape: tuple[int, ...] | None = None,
        entries: list[Entry] | None = None,
        verification: dict[str, Any] | None = None,
        output: str | None = None,
        dry_run: bool = False,
        strict: bool = True,
        kind: str = "?",
    ):
        super().__init__(
            path=str(checkpoint), kind=kind, entries=entries or [], strict=strict, dry_run=dry_run
        )
        self.recipe = recipe
        self.target = target
        self.num_classes = num_classes
        self.background = background
        self.input_shape = input_shape
        self.verification = verification
        self.output = output

    @property
    def checkpoint(self) -> str:
        return self.path

    def to_dict(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "checkpoint": self.checkpoint,
            "format": self.kind,
            "target": self.target,
            "num_classes": self.num_classes,
            "background": self.background,
            "input_shape": list(self.input_shape) if self.input_shape else None,
            "strict": self.strict,
            "dry_run": self.dry_run,
            "applied": self.applied,
            "output": self.output,
            "counts": self.counts(),
            "ok": self.ok,
            "entries": [e.to_dict() for e in self.entries],
            "verification": self.verification,
        }

    def render(self, console: Any = None, verbose: bool = False) -> None:
        """Print the plan/report with rich."""
        import sys

        from rich.console import Console
        from rich.table import Table

        console = console or Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
        head = "Plan" if self.dry_run else "Port report"
        console.print(
            f"[bold]{head}[/bold]: {self.checkpoint} -> {self.target} (recipe {self.recipe})"
        )
        console.print(
            f"  classes: {self.num_classes}  background class: {self.background}  "
            f"input shape: {self.input_shape}"
        )
        c = self.counts()
        console.print("  " + "  ".join(f"{k}: {v}" for k, v in c.items()))
        table = Table(show_lines=False)
        for col in ("kind", "checkpoint name", "shape", "keras name", "how"):
            table.add_column(col)
        for e in self.entries:
            if e.kind == "matched" and not verbose:
                continue
            how = describe(e.transform) or e.reason or ""
            table.add_row(e.kind, e.source or "-", str(e.source_shape or ""), e.target or "-", how)
        if table.row_count:
            console.print(table)
        if not verbose and c["matched"]:
            console.print(f"  ({c['matched']} entries renamed one to one; --verbose lists them)")
        if self.verification:
            v = self.verification
            console.print(
                f"[bold]Verification[/bold] on {v['batch']} random inputs of shape "
                f"{tuple(v['input_shape'])} (tolerance {v['rtol']:g} relative):"
            )
            for name, d in v["outputs"].items():
                console.print(
                    f"  {name:40s} max abs {d['max_abs']:.3g}  max rel {d['max_rel']:.3g}"
                )
            console.print("  [green]OK[/green]" if v["ok"] else "  [red]FAILED[/red]")
        if self.output:
            console.print(f"Wrote {self.output}")
