"""The Learn area with Pilot: every lesson opens, the beta explorer and worked example respond to keys,
a quiz gives feedback, the palette opens lessons, and the walkthrough moves through lessons and areas."""

from __future__ import annotations

import math

import pytest
from dpo_tutor.engine.dpo_math import dpo_loss_from_delta, dpo_pair
from dpo_tutor.engine.lessons import load_lessons
from dpo_tutor.tui.app import DpoTutorApp
from dpo_tutor.tui.context import AppContext
from dpo_tutor.tui.screens.learn import LearnScreen
from dpo_tutor.tui.widgets.walkthrough_bar import WalkthroughBar, WalkthroughController

WIDGET_CLASSES = {"beta-explorer": "BetaExplorer", "worked-example": "WorkedExample", "quiz": "Quiz",
                  "run-facts": "RunFactsView", "run-compare": "RunCompare", "loss-compare": "LossCompare"}


@pytest.fixture(autouse=True)
def own_learner_state(tmp_path, monkeypatch):
    """Quiz scores go to a test folder, never to the user's state folder."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


def _app(tmp_path, **kw) -> DpoTutorApp:
    return DpoTutorApp(AppContext(runs_dir=tmp_path, **kw))


def _text(widget) -> str:
    return str(widget.render())


async def test_every_lesson_opens_with_its_parts(tmp_path):
    lessons = load_lessons()
    app = _app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, LearnScreen)
        for i, lesson in enumerate(lessons):
            assert screen.lesson.id == lesson.id
            body = screen.query_one("#lesson-body")
            assert len(body.query("Markdown")) == sum(1 for p in lesson.parts if type(p).__name__ == "MarkdownPart")
            for kind, cls in WIDGET_CLASSES.items():
                assert len(body.query(cls)) == sum(1 for w in lesson.widgets if w.widget == kind), (lesson.id, cls)
            assert lesson.title in screen.sub_title
            if i < len(lessons) - 1:
                await pilot.press("n")
                await pilot.pause()
        await pilot.press("n")  # past the last lesson: stays
        await pilot.pause()
        assert screen.lesson.id == lessons[-1].id
        await pilot.press("left")
        await pilot.pause()
        assert screen.lesson.id == lessons[-2].id


async def test_beta_explorer_changes_beta_and_curves_with_keys(tmp_path):
    app = _app(tmp_path, lesson="beta")
    async with app.run_test(size=(100, 34)) as pilot:
        await pilot.pause()
        from dpo_tutor.tui.widgets.beta_explorer import BetaExplorer

        explorer = app.screen.query_one(BetaExplorer)
        explorer.focus()
        await pilot.pause()
        assert explorer.beta == 0.1
        first = explorer.deltas[0]
        assert explorer.loss[0] == dpo_loss_from_delta(0.1, first)
        await pilot.press("up")
        await pilot.pause()
        assert explorer.beta == 0.25
        assert explorer.loss[0] == dpo_loss_from_delta(0.25, first)
        assert "beta = 0.25" in _text(explorer.query_one("#beta-readout"))
        await pilot.press("minus", "minus", "minus")  # clamps at the smallest beta
        await pilot.pause()
        assert explorer.beta == 0.05
        readout = _text(explorer.query_one("#beta-readout"))
        assert "beta = 0.05" in readout and f"{math.log(2):.3f}" in readout
        # the curve is the loss: ln 2 at delta 0 for every beta
        middle = len(explorer.deltas) // 2
        assert explorer.deltas[middle] == 0.0
        assert explorer.loss[middle] == math.log(2)


async def test_quiz_gives_feedback_for_wrong_and_right_answers(tmp_path):
    app = _app(tmp_path, lesson="why-preferences")
    answered = []
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        from dpo_tutor.tui.widgets.quiz import Quiz

        quiz = app.screen.query(Quiz).first()
        quiz.focus()
        await pilot.pause()
        feedback = quiz.query_one(".quiz-feedback")
        assert not feedback.display or not quiz.has_class("-answered")
        right = quiz.answer_index  # where this learner sees the right answer
        random_text = quiz.options.index(next(o for o in quiz.options if o.startswith("DPO with")))
        await pilot.press("abc"[random_text])
        await pilot.pause()
        assert quiz.choice == random_text and quiz.has_class("-answered")
        text = _text(feedback)
        assert text.startswith(f"Not quite: the answer is {'abc'[right]}).") and "Random text" in text
        assert feedback.region.height > 0  # shown on screen
        await pilot.press(*(["up"] * 3), *(["down"] * right), "enter")
        await pilot.pause()
        assert quiz.choice == right
        assert _text(feedback).startswith("Correct. The model must first")  # not "Correct. Right."
        answered.append(quiz.options[quiz.choice])
    assert answered == ["SFT on the examples"]


async def test_worked_example_numbers_come_from_dpo_math(tmp_path):
    app = _app(tmp_path, lesson="dpo-loss")
    async with app.run_test(size=(110, 40)) as pilot:
        await pilot.pause()
        from dpo_tutor.tui.widgets.worked_example import WorkedExample

        example = app.screen.query_one(WorkedExample)
        p = example.params
        expected = dpo_pair(0.1, p["policy_chosen"], p["policy_rejected"], p["ref_chosen"], p["ref_rejected"])
        verdict = _text(example.query_one("#we-verdict"))
        assert f"= {expected.margin:+.4f}" in verdict and f"{expected.loss:.4f}" in verdict
        example.focus()
        await pilot.press("up")
        await pilot.pause()
        assert example.beta == 0.3
        at_03 = dpo_pair(0.3, p["policy_chosen"], p["policy_rejected"], p["ref_chosen"], p["ref_rejected"])
        assert f"{at_03.loss:.4f}" in _text(example.query_one("#we-verdict"))


async def test_palette_has_go_to_lesson_entries_that_open_the_lesson(tmp_path):
    app = _app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        from dpo_tutor.tui.palette import palette_entries

        entries = {title: callback for title, _, callback in palette_entries(app)}
        title = "go to lesson 6: Reward margins and preference accuracy"
        assert title in entries
        await pilot.press("2")
        await pilot.pause()
        entries[title]()
        await pilot.pause()
        assert app.current_mode == "learn"
        assert app.screen.lesson.id == "margins-and-accuracy"


async def test_walkthrough_moves_through_lessons_and_areas_with_a_segment_clock(tmp_path):
    now = [500.0]
    app = _app(tmp_path, walkthrough=True)
    app.walkthrough_controller = WalkthroughController(app, now=lambda: now[0], tick=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        await pilot.pause()
        controller = app.walkthrough_controller
        assert controller.visible
        bar = app.screen.query_one(WalkthroughBar)
        head = _text(bar.query_one("#wt-head"))
        assert "1/5 Introduction" in head and "0:00 / 2:00" in head and "total 0:00 / 15:00" in head
        assert "SFT" in _text(bar.query_one("#wt-note"))  # the first lesson's presenter notes
        now[0] += 75
        await pilot.press("right_square_bracket")
        await pilot.pause()
        assert app.screen.lesson.id == "rlhf-vs-dpo"
        head = _text(app.screen.query_one(WalkthroughBar).query_one("#wt-head"))
        assert "1:15 / 2:00" in head and "total 1:15 / 15:00" in head
        for _ in range(4):  # Concepts x2, Dataset lesson, then the Data area
            await pilot.press("right_square_bracket")
            await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause(0.2)
        assert app.current_mode == "data"
        bar = app.screen.query_one(WalkthroughBar)
        assert "3/5 Dataset" in _text(bar.query_one("#wt-head"))
        assert "HH-RLHF" in _text(bar.query_one("#wt-note"))
        await pilot.press("left_square_bracket")
        await pilot.pause()
        await pilot.pause()
        assert app.current_mode == "learn" and app.screen.lesson.id == "preference-data"
        # the user goes elsewhere by hand: the walkthrough follows
        await pilot.press("3")
        await pilot.pause()
        await pilot.pause()
        assert controller.state.current.target == "train"
        assert app.screen.query(WalkthroughBar)
        await pilot.press("w")  # hide the notes: the clocks and [ / ] stay
        await pilot.pause()
        bar = app.screen.query_one(WalkthroughBar)
        assert controller.visible and not bar.query_one("#wt-note-box").display
        await pilot.press("right_square_bracket")
        await pilot.pause()
        await pilot.pause()
        assert controller.state.current.target == "margins-and-accuracy" and app.current_mode == "learn"
        await pilot.press("w")  # hide the bar
        await pilot.pause()
        assert not controller.visible and not app.screen.query(WalkthroughBar)


async def test_learn_screen_survives_small_terminals_and_resizes(tmp_path):
    app = _app(tmp_path, lesson="beta")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        # at 80 columns the list folds away so the lesson gets the width; l shows it
        assert not app.screen.query_one("#lesson-list").display
        await pilot.press("l")
        await pilot.pause()
        assert app.screen.query_one("#lesson-list").display and app.screen.query_one("#lesson-list").has_focus
        await pilot.press("l")
        await pilot.pause()
        assert not app.screen.query_one("#lesson-list").display
        await pilot.resize_terminal(60, 20)
        await pilot.pause()
        assert not app.screen.query_one("#lesson-list").display  # the sidebar folds away when narrow
        await pilot.press("n", "p", "w")
        await pilot.pause()
        assert app.screen.lesson.id == "beta"
        await pilot.resize_terminal(160, 50)
        await pilot.pause()
        assert app.screen.query_one("#lesson-list").display


async def test_unknown_lesson_option_warns_and_opens_the_first(tmp_path):
    app = _app(tmp_path, lesson="nope")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert app.screen.lesson.id == "why-preferences"
        assert any("no lesson 'nope'" in n.message for n in app._notifications)
