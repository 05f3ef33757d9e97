"""`?`: every binding of the app and of the screen below, with what it does."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close", id="help-close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 80%; max-width: 100; height: 80%;
        border: round $primary; background: $panel; padding: 0 1;
    }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Markdown(self._bindings_markdown(), id="help-text")

    def _bindings_markdown(self) -> str:
        app = self.app
        lines = ["# Keys", "", "Press `ctrl+p` for the command palette.", ""]
        sections: list[tuple[str, list]] = [("Everywhere", list(app.BINDINGS))]
        below = app.screen_stack[-1] if app.screen_stack else None
        if below is not None and below is not self:
            title = getattr(below, "area_title", None) or type(below).__name__
            sections.append((f"On this screen ({title})", list(getattr(below, "BINDINGS", []))))
            for widget in below.query("*"):
                wb = [b for b in getattr(type(widget), "BINDINGS", []) if isinstance(b, Binding)]
                if wb and widget.__class__.__module__.startswith("dpo_tutor"):
                    sections.append((type(widget).__name__, wb))
        seen: set[tuple[str, str]] = set()
        for title, bindings in sections:
            rows = []
            for b in bindings:
                if not isinstance(b, Binding):
                    continue
                key = (b.key, b.action)
                if key in seen:
                    continue
                seen.add(key)
                rows.append(f"| `{b.key}` | {b.description or b.action} |")
            if rows:
                lines += [f"## {title}", "", "| key | does |", "|---|---|", *rows, ""]
        return "\n".join(lines)
