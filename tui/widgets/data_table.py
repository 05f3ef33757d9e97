"""A virtualised table of triplets: renders only the rows on screen, so 160,800 rows scroll smoothly.

Textual's DataTable builds a row object per `add_row`, which takes seconds at this size; this Line
API widget keeps only a list of row numbers (the current filter) and formats a row when it is drawn.
A reactive `cursor` moves with the keys or the mouse and posts `CursorMoved` with the triplet's index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from dpo_tutor.engine.data.browse import BrowseIndex
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Static

NUM_W, ID_MIN, FLAG_W, LEN_W = 6, 5, 10, 6


def _cell(text: str, width: int, right: bool = False) -> str:
    text = text.replace("\n", " ").replace("\r", " ").replace("\t", " ")
    if len(text) > width:
        return text[: max(0, width - 1)] + "…"
    return text.rjust(width) if right else text.ljust(width)


def _id_cell(text: str, width: int) -> str:
    """An id keeps its start and its end (`harml…-test-0412`): the end is what tells rows apart."""
    if len(text) <= width:
        return text.ljust(width)
    head = max(1, width // 3)
    return text[:head] + "…" + text[-(width - head - 1):]


def columns(width: int, id_w: int = 14) -> tuple[int, int, int]:
    """(id width, prompt preview width, how many length columns) for a table `width` columns wide:
    the lengths go first when the room is short (the detail pane shows them), then the id narrows."""
    for lengths in (3, 0):
        fixed = NUM_W + 1 + 1 + lengths * (LEN_W + 1) + 1 + FLAG_W
        for idw in (id_w, ID_MIN):
            preview = width - fixed - idw
            if preview >= 16:
                return idw, preview, lengths
    return ID_MIN, max(6, width - (NUM_W + 1 + ID_MIN + 1 + 1 + FLAG_W)), 0


def shared_prefix(ids: list[str]) -> str:
    """The start every id shares, up to its last separator (`harmless-base-test.jsonl.gz:` of
    `harmless-base-test.jsonl.gz:17`): the table leaves it out, the detail's title shows the whole id."""
    if len(ids) < 2:
        return ""
    first, last = min(ids), max(ids)
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    cut = max(first.rfind(sep, 0, n) for sep in ":/#")
    return first[: cut + 1] if cut >= 3 else ""


def row_text(index: BrowseIndex, i: int, width: int, id_w: int = 14, id_prefix: str = "") -> str:
    """One table row as plain text: #, id, prompt preview, [prompt/chosen/rejected lengths,] flags."""
    t = index.triplets[i]
    info = index.rows[i]
    idw, preview_w, lengths = columns(width, id_w)
    tid = t.id[len(id_prefix):] if id_prefix and t.id.startswith(id_prefix) else t.id
    text = f"{_cell(str(i), NUM_W, right=True)} {_id_cell(tid, idw)} {_cell(t.prompt_text.strip(), preview_w)}"
    if lengths:
        text += "".join(f" {_cell(f'{n:,}', LEN_W, True)}" for n in (info.prompt_len, info.chosen_len,
                                                                      info.rejected_len))
    return f"{text} {_cell(index.flag_labels(i), FLAG_W)}"


def header_text(width: int, id_w: int = 14) -> str:
    idw, preview_w, lengths = columns(width, id_w)
    text = f"{_cell('#', NUM_W, True)} {_cell('id', idw)} {_cell('prompt', preview_w)}"
    if lengths:
        text += "".join(f" {_cell(h, LEN_W, True)}" for h in ("len P", "len C", "len R"))
    return f"{text} {_cell('flags', FLAG_W)}"


def legend_text(long_chars: int) -> str:
    from dpo_tutor.engine.data.browse import FLAGS

    flags = ", ".join(f"{code} {name}" for name, (code, _) in FLAGS.items())
    return (f"len P / C / R: characters of prompt, chosen, rejected · flags: {flags} "
            f"(long: over {long_chars:,} characters in all)")


class TripletTableHeader(Static):
    DEFAULT_CSS = """
    TripletTableHeader { height: 1; background: $panel; color: $text-muted; text-style: bold; }
    """

    id_width = 14

    def on_resize(self, event: events.Resize) -> None:
        self.update(header_text(event.size.width, self.id_width))

    def set_id_width(self, width: int) -> None:
        self.id_width = width
        self.update(header_text(self.size.width, width))


class TripletTable(ScrollView, can_focus=True):
    """Rows of a `BrowseIndex`, shown through a list of row numbers (the current filter)."""

    DEFAULT_CSS = """
    TripletTable { height: 1fr; overflow-x: hidden; }
    TripletTable > .triplet-table--cursor { background: $block-cursor-background; color: $block-cursor-foreground; }
    TripletTable:blur > .triplet-table--cursor { background: $block-cursor-blurred-background; }
    TripletTable > .triplet-table--odd { background: $boost; }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {"triplet-table--cursor", "triplet-table--odd"}
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("up,k", "cursor(-1)", "Up", show=False, id="data-up"),
        Binding("down,j", "cursor(1)", "Down", show=False, id="data-down"),
        Binding("pageup", "page(-1)", "Page up", show=False, id="data-page-up"),
        Binding("pagedown,space", "page(1)", "Page down", show=False, id="data-page-down"),
        Binding("home", "jump(0)", "First", show=False, id="data-first"),
        Binding("end", "jump(-1)", "Last", show=False, id="data-last"),
    ]

    cursor: reactive[int] = reactive(0, always_update=True, layout=False)

    @dataclass
    class CursorMoved(Message):
        """The highlighted row changed; `index` is the triplet's number in the data set (-1: none)."""

        table: TripletTable
        index: int

        @property
        def control(self) -> TripletTable:
            return self.table

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.index: BrowseIndex | None = None
        self.order: list[int] = []
        self.id_width = 14  # the ids' usual length in this data set (up to 22)
        self.id_prefix = ""  # what every id starts with (left out of the table)

    def show(self, index: BrowseIndex | None, order: list[int] | None = None) -> None:
        """Show these rows (all of the index when order is None) and put the cursor on the first."""
        self.index = index
        self.order = list(range(len(index))) if index is not None and order is None else (order or [])
        if index is not None and index.triplets:
            sample = [t.id for t in index.triplets[:: max(1, len(index.triplets) // 200)]]
            prefix = shared_prefix([t.id for t in index.triplets])
            self.id_prefix = prefix
            self.id_width = max(ID_MIN, min(22, max(len(i) - len(prefix) for i in sample)))
        self.virtual_size = Size(self.size.width, len(self.order))
        self.scroll_to(y=0, animate=False)
        self.cursor = 0
        self.refresh()

    @property
    def current(self) -> int:
        """The triplet index under the cursor, or -1."""
        return self.order[self.cursor] if 0 <= self.cursor < len(self.order) else -1

    def validate_cursor(self, value: int) -> int:
        return max(0, min(value, len(self.order) - 1)) if self.order else 0

    def watch_cursor(self, old: int, new: int) -> None:
        self.scroll_to_region(Region(0, new, 1, 1), animate=False, force=True, immediate=True)
        self.refresh()
        self.post_message(self.CursorMoved(self, self.current))

    def action_cursor(self, delta: int) -> None:
        self.cursor += delta

    def action_page(self, direction: int) -> None:
        page = max(1, self.scrollable_content_region.height - 1)
        self.scroll_to(y=self.scroll_offset.y + direction * page, animate=False, immediate=True)
        self.cursor += direction * page

    def action_jump(self, where: int) -> None:
        self.cursor = where if where >= 0 else len(self.order) - 1

    def on_click(self, event: events.Click) -> None:
        row = self.scroll_offset.y + event.y
        if 0 <= row < len(self.order):
            self.cursor = row
        self.focus()

    def on_resize(self, event: events.Resize) -> None:
        self.virtual_size = Size(event.size.width, len(self.order))

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        row = self.scroll_offset.y + y
        if self.index is None or row >= len(self.order):
            return Strip.blank(width, self.rich_style)
        text = row_text(self.index, self.order[row], width, self.id_width, self.id_prefix)
        if row == self.cursor:
            style = self.get_component_rich_style("triplet-table--cursor")
        elif row % 2:
            style = self.rich_style + self.get_component_rich_style("triplet-table--odd")
        else:
            style = self.rich_style
        return Strip([Segment(text[:width].ljust(width), style or Style())], width)
