"""One side of the chat (base or aligned): its turns, streamed into Markdown, and its speed.

Each turn (the prompt, the answer, a note) is one block; `ChatScreen` gives the two sides' blocks of a
turn the same height once both have answered, so each prompt starts on the same row on both sides.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Markdown, Static
from textual.widgets.markdown import MarkdownStream

from .status_line import StatusLine

SIDE_TITLES = {
    "base": "base: before DPO (adapter off)",
    "aligned": "aligned: after DPO (base + LoRA)",
}


class ChatColumn(Vertical):
    """Append-only: each answer streams into its own Markdown through `Markdown.get_stream()`, so a long
    answer is never re-rendered whole per token."""

    DEFAULT_CSS = """
    ChatColumn { width: 1fr; border: round $panel; border-title-style: bold; padding: 0 1; }
    ChatColumn.-aligned { border: round $primary; }
    ChatColumn > .chat-turns { height: 1fr; }
    ChatColumn .chat-turn { height: auto; }
    ChatColumn .chat-user { color: $text-muted; margin-top: 1; }
    ChatColumn .chat-answer { margin: 0; }
    ChatColumn .chat-note { color: $text-muted; text-style: italic; }
    ChatColumn > .chat-stats { color: $text-muted; height: 1; }
    """

    def __init__(self, side: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.side = side
        self.add_class(f"-{side}")
        self.border_title = SIDE_TITLES.get(side, side)
        self._stream: MarkdownStream | None = None
        self.answers: list[str] = []  # the text of each answer, as streamed
        self.tokens = 0
        self.tokens_per_s = 0.0

    def compose(self) -> ComposeResult:
        yield VerticalScroll(classes="chat-turns")
        yield StatusLine(classes="chat-stats")

    @property
    def turns(self) -> VerticalScroll:
        return self.query_one(".chat-turns", VerticalScroll)

    def turn_blocks(self) -> list[Vertical]:
        return list(self.turns.query_children(".chat-turn").results(Vertical))

    async def begin_turn(self, prompt: str) -> None:
        answer = Markdown("", classes="chat-answer")
        turn = Vertical(Static(f"> {prompt}", classes="chat-user", markup=False), answer, classes="chat-turn")
        await self.turns.mount(turn)
        self.turns.anchor()
        self._stream = Markdown.get_stream(answer)
        self.answers.append("")
        self.tokens = 0
        self.set_stats("…")

    async def write(self, text: str) -> None:
        if not text:
            return
        self.answers[-1] += text
        if self._stream is not None:
            await self._stream.write(text)

    async def end_turn(self) -> None:
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None
            if self.answers and not self.answers[-1].strip():
                # An empty pane reads as "still waiting" or "broken"; a random `tiny` model writes newlines.
                note = "(no visible text: only whitespace)" if self.answers[-1] else "(no text)"
                await self.turn_blocks()[-1].mount(Static(note, classes="chat-note"))

    def set_stats(self, text: str) -> None:
        self.query_one(".chat-stats", StatusLine).show(text)  # per 8 tokens: a repaint, not a layout

    async def clear(self) -> None:
        await self.end_turn()
        await self.turns.remove_children()
        self.answers = []
        self.set_stats("")


def align_turns(left: ChatColumn, right: ChatColumn) -> int:
    """Give each turn the height of the taller side, so the next prompt starts on the same row on both
    sides; returns how many turns were aligned."""
    pairs = list(zip(left.turn_blocks(), right.turn_blocks(), strict=False))
    for a, b in pairs:
        height = max(a.outer_size.height, b.outer_size.height)
        a.styles.min_height = b.styles.min_height = height
    return len(pairs)
