"""Sentences with the numbers of the learner's latest run (or a shipped recording), naming the run."""

from __future__ import annotations

from dpo_tutor.engine.run_facts import Missing, fact_lines
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from .lesson_context import LessonContext


class RunFactsView(Vertical):
    """`params`: run, show (fact keys), title. `lines` holds what is shown, source line first."""

    DEFAULT_CSS = """
    RunFactsView { height: auto; border: round $secondary; padding: 0 1; margin: 1 0; }
    RunFactsView .facts-title { text-style: bold; }
    RunFactsView .facts-source { color: $text-muted; }
    RunFactsView .facts-line { padding-left: 2; }
    RunFactsView.-missing .facts-source { color: $warning; }
    """

    def __init__(self, params: dict, context: LessonContext | None = None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.params = params
        self.context = context or LessonContext()
        self.facts = self.context.facts(params["run"])
        self.lines = fact_lines(self.facts, params["show"])

    def compose(self) -> ComposeResult:
        self.set_class(isinstance(self.facts, Missing), "-missing")
        self.border_title = self.params.get("title") or "from a real run"
        source, *rest = self.lines
        yield Static(source, classes="facts-source", markup=False)
        for line in rest:
            yield Static("• " + line, classes="facts-line", markup=False)
