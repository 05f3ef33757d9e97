"""Snapshots of the Learn area (pytest-textual-snapshot). Update with `pytest --snapshot-update`."""

from __future__ import annotations

from dpo_tutor.tui.app import DpoTutorApp
from dpo_tutor.tui.context import AppContext
from dpo_tutor.tui.widgets.walkthrough_bar import WalkthroughController


def test_worked_example_lesson(snap_compare, tmp_path):
    """Lesson 4 "The DPO loss" at 110x40, scrolled to the worked example.

    You should see the lesson list on the left with lesson 4 highlighted, and on the right the
    worked-example box: the seat-belt prompt, chosen in green and rejected in red, a table of
    policy and reference log-probs (-73.193/-62.841 and -74.330/-62.015), rewards +0.1137 and
    -0.0826, then "margin = ... = +0.1963", "loss = ... = 0.5998" and gradient weight 0.4511, the
    source line and the keys hint. The footer shows Next lesson / Prev lesson.
    """
    app = DpoTutorApp(AppContext(runs_dir=tmp_path, lesson="dpo-loss"))

    async def run_before(pilot) -> None:
        await pilot.pause()
        example = pilot.app.screen.query_one("WorkedExample")
        example.scroll_visible(top=True, animate=False)
        await pilot.pause()

    assert snap_compare(app, terminal_size=(110, 40), run_before=run_before)


def test_walkthrough_bar_on_the_first_lesson(snap_compare, tmp_path):
    """`dpo-tutor --walkthrough` at 80x24 with the clock frozen at 0:00.

    You should see the walkthrough bar at the top: "● 1/5 Introduction · stop 1/2  0:00 / 2:00 ·
    Why preference learning after SFT", four lines of the lesson's presenter note below it, the
    keys "[ previous stop · ] next stop · w hide" on the bar's bottom edge, then lesson 1 with the
    sidebar.
    """
    app = DpoTutorApp(AppContext(runs_dir=tmp_path, walkthrough=True))
    app.walkthrough_controller = WalkthroughController(app, now=lambda: 0.0, tick=False)

    async def run_before(pilot) -> None:
        await pilot.pause()
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
