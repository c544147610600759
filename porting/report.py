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
        self.weights = "raw"  # or "ema": the ExponentialMovingAverage shadows were ported
        self.raw_statistics: list[str] = []  # with "ema": batch-norm statistics loaded raw

    def drop_counts(self) -> dict[str, dict[str, int]]:
        """``{kind: {reason: count}}`` of what the port leaves out on purpose (kinds
        ``dropped`` and ``training_state``), most frequent reason first."""
        out: dict[str, dict[str, int]] = {}
        for e in self.entries:
            if e.kind in ("dropped", "training_state"):
                reasons = out.setdefault(e.kind, {})
                reason = e.reason or "-"
                reasons[reason] = reasons.get(reason, 0) + 1
        return {k: dict(sorted(v.items(), key=lambda kv: (-kv[1], kv[0]))) for k, v in out.items()}

    def weights_note(self) -> str:
        """Which weights were ported, in words."""
        if self.weights != "ema":
            return "raw (the trained variables)"
        n = sum(
            1
            for e in self.entries
            if e.kind in ("matched", "transformed")
            and (e.source or "").endswith("/ExponentialMovingAverage")
        )
        note = f"ema (ExponentialMovingAverage shadows of {n} variables"
        if self.raw_statistics:
            note += f"; {len(self.raw_statistics)} batch-norm statistics without shadow, raw"
        return note + ")"

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
            "weights": self.weights,
            "raw_statistics": list(self.raw_statistics),
            "counts": self.counts(),
            "dropped_by_reason": self.drop_counts(),
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
        console.print(f"  weights: {self.weights_note()}")
        c = self.counts()
        console.print("  " + "  ".join(f"{k}: {v}" for k, v in c.items()))
        if not verbose:  # what is left out on purpose: counts by reason, not one line each
            for kind, reasons in self.drop_counts().items():
                for reason, n in reasons.items():
                    console.print(f"  {kind} {n:5d}  {reason}")
        table = Table(show_lines=False)
        for col in ("kind", "checkpoint name", "shape", "keras name", "how"):
            table.add_column(col)
        quiet = ("matched", "dropped", "training_state")
        for e in self.entries:
            if e.kind in quiet and not verbose:
                continue
            how = describe(e.transform) or e.reason or ""
            table.add_row(e.kind, e.source or "-", str(e.source_shape or ""), e.target or "-", how)
        if table.row_count:
            console.print(table)
        if not verbose and (c["matched"] or c["dropped"] or c["training_state"]):
            console.print(
                f"  ({c['matched']} entries renamed one to one, "
                f"{c['dropped'] + c['training_state']} left out on purpose; --verbose lists them)"
            )
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
