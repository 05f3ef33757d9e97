"""The App: five areas as Textual modes, a help screen, and the command palette.

`make_app()` is the factory the CLI and the tests call; the App is handed an `AppContext` and builds
nothing heavy itself. Screens are imported when their mode is first shown, so the first frame is fast.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from textual.app import App
from textual.binding import Binding
from textual.screen import Screen

from .commands import TutorCommands
from .context import AppContext

# mode name -> (module under dpo_tutor.tui.screens, class name, footer label)
AREAS: dict[str, tuple[str, str, str]] = {
    "learn": ("learn", "LearnScreen", "Learn"),
    "data": ("data", "DataScreen", "Data"),
    "train": ("train", "TrainScreen", "Train"),
    "evaluate": ("evaluate", "EvaluateScreen", "Evaluate"),
    "chat": ("chat", "ChatScreen", "Chat"),
}


def _lazy_screen(module: str, cls: str) -> Callable[[], Screen]:
    def build() -> Screen:
        mod = importlib.import_module(f"dpo_tutor.tui.screens.{module}")
        return getattr(mod, cls)()

    return build


class DpoTutorApp(App):
    TITLE = "dpo-tutor"
    SUB_TITLE = "learn Direct Preference Optimization, then run it"
    CSS_PATH = "app.tcss"
    MODES = {name: _lazy_screen(module, cls) for name, (module, cls, _) in AREAS.items()}
    COMMANDS = App.COMMANDS | {TutorCommands}
    BINDINGS = [
        Binding("1", "switch_mode('learn')", "Learn", id="mode-learn"),
        Binding("2", "switch_mode('data')", "Data", id="mode-data"),
        Binding("3", "switch_mode('train')", "Train", id="mode-train"),
        Binding("4", "switch_mode('evaluate')", "Evaluate", id="mode-evaluate"),
        Binding("5", "switch_mode('chat')", "Chat", id="mode-chat"),
        Binding("w", "walkthrough", "Walkthrough", id="walkthrough"),
        # priority, so that they work over a focused input; active only while the walkthrough bar shows
        Binding("right_square_bracket", "walkthrough_step(1)", "Next stop", id="walkthrough-next", priority=True),
        Binding("left_square_bracket", "walkthrough_step(-1)", "Prev stop", id="walkthrough-prev", priority=True),
        Binding("question_mark", "help", "Help", id="help"),
        Binding("escape", "leave_field", "Leave the field", show=False, id="leave-field"),
        Binding("ctrl+q", "quit", "Quit", id="quit", priority=True),
    ]

    def __init__(self, context: AppContext | None = None) -> None:
        super().__init__()
        self.context = context or AppContext()
        # The walkthrough (video) mode's controller; built on first use (tests may set their own).
        self.walkthrough_controller = None

    def on_mount(self) -> None:
        self.switch_mode("learn")
        if self.context.walkthrough:
            self.call_after_refresh(self.action_walkthrough)

    def get_walkthrough(self):
        if self.walkthrough_controller is None:
            from .widgets.walkthrough_bar import WalkthroughController

            self.walkthrough_controller = WalkthroughController(self)
        return self.walkthrough_controller

    def action_walkthrough(self) -> None:
        self.get_walkthrough().toggle()

    def action_walkthrough_step(self, step: int) -> None:
        self.get_walkthrough().step(step)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "walkthrough_step":
            return self.walkthrough_controller is not None and self.walkthrough_controller.visible
        return True

    async def action_quit(self) -> None:
        """Quit; while a run trains, ask whether to stop it or leave it running detached."""
        from .run_watcher import quit_app

        await quit_app(self)

    def action_leave_field(self) -> None:
        """Escape out of a text field, so the number keys switch areas again."""
        self.screen.set_focus(None)

    def action_help(self) -> None:
        from .screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())


def make_app(
    *, walkthrough: bool = False, lesson: str | None = None, runs_dir: str | None = None
) -> DpoTutorApp:
    context = AppContext(walkthrough=walkthrough, lesson=lesson)
    if runs_dir:
        from pathlib import Path

        context.runs_dir = Path(runs_dir)
    return DpoTutorApp(context)
