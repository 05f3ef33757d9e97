"""Questions the Train area asks: stop this run? quit while a run trains?"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

DIALOG_CSS = """
{cls} {{ align: center middle; }}
{cls} > Vertical {{ width: 64; height: auto; padding: 1 2; border: thick $primary; background: $surface; }}
{cls} Static {{ margin-bottom: 1; }}
{cls} Horizontal {{ height: auto; align-horizontal: right; }}
{cls} Button {{ margin-left: 1; }}
"""


class ConfirmStopDialog(ModalScreen[bool]):
    """Stop the run? The engine saves a checkpoint and the adapter, so it can be resumed."""

    DEFAULT_CSS = DIALOG_CSS.format(cls="ConfirmStopDialog")
    BINDINGS: ClassVar[list[Binding]] = [Binding("escape", "dismiss(False)", "Keep training", id="stop-cancel")]

    def __init__(self, run_name: str) -> None:
        super().__init__()
        self.run_name = run_name

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(
                f"Stop {self.run_name}?\nThe engine saves a checkpoint and the adapter first; "
                "you can resume it later from the runs list.",
                markup=False,
            )
            with Horizontal():
                yield Button("Keep training", id="keep")
                yield Button("Stop the run", id="stop", variant="error")

    def on_mount(self) -> None:
        self.query_one("#keep", Button).focus()

    @on(Button.Pressed)
    def _answer(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "stop")


class QuitWhileTrainingDialog(ModalScreen[str | None]):
    """Quit while a run trains: stop it, leave it running detached, or stay."""

    DEFAULT_CSS = DIALOG_CSS.format(cls="QuitWhileTrainingDialog")
    BINDINGS: ClassVar[list[Binding]] = [Binding("escape", "dismiss(None)", "Stay", id="quit-cancel")]

    def __init__(self, run_name: str) -> None:
        super().__init__()
        self.run_name = run_name

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(
                f"{self.run_name} is still training.\n"
                "Stop it (a checkpoint is saved), or leave it running detached: its log keeps growing "
                "and you can re-attach from the runs list.",
                markup=False,
            )
            with Horizontal():
                yield Button("Stay", id="stay")
                yield Button("Leave it running", id="detach", variant="primary")
                yield Button("Stop it and quit", id="stop", variant="error")

    def on_mount(self) -> None:
        self.query_one("#stay", Button).focus()

    @on(Button.Pressed)
    def _answer(self, event: Button.Pressed) -> None:
        self.dismiss(None if event.button.id == "stay" else event.button.id)
