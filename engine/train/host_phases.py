"""A developer's view of where the host's time goes in each training step: set
DPO_TUTOR_HOST_PHASES=FILE and the Trainer's per-step calls are timed with the wall clock (no GPU
synchronisation added); FILE gets a table of each phase's median milliseconds per optimizer step.

Why ours: torch.profiler shows operators, not the Trainer's own Python (fetching and collating the
next batch, the log that waits for the GPU, the callbacks). With recorded CUDA graphs the GPU's work
per step is known (the profile's device total); this says what the host does around it and which
phase waits for the GPU (the one that reads a device value: the log). Off unless the variable is set.
"""

from __future__ import annotations

import functools
import os
import statistics
import time
from collections import defaultdict

ENV = "DPO_TUTOR_HOST_PHASES"


class HostPhases:
    """Times named methods for the life of the process; `write()` makes the table."""

    def __init__(self, path: str):
        self.path = path
        self.current: dict[str, float] = defaultdict(float)
        self.steps: list[dict[str, float]] = []
        self.last_end: float | None = None
        self.depth = 0  # only the outermost timed call counts (a phase may call another)

    def wrap(self, owner: type, name: str, label: str) -> None:
        original = getattr(owner, name)
        phases = self

        @functools.wraps(original)
        def timed(*args, **kwargs):
            if phases.depth:
                return original(*args, **kwargs)
            phases.depth += 1
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                phases.current[label] += time.perf_counter() - started
                phases.depth -= 1

        setattr(owner, name, timed)

    def step_end(self) -> None:
        now = time.perf_counter()
        if self.last_end is not None:
            self.current["(whole step)"] = now - self.last_end
            self.steps.append(dict(self.current))
        self.current = defaultdict(float)
        self.last_end = now

    def table(self, skip: int = 2) -> str:
        steps = self.steps[skip:]
        if not steps:
            return "no steps timed\n"
        labels = sorted({k for s in steps for k in s}, key=lambda k: (k == "(whole step)", k))
        lines = [f"host phases, median ms per optimizer step over {len(steps)} steps (steps 1-{skip + 1} left out)",
                 "| phase | median ms | mean ms |", "|---|---:|---:|"]
        for label in labels:
            values = [s.get(label, 0.0) * 1000 for s in steps]
            lines.append(f"| {label} | {statistics.median(values):.1f} | {statistics.fmean(values):.1f} |")
        whole = [s["(whole step)"] for s in steps]
        timed = [sum(v for k, v in s.items() if k != "(whole step)") for s in steps]
        untimed = [(w - t) * 1000 for w, t in zip(whole, timed, strict=True)]
        lines.append(f"| (not in a timed phase) | {statistics.median(untimed):.1f} | {statistics.fmean(untimed):.1f} |")
        return "\n".join(lines) + "\n"

    def write(self) -> None:
        with open(self.path, "w", encoding="utf-8") as f:
            f.write(self.table())


def install_from_env(trainer_cls: type):
    """Wrap the Trainer's per-step calls when DPO_TUTOR_HOST_PHASES is set; return the callback that
    marks each step's end and writes the table at the end of training (None when the variable is unset)."""
    path = os.environ.get(ENV, "")
    if not path:
        return None
    from accelerate import Accelerator
    from accelerate.optimizer import AcceleratedOptimizer
    from transformers import TrainerCallback
    from transformers.trainer_callback import CallbackHandler

    phases = HostPhases(path)
    phases.wrap(trainer_cls, "get_batch_samples", "next batch (fetch + collate)")
    phases.wrap(trainer_cls, "training_step", "training_step (inputs to GPU, forward/backward or replay)")
    phases.wrap(Accelerator, "clip_grad_norm_", "clip_grad_norm_")
    phases.wrap(AcceleratedOptimizer, "step", "optimizer.step")
    phases.wrap(AcceleratedOptimizer, "zero_grad", "zero_grad")
    phases.wrap(trainer_cls, "_maybe_log_save_evaluate", "log (reads the step's values: waits for the GPU)")
    phases.wrap(CallbackHandler, "on_step_begin", "callbacks: step begin")

    class StepMarks(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            phases.step_end()

        def on_train_end(self, args, state, control, **kwargs):
            phases.write()

    return StepMarks()


SYNC_ENV = "DPO_TUTOR_SYNC_DEBUG"  # FILE: where the host waited for the GPU during steps 6-9, by call stack


def sync_debug_from_env():
    """A developer's view of which calls make the host wait for the GPU: with DPO_TUTOR_SYNC_DEBUG=FILE,
    torch's synchronisation warnings are on for steps 6-9 (after the first recordings) and each distinct
    call stack that waited is written to FILE with its count. None when the variable is unset."""
    path = os.environ.get(SYNC_ENV, "")
    if not path:
        return None
    import traceback
    import warnings
    from collections import Counter

    import torch
    from transformers import TrainerCallback

    stacks: Counter[str] = Counter()
    previous = warnings.showwarning

    def note(message, category, filename, lineno, file=None, line=None):
        if "called a synchronizing" not in str(message):  # torch's warning (not its notice about the mode)
            return previous(message, category, filename, lineno, file, line)
        frames = [f for f in traceback.extract_stack()[:-1] if "warnings" not in f.filename][-10:]
        stacks[f"{message}\n" + "".join(traceback.format_list(frames))] += 1

    class SyncDebug(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if not torch.cuda.is_available():
                return
            if state.global_step == 5:
                warnings.filterwarnings("always", message=".*called a synchronizing.*")
                warnings.showwarning = note
                torch.cuda.set_sync_debug_mode("warn")
            elif state.global_step == 9:
                torch.cuda.set_sync_debug_mode("default")
                warnings.showwarning = previous

        def on_train_end(self, args, state, control, **kwargs):
            if torch.cuda.is_available():
                torch.cuda.set_sync_debug_mode("default")
            warnings.showwarning = previous
            with open(path, "w", encoding="utf-8") as f:
                f.write(f"host waits for the GPU in steps 6-9: {sum(stacks.values())} calls, {len(stacks)} stacks\n")
                for stack, count in stacks.most_common():
                    f.write(f"\n=== {count} x {stack}")

    return SyncDebug()
