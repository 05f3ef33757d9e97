"""The runs list: every run folder (running or finished) and the recorded runs shipped with the package.

Enter opens the selected run: a running one is re-attached, a finished one replayed at the chosen
speed. Resume continues a stopped or interrupted run from its last checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dpo_tutor.engine.recorded.loader import recorded_runs
from dpo_tutor.engine.runs import RunInfo, list_runs, run_info
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, DataTable, Select, Static

from ..replay import SPEEDS


@dataclass
class RunRow:
    info: RunInfo
    recorded: bool = False


def gather_runs(runs_dir: Path) -> list[RunRow]:
    rows = [RunRow(info) for info in list_runs(runs_dir)]
    rows += [RunRow(run_info(path), recorded=True) for path in recorded_runs()]
    return rows


def _fmt(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def row_lines(row: RunRow) -> str:
    """A run in three short lines (the side panel is ~38 columns at 80x24): its folder, its state and
    step, its last loss and accuracy."""
    s = row.info.summary
    name = ("recorded: " if row.recorded else "") + row.info.path.name  # the folder: unique, dated
    metrics = [f"{label} {_fmt(s.last_metrics.get(key), spec)}" for key, label, spec in
               (("loss", "loss", ".3f"), ("rewards/accuracies", "accuracy", ".2f"))
               if isinstance(s.last_metrics.get(key), (int, float))]
    return f"{name}\n  {row.info.state} · step {s.step}/{s.total_steps or '?'}\n  " + " · ".join(metrics)


class RunsList(Vertical):
    DEFAULT_CSS = """
    RunsList { height: 1fr; }
    RunsList DataTable { height: 1fr; }
    RunsList Horizontal { height: auto; }
    RunsList Select { width: 1fr; }
    RunsList Button { min-width: 8; width: auto; margin-right: 1; }
    RunsList #runs-hint { color: $text-muted; height: auto; }
    """

    @dataclass
    class OpenRequested(Message):
        """Open `path`: re-attach when it runs, else replay at `speed` (0 = at once); or resume it."""

        path: Path
        speed: float
        resume: bool = False

    def __init__(self, runs_dir: Path, **kwargs) -> None:
        super().__init__(**kwargs)
        self.runs_dir = runs_dir
        self.rows: dict[str, RunRow] = {}

    def compose(self) -> ComposeResult:
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True, show_header=False)
        yield Static("enter opens: a running run re-attaches, a finished one replays at this speed:",
                     id="runs-hint")
        yield Select([(f"replay {label}", speed) for label, speed in SPEEDS.items()], value=0.0,
                     allow_blank=False, id="replay-speed", prompt="replay speed", compact=True)
        with Horizontal():
            yield Button("Open", id="runs-open", compact=True)
            yield Button("Resume", id="runs-resume", compact=True)
            yield Button("Refresh", id="runs-refresh", compact=True)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("run")
        self.reload()
        self.set_interval(5.0, self._refresh_if_shown, name="runs-refresh")

    def _refresh_if_shown(self) -> None:
        if self.screen.is_current and self.is_on_screen:
            self.reload()

    def on_show(self) -> None:
        self.reload()

    def reload(self) -> None:
        """Read the runs folder again (states move while runs train); the selected run stays selected."""
        table = self.query_one(DataTable)
        current = self.selected()
        table.clear()
        self.rows = {}
        for row in gather_runs(self.runs_dir):
            key = str(row.info.path)
            self.rows[key] = row
            table.add_row(Text(row_lines(row)), key=key, height=3)
        if current is not None and str(current.info.path) in self.rows:
            table.move_cursor(row=table.get_row_index(str(current.info.path)))

    @property
    def speed(self) -> float:
        value = self.query_one("#replay-speed", Select).value
        return float(value) if isinstance(value, (int, float)) else 0.0

    def selected(self) -> RunRow | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self.rows.get(key or "")

    def _request(self, resume: bool = False) -> None:
        row = self.selected()
        if row is not None:
            self.post_message(self.OpenRequested(row.info.path, self.speed, resume))

    @on(DataTable.RowSelected)
    def _open_row(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self._request()

    @on(Button.Pressed, "#runs-open")
    def _open(self) -> None:
        self._request()

    @on(Button.Pressed, "#runs-resume")
    def _resume(self) -> None:
        self._request(resume=True)

    @on(Button.Pressed, "#runs-refresh")
    def _refresh(self) -> None:
        self.reload()
