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
        yield Static(f"{g['label']} · {g['settings']} · {g['prompt']}", classes="gen-prompt", markup=False)
        with Horizontal():
            base = Static(g["base"].strip() or "(only whitespace)", classes="gen-side gen-base", markup=False)
            base.border_title = f"base · {g['base_tokens']} tokens"
            yield base
            aligned = Static(g["aligned"].strip() or "(only whitespace)", classes="gen-side gen-aligned",
                             markup=False)
            aligned.border_title = f"aligned · {g['aligned_tokens']} tokens"
            yield aligned


class GenerationsView(VerticalScroll):
    async def show(self, generations: list[dict]) -> None:
        await self.remove_children()
        if not generations:
            await self.mount(Static("No generations in this report (it was made with --no-generations)."))
            return
        await self.mount_all(GenerationPair(g) for g in generations)
