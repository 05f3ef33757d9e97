"""The before/after table: base and aligned, held-out accuracy and margins, ties shown as ties.

Each measure takes two lines ("DPO implicit reward" / "accuracy"; "63.6% [56.7%, 70.0%]" / "126W/0T/72L"),
so the whole table, every number of both columns, fits in 80 columns.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static


def two_lines(text: str, sep: str) -> str:
    """'a: b' -> 'a\\nb' (at the first `sep`); text without it stays one line."""
    head, found, tail = text.partition(sep)
    return f"{head}\n{tail.rstrip(')') if sep == ' (' else tail}" if found else text


class BeforeAfterTable(Vertical):
    DEFAULT_CSS = """
    BeforeAfterTable { height: auto; }
    BeforeAfterTable > DataTable { height: auto; }
    BeforeAfterTable > .eval-caption { color: $text-muted; }
    BeforeAfterTable > .eval-note { color: $text-muted; margin-top: 1; }
    """

    def compose(self) -> ComposeResult:
        yield Static("", classes="eval-caption", markup=False)
        table = DataTable(cursor_type="row", zebra_stripes=True)
        table.add_columns("measure", "base (before)", "aligned (after)")
        yield table
        yield Static("", classes="eval-note", markup=False)

    def rows(self) -> list[tuple[str, str, str]]:
        """The table's cells as text (a test reads what is shown)."""
        table = self.query_one(DataTable)
        return [tuple(str(cell) for cell in table.get_row_at(i)) for i in range(table.row_count)]

    def show(self, report: dict) -> None:
        from dpo_tutor.engine.report import before_after_rows, num

        table_data = report.get("before_after")
        table = self.query_one(DataTable)
        if not isinstance(table_data, dict):
            table.clear()
            self.query_one(".eval-caption", Static).update("")
            self.query_one(".eval-note", Static).update("")
            return
        self.query_one(".eval-caption", Static).update(
            f"{table_data['scored']} held-out pairs · beta {table_data['beta']:g} · wins/all [95% CI] · "
            "W/T/L = wins/ties/losses"
        )
        table.clear()
        for measure, base, aligned, _ in before_after_rows(table_data):
            table.add_row(Text(two_lines(measure, ": ")), Text(two_lines(base, " (")),
                          Text(two_lines(aligned, " (")), height=2)
        kl = report.get("kl_per_token")
        extra = f"\nKL(aligned || base) on held-out answers: {num(kl)} nats/token." if kl is not None else ""
        self.note = f"Ties: {table_data['tie_note']}{extra}"
        self.query_one(".eval-note", Static).update(self.note)

    def add_note(self, text: str) -> None:
        """A line about the report itself (its date), first under the table."""
        self.query_one(".eval-note", Static).update(f"{text}\n\n{getattr(self, 'note', '')}")
