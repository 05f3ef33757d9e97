"""What the App is handed: settings and engine objects, so tests can pass their own."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def default_runs_dir() -> Path:
    return Path(os.environ.get("DPO_TUTOR_RUNS_DIR", "runs"))


@dataclass
class AppContext:
    runs_dir: Path = field(default_factory=default_runs_dir)
    walkthrough: bool = False
    lesson: str | None = None
    # The command a Train screen runs as its subprocess; tests may point it elsewhere.
    train_command: tuple[str, ...] = ()
