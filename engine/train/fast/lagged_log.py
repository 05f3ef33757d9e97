"""Recorded steps' logs, one step late: a mixin for the trainer class (trainer.py).

With logging_steps=1 the Trainer reads each step's loss and gradient norm (`.item()`) right after
launching its optimizer step: the host waits for the GPU to finish, and the GPU then waits while the host
logs, fetches and collates the next batch and launches it. Here the values are copied to the host asynchronously and written at the
next step's log, once that step is queued: the GPU always has a step to run. The same values, the same
step numbers. Only while steps are replayed as CUDA graphs (`step_graphs`), whose statistics stay on the
GPU until read; TRL's eager step reads its own at once anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import graphed_step


@dataclass
class _LaggedLog:
    """One step's log on its way to the host: its values copied asynchronously, an event that marks
    when they are there, and what the Trainer would have logged with them at that step."""

    step: int
    epoch: float | None
    steps: int  # optimizer steps the loss sum covers (1 with logging_steps=1)
    values: Any  # [loss sum, grad norm?, statistics of each micro-step...] on the host once `ready`
    ready: Any  # torch.cuda.Event, or None (values already on the host)
    has_norm: bool
    grad_norm: Any  # a float norm (or None) when it was not a tensor
    micro_steps: int
    learning_rate: float
    start_time: float | None
    recordings: int  # shapes recorded so far, at this step


class LaggedLogs:
    """Overrides of transformers' Trainer for lagged logs; expects `step_graphs`, `pending_stats` and
    `options.log_lag` (off: a recorded step's values are read at its own step, a wait for the GPU)."""

    _lagged: _LaggedLog | None = None

    def _maybe_log_save_evaluate(self, tr_loss, grad_norm, model, trial, epoch, ignore_keys_for_eval,
                                 start_time, learning_rate=None):
        lag = self.step_graphs is not None and self.options.log_lag
        if lag and self.control.should_log and self.state.global_step > self._globalstep_last_logged:
            previous = self._lagged
            self._lagged = self._capture_log(tr_loss, grad_norm, start_time, learning_rate)
            self.control.should_log = False  # logged (as the callback handler's on_log would say)
            if previous is not None:
                self._write_log(previous)
        control = self.control
        if self._lagged is not None and (
            not lag or control.should_evaluate or control.should_save or control.should_training_stop
            or self.state.global_step <= 1 or self.state.global_step >= self.state.max_steps
        ):
            self._flush_log()  # the first and last steps, and before an evaluation, a save or a stop
        return super()._maybe_log_save_evaluate(tr_loss, grad_norm, model, trial, epoch, ignore_keys_for_eval,
                                                start_time, learning_rate=learning_rate)

    def _capture_log(self, tr_loss, grad_norm, start_time, learning_rate) -> _LaggedLog:
        import torch

        parts = [tr_loss.detach().reshape(1).float()]
        has_norm = isinstance(grad_norm, torch.Tensor)
        if has_norm:
            parts.append(grad_norm.detach().reshape(1).float())
        stats, self.pending_stats = self.pending_stats or [], None
        if stats:
            parts.append(torch.stack(stats).reshape(-1).float())
        values = torch.cat(parts)
        tr_loss -= tr_loss  # queued after the copy above: the next steps' losses add from zero
        ready = None
        if values.is_cuda:
            host = torch.empty(values.shape, dtype=values.dtype, pin_memory=True)
            host.copy_(values, non_blocking=True)
            ready = torch.cuda.Event()
            ready.record()
            values = host
        entry = _LaggedLog(
            step=int(self.state.global_step), epoch=self.state.epoch,
            steps=int(self.state.global_step - self._globalstep_last_logged), values=values, ready=ready,
            has_norm=has_norm, grad_norm=None if has_norm else grad_norm, micro_steps=len(stats),
            learning_rate=learning_rate if learning_rate is not None else self._get_learning_rate(),
            start_time=start_time, recordings=self.step_graphs.recordings["step"] if self.step_graphs else 0,
        )
        self._globalstep_last_logged = self.state.global_step
        self.store_flos()
        return entry

    def _write_log(self, entry: _LaggedLog) -> None:
        if entry.ready is not None:
            entry.ready.synchronize()  # the GPU is past that step (the next one is queued behind it)
        values = entry.values.tolist()
        loss_sum, rest = values[0], values[1:]
        logs = {"loss": loss_sum / max(1, entry.steps)}
        if entry.has_norm:
            logs["grad_norm"], rest = rest[0], rest[1:]
        elif entry.grad_norm is not None:
            logs["grad_norm"] = entry.grad_norm
        logs["learning_rate"] = entry.learning_rate
        self._total_loss_scalar += loss_sum
        width = len(graphed_step.STATS)
        for i in range(entry.micro_steps):
            graphed_step.record_metrics(self, rest[i * width:(i + 1) * width])
        logs["cuda_graph_recordings"] = entry.recordings
        # The callbacks read the step from the state: it is this entry's, for the time of the log.
        state = self.state
        step, epoch = state.global_step, state.epoch
        state.global_step, state.epoch = entry.step, entry.epoch
        try:
            self.log(logs, entry.start_time)
        finally:
            state.global_step, state.epoch = step, epoch

    def _flush_log(self) -> None:
        entry, self._lagged = self._lagged, None
        if entry is not None:
            self._write_log(entry)

    def train(self, *args, **kwargs):
        try:
            return super().train(*args, **kwargs)
        finally:
            if self._lagged is not None:
                try:
                    self._flush_log()  # e.g. the step before an out-of-memory error
                except Exception:  # noqa: BLE001 - the error that ended training is the one to report
                    self._lagged = None
