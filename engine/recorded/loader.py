"""The real recorded runs shipped inside the package, for classrooms without a GPU.

A shipped run is a folder under this package holding at least `events.jsonl` (recorded on a GPU by our
own engine; its `run_started` event names the hardware) and usually `config.toml`. Nothing is shipped
until the lead records one: then `recorded_runs()` returns [] and the UI offers no replay of it.
"""

from __future__ import annotations

from pathlib import Path

from ..events import EVENTS_FILE

HERE = Path(__file__).resolve().parent


def recorded_runs(base: Path | None = None) -> list[Path]:
    """Shipped run folders (each with an events.jsonl), sorted by name; empty when none is shipped."""
    root = base or HERE
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / EVENTS_FILE).is_file())
