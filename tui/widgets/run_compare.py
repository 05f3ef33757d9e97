"""Two runs side by side (the case file: the failure and the fixed default), from their logs and reports."""

from __future__ import annotations

from dpo_tutor.engine.run_facts import Missing, compare_rows
from rich.table import Table
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from .lesson_context import LessonContext


class RunCompare(Vertical):
    """`params`: left, right (runs), title. `rows` holds (what, left, right)."""

    DEFAULT_CSS = """
    RunCompare { height: auto; border: round $secondary; padding: 0 1; margin: 1 0; }
    RunCompare .compare-note { color: $warning; }
    """

    def __init__(self, params: dict, context: LessonContext | None = None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.params = params
        context = context or LessonContext()
        self.left = context.facts(params["left"])
        self.right = context.facts(params["right"])
        self.rows = compare_rows(self.left, self.right)

    def compose(self) -> ComposeResult:
        self.border_title = self.params.get("title") or "two runs"
        table = Table(box=None, pad_edge=False, expand=True, show_header=False)
        table.add_column("", style="bold", no_wrap=True)
        table.add_column("left", ratio=1, overflow="fold")
        table.add_column("right", ratio=1, overflow="fold")
        for what, a, b in self.rows:
            table.add_row(what, a, b)
        yield Static(table, id="compare-table")
        for side, facts in (("left", self.left), ("right", self.right)):
            if isinstance(facts, Missing):
                yield Static(f"{side}: {facts.why}; its numbers appear here once it ships.",
                             classes="compare-note", markup=False)
