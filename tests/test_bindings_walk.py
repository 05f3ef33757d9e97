"""Every key the help screen lists and every key the footer shows does something, in every area.

For each area the app is set up with real content (the bundled sample, a fixture run, a shipped
recording's report, a scripted chat); then each key of each binding is pressed and the test asserts
that something a person would notice changed: the area, the screen or dialog on top, the focus, a
notification, or what is drawn. A few keys act only in a state (a previous stop needs the walkthrough
bar; Stop needs a running run): PREPARE puts the app in that state first. Quit is pressed last.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from conftest import record_notifications
from dpo_tutor.tui.app import DpoTutorApp
from dpo_tutor.tui.context import AppContext
from dpo_tutor.tui.screens.help import help_rows
from textual.binding import Binding
from textual.widgets import Input, Select

FIXTURES = Path(__file__).parent / "fixtures" / "runs"
FAKE_ENGINE = FIXTURES / "fake_engine.py"


def fingerprint(app) -> tuple:
    return (app.current_mode, type(app.screen).__name__, len(app.screen_stack), repr(app.focused),
            len(app.notified), app.export_screenshot())


async def settle(pilot, seconds: float = 0.05) -> None:
    await pilot.pause(seconds)
    # not the worker that follows a training run: it lives as long as the run
    others = [w for w in pilot.app.workers if w.group != "train-run"]
    if others:  # (an empty list would mean all of them)
        await pilot.app.workers.wait_for_complete(others)
    await pilot.pause()


def shown_keys(app, mode: str) -> list[tuple[str, Binding, str, object]]:
    """(key, binding, where, widget) for each key of each binding listed in help or shown in the footer;
    `widget` is the widget a widget's own key belongs to (it acts while that widget has the focus)."""
    found: dict[tuple[str, str], tuple[str, Binding, str, object]] = {}
    for row in help_rows(app, app.screen, mode):
        for key in row.binding.key.split(","):
            found.setdefault((key.strip(), row.binding.action), (key.strip(), row.binding, "help", row.widget))
    for _, binding, enabled, _ in app.screen.active_bindings.values():
        if binding.show and enabled:
            for key in binding.key.split(","):
                found.setdefault((key.strip(), binding.action), (key.strip(), binding, "footer", None))
    return list(found.values())


# ---- each area, set up with content ------------------------------------------------------------------
async def setup_learn(pilot) -> None:
    await settle(pilot)


async def setup_data(pilot) -> None:
    await pilot.press("2")
    await settle(pilot, 0.2)


async def setup_train(pilot) -> None:
    runs = pilot.app.context.runs_dir
    shutil.copytree(FIXTURES / "normal", runs / "20261125-100000-normal")
    await pilot.press("3")
    await settle(pilot)
    pilot.app.screen.open_run(runs / "20261125-100000-normal")
    await settle(pilot)


async def setup_evaluate(pilot) -> None:
    await pilot.press("4")
    await settle(pilot)  # no run of one's own: the shipped recording's report is picked


class ScriptedChat:
    strategy = "sequential"

    def stream(self, prompt, settings, stop):
        from types import SimpleNamespace

        for side in ("base", "aligned"):
            for i in range(1, 4):
                if stop.is_set():
                    yield SimpleNamespace(side=side, text="", tokens=i, elapsed=0.1, done=True, reason="stopped")
                    break
                yield SimpleNamespace(side=side, text=f"{side} {i} ", tokens=i, elapsed=i / 10, done=i == 3,
                                      reason="eos" if i == 3 else "")

    def reset(self) -> None:
        pass


async def setup_chat(pilot) -> None:
    await pilot.press("5")
    await settle(pilot)
    screen = pilot.app.screen
    for side in ("base", "aligned"):
        await screen.column(side).clear()
    screen.chat, screen.run_path, screen.recording = ScriptedChat(), "scripted", None
    screen.query_one("#chat-input", Input).disabled = False
    screen.refresh_bindings()
    await settle(pilot)


SETUP = {"learn": setup_learn, "data": setup_data, "train": setup_train, "evaluate": setup_evaluate,
         "chat": setup_chat}


# ---- states some keys need ---------------------------------------------------------------------------
def away(target: str):
    async def go(pilot) -> None:  # a number key switches areas: start from another area than its own
        await pilot.app.switch_mode("learn" if target != "learn" else "data")
        await settle(pilot)

    return go


async def walkthrough_on(pilot) -> None:
    pilot.app.get_walkthrough()
    if not pilot.app.walkthrough_controller.visible:
        pilot.app.action_walkthrough()
    await settle(pilot)


async def focus_input(pilot) -> None:
    inputs = list(pilot.app.screen.query(Input))
    if inputs:
        inputs[0].disabled = False  # (Chat's input is off while a recording shows)
        inputs[0].focus()
        inputs[0].value = "x"
    else:  # an area without a text field: escape still leaves whatever has the focus
        pilot.app.screen.focus_next()
    await settle(pilot)


async def cursor_down(pilot) -> None:
    pilot.app.screen.query_one("#data-table").focus()
    await pilot.press("down", "down")
    await settle(pilot)


async def form_focused(pilot) -> None:
    await pilot.press("ctrl+g")
    await settle(pilot)


async def run_training(pilot) -> None:
    screen = pilot.app.screen
    screen.query_one("#in-model").value = "tiny"
    screen.query_one("#in-max_steps").value = "1000"
    screen.action_start()
    await pilot.pause(1.0)


async def chat_answering(pilot) -> None:
    screen = pilot.app.screen
    await screen.ask("Why?")  # the scripted chat answers at once; Stop is shown while it does
    await pilot.pause()


PREPARE = {
    "walkthrough_step(1)": walkthrough_on,
    "walkthrough_step(-1)": walkthrough_on,
    "leave_field": focus_input,
    "clear_search": focus_input,
    "cursor(-1)": cursor_down,
    "page(-1)": cursor_down,
    "jump(0)": cursor_down,
    "app.focus_next": form_focused,
    "app.focus_previous": form_focused,
    "stop": run_training,
    "previous_lesson": lambda pilot: pilot.press("n"),
}
CONDITIONAL = {("chat", "stop")}  # the scripted chat answers within a frame: Stop has nothing to stop


def prepare_for(binding: Binding, widget):
    if binding.action.startswith("switch_mode("):
        return away(binding.action[len("switch_mode('"):-2])
    if binding.action in PREPARE:
        return PREPARE[binding.action]
    if widget is not None and getattr(widget, "can_focus", False):
        async def focus(pilot) -> None:
            target = widget if widget.is_attached else pilot.app.screen.query(type(widget)).first()
            target.scroll_visible(animate=False)
            target.focus()
            if binding.action == "choose_cursor":  # a quiz's enter answers where the cursor is: move it
                await pilot.press("up")
            await settle(pilot)

        return focus
    return None


async def restore(pilot, mode: str) -> None:
    app = pilot.app
    while len(app.screen_stack) > 1:
        app.pop_screen()
        await pilot.pause()
    if app.current_mode != mode:
        await app.switch_mode(mode)
    if app.walkthrough_controller is not None and app.walkthrough_controller.visible:
        app.action_walkthrough()  # w cycles: notes shown, notes hidden, bar hidden
        if app.walkthrough_controller.visible:
            app.action_walkthrough()
    for select in app.screen.query(Select):  # an opened run list takes the keys typed next
        select.expanded = False
    app.screen.set_focus(None)
    app.clear_notifications()
    await settle(pilot)


@pytest.mark.parametrize("mode", list(SETUP))
async def test_every_key_in_help_and_footer_does_something(mode, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_ENGINE_MODE", "hang")
    monkeypatch.setenv("FAKE_ENGINE_RATE", "5")
    context = AppContext(runs_dir=tmp_path / "runs", gpu=False, train_command=(sys.executable, str(FAKE_ENGINE)))
    context.runs_dir.mkdir()
    app = DpoTutorApp(context)
    app.notified = record_notifications(app)
    silent: list[str] = []
    pressed = 0
    async with app.run_test(size=(100, 30)) as pilot:
        await SETUP[mode](pilot)
        # a widget's own keys first, while the widget the help screen found is still on show
        keys = sorted(shown_keys(app, mode), key=lambda item: item[3] is None)
        assert {"question_mark", "ctrl+p"} <= {k for k, _, _, _ in keys}
        quit_binding = None
        for key, binding, where, widget in keys:
            if binding.action == "quit":
                quit_binding = binding
                continue
            if (mode, binding.action) in CONDITIONAL:
                continue
            if binding.action.startswith("choose(") and widget is not None:  # a quiz's letters: a..e
                if int(binding.action[7:-1]) >= len(getattr(widget, "options", [])):
                    continue  # this quiz has no such option
            prepare = prepare_for(binding, widget)
            if prepare is not None:
                await prepare(pilot)
            before = fingerprint(app)
            await pilot.press(key)
            await settle(pilot, 0.1)
            pressed += 1
            if fingerprint(app) == before:
                silent.append(f"{key} ({binding.action}, shown in {where}; focus {before[3]})")
            await restore(pilot, mode)
        watcher = getattr(app, "run_watcher", None)
        if watcher is not None and watcher.process_running:
            watcher.stop()
            await pilot.app.workers.wait_for_complete()
            await settle(pilot)
        assert quit_binding is not None
        await pilot.press(quit_binding.key)
        await pilot.pause()
    assert pressed >= 8
    assert not silent, f"in {mode}, these keys did nothing visible: {silent}"
    assert app.return_code == 0  # ctrl+q quit
