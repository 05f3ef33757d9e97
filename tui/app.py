"""The App: five areas as Textual modes, a help screen, and the command palette.

`make_app()` is the factory the CLI and the tests call; the App is handed an `AppContext` and builds
nothing heavy itself. Screens are imported when their mode is first shown, so the first frame is fast.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.screen import Screen

from .areas import AREAS
from .context import AppContext
from .palette import TutorCommands

# The number keys show as one entry in the footer ("1 2 3 4 5 Areas") so the area's own keys fit in 80
# columns; the help screen lists each with its area.
AREA_KEYS = Binding.Group("Areas ", compact=True)  # the space: compact footers join it to the next key


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
        *(
            Binding(str(n), f"switch_mode('{name}')", label, id=f"mode-{name}", group=AREA_KEYS)
            for n, (name, (_, _, label)) in enumerate(AREAS.items(), start=1)
        ),
        Binding("question_mark", "help", "Keys", tooltip="this list of keys, the area's first", id="help"),
        Binding("w", "walkthrough", "Walkthrough bar", show=False, id="walkthrough"),
        # priority, so that they work over a focused input; active only while the walkthrough bar shows
        Binding("right_square_bracket", "walkthrough_step(1)", "Next stop", id="walkthrough-next", priority=True),
        Binding("left_square_bracket", "walkthrough_step(-1)", "Prev stop", id="walkthrough-prev", priority=True),
        Binding("escape", "leave_field", "Leave the text field", show=False, id="leave-field"),
        # not in the footer (80 columns are short); help and the command palette list it
        Binding("ctrl+q", "quit", "Quit", show=False, id="quit", priority=True),
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
        if self.context.reattach:
            self.find_running_runs()

    # ---- a run still training from before (a dropped SSH link, `train --detach`) -----------------
    @work(thread=True, exclusive=True, group="reattach", exit_on_error=False)
    def find_running_runs(self) -> list[Path]:
        from dpo_tutor.engine.runs import list_runs

        running = [info.path for info in list_runs(self.context.runs_dir) if info.state == "running"]
        if running:
            self.call_from_thread(self.reattach, running[0], len(running))
        return running

    def reattach(self, path: Path, count: int = 1) -> None:
        """Follow a run that is still training (started before this app opened), as the runs list's
        enter would; the Train area shows it."""
        from .run_watcher import watcher_of

        watcher = watcher_of(self)
        if watcher.following:
            return
        watcher.attach(path)
        more = f" ({count - 1} more still running: ctrl+o on Train lists them)" if count > 1 else ""
        self.notify(f"{path.name} is still training: re-attached. Press 3 to watch it.{more}",
                    title="Run re-attached", timeout=10)

    # ---- walkthrough ---------------------------------------------------------------------------
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

    # ---- quitting --------------------------------------------------------------------------------
    async def action_quit(self) -> None:
        """Quit; while a run trains, first ask whether to stop it or leave it running detached."""
        from .widgets.train_dialogs import QuitWhileTrainingDialog

        watcher = getattr(self, "run_watcher", None)
        if watcher is None or not watcher.run_is_live:
            self.exit()
            return
        if isinstance(self.screen, QuitWhileTrainingDialog):
            return  # already asking

        def decide(choice: str | None) -> None:
            if choice == "stop":
                watcher.stop()
                self.exit()
            elif choice == "detach":
                watcher.detach = True
                self.exit()

        self.push_screen(QuitWhileTrainingDialog(watcher.state.name if watcher.state else "the run"), decide)

    def action_leave_field(self) -> None:
        """Escape out of a text field, so the number keys switch areas again."""
        self.screen.set_focus(None)

    def action_help(self) -> None:
        from .screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen, self.current_mode))


def make_app(
    *, walkthrough: bool = False, lesson: str | None = None, runs_dir: str | None = None
) -> DpoTutorApp:
    context = AppContext(walkthrough=walkthrough, lesson=lesson, reattach=True)
    if runs_dir:
        context.runs_dir = Path(runs_dir)
    return DpoTutorApp(context)
