"""The Train screen's status: phase, step / total, ETA; the latest loss, accuracy and margin; pairs/s, GPU
memory and backend; and a progress bar. One line each (a replay or a re-attached run says so on a line
of its own first), so nothing is cut at 80 columns.

`status_text()` is a pure function of the run state (and the clock), so tests assert on what it says.
"""

from __future__ import annotations

import time

from dpo_tutor.engine.events import TERMINAL_TYPES
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import ProgressBar

from ..run_state import RunState
from .status_line import StatusLine

PHASE_LABELS = {
    "loading_data": "loading data",
    "loading_model": "loading model",
    "compiling": "compiling kernels",
    "training": "training",
    "evaluating": "evaluating",
    "saving": "saving",
}

IDLE_TEXT = "No run yet: pick a preset, then ctrl+r starts it.\nctrl+o opens a run (the shipped recordings replay)."
# The latest value of each, from the last step event (TRL's names), as the CLI's progress line shows them.
METRIC_LABELS = (("loss", "loss", ".3f"), ("rewards/accuracies", "accuracy", ".2f"),
                 ("rewards/margins", "margin", ".3f"))


def duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def metrics_text(state: RunState) -> str:
    """`loss 0.412 | accuracy 0.81 | margin 0.930`: the latest step's values ("" before the first step)."""
    metrics = state.summary.last_metrics
    return " | ".join(f"{label} {metrics[key]:{spec}}" for key, label, spec in METRIC_LABELS
                      if isinstance(metrics.get(key), (int, float)))


def status_text(state: RunState | None, now: float | None = None) -> str:
    """A few lines saying what the run is doing: [replay or attached,] progress, metrics, speed and machine."""
    if state is None:
        return IDLE_TEXT
    now = time.time() if now is None else now
    summary = state.summary
    parts: list[str] = []
    head = ""
    if state.is_replay:
        speed = "at once" if state.replay_speed <= 0 else f"at {state.replay_speed:g}x"
        hw = summary.gpu_name or summary.device
        head = f"REPLAY of {state.name}" + (f" (recorded on {hw})" if hw else "") + f", {speed}"
        if state.ended:
            head += ", done"
    elif state.mode == "attached":
        head = f"attached to {state.name}"

    step_part = f"step {summary.step}/{summary.total_steps or '?'}"
    if summary.state in TERMINAL_TYPES or summary.state == "interrupted":
        parts.append(f"{summary.state.upper()} at {step_part}")
        if summary.state == "failed" and summary.failure:
            parts.append(str(summary.failure.get("message") or ""))
    elif summary.state == "new":
        waited = duration(now - state.launched)
        if state.is_replay:
            parts.append("this run's log has no events")
        elif state.mode == "attached":
            parts.append(f"waiting for the run's first event ({waited})")
        else:
            parts.append(f"starting the training process ({waited})")
    elif state.waiting_for_first_step:
        label = PHASE_LABELS.get(summary.phase, summary.phase or "starting")
        since = state.phase_since
        text = label
        if summary.phase_message:
            text += f": {summary.phase_message}"
        if since is not None and not state.is_replay:
            left = state.phase_eta_seconds()
            text += f" ({duration(now - since)}" + (f", ~{duration(left)} left)" if left is not None else ")")
        parts.append(text)
        if summary.backend == "unsloth" or summary.phase == "compiling":
            parts.append("no steps yet: Unsloth compiles its kernels for ~40 s before the first step")
        elif summary.phase == "training":
            parts.append("waiting for the first step (the first forward and backward pass)")
        else:
            parts.append("no steps yet: the first step comes once the data and model are loaded")
    else:
        phase = PHASE_LABELS.get(summary.phase, summary.phase)
        if summary.phase in ("training", "") or not summary.phase_message:
            parts.append(f"{phase} {step_part}")
        else:  # evaluating, saving, or loading again after a resume
            parts.append(f"{phase}: {summary.phase_message} | {step_part}")
        if summary.total_steps:
            parts.append(f"{100 * summary.step / summary.total_steps:.0f}%")
        eta = state.eta_seconds()
        if eta is not None and not state.ended and not state.is_replay:
            parts.append(f"ETA {duration(eta)}")
    lines = [head] if head else []
    lines.append(" | ".join(p for p in parts if p))
    if metrics_text(state):
        lines.append(metrics_text(state))
    parts = []
    metrics = summary.last_metrics
    if "pairs_per_s" in metrics:
        parts.append(f"{metrics['pairs_per_s']:.1f} pairs/s")
    per_gpu = metrics.get("gpu_mem_gib_per_device")  # --gpus N: one value per process, in rank order
    if isinstance(per_gpu, list) and len(per_gpu) > 1:
        parts.append(f"{len(per_gpu)} GPUs " + " / ".join(f"{x:.2f}" for x in per_gpu) + " GiB")
    elif "gpu_mem_gib" in metrics:
        mem = f"GPU {metrics['gpu_mem_gib']:.2f} GiB"
        if "gpu_mem_peak_gib" in metrics:
            mem += f" (peak {metrics['gpu_mem_peak_gib']:.2f})"
        parts.append(mem)
    if summary.backend:
        where = summary.gpu_name or summary.device
        parts.append(f"{summary.backend}" + (f" on {where}" if where else ""))
    if parts:
        lines.append(" | ".join(parts))
    return "\n".join(lines)


class TrainStatus(Vertical):
    """The status line and a progress bar; `show(state)` updates both."""

    DEFAULT_CSS = """
    TrainStatus { height: auto; padding: 0 1; background: $boost; }
    TrainStatus #status-line { height: 3; }
    TrainStatus.-replay #status-line { color: $warning; text-style: bold; }
    TrainStatus.-failed #status-line { color: $error; }
    TrainStatus Horizontal { height: 1; }
    TrainStatus ProgressBar { width: 1fr; }
    """

    def compose(self) -> ComposeResult:
        yield StatusLine(IDLE_TEXT, id="status-line")
        with Horizontal():
            yield ProgressBar(total=None, show_eta=False, id="status-progress")

    def fit_height(self, text: str) -> int:
        """As many rows as the text takes wrapped at this width, so no line is cut; the height (a layout)
        changes only when that count does, most updates stay a repaint."""
        line = self.query_one("#status-line", StatusLine)
        width = max(20, line.content_size.width or self.content_size.width or 78)
        rows = sum(max(1, -(-len(part) // width)) for part in text.splitlines())
        if line.styles.height is None or line.styles.height.value != rows:
            line.styles.height = rows
        return rows

    def on_resize(self) -> None:
        self.fit_height(self.query_one("#status-line", StatusLine)._text)

    def show(self, state: RunState | None) -> str:
        text = status_text(state)
        self.query_one("#status-line", StatusLine).show(text)
        self.set_class(bool(state and state.is_replay), "-replay")
        self.fit_height(text)
        self.set_class(bool(state and state.summary.state == "failed"), "-failed")
        bar = self.query_one(ProgressBar)
        if state is not None and state.waiting_for_first_step and state.summary.phase_progress:
            done, total = state.summary.phase_progress  # the reference pass, before any step
            bar.update(total=total, progress=done)
        elif state is not None and state.summary.total_steps:
            bar.update(total=state.summary.total_steps, progress=state.summary.step)
        else:
            bar.update(total=None)
        return text
