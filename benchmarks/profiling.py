"""Where a training step's time goes, by operator: steps FIRST..FIRST+COUNT-1 run under torch.profiler and
FILE gets the GPU's time by kernel family, then the operator tables (by device time and by host time). A
TrainerCallback that benchmarks hand to the run (`measured_train.py --profile FIRST:COUNT:FILE`); the
product never imports it.
"""

from __future__ import annotations

import re

from transformers import TrainerCallback

# Kernel families, first match wins: names as cuBLAS, PyTorch, Triton and the attention libraries give
# them on Hopper (a replayed CUDA graph's kernels are listed one by one, as launched ones are).
FAMILIES = (
    ("attention", re.compile(r"fmha|flash|attention|cudnn", re.I)),
    ("matmul (cuBLAS, CUTLASS)", re.compile(r"gemm|nvjet|cutlass|xmma|cublas|splitK", re.I)),
    ("Triton (TRL's log-prob kernel, compiled layers)", re.compile(r"^triton|triton_", re.I)),
    ("optimizer and gradient norm (foreach)", re.compile(r"multi_tensor_apply|foreach", re.I)),
    ("reductions and softmax", re.compile(r"reduce_kernel|softmax|norm_kernel|cunn_", re.I)),
    # PyTorch casts are copy kernels; "gpu_kernel_impl_nocast" in an elementwise kernel's name is not one
    ("copies, casts and fills", re.compile(r"copy|CatArray|memcpy|memset|FillFunctor|index", re.I)),
    ("elementwise", re.compile(r"elementwise|vectorized|unrolled", re.I)),
)


def kernel_families(kernels: list[tuple[str, float, int]]) -> list[tuple[str, float, int]]:
    """(family, device ms, kernel launches) for (kernel name, device ms, calls) rows, largest first."""
    totals: dict[str, list[float]] = {}
    for name, ms, calls in kernels:
        family = next((label for label, pattern in FAMILIES if pattern.search(name)), "other")
        entry = totals.setdefault(family, [0.0, 0])
        entry[0] += ms
        entry[1] += calls
    return sorted(((f, ms, int(n)) for f, (ms, n) in totals.items()), key=lambda row: -row[1])


def families_table(kernels: list[tuple[str, float, int]], steps: int) -> str:
    """The GPU's time per step by kernel family, as a Markdown table."""
    rows = kernel_families(kernels)
    total = sum(ms for _, ms, _ in rows) or 1.0
    lines = ["| kernel family | GPU ms a step | share | kernels a step |", "|---|---:|---:|---:|"]
    lines += [f"| {f} | {ms / steps:.1f} | {ms / total:.0%} | {n / steps:.0f} |" for f, ms, n in rows]
    lines.append(f"| all | {total / steps:.1f} | 100% | {sum(n for *_, n in rows) / steps:.0f} |")
    return "\n".join(lines)


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
            if torch.cuda.is_available():
                # the kernels themselves (device events), not the operators that launched them
                kernels = [(a.key, a.self_device_time_total / 1000, a.count) for a in averages
                           if str(a.device_type).endswith("CUDA") and a.self_device_time_total > 0]
                f.write(families_table(kernels, self.count) + "\n\n")
            f.write(averages.table(sort_by=device_key, row_limit=40, max_name_column_width=70))
            f.write("\n\n")
            f.write(averages.table(sort_by="self_cpu_time_total", row_limit=40, max_name_column_width=70))
        self.profiler = None
        self.first = -1
