"""Snapshots of the Learn area (pytest-textual-snapshot). Update with `pytest --snapshot-update`.

Every snapshot pins the learner's seed (a learner.json in a test state folder), so quiz options sit
where they sit for every run of the suite, and hands the app a runs folder holding one run under a
fixed name: a copy of the shipped over-refusal recording, so the lessons' numbers stay the same when
another recording ships."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from dpo_tutor.tui.app import DpoTutorApp
from dpo_tutor.tui.context import AppContext
from dpo_tutor.tui.widgets.walkthrough_bar import WalkthroughController

RECORDING = Path(__file__).resolve().parents[1] / "engine" / "recorded" / "over-refusal-h100"


@pytest.fixture
def runs(tmp_path) -> Path:
    """A runs folder with one run in it, under a fixed name."""
    shutil.copytree(RECORDING, tmp_path / "runs" / "20261125-120000-over-refusal")
    return tmp_path / "runs"


@pytest.fixture(autouse=True)
def pinned_learner(tmp_path, monkeypatch):
    state = tmp_path / "state"
    (state / "dpo-tutor").mkdir(parents=True)
    (state / "dpo-tutor" / "learner.json").write_text(json.dumps({"seed": 20, "answers": {}}))
    monkeypatch.setenv("XDG_STATE_HOME", str(state))


def test_worked_example_lesson(snap_compare, runs):
    """Lesson 4 "The DPO loss" at 110x40, scrolled to the worked example.

    You should see the lesson list on the left with lesson 4 highlighted, and on the right the
    worked-example box: the seat-belt prompt, chosen in green and rejected in red, a table of
    policy and reference log-probs (-73.193/-62.841 and -74.330/-62.015), rewards +0.1137 and
    -0.0826, then "margin = ... = +0.1963", "loss = ... = 0.5998" and gradient weight 0.4511, the
    source line and the keys hint. The footer shows Next lesson / Prev lesson.
    """
    app = DpoTutorApp(AppContext(runs_dir=runs, lesson="dpo-loss"))

    async def run_before(pilot) -> None:
        await pilot.pause()
        example = pilot.app.screen.query_one("WorkedExample")
        example.scroll_visible(top=True, animate=False)
        await pilot.pause()

    assert snap_compare(app, terminal_size=(110, 40), run_before=run_before)


async def _beta_lesson_explorer(pilot) -> None:
    """Answer lesson 5's prediction (which reveals the explorer), then show the explorer at the top."""
    from dpo_tutor.tui.widgets.quiz import Quiz

    await pilot.pause()
    predict = pilot.app.screen.query(Quiz).first()
    predict.focus()
    await pilot.press("abc"[predict.answer_index])
    await pilot.pause()
    explorer = pilot.app.screen.query_one("BetaExplorer")
    explorer.focus()
    explorer.scroll_visible(top=True, animate=False)
    await pilot.pause()


def test_beta_explorer_with_the_recordings_deltas_at_80x24(snap_compare, runs):
    """Lesson 5 at 80x24, after the prediction, scrolled to the beta explorer (focused, blue border).

    You should see no lesson list (it folds away below 100 columns), the explorer's caption, the
    plot titled "beta = 0.1" with the orange loss curve, the cyan gradient weight and green dots of the
    run's logged deltas (a copy of the over-refusal recording), and below it the legend and "beta = 0.1 loss at delta 0 =
    0.693 ...". Every word whole: nothing cut with "…".
    """
    app = DpoTutorApp(AppContext(runs_dir=runs, lesson="beta"))
    assert snap_compare(app, terminal_size=(80, 24), run_before=_beta_lesson_explorer)


def test_beta_explorer_with_the_recordings_deltas_at_120x40(snap_compare, runs):
    """Lesson 5 at 120x40, as at 80x24 but with the lesson list on the left (lesson 5 highlighted)
    and, under the chart, the line naming the run 20261125-120000-over-refusal: "128 logged steps,
    delta from ... last 11.1. Each mark is a step's rewards/margins / beta, a batch mean"."""
    app = DpoTutorApp(AppContext(runs_dir=runs, lesson="beta"))
    assert snap_compare(app, terminal_size=(120, 40), run_before=_beta_lesson_explorer)


def _walkthrough_app(runs: Path) -> DpoTutorApp:
    app = DpoTutorApp(AppContext(runs_dir=runs, walkthrough=True))
    app.walkthrough_controller = WalkthroughController(app, now=lambda: 0.0, tick=False)
    return app


async def _settle(pilot) -> None:
    await pilot.pause()
    await pilot.pause()


def test_walkthrough_bar_on_the_first_lesson(snap_compare, runs):
    """`dpo-tutor --walkthrough` at 80x24 with the clock frozen at 0:00.

    You should see the walkthrough bar at the top: "● 1/5 Introduction · stop 1/2 · 0:00 / 2:00 ·
    total 0:00 / 15:00", then "Why preference learning after SFT (1:00)", the lesson's presenter note
    whole (at most five lines), "[ prev · ] next · w hide notes" on the bar's bottom edge, then
    lesson 1 without the sidebar.
    """
    assert snap_compare(_walkthrough_app(runs), terminal_size=(80, 24), run_before=_settle)


def test_walkthrough_bar_at_120x40_with_notes_hidden(snap_compare, runs):
    """`dpo-tutor --walkthrough` at 120x40, clock frozen, after `w` once: the notes are hidden.

    You should see the bar reduced to its two lines, "● 1/5 Introduction · stop 1/2 · 0:00 / 2:00 ·
    total 0:00 / 15:00" and "Why preference learning after SFT (1:00)", with "[ prev · ] next · w
    hide bar" on its edge, then the lesson list and lesson 1.
    """

    async def hide_notes(pilot) -> None:
        await _settle(pilot)
        await pilot.press("w")
        await _settle(pilot)

    assert snap_compare(_walkthrough_app(runs), terminal_size=(120, 40), run_before=hide_notes)
