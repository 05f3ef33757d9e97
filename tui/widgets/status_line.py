"""A status text of fixed height that follows a stream (a run's steps, a model's tokens).

Why ours: `Static.update()` re-lays out the whole screen by default, and a layout re-renders every
widget whose region moved, the charts included, and a key press waits on that. A line whose height the CSS fixes never changes the layout, so
`show()` repaints it only, and only when its text changed.
"""

from __future__ import annotations

from textual.widgets import Static


class StatusLine(Static):
    DEFAULT_CSS = """
    StatusLine { height: 1; }
    """

    def __init__(self, text: str = "", **kwargs) -> None:
        super().__init__(text, markup=False, **kwargs)
        self._text = text

    def show(self, text: str) -> None:
        if text != self._text:
            self._text = text
            self.update(text, layout=False)
