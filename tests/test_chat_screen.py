"""The Chat screen: both columns stream from a worker, match the engine, stop works, the UI stays live."""

from __future__ import annotations

import pytest
from aligned_run import make_aligned_run
from dpo_tutor.tui.app import DpoTutorApp
from dpo_tutor.tui.context import AppContext


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    runs = tmp_path_factory.mktemp("chat-screen") / "runs"
    make_aligned_run(runs / "20261125-100000-fixture")
    return runs


async def open_chat(pilot, app, runs_dir):
    from textual.widgets import Select

    app.switch_mode("chat")
    await pilot.pause()
    screen = app.screen
    screen.query_one("#chat-run", Select).value = str(runs_dir / "20261125-100000-fixture")
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()
    assert screen.chat is not None, screen.query_one("#chat-status").content
    return screen


async def test_probe_key_streams_both_columns_equal_to_the_engine(runs_dir):
    from dpo_tutor.engine.generation import PROBE_PROMPTS, GenerationSettings, TwoSidedChat
    from textual.widgets import Markdown

    app = DpoTutorApp(AppContext(runs_dir=runs_dir))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_chat(pilot, app, runs_dir)
        screen.max_new_tokens = 12
        await pilot.press("f1")
        await app.workers.wait_for_complete()
        await pilot.pause()
        reference = TwoSidedChat(screen.chat.model, screen.chat.tokenizer).answer(
            PROBE_PROMPTS[0], GenerationSettings(max_new_tokens=12))
        for side in ("base", "aligned"):
            column = screen.column(side)
            assert column.answers == [reference.side(side).text]
            markdown = column.query(Markdown).last()
            assert markdown.source == reference.side(side).text  # what was streamed reached the widget
            stats = str(column.query_one(".chat-stats").content)
            assert "12 tokens" in stats and "tokens/s" in stats
        assert screen.column("base").answers != screen.column("aligned").answers
        # A typed follow-up uses each side's own history.
        await pilot.click("#chat-input")
        await pilot.press(*"Why?", "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        for side in ("base", "aligned"):
            history = screen.chat.history[side]
            assert [m["content"] for m in history if m["role"] == "user"] == [PROBE_PROMPTS[0], "Why?"]
            assert history[1]["content"] == screen.column(side).answers[0]


async def test_ui_stays_live_while_generating_and_stop_ends_both_sides(runs_dir):
    app = DpoTutorApp(AppContext(runs_dir=runs_dir))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_chat(pilot, app, runs_dir)
        screen.max_new_tokens = 5000
        await pilot.press("f2")
        await pilot.pause(0.3)
        assert screen.generating
        # The event loop answers keys while the worker generates.
        await pilot.press("ctrl+t")
        assert screen.sampled is True
        tokens_before = screen.column("aligned").tokens
        await pilot.pause(0.3)
        assert screen.column("aligned").tokens > tokens_before  # still streaming
        await pilot.press("ctrl+s")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert not screen.generating
        for side in ("base", "aligned"):
            column = screen.column(side)
            assert 0 < column.tokens < 5000
            assert "stopped" in str(column.query_one(".chat-stats").content)
        assert "stopped" in str(screen.query_one("#chat-status").content)


async def test_chat_screen_without_runs_says_what_to_do(tmp_path):
    app = DpoTutorApp(AppContext(runs_dir=tmp_path / "none"))
    async with app.run_test(size=(80, 24)) as pilot:
        app.switch_mode("chat")
        for _ in range(100):  # the recording's answers are built after the screen mounts; a busy CPU is slower
            await pilot.pause(0.05)
            if app.screen.recording and len(app.screen.column("aligned").answers) > 1:
                break
        # With no run of its own, the shipped recording's saved answers show, saying no model is loaded.
        status = str(app.screen.query_one("#chat-status").content)
        assert "no model is loaded" in status and "Train a run (3)" in status
        assert app.screen.recording and len(app.screen.column("aligned").answers) > 1
        await pilot.press("f1")
        await pilot.pause()
        assert not app.screen.generating


async def test_palette_offers_evaluate_and_chat_for_each_run(runs_dir):
    from dpo_tutor.tui.palette import palette_entries

    app = DpoTutorApp(AppContext(runs_dir=runs_dir))
    async with app.run_test(size=(100, 30)) as pilot:
        entries = {title: callback for title, _, callback in palette_entries(app)}
        entries["chat with run: 20261125-100000-fixture"]()
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.current_mode == "chat" and app.screen.run_path == str(runs_dir / "20261125-100000-fixture")
        assert "evaluate run: 20261125-100000-fixture" in entries


async def test_an_answer_of_whitespace_only_gets_a_note_instead_of_an_empty_pane():
    from dpo_tutor.tui.widgets.chat_column import ChatColumn
    from textual.app import App

    class One(App):
        def compose(self):
            yield ChatColumn("base")

    app = One()
    async with app.run_test(size=(80, 24)) as pilot:
        column = app.query_one(ChatColumn)
        for text in ("\n\n\n", "A real answer."):
            await column.begin_turn("How do I bake a cake?")
            await column.write(text)
            await column.end_turn()
            await pilot.pause()
        notes = [str(n.content) for n in column.query(".chat-note")]
        assert notes == ["(no visible text: only whitespace)"]  # the first turn only
