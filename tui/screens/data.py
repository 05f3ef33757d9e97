"""The Data area: browse preference triplets, their quality flags and the data set's quality report.

The screen composes a virtualised table (tui/widgets/data_table.py), a detail pane with the replies
side by side (data_detail.py) and the report with its charts (data_stats.py). Loading and filtering
run in thread workers; a worker only returns values or posts messages, never touches a widget.
It opens the bundled sample when first shown; `open_dataset(app, source)` opens another from anywhere.
`m` opens the training mix (the default data a run trains on: HH-RLHF harmless + helpful 2:1); a source
of several comma-separated files or hub ids opens them mixed at equal weights. A mix's pairs carry their
source's name (the group filter picks one source) and the Stats tab lists each source's weight and pairs.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import ClassVar

from dpo_tutor.engine.data.browse import FLAGS, LENGTH_BUCKETS, LONG_CHARS, BrowseIndex, remember_source
from dpo_tutor.engine.data.load import LoadResult
from dpo_tutor.engine.errors import UserError
from dpo_tutor.engine.paths import display_path
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Header, Input, Select, Static, TabbedContent, TabPane
from textual.worker import Worker, WorkerState

from ..widgets.data_detail import TripletDetail
from ..widgets.data_open_dialog import OpenDatasetDialog, OpenRequest
from ..widgets.data_stats import DataStats
from ..widgets.data_table import TripletTable, TripletTableHeader, legend_text

TRAINING_MIX = "mix:default"  # the request for the default data, resolved as a run resolves it
LIVE_SEARCH_ROWS = 20_000  # below this, search as you type; above, on Enter
DETAIL_DELAY_S = 0.06  # the detail pane follows the cursor once it rests, so paging repaints only the table


@dataclass
class Loaded:
    request: OpenRequest
    result: LoadResult
    index: BrowseIndex


class DataScreen(Screen):
    DEFAULT_CSS = """
    DataScreen #data-bar { height: 1; }
    DataScreen #data-search { width: 1fr; min-width: 20; }
    DataScreen #data-bar Select { width: 22; margin-left: 1; }
    DataScreen.-narrow #data-bar Select { width: 17; }
    DataScreen #data-status { height: auto; padding: 0 1; color: $text-muted; }
    DataScreen #data-left { width: 58%; border-right: solid $panel; }
    DataScreen #data-legend { height: auto; color: $text-muted; padding: 0 1; }
    DataScreen #data-right { width: 1fr; }
    DataScreen.-narrow #data-body { layout: vertical; }
    DataScreen.-narrow #data-left { width: 1fr; height: 2fr; border-right: none; }
    DataScreen.-narrow #data-right { height: 3fr; }
    DataScreen.-narrow #data-legend { display: none; }
    DataScreen.-zoom #data-left { display: none; }
    DataScreen.-zoom #data-right { height: 1fr; }
    """
    # At 80x24 the table sits above the detail (both full width, every column whole); z gives the
    # detail or the stats the whole height; f says what the columns and flags mean.
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-narrow"), (110, "-wide")]
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("ctrl+o,o", "open", "Open", tooltip="open a data set: a file or a hub id", id="data-open"),
        Binding("slash", "search", "Search", id="data-search"),
        Binding("s", "toggle_stats", "Stats", tooltip="the quality report and its charts", id="data-stats"),
        Binding("m", "training_mix", "Mix", tooltip="the training mix: the data a run trains on by default",
                id="data-mix"),
        Binding("z", "zoom", "Zoom", tooltip="the detail or the stats take the whole height", id="data-zoom"),
        Binding("f", "legend", "What the columns and flags mean", show=False, id="data-legend"),
        Binding("escape", "clear_search", "Clear search", show=False, id="data-clear"),
    ]

    class LoadProgress(Message):
        """Rows read so far by the loading worker (posted from its thread)."""

        def __init__(self, rows: int) -> None:
            super().__init__()
            self.rows = rows

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, DataScreen.LoadProgress)

    def __init__(self, source: str | None = None) -> None:
        super().__init__()
        self.initial_source = source or ""
        self.loaded: Loaded | None = None
        self._detail_index = -1
        self._detail_timer: Timer | None = None
        self._opening = ""  # the source being opened, named when it cannot be

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="data-bar"):
            yield Input(placeholder="search ( / )", id="data-search", compact=True)
            yield Select([(f"{FLAGS[name][0]} {name}", name) for name in FLAGS], prompt="any flag",
                         id="data-flag", compact=True)
            yield Select([], prompt="any group", id="data-group", compact=True)
            yield Select([(name, name) for name in LENGTH_BUCKETS if name != "any length"], prompt="any length",
                         id="data-length", compact=True)
        yield Static("", id="data-status", markup=False)
        with Horizontal(id="data-body"):
            with Vertical(id="data-left"):
                yield TripletTableHeader("", id="data-table-header")
                yield TripletTable(id="data-table")
                yield Static(legend_text(LONG_CHARS), id="data-legend", markup=False)
            with TabbedContent(id="data-right", initial="data-tab-detail"):
                with TabPane("Detail", id="data-tab-detail"):
                    yield TripletDetail(id="data-detail")
                with TabPane("Stats", id="data-tab-stats"):
                    yield DataStats(id="data-stats")
        yield Footer()

    def on_mount(self) -> None:
        self.open_source(self.initial_source)

    # --- opening ----------------------------------------------------------------------------------

    def open_source(self, source: str, format: str = "", columns: str = "", split: str = "train") -> None:
        self.open_request(OpenRequest(source=source, format=format, columns=columns, split=split))

    def open_request(self, request: OpenRequest) -> None:
        self.query_one("#data-table", TripletTable).loading = True
        self._status(f"opening {request.source or 'the bundled sample'} …")
        self._opening = request.source
        self._load(request)

    @work(thread=True, exclusive=True, group="data-load", exit_on_error=False)
    def _load(self, request: OpenRequest) -> Loaded:
        from dpo_tutor.engine.config import parse_columns
        from dpo_tutor.engine.data.load import load_triplets
        from dpo_tutor.engine.data.mix import load_default

        progress = lambda n: self.post_message(self.LoadProgress(n))  # noqa: E731
        sources = [p.strip() for p in request.source.split(",") if p.strip()]
        if request.source == TRAINING_MIX:
            result = load_default(progress=progress)
        else:
            result = load_triplets(
                sources if len(sources) > 1 else (request.source or None),
                format=request.format or None,
                columns=parse_columns(request.columns) if request.columns else None,
                split=request.split or "train",
                progress=progress,
            )
        loaded = Loaded(request, result, BrowseIndex(result.triplets))
        # A big data set is millions of long-lived objects; keep the cyclic GC from walking them on
        # every full collection (which would stall the UI for most of a second at 160,800 rows).
        gc.freeze()
        return loaded

    def on_data_screen_load_progress(self, message: LoadProgress) -> None:
        if self.query_one("#data-table", TripletTable).loading:
            self._status(f"reading … {message.rows:,} rows")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group == "data-load":
            if event.state == WorkerState.SUCCESS:
                self._show_loaded(worker.result)
            elif event.state == WorkerState.ERROR:
                self.query_one("#data-table", TripletTable).loading = False
                error = worker.error
                source = self._opening or "the data set"
                if isinstance(error, UserError):
                    text = error.one_line()
                elif isinstance(error, RecursionError):
                    text = f"{source} is nested too deeply to read (is it really preference data?)"
                else:
                    text = f"{type(error).__name__}: {error}".splitlines()[0]
                self._status(f"could not open: {text}")
                self.notify(text, title="Cannot open the data set", severity="error", timeout=10)
        elif worker.group == "data-filter" and event.state == WorkerState.SUCCESS:
            order = worker.result
            if self.loaded is not None:
                self.query_one("#data-table", TripletTable).show(self.loaded.index, order)
                self._status_counts(len(order))
                if not order:
                    self.query_one("#data-detail", TripletDetail).show(None)

    def _show_loaded(self, loaded: Loaded) -> None:
        self.loaded = loaded
        table = self.query_one("#data-table", TripletTable)
        table.loading = False
        group = self.query_one("#data-group", Select)
        group.set_options([(name, name) for name in loaded.index.group_names])
        self.query_one("#data-search", Input).value = ""
        self.query_one("#data-flag", Select).clear()
        self.query_one("#data-length", Select).clear()
        table.show(loaded.index)
        self.query_one("#data-table-header", TripletTableHeader).set_id_width(table.id_width)
        self.query_one("#data-stats", DataStats).show(loaded.result.report, loaded.index, loaded.result.mix)
        self._status_counts(len(loaded.index))
        if loaded.result.note:
            self.notify(loaded.result.note, title="Training mix", timeout=8)
        if loaded.request.source and loaded.request.source != TRAINING_MIX:
            remember_source(loaded.request.source)
        table.focus()

    # --- filtering --------------------------------------------------------------------------------

    def _criteria(self) -> tuple[str, str | None, str | None, str | None]:
        def value(selector: str) -> str | None:
            v = self.query_one(selector, Select).value
            return v if isinstance(v, str) else None

        return (self.query_one("#data-search", Input).value, value("#data-flag"), value("#data-group"),
                value("#data-length"))

    def refilter(self) -> None:
        if self.loaded is not None:
            self._filter(self.loaded.index, *self._criteria())

    @work(thread=True, exclusive=True, group="data-filter", exit_on_error=False)
    def _filter(self, index: BrowseIndex, query: str, flag: str | None, group: str | None,
                length: str | None) -> list[int]:
        return index.filter(query, flag, group, length)

    @on(Input.Changed, "#data-search")
    def _search_changed(self, event: Input.Changed) -> None:
        if self.loaded is not None and len(self.loaded.index) <= LIVE_SEARCH_ROWS:
            self.refilter()

    @on(Input.Submitted, "#data-search")
    def _search_submitted(self) -> None:
        self.refilter()
        self.query_one("#data-table", TripletTable).focus()

    @on(Select.Changed)
    def _select_changed(self) -> None:
        self.refilter()

    # --- detail -----------------------------------------------------------------------------------

    @on(TripletTable.CursorMoved)
    def _cursor_moved(self, event: TripletTable.CursorMoved) -> None:
        self._detail_index = event.index
        if self._detail_timer is not None:
            self._detail_timer.stop()
        self._detail_timer = self.set_timer(DETAIL_DELAY_S, self._update_detail)

    def _update_detail(self) -> None:
        self._detail_timer = None
        detail = self.query_one("#data-detail", TripletDetail)
        i = self._detail_index
        if self.loaded is None or not 0 <= i < len(self.loaded.index):
            detail.show(None)
            return
        t = self.loaded.index.triplets[i]
        detail.show(t, i, ", ".join(self.loaded.index.rows[i].flags),  # the flags in words, not codes
                    source=t.source if self.loaded.result.mix else "")

    # --- actions ----------------------------------------------------------------------------------

    def action_open(self) -> None:
        current = self.loaded.request.source if self.loaded else ""

        def opened(request: OpenRequest | None) -> None:
            if request is not None:
                self.open_request(request)

        self.app.push_screen(OpenDatasetDialog(current), opened)

    def action_search(self) -> None:
        self.query_one("#data-search", Input).focus()

    def action_clear_search(self) -> None:
        search = self.query_one("#data-search", Input)
        if search.value:
            search.value = ""
            self.refilter()
        self.query_one("#data-table", TripletTable).focus()

    def action_training_mix(self) -> None:
        self.open_source(TRAINING_MIX)

    def action_toggle_stats(self) -> None:
        tabs = self.query_one("#data-right", TabbedContent)
        tabs.active = "data-tab-detail" if tabs.active == "data-tab-stats" else "data-tab-stats"

    def action_zoom(self) -> None:
        """The detail (or the stats) takes the whole height; again: the table comes back."""
        self.toggle_class("-zoom")
        if self.has_class("-zoom"):
            self.set_focus(None)
        else:
            self.query_one("#data-table", TripletTable).focus()

    def action_legend(self) -> None:
        self.notify(legend_text(LONG_CHARS), title="The table's columns", timeout=15)

    # --- status -----------------------------------------------------------------------------------

    def _status(self, text: str) -> None:
        self.query_one("#data-status", Static).update(text)

    def _status_counts(self, shown: int) -> None:
        if self.loaded is None:
            return
        report = self.loaded.result.report
        mix = self.loaded.result.mix
        if mix is not None:  # compact: the sources are listed on the Stats tab
            self._status(f"mix of {len(mix)} sources  ·  showing {shown:,} of {report.usable:,} pairs  ·  "
                         f"{report.rows_read:,} rows read")
            return
        name = self.loaded.request.source
        name = "bundled sample" if name in ("", TRAINING_MIX) else display_path(name)
        self._status(
            f"{name}  ·  {self.loaded.result.format}  ·  showing {shown:,} of {report.usable:,} usable"
            f"  ·  {report.rows_read:,} rows read, {report.dropped_total:,} dropped"
        )


def open_dataset(app, source: str) -> None:
    """Switch to the Data area and open `source` there ("" for the bundled sample)."""
    app.switch_mode("data")

    def go() -> None:
        if isinstance(app.screen, DataScreen):
            app.screen.open_source(source)

    app.call_after_refresh(go)
