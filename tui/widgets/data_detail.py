"""One triplet: the prompt (every turn), and the chosen and rejected replies side by side.

Words only one reply has are highlighted, so the difference the preference is about stands out.
"""

from __future__ import annotations

import difflib
import re

from dpo_tutor.engine.data.triplet import Triplet
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import Static

_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")
CHOSEN_ONLY = "$text-success on $success-muted"
REJECTED_ONLY = "$text-error on $error-muted"
MAX_DIFF_TOKENS = 6000  # beyond this the diff costs more than it shows


def diff_spans(chosen: str, rejected: str) -> tuple[list[tuple[str, bool]], list[tuple[str, bool]]]:
    """Each reply as (text, only_in_this_reply) pieces, from a word-level diff."""
    a, b = _TOKEN.findall(chosen), _TOKEN.findall(rejected)
    if len(a) + len(b) > MAX_DIFF_TOKENS:
        return [(chosen, False)], [(rejected, False)]
    left: list[tuple[str, bool]] = []
    right: list[tuple[str, bool]] = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            left.append(("".join(a[i1:i2]), False))
            right.append(("".join(b[j1:j2]), False))
        else:
            if i2 > i1:
                left.append(("".join(a[i1:i2]), True))
            if j2 > j1:
                right.append(("".join(b[j1:j2]), True))
    return left, right


def _content(pieces: list[tuple[str, bool]], style: str) -> Content:
    return Content.assemble(*((text, style) if changed and text.strip() else text for text, changed in pieces))


def prompt_content(t: Triplet) -> Content:
    parts: list[Content | str | tuple[str, str]] = []
    for m in t.prompt:
        if parts:
            parts.append("\n\n")
        parts.append((f"{m['role']}: ", "bold $accent"))
        parts.append(m["content"])
    return Content.assemble(*parts)


class TripletDetail(Vertical):
    DEFAULT_CSS = """
    TripletDetail { height: 1fr; }
    TripletDetail #detail-title { height: auto; max-height: 2; color: $text-muted; }
    TripletDetail #detail-prompt-box { height: auto; max-height: 40%; border: round $panel; }
    TripletDetail #detail-sides { height: 1fr; }
    TripletDetail .detail-side { width: 1fr; border: round $panel; }
    TripletDetail #detail-chosen-box { border: round $success; }
    TripletDetail #detail-rejected-box { border: round $error; }
    """

    def compose(self) -> ComposeResult:
        yield Static("", id="detail-title")
        with VerticalScroll(id="detail-prompt-box"):
            yield Static("", id="detail-prompt")
        with Horizontal(id="detail-sides"):
            with VerticalScroll(id="detail-chosen-box", classes="detail-side"):
                yield Static("", id="detail-chosen")
            with VerticalScroll(id="detail-rejected-box", classes="detail-side"):
                yield Static("", id="detail-rejected")

    def on_mount(self) -> None:
        self.query_one("#detail-prompt-box").border_title = "prompt"
        self.query_one("#detail-chosen-box").border_title = "chosen"
        self.query_one("#detail-rejected-box").border_title = "rejected"

    def show(self, t: Triplet | None, number: int = -1, flags: str = "", source: str = "") -> None:
        """Show a triplet; `source` (a mix's source name) goes under the prompt box."""
        self.triplet = t
        self.query_one("#detail-prompt-box").border_subtitle = source
        if t is None:
            self.query_one("#detail-title", Static).update("no triplet")
            for name in ("prompt", "chosen", "rejected"):
                self.query_one(f"#detail-{name}", Static).update("")
            return
        extra = "  ".join(f"{k}={v}" for k, v in t.metadata.items() if k != "output" and len(str(v)) < 40)
        parts = [f"#{number}", t.id, flags, extra]
        self.query_one("#detail-title", Static).update(Content(" · ".join(p for p in parts if p)))
        self.query_one("#detail-prompt", Static).update(prompt_content(t))
        left, right = diff_spans(t.chosen, t.rejected)
        self.query_one("#detail-chosen", Static).update(_content(left, CHOSEN_ONLY))
        self.query_one("#detail-rejected", Static).update(_content(right, REJECTED_ONLY))
        self.query_one("#detail-chosen-box").border_subtitle = f"{len(t.chosen):,} chars"
        self.query_one("#detail-rejected-box").border_subtitle = f"{len(t.rejected):,} chars"
        for box in ("#detail-prompt-box", "#detail-chosen-box", "#detail-rejected-box"):
            self.query_one(box, VerticalScroll).scroll_home(animate=False)
