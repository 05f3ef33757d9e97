"""Questions the Train area asks: stop this run? quit while a run trains?"""

from __future__ import annotations

from typing import Any, ClassVar

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


class ChoiceDialog(ModalScreen[Any]):
    """A message and a row of buttons; the first button has the focus (the safe answer), and the
    pressed button's id becomes the answer through `answer()`."""

    # (label, id, variant), the safe choice first
    BUTTONS: ClassVar[tuple[tuple[str, str, str], ...]] = ()

    def __init__(self, run_name: str) -> None:
        super().__init__()
        self.run_name = run_name

    def message(self) -> str:
        raise NotImplementedError

    def answer(self, button_id: str) -> Any:
        return button_id

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.message(), markup=False)
            with Horizontal():
                for label, button_id, variant in self.BUTTONS:
                    yield Button(label, id=button_id, variant=variant)

    def on_mount(self) -> None:
        self.query_one(f"#{self.BUTTONS[0][1]}", Button).focus()

    @on(Button.Pressed)
    def _answer(self, event: Button.Pressed) -> None:
        self.dismiss(self.answer(event.button.id or ""))


class ConfirmStopDialog(ChoiceDialog):
    """Stop the run? The engine saves a checkpoint and the adapter, so it can be resumed."""

    DEFAULT_CSS = DIALOG_CSS.format(cls="ConfirmStopDialog")
    BINDINGS: ClassVar[list[Binding]] = [Binding("escape", "dismiss(False)", "Keep training", id="stop-cancel")]
    BUTTONS = (("Keep training", "keep", "default"), ("Stop the run", "stop", "error"))

    def message(self) -> str:
        return (f"Stop {self.run_name}?\nThe engine saves a checkpoint and the adapter first; "
                "you can resume it later from the runs list.")

    def answer(self, button_id: str) -> bool:
        return button_id == "stop"


class QuitWhileTrainingDialog(ChoiceDialog):
    """Quit while a run trains: stop it, leave it running detached, or stay."""

    DEFAULT_CSS = DIALOG_CSS.format(cls="QuitWhileTrainingDialog")
    BINDINGS: ClassVar[list[Binding]] = [Binding("escape", "dismiss(None)", "Stay", id="quit-cancel")]
    BUTTONS = (("Stay", "stay", "default"), ("Leave it running", "detach", "primary"),
               ("Stop it and quit", "stop", "error"))

    def message(self) -> str:
        return (f"{self.run_name} is still training.\n"
                "Stop it (a checkpoint is saved), or leave it running detached: its log keeps growing "
                "and you can re-attach from the runs list.")

    def answer(self, button_id: str) -> str | None:
        return None if button_id == "stay" else button_id
