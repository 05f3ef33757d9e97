"""The entries of the command palette, gathered from each area.

Each function returns (title, help, callback) tuples. Areas add their own entries here.
"""

from __future__ import annotations

from typing import Callable

Entry = tuple[str, str, Callable[[], object]]


def _areas(app) -> list[Entry]:
    from .app import AREAS

    return [
        (f"go to {label}", f"switch to the {label} area", lambda name=name: app.switch_mode(name))
        for name, (_, _, label) in AREAS.items()
    ]


def palette_entries(app) -> list[Entry]:
    entries: list[Entry] = []
    entries += _areas(app)
    return entries
