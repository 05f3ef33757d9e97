"""Walkthrough mode: a bar with the segment, its clock, the 15:00 total and the presenter note, and the
controller that moves through lessons and app areas in the video's recording order.

The controller belongs to the App (it outlives screens); the bar is mounted into whichever area's
screen is showing, split off at the top the way Textual mounts its own help panel. `w` cycles the
bar: with notes, without notes (the clocks and `[` / `]` stay, for recording), hidden.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from dpo_tutor.engine.lessons import load_lessons
from dpo_tutor.engine.walkthrough import SegmentClock, Walkthrough, build_stops, format_clock
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static


class WalkthroughBar(Vertical):
    """Shows the controller's state; refreshed by the controller and a one-second timer."""

    DEFAULT_CSS = """
    WalkthroughBar {
        split: top; height: auto; background: $panel; border-bottom: hkey $accent;
        border-subtitle-align: right; border-subtitle-color: $text-muted; padding: 0 1;
    }
    WalkthroughBar #wt-head { text-style: bold; text-wrap: nowrap; text-overflow: ellipsis; }
    WalkthroughBar #wt-head.-over { color: $error; }
    WalkthroughBar #wt-title { text-wrap: nowrap; text-overflow: ellipsis; }
    WalkthroughBar #wt-note-box { height: auto; max-height: 5; scrollbar-size-vertical: 1; }
    WalkthroughBar #wt-note { color: $text; }
    WalkthroughBar.-no-notes #wt-note-box { display: none; }
    """

    def __init__(self, controller: WalkthroughController) -> None:
        super().__init__(id="walkthrough-bar")
        self.controller = controller

    def compose(self) -> ComposeResult:
        yield Static("", id="wt-head", markup=False)
        yield Static("", id="wt-title", markup=False)
        with VerticalScroll(id="wt-note-box", can_focus=False):
            yield Static("", id="wt-note", markup=False)

    def on_mount(self) -> None:
        self.update_view()
        if self.controller.tick:
            self.set_interval(1.0, self.update_view)

    def update_view(self) -> None:
        if not self.query("#wt-head"):  # not composed yet; on_mount will show it
            return
        wt = self.controller.state
        stop = wt.current
        head = self.query_one("#wt-head", Static)
        head.update(f"● {wt.position_text()} · {wt.clock_text()} · total {wt.total_text()}")
        head.set_class(wt.over_budget() or wt.over_total(), "-over")
        self.query_one("#wt-title", Static).update(f"{stop.title} ({format_clock(stop.seconds)})")
        self.query_one("#wt-note", Static).update(stop.note)
        notes = self.controller.notes
        self.set_class(not notes, "-no-notes")
        self.border_subtitle = "[ prev · ] next · w " + ("hide notes" if notes else "hide bar")


class WalkthroughController:
    """Walkthrough state for the App: toggle the bar, step through stops, follow the user's moves."""

    def __init__(self, app, *, now: Callable[[], float] = time.monotonic, tick: bool = True) -> None:
        self.app = app
        self.state = Walkthrough(build_stops(load_lessons()), clock=SegmentClock(now=now))
        self.tick = tick
        self.visible = False
        self.notes = True  # the presenter notes under the clocks; off while recording
        self._subscribed = False
        self._bars: list[WalkthroughBar] = []  # one per area screen it was shown on

    # -- showing -------------------------------------------------------------------------------------

    def toggle(self) -> None:
        """Cycle: hidden -> bar with notes -> bar without notes -> hidden."""
        if self.visible and self.notes:
            self.notes = False
            self.refresh()
            return
        if not self._subscribed:  # signals need a running app, so subscribe on first use
            self.app.mode_change_signal.subscribe(self.app, self._on_mode_change)
            self._subscribed = True
        self.visible = not self.visible
        self.notes = True
        if self.visible:
            self._sync_from_app()
            self._mount_bar()
        else:
            for bar in self._bars:
                if bar.is_attached:
                    bar.remove()
            self._bars.clear()
        self.app.refresh_bindings()

    def _screen(self):
        from textual.screen import ModalScreen

        for screen in reversed(self.app.screen_stack):
            if not isinstance(screen, ModalScreen):
                return screen
        return self.app.screen

    def bar(self) -> WalkthroughBar | None:
        bars = self._screen().query(WalkthroughBar)
        return bars.first() if bars else None

    def _mount_bar(self) -> None:
        if not self.visible:
            return
        screen = self._screen()
        existing = screen.query(WalkthroughBar)
        if existing:
            existing.first().update_view()
        else:
            bar = WalkthroughBar(self)
            self._bars.append(bar)
            screen.mount(bar)

    def refresh(self) -> None:
        bar = self.bar()
        if bar is not None and bar.is_mounted:
            bar.update_view()

    # -- moving --------------------------------------------------------------------------------------

    def step(self, step: int) -> None:
        stop = self.state.go(self.state.index + step)
        if stop.kind == "area":
            self.app.switch_mode(stop.target)
        else:
            # the Learn screen offers select_lesson; asked by name, so this widget never imports a screen
            self.app.switch_mode("learn")
            select = getattr(self.app.screen, "select_lesson", None)
            if select is not None:
                select(stop.target)
        self.app.call_after_refresh(self._mount_bar)
        self.refresh()

    def lesson_shown(self, lesson_id: str) -> None:
        """The Learn screen showed a lesson (by any route): follow it if it is a stop."""
        if self.state.current.kind == "lesson" and self.state.current.target == lesson_id:
            return
        if self.state.sync_to("lesson", lesson_id):
            self.refresh()

    def _on_mode_change(self, mode: str) -> None:
        if not self.visible:
            return
        if mode != "learn" and not (self.state.current.kind == "area" and self.state.current.target == mode):
            self.state.sync_to("area", mode)
        self.app.call_after_refresh(self._mount_bar)

    def _sync_from_app(self) -> None:
        mode = self.app.current_mode
        if mode == "learn":
            lesson_id = getattr(self._screen(), "current_lesson_id", None)
            if lesson_id:
                self.state.sync_to("lesson", lesson_id)
        else:
            self.state.sync_to("area", mode)
