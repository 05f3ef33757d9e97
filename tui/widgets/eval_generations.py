"""Generations side by side: each probe prompt, the base's answer and the aligned model's answer."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Static


class GenerationPair(Vertical):
    DEFAULT_CSS = """
    GenerationPair { height: auto; margin-bottom: 1; }
    GenerationPair > .gen-prompt { text-style: bold; }
    GenerationPair > Horizontal { height: auto; }
    GenerationPair .gen-side { width: 1fr; height: auto; border: round $panel; padding: 0 1; }
    GenerationPair .gen-aligned { border: round $primary; }
    """

    def __init__(self, generation: dict) -> None:
        super().__init__()
        self.generation = generation

    def compose(self) -> ComposeResult:
        g = self.generation
        head = " · ".join(str(g[k]) for k in ("label", "settings", "prompt") if g.get(k))
        yield Static(head, classes="gen-prompt", markup=False)
        with Horizontal():
            for side in ("base", "aligned"):
                text = str(g.get(side) or "").strip() or "(only whitespace)"
                box = Static(text, classes=f"gen-side gen-{side}", markup=False)
                tokens = g.get(f"{side}_tokens")
                box.border_title = side + (f" · {tokens} tokens" if tokens is not None else "")
                yield box


class GenerationsView(VerticalScroll):
    async def show(self, generations: list[dict] | None) -> None:
        await self.remove_children()
        if generations is None:
            await self.mount(Static("No report yet."))
            return
        if not generations:
            await self.mount(Static("No generations in this report (it was made with --no-generations)."))
            return
        await self.mount_all(GenerationPair(g) for g in generations)
