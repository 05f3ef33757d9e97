"""The command palette: its provider and its entries ("go to lesson ...", "open dataset ...", "start
training", "open run ..."), gathered from each area as (title, help, callback) tuples.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

Entry = tuple[str, str, Callable[[], object]]


def _areas(app) -> list[Entry]:
    from .areas import AREAS

    return [
        (f"go to {label}", f"switch to the {label} area", lambda name=name: app.switch_mode(name))
        for name, (_, _, label) in AREAS.items()
    ]


def _lessons(app) -> list[Entry]:
    from dpo_tutor.engine.lessons import load_lessons

    from .screens.learn import open_lesson

    return [
        (
            f"go to lesson {lesson.order}: {lesson.title}",
            f"{lesson.segment}, {lesson.duration} min",
            lambda lesson_id=lesson.id: open_lesson(app, lesson_id),
        )
        for lesson in load_lessons()
    ]


def _datasets(app) -> list[Entry]:
    from dpo_tutor.engine.data.browse import recent_sources, shared_data_files

    from .screens.data import open_dataset

    entries: list[Entry] = [("open dataset: bundled sample", "the offline sample that ships with dpo-tutor",
                             lambda: open_dataset(app, ""))]
    seen = set()
    for source in recent_sources():
        seen.add(source)
        entries.append((f"open dataset: {source}", "recently used", lambda s=source: open_dataset(app, s)))
    for path in shared_data_files():
        if str(path) not in seen:
            entries.append((f"open dataset: {path.parent.name}/{path.name}", "shared data",
                            lambda s=str(path): open_dataset(app, s)))
    return entries


def palette_entries(app) -> list[Entry]:
    entries: list[Entry] = []
    entries += _areas(app)
    entries += _datasets(app)
    entries += _lessons(app)
    from .screens.train import palette_entries as train_entries

    entries += train_entries(app)
    from .screens.chat import palette_entries as run_entries

    entries += run_entries(app)
    return entries


class TutorCommands(Provider):
    """Commands for every area, each area contributing its entries through `palette_entries()`."""

    def _entries(self) -> list[Entry]:
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
