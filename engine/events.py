"""The run's event log: `events.jsonl`, append-only, one JSON object per line.

The training process writes it (`EventWriter`), flushing every line; the UI, `dpo-tutor runs` and
replays read it (`read_events`, `EventTail`). A reader never trusts the last line until it ends in a
newline, so a process killed mid-write (a torn last line) never breaks a reader.

Every event has `v` (schema version), `type`, `time` (unix seconds). Types and their fields:

- `run_started`: run, pid, host, backend, backend_reason, device, gpu_name, versions{...}, config{...},
  plan{...} (how the run computes and why: engine/train/plan.py's TrainPlan, with the switches set),
  resumed_from (step or null), total_steps, world_size and devices[...] (one per process; with
  `--gpus N` pid is the launcher's, the process to signal)
- `phase`: phase (one of PHASES), message; long work before the first step also has done and total
  (the reference pass: pairs scored so far, of how many)
- `step`: step, total_steps, epoch, metrics{TRL's names: loss, rewards/chosen, rewards/rejected,
  rewards/margins, rewards/accuracies, logps/chosen, logps/rejected, learning_rate, grad_norm, ... plus
  pairs_per_s, tokens_per_s, tokens_seen (running count), gpu_mem_gib, gpu_mem_peak_gib; on CUDA also gpu_mem_gib_per_device and
  gpu_mem_peak_gib_per_device, lists in rank order}
- `eval`: step, metrics{eval_loss, eval_rewards/..., ...}
- `checkpoint`: step, path
- `finished`: step, adapter, merged (or null), summary{...}
- `stopped`: step, reason, checkpoint, adapter
- `failed`: step, kind, message, remedies[...]
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
EVENTS_FILE = "events.jsonl"

PHASES = ("loading_data", "loading_model", "compiling", "training", "evaluating", "saving")
TERMINAL_TYPES = ("finished", "stopped", "failed")


class EventWriter:
    """Appends events to a run's log, one flushed line each."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run
        # A process killed mid-write leaves a torn last line: end it, so the next event is not glued to it.
        if self._file.tell() > 0:
            with open(self.path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    self._file.write("\n")
                    self._file.flush()

    def emit(self, type: str, **fields: Any) -> dict[str, Any]:
        event = {"v": SCHEMA_VERSION, "type": type, "time": time.time(), **fields}
        self._file.write(json.dumps(event, default=_json_default, allow_nan=False) + "\n")
        self._file.flush()
        return event

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def sanitize_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Keep finite numbers only (JSON has no NaN/inf), as plain floats."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if number == number and number not in (float("inf"), float("-inf")):
            out[key] = number
    return out


def parse_lines(data: str) -> tuple[list[dict[str, Any]], str]:
    """Split complete lines into events; return them and the unfinished remainder (a torn line).

    A complete line that is not valid JSON (a write torn and then appended to) is skipped.
    """
    events: list[dict[str, Any]] = []
    *complete, rest = data.split("\n")
    for line in complete:
        line = line.strip()
        if not line:
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict) and "type" in event:
            events.append(event)
    return events, rest


def read_events(path_or_run: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All complete events of a log (or of a run folder's log); a torn last line is ignored."""
    path = Path(path_or_run)
    if path.is_dir():
        path = path / EVENTS_FILE
    if not path.exists():
        return []
    data = path.read_text(encoding="utf-8", errors="replace")
    events, _ = parse_lines(data)
    return events


class EventTail:
    """Incremental reader: each `poll()` returns the events completed since the last one."""

    def __init__(self, path: str | os.PathLike[str]):
        path = Path(path)
        self.path = path if path.suffix == ".jsonl" else path / EVENTS_FILE
        self._offset = 0
        self._rest = b""

    def poll(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        if not chunk:
            return []
        self._offset += len(chunk)
        data = self._rest + chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            self._rest = data
            return []
        self._rest = data[cut + 1 :]
        events, _ = parse_lines(data[: cut + 1].decode("utf-8", errors="replace"))
        return events


@dataclass
class RunSummary:
    """What a run's log says about it, folded event by event."""

    state: str = "new"  # new | running | finished | stopped | failed (interrupted is decided by runs.py)
    phase: str = ""
    phase_message: str = ""
    phase_progress: tuple[int, int] | None = None  # (done, total) of the phase's long work, when it says
    step: int = 0
    total_steps: int = 0
    backend: str = ""
    device: str = ""
    gpu_name: str = ""
    started: float | None = None
    pid: int | None = None
    last_metrics: dict[str, float] = field(default_factory=dict)
    last_eval: dict[str, float] = field(default_factory=dict)
    failure: dict[str, Any] | None = None
    adapter: str | None = None
    replay_of: str | None = None

    def apply(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "run_started":
            self.state = "running"
            self.backend = event.get("backend", "")
            self.device = event.get("device", "")
            self.gpu_name = event.get("gpu_name") or ""
            self.total_steps = int(event.get("total_steps") or 0)
            self.pid = event.get("pid")
            self.failure = None
            if self.started is None:
                self.started = event.get("time")
        elif kind == "phase":
            self.phase = event.get("phase", "")
            self.phase_message = event.get("message", "")
            done, total = event.get("done"), event.get("total")
            ok = isinstance(done, int) and isinstance(total, int) and total > 0
            self.phase_progress = (done, total) if ok else None
        elif kind == "step":
            self.step = int(event.get("step", self.step))
            self.total_steps = int(event.get("total_steps") or self.total_steps)
            self.last_metrics = dict(event.get("metrics", {}))
            self.phase = "training"
        elif kind == "eval":
            self.last_eval = dict(event.get("metrics", {}))
        elif kind in TERMINAL_TYPES:
            self.state = kind
            self.step = int(event.get("step", self.step) or self.step)
            self.adapter = event.get("adapter", self.adapter)
            if kind == "failed":
                self.failure = {k: event.get(k) for k in ("kind", "message", "remedies")}


def summarize(events: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> RunSummary:
    summary = RunSummary()
    for event in events:
        summary.apply(event)
    return summary
