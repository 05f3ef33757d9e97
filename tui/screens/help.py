"""`?`: the keys of the area on show first, then the keys that work everywhere, in words a person reads.

The screen is handed the screen it opened over (a pushed screen is the top of the stack, so it cannot
find the area by looking there), and lists that screen's bindings, those of our widgets on it (the
table's arrows, the form's tab), then the App's.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from ..areas import AREAS, area_label

WORDS = {"esc": "escape", "⏎": "enter", "enter": "enter", "tab": "tab", "shift+tab": "shift+tab"}


def key_words(app, binding: Binding) -> str:
    """`ctrl+o or o`, `[`, `?`: each key of the binding as a person types it."""
    shown = []
    for key in binding.key.split(","):
        key = key.strip()
        display = app.get_key_display(Binding(key, binding.action))
        if display.startswith("^") and len(display) > 1:
            display = "ctrl+" + display[1:]
        shown.append(WORDS.get(display, display))
    return " or ".join(shown)


@dataclass(frozen=True)
class HelpRow:
    section: str
    keys: str
    does: str
    binding: Binding
    owner: str  # "screen", "widget" or "app"
    widget: object = None  # for a widget's key: the first such widget on the screen (it acts once focused)


def help_rows(app, below: Screen | None, mode: str | None = None) -> list[HelpRow]:
    """What the help screen lists, in order: the area's keys, its widgets' keys, the App's keys."""
    rows: list[HelpRow] = []
    seen: set[tuple[str, str]] = set()

    def add(section: str, bindings, owner: str, widget=None) -> None:
        for b in bindings:
            if not isinstance(b, Binding) or (b.key, b.action) in seen:
                continue
            seen.add((b.key, b.action))
            does = b.description or b.action
            if b.tooltip and b.tooltip.lower() != does.lower():  # the footer's word, then what it does
                does = f"{does}: {b.tooltip}"
            if b.action.startswith("switch_mode("):
                name = b.action[len("switch_mode('"):-2]
                does = f"go to the {area_label(name)} area" + (" (you are here)" if name == mode else "")
            rows.append(HelpRow(section, key_words(app, b), does, b, owner, widget))

    if below is not None:
        title = area_label(mode) if mode in AREAS else getattr(below, "area_title", type(below).__name__)
        add(f"{title}: this area's keys", getattr(below, "BINDINGS", []), "screen")
        for widget in below.query("*"):
            own = type(widget).__dict__.get("BINDINGS")  # our widget's own keys, not those it inherits
            if type(widget).__module__.startswith("dpo_tutor") and own:
                add(f"{title}: {widget_name(widget)}", own, "widget", widget)
    add("Everywhere", app.BINDINGS, "app")
    add("Everywhere", [Binding(app.COMMAND_PALETTE_BINDING, "command_palette", "command palette: go to a lesson, "
                               "open a data set or a run, start training")], "app")
    return rows


def widget_name(widget) -> str:
    names = {"TripletTable": "the triplet table", "TrainForm": "the training form", "LearnScreen": "lessons"}
    name = type(widget).__name__
    return names.get(name, name)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close", id="help-close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 90%; max-width: 100; height: 90%;
        border: round $primary; background: $panel; padding: 0 1;
    }
    HelpScreen .help-section { text-style: bold; color: $accent; margin-top: 1; }
    HelpScreen .help-note { color: $text-muted; }
    """

    def __init__(self, below: Screen | None = None, mode: str | None = None) -> None:
        super().__init__()
        self.below = below
        self.mode = mode
        self.rows: list[HelpRow] = []

    @property
    def text(self) -> str:
        """The listing as plain text, section by section (what a test or a screen reader reads)."""
        lines: list[str] = []
        section = None
        for row in self.rows:
            if row.section != section:
                section = row.section
                lines.append(section)
            lines.append(f"  {row.keys:<14} {row.does}")
        return "\n".join(lines)

    def compose(self) -> ComposeResult:
        self.rows = help_rows(self.app, self.below, self.mode)
        scroll = VerticalScroll()
        scroll.border_title = "Keys"
        scroll.border_subtitle = "escape closes"
        with scroll:
            sections: dict[str, list[HelpRow]] = {}
            for row in self.rows:
                sections.setdefault(row.section, []).append(row)
            for title, rows in sections.items():
                yield Static(title, classes="help-section", markup=False)
                table = Table(box=None, show_header=False, padding=(0, 1), expand=True)
                table.add_column("key", style="bold", no_wrap=True, min_width=10)
                table.add_column("does", ratio=1)
                for row in rows:
                    table.add_row(row.keys, row.does)
                yield Static(table, classes="help-table")
