"""The Learn area with Pilot: lessons quote the learner's run (or a recording when there is none),
quizzes are shuffled per learner and scored between sessions, a prediction hides what it predicts,
Down reads the lesson at launch, and lesson tables keep whole words at 80 columns."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from dpo_tutor.engine.events import read_events
from dpo_tutor.engine.lessons import load_learner, option_order
from dpo_tutor.tui.app import DpoTutorApp
from dpo_tutor.tui.context import AppContext

FIXTURES = Path(__file__).parent / "fixtures" / "runs"


@pytest.fixture(autouse=True)
def own_learner_state(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


def _app(runs_dir, **kw) -> DpoTutorApp:
    return DpoTutorApp(AppContext(runs_dir=runs_dir, **kw))


def _text(widget) -> str:
    return str(widget.render())


def _facts_text(screen) -> list[str]:
    from dpo_tutor.tui.widgets.run_facts import RunFactsView

    return [" ".join(view.lines) for view in screen.query(RunFactsView)]


async def test_a_lesson_shows_the_numbers_of_the_learners_fixture_run(tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(FIXTURES / "normal", runs / "20261203-101500-my-first-run")
    steps = [e for e in read_events(runs / "20261203-101500-my-first-run") if e["type"] == "step"]
    margin = steps[-1]["metrics"]["rewards/margins"]
    app = _app(runs, lesson="beta")
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        (text,) = _facts_text(app.screen)
        assert "Numbers from your run 20261203-101500-my-first-run" in text
        assert f"margin is {margin:.2f} at beta 0.1" in text and f"= {margin / 0.1:.1f} nats" in text
        # and on screen, not just in the widget's memory
        from dpo_tutor.tui.widgets.run_facts import RunFactsView

        view = app.screen.query_one(RunFactsView)
        assert "my-first-run" in _text(view.query(".facts-source").first())
        # the beta explorer marks the run's own deltas
        from dpo_tutor.tui.widgets.beta_explorer import BetaExplorer

        explorer = app.screen.query_one(BetaExplorer)
        assert explorer.run_deltas[-1] == pytest.approx(margin / 0.1)
        assert "batch mean" in _text(explorer.query_one("#beta-run"))


async def test_with_no_run_a_lesson_reads_a_shipped_recording_and_says_so(tmp_path):
    app = _app(tmp_path / "no-runs-here", lesson="margins-and-accuracy")
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        from dpo_tutor.engine.run_facts import FALLBACK_RECORDINGS, recording

        shipped = next(name for name in FALLBACK_RECORDINGS if recording(name))  # the default, once it ships
        first = next(e for e in read_events(recording(shipped)) if e["type"] == "step")["metrics"]
        texts = _facts_text(app.screen)
        assert texts and all(f"the shipped recording {shipped}" in t for t in texts)
        assert all("you have no run in" in t for t in texts)
        numbers = f"loss {first['loss']:.4f}"
        assert numbers in texts[0] and f"rewards/accuracies {first['rewards/accuracies']:.3f}" in texts[0]
        # a quiz's numbers come from the same run
        from dpo_tutor.tui.widgets.quiz import Quiz

        quiz = next(q for q in app.screen.query(Quiz) if q.params.get("run"))
        question = _text(quiz.query_one(".quiz-question"))
        assert f"shows {numbers}, margin {first['rewards/margins']:+.3f}" in question and "{" not in question


async def test_the_case_file_compares_with_the_default_recording_or_says_it_is_not_shipped(tmp_path):
    from dpo_tutor.engine.run_facts import recording

    app = _app(tmp_path / "runs", lesson="case-file-over-refusal")
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        from dpo_tutor.tui.widgets.run_compare import RunCompare

        compare = app.screen.query_one(RunCompare)
        rows = dict((what, (a, b)) for what, a, b in compare.rows)
        assert rows["refusals, harmless"][0] == "80% (base 10%)"
        assert rows["held-out peak"][0] == "0.78 at step 50 of 128"
        if recording("default-recipe-h200") is None:
            assert rows["run"][1] == "not shipped yet"
            notes = [_text(n) for n in compare.query(".compare-note")]
            assert notes == ["right: the recording default-recipe-h200 is not in this install yet; "
                             "its numbers appear here once it ships."]
        else:
            assert rows["run"][1] == "default-recipe-h200" and rows["train loss"][1] != "-"


async def test_predict_then_reveal_and_scores_kept_between_sessions(tmp_path):
    from dpo_tutor.tui.widgets.beta_explorer import BetaExplorer
    from dpo_tutor.tui.widgets.quiz import Quiz

    app = _app(tmp_path / "runs", lesson="beta")
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        predict = app.screen.query(Quiz).first()
        explorer = app.screen.query_one(BetaExplorer)
        assert predict.predict and predict.reveals[-1] is explorer
        assert not explorer.display or explorer.region.height == 0  # hidden until the prediction
        assert "0 questions" not in _text(app.screen.query_one("#lesson-meta"))
        predict.focus()
        await pilot.press("abc"[predict.answer_index])
        await pilot.pause()
        assert explorer.region.height > 0
        assert "quiz 1/4 right first time" in _text(app.screen.query_one("#lesson-meta"))
    state = load_learner()
    assert state.answers == {"beta#1": True}
    # a new session: the score is still there, and the prediction made hides nothing any more
    app = _app(tmp_path / "runs", lesson="beta")
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        assert "quiz 1/4 right first time" in _text(app.screen.query_one("#lesson-meta"))
        assert app.screen.query_one(BetaExplorer).region.height > 0


async def test_two_learners_see_the_options_in_different_orders(tmp_path, monkeypatch):
    from dpo_tutor.tui.widgets.quiz import Quiz

    seen = []
    for seed in (1, 2, 3, 4):
        state = tmp_path / f"learner{seed}"
        (state / "dpo-tutor").mkdir(parents=True)
        (state / "dpo-tutor" / "learner.json").write_text(json.dumps({"seed": seed, "answers": {}}))
        monkeypatch.setenv("XDG_STATE_HOME", str(state))
        app = _app(tmp_path / "runs", lesson="dpo-loss")
        async with app.run_test(size=(100, 40)) as pilot:
            await pilot.pause()
            quizzes = list(app.screen.query(Quiz))
            seen.append(tuple(q.answer_index for q in quizzes))
            for q in quizzes:  # the right answer is the authored one, wherever it is shown
                assert q.options[q.answer_index] == q._text(q.params["options"][q.params["answer_index"]])
                assert q.order == option_order(seed, q.quiz_id, len(q.options))
    assert len(set(seen)) > 1


async def test_down_at_launch_scrolls_the_lesson_not_the_list(tmp_path):
    app = _app(tmp_path / "runs")
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        body = app.screen.query_one("#lesson-body")
        assert body.has_focus
        await pilot.press("down", "down", "down")
        await pilot.pause()
        assert body.scroll_y == 3
        assert app.screen.lesson.id == "why-preferences"
        assert app.screen.query_one("#lesson-list").highlighted == 0


async def test_lesson_tables_keep_whole_words_at_80_columns(tmp_path):
    """Every Markdown table cell is at least as wide as its longest word (no 'helpfulne…')."""
    from textual.widgets._markdown import MarkdownTableCellContents

    app = _app(tmp_path / "runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.screen
        checked = 0
        for _ in screen.lessons:
            await pilot.pause()
            for cell in screen.query(MarkdownTableCellContents):
                longest = max((len(w) for w in cell.content.plain.split()), default=0)
                inner = cell.content_region.width
                assert inner >= longest, (screen.lesson.id, cell.content.plain, inner)
                checked += 1
            await pilot.press("n")
        assert checked > 20
