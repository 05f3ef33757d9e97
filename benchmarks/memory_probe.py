"""Where a run's live GPU memory was allocated: the CUDA allocator's history recorded from the first step,
and at the steps asked for (and at the end) a table of the live blocks grouped by the Python line that
allocated them.

Why: with compiled layers inside the recorded steps the memory a run holds grows with each recorded
shape (issue 23); the run's events give the totals, this gives the lines. Attach with
`measured_train.py --memory-probe STEPS:FILE`. Recording the history slows each allocation: never read
rates off a probed run.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

OWN_CODE = ("dpo_tutor", "/engine/", "/trl/", "/peft/", "/transformers/")  # frames worth naming, first match wins
MIB = 1024 * 1024


def live_blocks_by_site(snapshot: dict[str, Any], depth: int = 3) -> list[tuple[str, int, int]]:
    """(allocation site, blocks, bytes) of the snapshot's live blocks, largest first. A site is the first
    `depth` frames of the allocating stack that lie in our code, TRL, PEFT or transformers (else the
    innermost frames), innermost first; "(no history)" for blocks allocated before the recording began."""
    sizes: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for segment in snapshot.get("segments", []):
        for block in segment.get("blocks", []):
            if block.get("state") != "active_allocated":
                continue
            frames = block.get("frames") or []
            named = [f for f in frames if any(part in f.get("filename", "") for part in OWN_CODE)] or frames
            site = " < ".join(f"{Path(f['filename']).name}:{f['line']} {f.get('name', '')}".strip()
                              for f in named[:depth]) or "(no history)"
            sizes[site][0] += 1
            sizes[site][1] += int(block.get("size", 0))
    return sorted(((site, n, size) for site, (n, size) in sizes.items()), key=lambda row: -row[2])


def format_sites(rows: list[tuple[str, int, int]], title: str, limit: int = 25) -> str:
    """A Markdown table of `live_blocks_by_site` rows under a title line."""
    total = sum(size for _, _, size in rows)
    lines = [f"## {title}: {total / MIB:,.1f} MiB live in {sum(n for _, n, _ in rows)} blocks", "",
             "| MiB | blocks | allocated at (innermost first) |", "|---:|---:|---|"]
    lines += [f"| {size / MIB:,.1f} | {n} | {site} |" for site, n, size in rows[:limit]]
    return "\n".join(lines) + "\n\n"


class MemoryProbeCallback(TrainerCallback):
    """Records the allocator's history from the start of training; writes `format_sites` tables at the
    given steps and at the end of training to `path`. Does nothing without a CUDA GPU."""

    def __init__(self, path: str | Path, steps: tuple[int, ...] = ()):
        self.path = Path(path)
        self.steps = set(steps)
        self.on = False

    def on_train_begin(self, args, state, control, **kwargs):
        import torch

        if not torch.cuda.is_available():
            return
        self.path.write_text("")
        torch.cuda.memory._record_memory_history(max_entries=1_000_000, stacks="python")
        self.on = True

    def _write(self, title: str) -> None:
        import torch

        allocated = torch.cuda.memory_allocated() / MIB
        peak = torch.cuda.max_memory_allocated() / MIB
        rows = live_blocks_by_site(torch.cuda.memory._snapshot())
        with self.path.open("a") as out:
            out.write(format_sites(rows, f"{title} (memory_allocated {allocated:,.1f} MiB, peak {peak:,.1f} MiB)"))

    def on_step_end(self, args, state, control, **kwargs):
        if self.on and state.global_step in self.steps:
            self._write(f"after step {state.global_step}")

    def on_train_end(self, args, state, control, **kwargs):
        if self.on:
            self._write(f"end of training, step {state.global_step}")


def from_spec(spec: str) -> MemoryProbeCallback:
    """`STEPS:FILE`, STEPS comma-separated (e.g. `1,2,12:/tmp/memory.md`), or just `FILE`."""
    steps, sep, path = spec.partition(":")
    if not sep:
        return MemoryProbeCallback(spec)
    return MemoryProbeCallback(path, tuple(int(s) for s in steps.split(",") if s.strip()))
