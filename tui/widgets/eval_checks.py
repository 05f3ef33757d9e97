"""The reward-hacking and health checks: status, value, verdict, and the lesson that explains each."""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Static

STATUS_TEXT = {"ok": "OK", "warn": "WARN", "n/a": "n/a"}


class ChecksView(Vertical):
    DEFAULT_CSS = """
    ChecksView > DataTable { height: auto; max-height: 10; }
    ChecksView > .check-detail { margin-top: 1; padding: 0 1; border: round $panel; height: auto; }
    """

    @dataclass
    class LessonRequested(Message):
        lesson: str

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.checks: list[dict] = []

    def compose(self) -> ComposeResult:
        table = DataTable(cursor_type="row", zebra_stripes=True)
        table.add_columns("status", "check", "value")
        yield table
        yield Static("", classes="check-detail", markup=False)

    def show(self, checks: list[dict]) -> None:
        self.checks = checks
        table = self.query_one(DataTable)
        table.clear()
        for c in checks:
            table.add_row(STATUS_TEXT.get(c["status"], c["status"]), c["title"], c["value_text"], key=c["id"])
        if checks:
            table.move_cursor(row=0)
            self._detail(0)

    @property
    def current(self) -> dict | None:
        row = self.query_one(DataTable).cursor_row
        return self.checks[row] if 0 <= row < len(self.checks) else None

    def _detail(self, row: int) -> None:
        if not 0 <= row < len(self.checks):
            return
        c = self.checks[row]
        self.query_one(".check-detail", Static).update(
            f"{c['title']}: {STATUS_TEXT.get(c['status'], c['status'])}\n\n{c['verdict']}\n\n"
            f"Threshold: {c['threshold']}.\nExplained in the lesson '{c['lesson']}' (press l)."
        )

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._detail(event.cursor_row)

    @on(DataTable.RowSelected)
    def _selected(self, event: DataTable.RowSelected) -> None:
        if self.current:
            self.post_message(self.LessonRequested(self.current["lesson"]))
