"""The before/after table: base and aligned, held-out accuracy and margins, ties shown as ties."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static


class BeforeAfterTable(Vertical):
    DEFAULT_CSS = """
    BeforeAfterTable { height: auto; }
    BeforeAfterTable > DataTable { height: auto; max-height: 12; }
    BeforeAfterTable > .eval-note { color: $text-muted; margin-top: 1; }
    """

    def compose(self) -> ComposeResult:
        yield Static("", classes="eval-caption")
        table = DataTable(cursor_type="row", zebra_stripes=True)
        table.add_columns("measure", "base (before)", "aligned (after)")
        yield table
        yield Static("", classes="eval-note")

    def show(self, report: dict) -> None:
        from dpo_tutor.engine.report import before_after_rows, num

        table_data = report["before_after"]
        self.query_one(".eval-caption", Static).update(
            f"{table_data['scored']} held-out pairs · beta {table_data['beta']:g} · "
            "accuracy = wins / all pairs, Wilson 95% interval · W/T/L = wins / ties / losses"
        )
        table = self.query_one(DataTable)
        table.clear()
        for measure, base, aligned, _ in before_after_rows(table_data):
            table.add_row(measure, base, aligned)
        kl = report.get("kl_per_token")
        extra = f"\nKL(aligned || base) on held-out answers: {num(kl)} nats/token." if kl is not None else ""
        self.query_one(".eval-note", Static).update(f"Ties: {table_data['tie_note']}{extra}")
