"""Where a training step's time goes, by operator: steps FIRST..FIRST+COUNT-1 run under torch.profiler and
FILE gets the operator tables (by device time and by host time). A TrainerCallback that benchmarks hand
to the run (`measured_train.py --profile FIRST:COUNT:FILE`); the product never imports it.
"""

from __future__ import annotations

from transformers import TrainerCallback


def from_spec(spec: str) -> ProfileCallback:
    """The callback for `FIRST:COUNT:FILE`."""
    first, count, path = spec.split(":", 2)
    return ProfileCallback(int(first), int(count), path)


class ProfileCallback(TrainerCallback):
    def __init__(self, first: int, count: int, path: str):
        self.first, self.count, self.path = first, count, path
        self.profiler = None
        self.started_at = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step + 1 == self.first and self.profiler is None:
            import time

            import torch
            from torch.profiler import ProfilerActivity, profile

            activities = [ProfilerActivity.CPU]
            if torch.cuda.is_available():
                activities.append(ProfilerActivity.CUDA)
                torch.cuda.synchronize()
            self.profiler = profile(activities=activities)
            self.profiler.__enter__()
            self.started_at = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self.profiler is None or state.global_step + 1 < self.first + self.count:
            return
        import time

        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()
        wall = time.perf_counter() - self.started_at
        self.profiler.__exit__(None, None, None)
        averages = self.profiler.key_averages()
        device_key = "self_device_time_total" if torch.cuda.is_available() else "self_cpu_time_total"
        with open(self.path, "w", encoding="utf-8") as f:
            # The GPU's busy time is the table's footer, "Self CUDA time total" (kernels counted once).
            f.write(f"steps {self.first}..{self.first + self.count - 1}: wall {wall:.3f} s\n\n")
            f.write(averages.table(sort_by=device_key, row_limit=40, max_name_column_width=70))
            f.write("\n\n")
            f.write(averages.table(sort_by="self_cpu_time_total", row_limit=40, max_name_column_width=70))
        self.profiler = None
        self.first = -1
