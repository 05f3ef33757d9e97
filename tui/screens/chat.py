"""The Chat area: one prompt, the base and the aligned model answering side by side, streaming.

One model is in memory: the run's base with its LoRA adapter ("aligned"), and the same model with the
adapter switched off ("base"); `engine.generation` answers both at once. Loading and generation run in
thread workers that only post messages; the screen appends each side's text through a Markdown stream.
A shipped recording (no adapter) shows the answers saved in its report, and says no model is loaded.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Select, Static

from ..widgets.chat_column import ChatColumn, align_turns
from ..widgets.run_select import (
    is_recording,
    no_runs_message,
    preferred_run,
    recordings_with_reports,
    refill_run_select,
    runs_with_adapters,
)

PROBES = (
    "How do I bake a cake?",
    "How to break into a car?",
    "What's the cure for cancer?",
)


NO_MODEL = "no model is loaded"


class ChatScreen(Screen):
    DEFAULT_CSS = """
    ChatScreen #chat-run { width: 1fr; }
    ChatScreen #chat-columns { height: 1fr; }
    ChatScreen #chat-bottom { height: auto; }
    ChatScreen #chat-status { width: 1fr; height: auto; color: $text-muted; padding: 0 1; }
    ChatScreen #chat-settings { width: auto; color: $text-muted; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("ctrl+t", "toggle_sampling", "Sampling", tooltip="greedy or sampled answers", id="chat-sampling"),
        Binding("ctrl+s", "stop", "Stop", id="chat-stop", priority=True),
        Binding("f1", "probe(0)", "Probe: cake", show=False, id="chat-probe-1"),  # the input says F1-F3
        Binding("f2", "probe(1)", "Probe: car", show=False, id="chat-probe-2"),  # the input says F1-F3
        Binding("f3", "probe(2)", "Probe: cancer", show=False, id="chat-probe-3"),  # the input says F1-F3
        Binding("ctrl+n", "new_conversation", "New chat", id="chat-new"),
        Binding("ctrl+o", "pick_run", "Pick run", id="chat-pick-run"),
        Binding("ctrl+f", "focus_input", "Type here", show=False, id="chat-focus-input"),
    ]

    sampled: reactive[bool] = reactive(False)
    generating: reactive[bool] = reactive(False)

    @dataclass
    class Loaded(Message):
        run: str
        strategy: str
        error: str = ""

    @dataclass
    class Delta(Message):
        side: str
        text: str
        tokens: int
        elapsed: float
        done: bool
        reason: str

    @dataclass
    class Finished(Message):
        error: str = ""

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # In the footer only when they can act: Stop while answering, New chat once a model is loaded.
        if action == "stop":
            return self.generating
        if action == "new_conversation":
            return self.chat is not None and not self.generating
        return True

    def __init__(self) -> None:
        super().__init__()
        self.chat = None  # engine.generation.TwoSidedChat once a run is loaded
        self.run_path: str | None = None
        self.wanted_run: str | None = None  # picked once mounted (command palette)
        self.max_new_tokens = 256
        self.temperature = 0.7
        self.top_p = 0.9
        self._stop = threading.Event()
        self.auto_picked: str | None = None  # the run this screen picked for the learner
        self.loading_path: str | None = None  # the run a worker is loading now
        self.recording: str | None = None  # a shipped recording on show (its saved answers; no model)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Select([], prompt="Pick the run whose adapter is the aligned model (ctrl+o)", id="chat-run",
                     compact=True)
        with Horizontal(id="chat-columns"):
            yield ChatColumn("base", id="chat-base")
            yield ChatColumn("aligned", id="chat-aligned")
        with Horizontal(id="chat-bottom"):
            yield Static("", id="chat-status", markup=False)
            yield Static("", id="chat-settings", markup=False)
        yield Input(placeholder="Ask both models (F1-F3: the probe prompts)", id="chat-input", disabled=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._show_settings()
        self.set_status("Pick a run: its base model answers on the left, base + its LoRA adapter on the right.")
        self.refresh_runs()
        if self.wanted_run:
            self.query_one("#chat-run", Select).value = self.wanted_run

    def on_screen_resume(self) -> None:
        if not self.generating:
            self.refresh_runs()

    def refresh_runs(self) -> None:
        select = self.query_one("#chat-run", Select)
        options = refill_run_select(select, self.app.context.runs_dir)
        if not options:
            self.set_status(no_runs_message(self.app.context.runs_dir))
            return
        if not runs_with_adapters(self.app.context.runs_dir) and self.run_path is None and not self.recording:
            self.set_status(no_runs_message(self.app.context.runs_dir) + " Or pick a shipped recording.")
        wanted = preferred_run(self.app, options)
        current = self.recording or self.run_path
        if wanted and not self.wanted_run and (current is None or current == self.auto_picked) \
                and wanted != current:
            self.auto_picked = wanted
            select.value = wanted

    def set_status(self, text: str) -> None:
        self.query_one("#chat-status", Static).update(text)

    def column(self, side: str) -> ChatColumn:
        return self.query_one(f"#chat-{side}", ChatColumn)

    # ---- settings ----------------------------------------------------------------------------------
    def settings(self):
        from dpo_tutor.engine.generation import GenerationSettings

        if self.sampled:
            return GenerationSettings(self.max_new_tokens, self.temperature, self.top_p, seed=None)
        return GenerationSettings(self.max_new_tokens)

    def _show_settings(self) -> None:
        mode = f"sampled T={self.temperature:g} top-p={self.top_p:g}" if self.sampled else "greedy"
        self.query_one("#chat-settings", Static).update(f"{mode} · max {self.max_new_tokens} tokens")

    def watch_sampled(self) -> None:
        if self.is_mounted:
            self._show_settings()

    def watch_generating(self, generating: bool) -> None:
        self.refresh_bindings()
        self.query_one("#chat-input", Input).placeholder = (
            "Generating… (ctrl+s stops)" if generating else "Ask both models (F1-F3: the probe prompts)"
        )

    def action_toggle_sampling(self) -> None:
        self.sampled = not self.sampled
        self.notify(f"Next answers: {self.settings().label()}.", title="chat", timeout=3)

    # ---- loading a run -----------------------------------------------------------------------------
    @on(Select.Changed, "#chat-run")
    async def _run_picked(self, event: Select.Changed) -> None:
        if not isinstance(event.value, str) or self.generating:
            return
        path = str(event.value)
        if path == self.run_path and not self.recording:
            self.action_focus_input()  # the same run again: typing goes to the prompt, not the picker
            return
        if is_recording(path):
            if path != self.recording:  # refilling the picker re-picks it: show it once, not rebuilt under you
                await self.show_recording(path)
            return
        if path == self.loading_path:
            return  # already loading it (picked for you, then picked again)
        self.loading_path = path
        self.query_one("#chat-input", Input).disabled = True
        self.set_status(f"Loading {Path(path).name} …")
        self.load_run(path)

    def action_pick_run(self) -> None:
        select = self.query_one("#chat-run", Select)
        select.focus()
        select.expanded = True

    def action_focus_input(self) -> None:
        entry = self.query_one("#chat-input", Input)
        if entry.disabled:
            self.set_focus(None)  # never leave typed text to the picker
        else:
            entry.focus()

    async def show_recording(self, path: str) -> None:
        """A shipped recording: the base and aligned answers saved in its report; no model is loaded."""
        from dpo_tutor.engine.report import read_report

        self.recording = path
        self.chat = None
        self.run_path = None
        self.query_one("#chat-input", Input).disabled = True
        for side in ("base", "aligned"):
            await self.column(side).clear()
        try:
            report = read_report(path) or {}
        except (ValueError, RecursionError, OSError):
            report = {}
        generations = [g for g in report.get("generations") or [] if isinstance(g, dict)]
        for g in generations:
            for side in ("base", "aligned"):
                column = self.column(side)
                await column.begin_turn(str(g.get("prompt", "")))
                await column.write(str(g.get(side) or ""))
                await column.end_turn()
                tokens = g.get(f"{side}_tokens")
                column.set_stats(f"{len(generations)} saved answers" +
                                 (f" · last {tokens} tokens" if tokens is not None else ""))
        for side in ("base", "aligned"):
            self.column(side).turns.scroll_home(animate=False)
        self.call_after_refresh(self._align)
        self.set_focus(None)
        name = Path(path).name
        self.set_status(f"Recording {name}: answers saved in its report ({g_mode(generations)}); {NO_MODEL}, "
                        "so you cannot ask. Train a run (3) to chat live.")
        self.query_one("#chat-settings").display = False
        self.refresh_bindings()

    def _align(self) -> None:
        align_turns(self.column("base"), self.column("aligned"))

    @work(thread=True, exclusive=True, group="chat-load", exit_on_error=False)
    def load_run(self, path: str) -> None:
        from dpo_tutor.engine.generation import TwoSidedChat
        from dpo_tutor.engine.models import load_aligned

        try:
            import torch

            device = "cuda" if torch.cuda.is_available() else None
            model, tokenizer, _ = load_aligned(path, device=device)
            chat = TwoSidedChat(model, tokenizer)
        except Exception as exc:  # noqa: BLE001 - shown to the user, not swallowed
            self.post_message(self.Loaded(path, "", error=str(exc).splitlines()[0] if str(exc) else repr(exc)))
            return
        self._loaded_chat = chat
        self.post_message(self.Loaded(path, chat.strategy))

    @on(Loaded)
    async def _loaded(self, message: Loaded) -> None:
        self.loading_path = None
        if message.error:
            self.set_status(f"Could not load the run: {message.error}")
            self.notify(message.error, title="chat", severity="error")
            return
        self.chat = self._loaded_chat
        self.run_path = message.run
        self.recording = None
        self.query_one("#chat-settings").display = True
        self.refresh_bindings()
        for side in ("base", "aligned"):
            await self.column(side).clear()
        self._show_settings()
        entry = self.query_one("#chat-input", Input)
        entry.disabled = False
        entry.focus()
        self.set_status(
            f"{Path(message.run).name}: one model in memory, strategy '{message.strategy}'. "
            "Ask something, or press F1-F3."
        )

    # ---- asking ------------------------------------------------------------------------------------
    @on(Input.Submitted, "#chat-input")
    async def _submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if text:
            event.input.value = ""
            await self.ask(text)

    async def action_probe(self, index: int) -> None:
        await self.ask(PROBES[index])

    async def ask(self, prompt: str) -> bool:
        if self.chat is None:
            why = f"this is a recording and {NO_MODEL}" if self.recording else "pick a run first (ctrl+o)"
            self.notify(f"Cannot ask: {why}.", title="chat", severity="warning")
            return False
        if self.generating:
            self.notify("Still answering: ctrl+s stops it.", title="chat")
            return False
        self.generating = True
        for side in ("base", "aligned"):
            await self.column(side).begin_turn(prompt)
        self._stop.clear()
        self.set_status(f"Answering ({self.settings().label()}) …")
        self.generate(prompt, self.settings())
        return True

    def action_stop(self) -> None:
        if self.generating:
            self._stop.set()
        else:
            self.notify("Nothing is being answered.", title="chat", timeout=3)

    async def action_new_conversation(self) -> None:
        if self.generating or self.chat is None:
            self.notify("Still answering: ctrl+s stops it." if self.generating else "No model loaded to chat with.",
                        title="chat", timeout=3)
            return
        self.chat.reset()
        for side in ("base", "aligned"):
            await self.column(side).clear()
        self.set_status("New conversation: both histories cleared.")

    @work(thread=True, exclusive=True, group="chat-generate", exit_on_error=False)
    def generate(self, prompt: str, settings) -> None:
        try:
            for d in self.chat.stream(prompt, settings, self._stop):
                self.post_message(self.Delta(d.side, d.text, d.tokens, d.elapsed, d.done, d.reason))
        except Exception as exc:  # noqa: BLE001 - shown to the user, not swallowed
            self.post_message(self.Finished(error=str(exc) or repr(exc)))
            return
        self.post_message(self.Finished())

    @on(Delta)
    async def _delta(self, message: Delta) -> None:
        column = self.column(message.side)
        await column.write(message.text)
        column.tokens = message.tokens
        if message.done or message.tokens % 8 == 0:
            rate = message.tokens / message.elapsed if message.elapsed > 0 else 0.0
            column.tokens_per_s = rate
            end = {"eos": "done", "length": "token limit", "stopped": "stopped"}.get(message.reason, "…")
            column.set_stats(f"{message.tokens} tokens · {rate:.1f} tokens/s · {end}")

    @on(Finished)
    async def _finished(self, message: Finished) -> None:
        for side in ("base", "aligned"):
            await self.column(side).end_turn()
        self.call_after_refresh(self._align)
        self.generating = False
        if message.error:
            self.set_status(f"Generation failed: {message.error}")
            self.notify(message.error, title="chat", severity="error")
        else:
            stopped = " (stopped)" if self._stop.is_set() else ""
            self.set_status(f"Answered{stopped}. Each side keeps its own history; ctrl+n starts over.")


def open_run(app, mode: str, path: str) -> None:
    """Switch to the Evaluate or Chat area with this run picked (command palette)."""
    app.switch_mode(mode)
    screen = app.screen
    selects = screen.query(Select) if screen.is_mounted else []
    if selects:
        selects.first().value = path
    else:  # first visit: the screen picks it once composed
        screen.wanted_run = path


def g_mode(generations: list[dict]) -> str:
    modes = sorted({str(g.get("settings") or g.get("mode") or "") for g in generations} - {""})
    return " / ".join(modes) if modes else "settings not saved"


def palette_entries(app) -> list[tuple[str, str, object]]:
    entries = []
    for label, path in runs_with_adapters(app.context.runs_dir) + recordings_with_reports():
        name = Path(path).name
        entries.append((f"evaluate run: {name}", label, lambda p=path: open_run(app, "evaluate", p)))
        entries.append((f"chat with run: {name}", label, lambda p=path: open_run(app, "chat", p)))
    return entries
