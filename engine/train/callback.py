"""The trainer callback that turns TRL's logs into the run's events, and obeys stop requests.

`on_log` receives TRL's metrics (loss, rewards/*, logps/*, learning_rate, grad_norm, epoch; eval ones
prefixed `eval_`) without a step number: the step is `state.global_step`. To each step it adds
pairs_per_s, tokens_per_s, tokens_seen, gpu_mem_gib and gpu_mem_peak_gib (this process), and on CUDA
gpu_mem_gib_per_device / gpu_mem_peak_gib_per_device (lists in rank order, gathered from every
process). Only the main process writes; with several processes a stop request on any of them stops
all of them at the same step.
"""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Callable
from typing import Any

from transformers import TrainerCallback

from ..events import sanitize_metrics
from .stop import StopRequest

RATE_WINDOW = 8  # logged steps that pairs/s and tokens/s are measured over


class EventCallback(TrainerCallback):
    def __init__(
        self,
        emit: Callable[..., Any],
        *,
        pairs_per_step: int,
        stop: StopRequest,
        skip_through_step: int = 0,
        inject_oom_at: int | None = None,
        compiling: str = "",
    ):
        self.emit = emit
        self.pairs_per_step = pairs_per_step
        self.stop = stop
        self.skip_through_step = skip_through_step
        self.inject_oom_at = inject_oom_at
        self.compiling = compiling
        self.total_steps = 0
        self.last_step = 0
        # (time, step, tokens) of the last RATE_WINDOW logged steps: pairs/s and tokens/s are taken over
        # them, since with recorded steps each log is written one step late and single gaps alternate
        # short and long (trainer.py)
        self._marks: collections.deque = collections.deque(maxlen=RATE_WINDOW + 1)
        self.first_step_time: float | None = None
        self.first_step_at: float | None = None  # wall clock, to measure from process start
        self.train_begin: float | None = None
        self.history: list[dict[str, float]] = []
        self.evals: list[dict[str, float]] = []
        self.checkpoints: list[str] = []

    # ---- lifecycle -----------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, **kwargs):
        self.total_steps = int(state.max_steps or 0)
        self.train_begin = time.perf_counter()
        self._marks.clear()
        self._marks.append((self.train_begin, int(state.global_step), None))
        if not state.is_world_process_zero:
            return
        start = int(state.global_step)
        where = f" from step {start}" if start else ""
        if self.compiling:
            self.emit("phase", phase="compiling", message=self.compiling, total_steps=self.total_steps)
        else:
            self.emit("phase", phase="training", message=f"{self.total_steps} steps{where}",
                      total_steps=self.total_steps)

    def on_step_begin(self, args, state, control, **kwargs):
        if self.inject_oom_at and state.global_step + 1 == self.inject_oom_at:
            raise make_oom_error(self.inject_oom_at)

    def on_step_end(self, args, state, control, **kwargs):
        self.last_step = int(state.global_step)
        if args.world_size > 1 and any_process(self.stop.requested, args.device) and not self.stop.requested:
            self.stop.request("stop requested on another process")  # every process stops at this step
        if self.stop.requested:
            control.should_save = True
            control.should_training_stop = True
        return control

    def on_save(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        path = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        self.checkpoints.append(path)
        self.emit("checkpoint", step=int(state.global_step), path=path)

    # ---- metrics -------------------------------------------------------------------------------
    def on_log(self, args, state, control, logs=None, **kwargs):
        per_device = None
        if logs and "loss" in logs and not any(key.startswith("eval_") for key in logs):
            per_device = gpu_memory_per_device(args.device, args.world_size)  # every process takes part
        if not state.is_world_process_zero or not logs:
            return
        step = int(state.global_step)
        if any(key.startswith("eval_") for key in logs):
            metrics = sanitize_metrics({k: v for k, v in logs.items() if k.startswith("eval_") or k == "epoch"})
            self.evals.append({"step": step, **metrics})
            if step > self.skip_through_step or not self.history:
                self.emit("eval", step=step, metrics=metrics)
            tokens = self._marks[-1][2] if self._marks else None
            self._marks.clear()  # the evaluation's time is not training time
            self._marks.append((time.perf_counter(), step, tokens))
            return
        if "loss" not in logs:  # the end-of-training summary (train_runtime, train_loss, ...)
            return
        now = time.perf_counter()
        metrics = sanitize_metrics(logs)
        since, since_step, since_tokens = self._marks[0] if self._marks else (now, step - 1, None)
        steps_done = max(1, step - since_step)
        elapsed = max(1e-9, now - since)
        metrics["pairs_per_s"] = steps_done * self.pairs_per_step / elapsed
        tokens = metrics.pop("num_tokens", None)
        if tokens is not None:
            delta = tokens - since_tokens if since_tokens is not None and tokens >= since_tokens else tokens
            metrics["tokens_per_s"] = delta / elapsed
            metrics["tokens_seen"] = tokens  # running count: rates over any steps
        metrics.update(gpu_memory())
        if per_device is not None:
            metrics["gpu_mem_gib_per_device"], metrics["gpu_mem_peak_gib_per_device"] = per_device
        self._marks.append((now, step, tokens))
        if self.first_step_time is None and self.train_begin is not None:
            self.first_step_time = now - self.train_begin
            self.first_step_at = time.time()
            if self.compiling:
                self.emit("phase", phase="training", message=f"{self.total_steps} steps",
                          total_steps=self.total_steps)
        self.history.append({"step": step, **metrics})
        if step <= self.skip_through_step:
            return  # already in the log from before the resume: the curve does not repeat steps
        self.emit(
            "step",
            step=step,
            total_steps=self.total_steps,
            epoch=float(logs.get("epoch", 0.0) or 0.0),
            metrics=metrics,
        )


def make_oom_error(step: int) -> BaseException:
    """A real `torch.OutOfMemoryError` (what CUDA raises), for the injected fault (the
    inject_oom_at_step switch)."""
    import torch

    return torch.OutOfMemoryError(
        f"CUDA out of memory (injected at step {step} by the inject_oom_at_step switch). Tried to allocate 2.00 GiB."
    )


def any_process(flag: bool, device) -> bool:
    """Whether `flag` is set on any process (a collective: every process must call it at the same point)."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flag
    value = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def gpu_memory_per_device(device, world: int) -> tuple[list[float], list[float]] | None:
    """(allocated, peak) GiB of each process's GPU, in rank order; None when training on CPU.

    With several processes it is a collective: every process must call it at the same point.
    """
    import torch

    if getattr(device, "type", str(device)) != "cuda":
        return None
    gib = 1024**3
    values = [torch.cuda.memory_allocated(device) / gib, torch.cuda.max_memory_allocated(device) / gib]
    import torch.distributed as dist

    if world <= 1 or not (dist.is_available() and dist.is_initialized()):
        # the allocator's counters are on the host: no tensor on the GPU, so no wait for it
        return [round(values[0], 4)], [round(values[1], 4)]
    mine = torch.tensor(values, device=device, dtype=torch.float64)
    rows = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(rows, mine)
    return [round(float(r[0]), 4) for r in rows], [round(float(r[1]), 4) for r in rows]


def gpu_memory() -> dict[str, float]:
    """Allocated and peak CUDA memory of this process in GiB; nothing on CPU."""
    import torch

    if not torch.cuda.is_available():
        return {}
    gib = 1024**3
    return {
        "gpu_mem_gib": torch.cuda.memory_allocated() / gib,
        "gpu_mem_peak_gib": torch.cuda.max_memory_allocated() / gib,
    }
