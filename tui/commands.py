"""Command palette entries: "go to lesson ...", "open dataset ...", "start training", "open run ..."."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider


class TutorCommands(Provider):
    """Commands for every area. Each area contributes its entries through `palette_entries()`."""

    def _entries(self) -> list[tuple[str, str, object]]:
        from .palette import palette_entries

        return palette_entries(self.app)

    async def discover(self) -> Hits:
        for title, help_text, callback in self._entries():
            yield DiscoveryHit(title, partial(callback), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._entries():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), partial(callback), help=help_text)
