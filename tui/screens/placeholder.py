"""An area not built yet says what it will do and how to get there: no fake data."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Markdown


class AreaPlaceholder(Screen):
    def __init__(self, title: str, text: str) -> None:
        super().__init__()
        self.area_title = title
        self.area_text = text

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll():
            yield Markdown(f"# {self.area_title}\n\n{self.area_text}")
        yield Footer()
