"""Four preference losses on one real pair: sigmoid, IPO, robust, SimPO-style (engine/dpo_math)."""

from __future__ import annotations

from dpo_tutor.engine.dpo_math import LossVariant, loss_variants
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static


class LossCompare(Vertical):
    """`params` is a loss-compare WidgetSpec's params; `variants` holds the computed rows."""

    DEFAULT_CSS = """
    LossCompare { height: auto; border: round $primary; padding: 0 1; margin: 1 0; }
    LossCompare .lc-notes { color: $text-muted; }
    LossCompare #lc-fixes { margin-top: 1; }
    """

    def __init__(self, params: dict, context=None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.params = params
        p = params
        self.variants: list[LossVariant] = loss_variants(
            p["policy_chosen"], p["policy_rejected"], p["ref_chosen"], p["ref_rejected"],
            p["chosen_tokens"], p["rejected_tokens"], beta=p["beta"], tau=p["beta"],
        )

    def compose(self) -> ComposeResult:
        self.border_title = "one real pair, four losses"
        table = Table(box=None, pad_edge=False, expand=False)
        table.add_column("loss", style="bold", no_wrap=True)
        table.add_column("score", justify="right")
        table.add_column("loss", justify="right")
        table.add_column("slope", justify="right")
        for v in self.variants:
            table.add_row(v.name, f"{v.score:+.3f}", f"{v.loss:.3f}", f"{v.slope:+.4f}")
        yield Static(table, id="lc-table")
        fixes = Text()
        for i, v in enumerate(self.variants):
            fixes.append(f"{v.name}", style="bold")
            fixes.append(f"  {v.formula}\n  fixes: {v.fixes}")
            if i < len(self.variants) - 1:
                fixes.append("\n")
        yield Static(fixes, id="lc-fixes")
        notes = [f"source: {self.params['source']}",
                 f"tokens: chosen {self.params['chosen_tokens']}, rejected {self.params['rejected_tokens']}"]
        if self.params.get("note"):
            notes.append(self.params["note"])
        yield Static("\n".join(notes), classes="lc-notes", markup=False)
