"""The Train area: configure a run, start it, watch it learn, stop it, re-attach to it, replay it.

The screen composes widgets and talks to the App's `RunWatcher` (tui/run_watcher.py), which owns the
training subprocess and the worker that reads its event log; leaving this mode never stops a run.
Charts redraw on a 0.5 s timer, not per event; the status line and the log refresh on a 0.25 s tick
when the watcher's `Changed` messages (which collapse when they pile up) said something moved.
"""

from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import ClassVar

from dpo_tutor.engine.errors import UserError
from dpo_tutor.engine.runs import CONFIG_FILE
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, TabbedContent, TabPane

from ..run_watcher import RunState, RunWatcher, watcher_of
from ..widgets.train_charts import TrainCharts
from ..widgets.train_dialogs import ConfirmStopDialog
from ..widgets.train_form import TrainForm
from ..widgets.train_log import TrainLog
from ..widgets.train_runs import RunsList
from ..widgets.train_status import TrainStatus

CHART_INTERVAL_S = 0.5
STATUS_INTERVAL_S = 0.25


class TrainScreen(Screen):
    DEFAULT_CSS = """
    TrainScreen #train-side { width: 48; border-right: solid $panel; }
    TrainScreen.-narrow #train-side { width: 40; }
    TrainScreen #train-side.-hidden { display: none; }
    TrainScreen #train-main { width: 1fr; }
    TrainScreen.-short TrainLog { display: none; }
    TrainScreen.-log-on TrainLog { display: block; height: 5; }
    TrainScreen.-log-off TrainLog { display: none; }
    """
    # Small terminals (80x24 over SSH): what matters there is the run, so the Configure / Runs panel
    # steps aside once a run is on show (ctrl+b, ctrl+g, ctrl+o bring it back) and the log waits behind
    # ctrl+l: the status (progress, loss, accuracy, margin) and the four charts get the room.
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-narrow"), (110, "-wide")]
    VERTICAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-short"), (34, "-tall")]
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("ctrl+r", "start", "Start", id="train-start"),
        Binding("ctrl+t", "stop", "Stop", tooltip="stop the run (shown while one trains)", id="train-stop"),
        Binding("ctrl+o", "show_runs", "Runs", id="train-runs"),
        Binding("ctrl+g", "show_form", "Configure", id="train-configure"),
        Binding("ctrl+l", "toggle_log", "Log", id="train-log"),
        Binding("ctrl+b", "toggle_side", "Panel", id="train-panel"),
        Binding("c", "next_chart", "One chart at a time, large (again: the next, then all four)", show=False,
                id="train-chart"),
    ]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop":  # in the footer only while there is a run to stop
            return self.watcher.run_is_live
        return True

    def compose(self) -> ComposeResult:
        runs_dir = self.app.context.runs_dir
        yield Header()
        with Horizontal():
            with TabbedContent(id="train-side", initial="tab-form"):
                with TabPane("Configure", id="tab-form"):
                    yield TrainForm(runs_dir, gpu=self.app.context.has_gpu(), id="train-form")
                with TabPane("Runs", id="tab-runs"):
                    yield RunsList(runs_dir, id="runs-list")
            with Vertical(id="train-main"):
                yield TrainStatus(id="train-status")
                yield TrainCharts(id="train-charts")
                yield TrainLog(id="train-log")
        yield Footer(compact=True)

    # ---- plumbing ---------------------------------------------------------------------------------
    @property
    def watcher(self) -> RunWatcher:
        return watcher_of(self.app)

    @property
    def run_state(self) -> RunState | None:
        return self.watcher.state

    def on_mount(self) -> None:
        self.watcher.target = self
        self._dirty = False
        self._last_status = 0.0
        # The charts take turns: one per tick, so each is redrawn every CHART_INTERVAL_S.
        self.set_interval(CHART_INTERVAL_S / 4, lambda: self.redraw_charts(limit=1), name="train-charts")
        self.set_interval(STATUS_INTERVAL_S, self._tick_status, name="train-status")
        self.refresh_status()
        # The charts allocate a lot while a run streams in; a full (generation 2) collection then walks
        # every object of the app and took 160-220 ms here, long enough to delay a key press. Move
        # what exists now (the app and its screens, alive until exit) out of the collector's reach.
        gc.collect()
        gc.freeze()

    def _tick_status(self) -> None:
        """Status and log follow the run a few times a second (and the clock once a second)."""
        if self._dirty or time.monotonic() - self._last_status >= 1.0:
            self.refresh_status()

    def on_screen_resume(self) -> None:
        self.watcher.target = self
        self.refresh_status()
        self.redraw_charts()

    def redraw_charts(self, limit: int | None = None) -> int:
        state = self.run_state
        if state is None:
            return 0
        with self.app.batch_update():
            return self.query_one(TrainCharts).redraw(state.store, limit)

    def refresh_status(self) -> str:
        self._dirty = False
        self._last_status = time.monotonic()
        state = self.run_state
        self.query_one(TrainLog).show(state)
        return self.query_one(TrainStatus).show(state)

    @on(RunWatcher.Changed)
    def _changed(self, message: RunWatcher.Changed) -> None:
        if self.watcher.run_is_live != getattr(self, "_live_shown", None):
            self._live_shown = self.watcher.run_is_live
            self.refresh_bindings()  # Stop shows in the footer while a run trains
        self._dirty = True  # shown by the next status tick: 50 events a second are not 50 repaints

    @on(RunWatcher.Ended)
    def _ended(self, message: RunWatcher.Ended) -> None:
        self._live_shown = self.watcher.run_is_live
        self.refresh_bindings()
        self.refresh_status()
        self.redraw_charts()
        if not message.state.is_replay:
            self.query_one(RunsList).reload()

    # ---- starting and stopping --------------------------------------------------------------------
    def action_start(self) -> None:
        self.query_one(TrainForm).request_start()

    @on(TrainForm.StartRequested)
    def _start(self, message: TrainForm.StartRequested) -> None:
        self.start_run(message.config, message.name)

    def start_run(self, config, name: str) -> Path | None:
        from dpo_tutor.engine.runs import new_run_dir

        if self.watcher.run_is_live:
            self.notify("A run is training: stop it first (ctrl+t).", severity="warning")
            return None
        try:
            run = new_run_dir(self.app.context.runs_dir, name)
            self.watcher.start(config, run)
        except (OSError, UserError) as exc:
            self.notify(str(exc), title="Cannot start", severity="error")
            return None
        self.refresh_status()
        self.refresh_bindings()
        self.query_one(RunsList).reload()
        self._make_room()
        return run

    def _make_room(self) -> None:
        """In a small terminal the run on show takes the room: the side panel steps aside."""
        if self.has_class("-narrow"):
            side = self.query_one("#train-side")
            side.add_class("-hidden")
            if self.focused is not None and side in self.focused.ancestors:
                self.set_focus(None)

    def action_stop(self) -> None:
        if not self.watcher.run_is_live:
            self.notify("No run is training.", severity="warning")
            return
        state = self.run_state
        name = state.name if state else "the run"

        def answer(stop: bool | None) -> None:
            if stop and not self.watcher.stop():
                self.notify("Could not signal the run's process (another machine?).", severity="warning")

        self.app.push_screen(ConfirmStopDialog(name), answer)

    # ---- runs ---------------------------------------------------------------------------------
    def action_show_runs(self) -> None:
        self.query_one("#train-side").remove_class("-hidden")
        self.query_one(TabbedContent).active = "tab-runs"
        runs = self.query_one(RunsList)
        runs.reload()
        runs.query_one("#runs-table").focus()

    def action_show_form(self) -> None:
        """Show the Configure tab and put the focus on its first field (the preset)."""
        self.query_one("#train-side").remove_class("-hidden")
        self.query_one(TabbedContent).active = "tab-form"
        self.query_one(TrainForm).focus_first()

    def action_toggle_side(self) -> None:
        """Hide or show the Configure / Runs panel (the charts take the room)."""
        side = self.query_one("#train-side")
        side.toggle_class("-hidden")
        if side.has_class("-hidden") and self.focused is not None and side in self.focused.ancestors:
            self.set_focus(None)

    def action_next_chart(self) -> None:
        shown = self.query_one(TrainCharts).next_chart()
        self.redraw_charts()
        self.notify(f"Showing {shown}; c for the next.", title="charts", timeout=3)

    def action_toggle_log(self) -> None:
        shown = self.query_one(TrainLog).styles.display != "none"
        self.set_class(not shown, "-log-on")
        self.set_class(shown, "-log-off")

    @on(RunsList.OpenRequested)
    def _open_requested(self, message: RunsList.OpenRequested) -> None:
        self.open_run(message.path, speed=message.speed, resume=message.resume)

    def open_run(self, path: Path, *, speed: float = 0.0, resume: bool = False) -> str | None:
        """Re-attach to a running run, replay a finished one, or resume a stopped one.

        Returns what it did ("attached", "replay", "resumed") or None when it could not.
        """
        from dpo_tutor.engine.config import TrainConfig
        from dpo_tutor.engine.runs import run_info

        if self.watcher.run_is_live and self.watcher.process_running:
            self.notify("A run started here is training: stop it before opening another.", severity="warning")
            return None
        info = run_info(path)
        if resume:
            if info.state not in ("stopped", "interrupted", "failed"):
                self.notify(f"Only a stopped or interrupted run can be resumed ({info.name} is {info.state}).",
                            severity="warning")
                return None
            try:
                config = TrainConfig.from_toml(path / CONFIG_FILE)
                self.watcher.start(config, path, resume=True)
            except UserError as exc:
                self.notify(exc.one_line(), title="Cannot resume", severity="error")
                return None
            did = "resumed"
        elif info.state in ("running", "new"):  # new: started, no event yet (it may be importing torch)
            self.watcher.attach(path)
            did = "attached"
        else:
            self.watcher.replay(path, speed)
            did = "replay"
        self._show_run_settings(path)
        self.refresh_status()
        self._make_room()
        return did

    def _show_run_settings(self, path: Path) -> None:
        from dpo_tutor.engine.config import TrainConfig

        try:
            config = TrainConfig.from_toml(path / CONFIG_FILE)
        except UserError:
            return  # no or unreadable settings: the form keeps what it had
        self.query_one(TrainForm).show_config(config, path.name)


def palette_entries(app) -> list[tuple[str, str, object]]:
    """"start training" and one "open run <name>" per run folder (and shipped recording)."""
    from dpo_tutor.engine.recorded.loader import recorded_runs
    from dpo_tutor.engine.runs import list_runs

    def on_train(do) -> None:
        async def go() -> None:
            await app.switch_mode("train")
            do(app.screen)

        app.call_later(go)

    entries: list[tuple[str, str, object]] = [
        ("start training", "start a DPO run with the Train form's settings",
         lambda: on_train(lambda screen: screen.action_start())),
    ]
    runs = [(info.path.name, info.state, info.path) for info in list_runs(app.context.runs_dir)]
    runs += [(f"recorded: {path.name}", "recorded", path) for path in recorded_runs()]
    for name, state, path in runs:
        entries.append((
            f"open run {name}",
            f"{state}: re-attach if it runs, else replay its curves ({path})",
            lambda path=path: on_train(lambda screen: screen.open_run(path)),
        ))
    return entries
