"""The reward-hacking and health checks: status, value, verdict, and the lesson that explains each.

Every entry of the report's `checks` list is shown, whatever its id, so a check the engine adds appears
here by itself. Each row takes two lines (the check, then its value), so no number is cut at 80 columns.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Static

STATUS_TEXT = {"ok": "OK", "warn": "WARN", "fail": "FAIL", "n/a": "n/a"}
STATUS_STYLE = {"ok": "green", "warn": "bold yellow", "fail": "bold red"}


class ChecksView(Vertical):
    DEFAULT_CSS = """
    ChecksView { height: auto; }
    ChecksView > .check-reasons { color: $text-muted; height: auto; padding: 0 1; }
    ChecksView > DataTable { height: auto; }
    ChecksView > .check-detail { margin-top: 1; padding: 0 1; border: round $panel; height: auto; }
    """

    @dataclass
    class LessonRequested(Message):
        lesson: str

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.checks: list[dict] = []

    def compose(self) -> ComposeResult:
        yield Static("", classes="check-reasons", markup=False)
        table = DataTable(cursor_type="row", zebra_stripes=True)
        table.add_columns("status", "check · value")
        yield table
        yield Static("", classes="check-detail", markup=False)

    def show(self, checks: list[dict], reasons: list[str] | None = None) -> None:
        self.checks = [c for c in checks if isinstance(c, dict)]
        note = self.query_one(".check-reasons", Static)
        note.update("Why the verdict: " + "; ".join(str(r) for r in reasons) if reasons else "")
        note.display = bool(reasons)
        table = self.query_one(DataTable)
        table.clear()
        for i, c in enumerate(self.checks):
            status = str(c.get("status", "n/a"))
            title = str(c.get("title") or c.get("id") or "check")
            value = str(c.get("value_text") or "")
            table.add_row(Text(STATUS_TEXT.get(status, status.upper()), style=STATUS_STYLE.get(status, "")),
                          Text(f"{title}\n  {value}"), key=str(c.get("id", i)), height=2)
        if self.checks:
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
        status = str(c.get("status", "n/a"))
        parts = [f"{c.get('title', c.get('id', 'check'))}: {STATUS_TEXT.get(status, status)}"]
        if c.get("verdict"):
            parts.append(str(c["verdict"]))
        if c.get("threshold"):
            parts.append(f"Threshold: {c['threshold']}.")
        if c.get("lesson"):
            parts.append(f"Explained in the lesson '{c['lesson']}' (press l).")
        self.query_one(".check-detail", Static).update("\n\n".join(parts))

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._detail(event.cursor_row)

    @on(DataTable.RowSelected)
    def _selected(self, event: DataTable.RowSelected) -> None:
        if self.current and self.current.get("lesson"):
            self.post_message(self.LessonRequested(self.current["lesson"]))
