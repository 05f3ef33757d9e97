"""Where the host's time goes in each training step: the Trainer's per-step calls timed with the wall clock
(no GPU synchronisation added); FILE gets a table of each phase's median milliseconds per optimizer step.
And which calls make the host wait for the GPU (`SyncDebugCallback`).

Why ours: torch.profiler shows operators, not the Trainer's own Python (fetching and collating the
next batch, the log that waits for the GPU, the callbacks). With recorded CUDA graphs the GPU's work
per step is known (the profile's device total); this says what the host does around it and which
phase waits for the GPU (the one that reads a device value: the log). Benchmarks hand these callbacks
to the run (`measured_train.py --host-phases FILE --sync-debug FILE`); the product never imports them.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections import defaultdict

from transformers import TrainerCallback


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


class HostPhaseCallback(TrainerCallback):
    """Times the trainer's per-step calls once attached (`attach(trainer)`, which the run calls when it
    is handed this callback); marks each step's end and writes the table at the end of training."""

    def __init__(self, path: str):
        self.phases = HostPhases(path)

    def attach(self, trainer) -> None:
        from accelerate import Accelerator
        from accelerate.optimizer import AcceleratedOptimizer
        from transformers.trainer_callback import CallbackHandler

        phases = self.phases
        phases.wrap(trainer, "get_batch_samples", "next batch (fetch + collate)")
        phases.wrap(trainer, "training_step", "training_step (inputs to GPU, forward/backward or replay)")
        phases.wrap(Accelerator, "clip_grad_norm_", "clip_grad_norm_")
        phases.wrap(AcceleratedOptimizer, "step", "optimizer.step")
        phases.wrap(AcceleratedOptimizer, "zero_grad", "zero_grad")
        phases.wrap(trainer, "_maybe_log_save_evaluate", "log (reads the step's values: waits for the GPU)")
        phases.wrap(CallbackHandler, "on_step_begin", "callbacks: step begin")

    def on_step_end(self, args, state, control, **kwargs):
        self.phases.step_end()

    def on_train_end(self, args, state, control, **kwargs):
        self.phases.write()


class SyncDebugCallback(TrainerCallback):
    """Which calls make the host wait for the GPU: torch's synchronisation warnings are on for steps 6-9
    (after the first recordings) and each distinct call stack that waited is written to FILE with its
    count."""

    def __init__(self, path: str):
        import warnings
        from collections import Counter

        self.path = path
        self.stacks: Counter[str] = Counter()
        self.previous = warnings.showwarning

    def _note(self, message, category, filename, lineno, file=None, line=None):
        import traceback

        if "called a synchronizing" not in str(message):  # torch's warning (not its notice about the mode)
            return self.previous(message, category, filename, lineno, file, line)
        frames = [f for f in traceback.extract_stack()[:-1] if "warnings" not in f.filename][-10:]
        self.stacks[f"{message}\n" + "".join(traceback.format_list(frames))] += 1

    def on_step_begin(self, args, state, control, **kwargs):
        import warnings

        import torch

        if not torch.cuda.is_available():
            return
        if state.global_step == 5:
            warnings.filterwarnings("always", message=".*called a synchronizing.*")
            warnings.showwarning = self._note
            torch.cuda.set_sync_debug_mode("warn")
        elif state.global_step == 9:
            torch.cuda.set_sync_debug_mode("default")
            warnings.showwarning = self.previous

    def on_train_end(self, args, state, control, **kwargs):
        import warnings

        import torch

        if torch.cuda.is_available():
            torch.cuda.set_sync_debug_mode("default")
        warnings.showwarning = self.previous
        with open(self.path, "w", encoding="utf-8") as f:
            f.write(f"host waits for the GPU in steps 6-9: {sum(self.stacks.values())} calls, {len(self.stacks)} stacks\n")
            for stack, count in self.stacks.most_common():
                f.write(f"\n=== {count} x {stack}")
