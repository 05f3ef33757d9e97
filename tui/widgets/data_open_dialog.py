"""Open a data set by path or hub id, with an optional format, column mapping and split."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label


@dataclass
class OpenRequest:
    source: str
    format: str = ""
    columns: str = ""
    split: str = "train"


class OpenDatasetDialog(ModalScreen[OpenRequest | None]):
    DEFAULT_CSS = """
    OpenDatasetDialog { align: center middle; }
    OpenDatasetDialog > Vertical { width: 80; height: auto; border: thick $primary; background: $surface;
        padding: 1 2; }
    OpenDatasetDialog Label { margin-top: 1; color: $text-muted; }
    OpenDatasetDialog Horizontal { height: auto; margin-top: 1; align-horizontal: right; }
    """
    BINDINGS: ClassVar[list[Binding]] = [Binding("escape", "cancel", "Cancel", id="data-open-cancel")]

    def __init__(self, source: str = "") -> None:
        super().__init__()
        self.initial = source

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("File path, hub id (owner/name) or hf:<folder>; empty for the bundled sample")
            yield Input(self.initial, placeholder="../shared/data/hh-rlhf/harmless-base-test.jsonl.gz",
                        id="open-source")
            yield Label("Format (empty: detect): hh, shp, oasst, oasst-tree, trl, alpaca, mapping")
            yield Input(placeholder="detect", id="open-format")
            yield Label("Column mapping for other layouts")
            yield Input(placeholder="prompt=question,chosen=good,rejected=bad", id="open-columns")
            yield Label("Split (hub data sets)")
            yield Input("train", id="open-split")
            with Horizontal():
                yield Button("Cancel", id="open-cancel")
                yield Button("Open", variant="primary", id="open-ok")

    def on_mount(self) -> None:
        self.query_one("#open-source", Input).focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#open-ok")
    def submit(self) -> None:
        self.dismiss(OpenRequest(
            source=self.query_one("#open-source", Input).value.strip(),
            format=self.query_one("#open-format", Input).value.strip(),
            columns=self.query_one("#open-columns", Input).value.strip(),
            split=self.query_one("#open-split", Input).value.strip() or "train",
        ))

    @on(Button.Pressed, "#open-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
