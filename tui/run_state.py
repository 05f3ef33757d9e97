"""What the UI knows about the run it shows, folded from the run's events and its log lines; no Textual
inside, so the Train screen's numbers are testable without a terminal."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dpo_tutor.engine.events import RunSummary
from dpo_tutor.engine.runs import LOG_FILE

from .metrics_store import MetricsStore

REFUSAL_PREFIX = "dpo-tutor train: "  # how the engine's CLI prints the one line of a refused start
LOG_LINES = 2000


@dataclass
class RunState:
    """What the UI knows about the run it shows; folded from events, no Textual inside."""

    path: Path
    mode: str = "live"  # live (started here) | attached (a running run) | replay
    replay_speed: float = 0.0
    summary: RunSummary = field(default_factory=RunSummary)
    store: MetricsStore = field(default_factory=MetricsStore)
    log: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    log_count: int = 0  # lines ever added (the deque keeps the last LOG_LINES)
    events_seen: int = 0
    phase_since: float | None = None  # when the current phase began (event time)
    progress_since: float | None = None  # when the phase's counted work (done/total) began, at done == 0
    progress_at: float | None = None  # the time of its latest report
    step_times: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=30))
    launched: float = field(default_factory=time.time)
    ended: bool = False
    exit_code: int | None = None
    resumed_from: int | None = None
    config: dict[str, Any] = field(default_factory=dict)
    host: str | None = None  # where the process runs (from run_started)

    @property
    def is_replay(self) -> bool:
        return self.mode == "replay"

    @property
    def name(self) -> str:
        return self.path.name

    def apply(self, event: dict[str, Any]) -> None:
        self.events_seen += 1
        previous_phase = self.summary.phase
        self.summary.apply(event)
        self.store.apply(event)
        kind = event.get("type")
        when = event.get("time")
        if kind == "run_started":
            self.config = dict(event.get("config") or {})
            self.host = event.get("host")
            self.phase_since = when
            self.step_times.clear()
            if event.get("resumed_from") is not None:
                self.resumed_from = int(event["resumed_from"])
        elif kind == "phase":
            if event.get("phase") != previous_phase or self.phase_since is None:
                self.phase_since = when
            progress = self.summary.phase_progress
            if progress is None:
                self.progress_since = self.progress_at = None
            else:
                if progress[0] == 0 or self.progress_since is None:
                    self.progress_since = when
                self.progress_at = when
            if event.get("total_steps"):
                self.summary.total_steps = int(event["total_steps"])
        elif kind == "step" and isinstance(when, (int, float)):
            self.step_times.append((float(when), int(event.get("step", 0))))

    def add_log(self, lines: list[str]) -> None:
        self.log.extend(lines)
        self.log_count += len(lines)

    def new_log_lines(self, seen: int) -> list[str]:
        """Lines added after the first `seen` ones (as many as are still kept)."""
        fresh = min(self.log_count - seen, len(self.log))
        return list(self.log)[len(self.log) - fresh :] if fresh > 0 else []

    @property
    def waiting_for_first_step(self) -> bool:
        return self.summary.state in ("new", "running") and self.store.steps_logged() == 0

    def steps_per_second(self) -> float | None:
        """Optimizer steps per second over the last logged steps (None until two steps are known)."""
        if len(self.step_times) < 2:
            return None
        (t0, s0), (t1, s1) = self.step_times[0], self.step_times[-1]
        if t1 <= t0 or s1 <= s0:
            return None
        return (s1 - s0) / (t1 - t0)

    def phase_eta_seconds(self) -> float | None:
        """Seconds left of the phase's counted work (the reference pass), at the pace it has had."""
        progress = self.summary.phase_progress
        if progress is None or self.progress_since is None or self.progress_at is None:
            return None
        done, total = progress
        spent = self.progress_at - self.progress_since
        if done <= 0 or done >= total or spent <= 0:
            return None
        return spent * (total - done) / done

    def eta_seconds(self) -> float | None:
        rate = self.steps_per_second()
        total, step = self.summary.total_steps, self.summary.step
        if rate is None or not total:
            return None
        return max(0.0, (total - step) / rate)

    def mark_crashed(self, code: int | None) -> None:
        """The process ended without a final event: the engine refused to start (exit 2, with its one
        line in the log: bad data, bad settings, a refused model) or it crashed."""
        self.summary.state = "failed"
        refusal = self.refusal() if code == 2 else None
        if refusal is not None:
            self.summary.failure = {"kind": "refused", "message": refusal, "remedies": []}
            return
        self.summary.failure = {
            "kind": "crashed",
            "message": f"the training process exited with code {code} without a final event",
            "remedies": [f"read the log pane or {self.path / LOG_FILE}"],
        }


    def refusal(self) -> str | None:
        """The engine's one-line refusal (`dpo-tutor train: ...`) among the process's output, if any."""
        for line in reversed(self.log):
            if line.startswith(REFUSAL_PREFIX) and not line.startswith(f"{REFUSAL_PREFIX}warning:"):
                return line[len(REFUSAL_PREFIX):]
        return None


class TextTail:
    """Complete new lines of a growing text file (the process's stderr)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._rest = b""

    def poll(self) -> list[str]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read(1 << 20)
        except FileNotFoundError:
            return []
        if not chunk:
            return []
        self._offset += len(chunk)
        *lines, self._rest = (self._rest + chunk).split(b"\n")
        # A progress bar redraws its line with carriage returns: keep what a terminal would show.
        shown = (line.rstrip(b"\r").rsplit(b"\r", 1)[-1] for line in lines)
        return [line.decode("utf-8", errors="replace") for line in shown if line.strip()]
