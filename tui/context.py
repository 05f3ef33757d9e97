"""What the App is handed: settings and engine objects, so tests can pass their own."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dpo_tutor.engine.runs import default_runs_dir


@dataclass
class AppContext:
    runs_dir: Path = field(default_factory=default_runs_dir)
    walkthrough: bool = False
    lesson: str | None = None
    # The command a Train screen runs as its subprocess; tests may point it elsewhere.
    train_command: tuple[str, ...] = ()
    # Whether this machine shows a GPU (None: look, once, without importing torch); picks the Train
    # form's first preset and whether it warns about CPU training times.
    gpu: bool | None = None
    # Look for runs still training (started before the app opened) and re-attach to one; the CLI's
    # factory sets it, tests that build an AppContext leave it off.
    reattach: bool = False

    def has_gpu(self) -> bool:
        if self.gpu is None:
            from dpo_tutor.engine.train.machine import gpu_visible

            self.gpu = gpu_visible()
        return self.gpu
