"""Run folders: where they live, how they are named, and what state each one is in.

A run folder `runs/<YYYYmmdd-HHMMSS>-<name>/` holds `config.toml`, `events.jsonl`, `checkpoints/`,
`adapter/`, optional `merged/` and `train.log`. Its state comes from its event log, plus one fact the
log cannot hold: a run whose log has no terminal event and whose process is gone was `interrupted`
(killed, power cut, machine rebooted).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from .events import EVENTS_FILE, RunSummary, read_events, summarize

RUNS_ENV = "DPO_TUTOR_RUNS_DIR"
STATES = ("new", "running", "finished", "stopped", "failed", "interrupted")
CONFIG_FILE = "config.toml"
LOG_FILE = "train.log"
CHECKPOINTS_DIR = "checkpoints"
ADAPTER_DIR = "adapter"
MERGED_DIR = "merged"

_NAME_OK = re.compile(r"[^A-Za-z0-9._-]+")


def default_runs_dir() -> Path:
    """`$DPO_TUTOR_RUNS_DIR`, else `./runs`."""
    env = os.environ.get(RUNS_ENV)
    return Path(env).expanduser() if env else Path("runs")


def stderr_is_run_log(run_dir: str | os.PathLike[str]) -> bool:
    """Whether this process's stderr is the run's train.log: a detached run, or one the UI started. Its
    log then goes to stderr (not opened twice), and the run folder is left to whoever started it."""
    try:
        return os.path.samestat(os.fstat(2), os.stat(Path(run_dir) / LOG_FILE))
    except (OSError, ValueError):
        return False


def remove_unstarted(run_dir: str | os.PathLike[str]) -> bool:
    """Remove a run folder whose run never reached a step (no step or checkpoint in its log: a refused
    or failed start); True when removed. A run that trained a step is always kept."""
    path = Path(run_dir)
    if not path.is_dir() or any(e.get("type") in ("step", "checkpoint") for e in read_events(path / EVENTS_FILE)):
        return False
    try:
        shutil.rmtree(path)
    except OSError:
        return False
    return True


def safe_name(name: str) -> str:
    """A run name usable as part of a folder name (no separators, no dots at the start)."""
    cleaned = _NAME_OK.sub("-", name.strip()).strip("-.")
    return cleaned[:60] or "run"


def new_run_dir(runs_dir: str | os.PathLike[str], name: str) -> Path:
    """Create and return `runs_dir/<YYYYmmdd-HHMMSS>-<name>/` (a suffix keeps same-second runs apart)."""
    base = Path(runs_dir)
    base.mkdir(parents=True, exist_ok=True)
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{safe_name(name)}"
    path = base / stem
    n = 1
    while True:
        try:
            path.mkdir()
            return path
        except FileExistsError:
            n += 1
            path = base / f"{stem}-{n}"


@dataclass
class RunInfo:
    path: Path
    name: str
    state: str
    summary: RunSummary
    created: float

    @property
    def adapter_dir(self) -> Path:
        return self.path / ADAPTER_DIR

    @property
    def has_adapter(self) -> bool:
        return (self.path / ADAPTER_DIR / "adapter_config.json").exists()


def pid_alive(pid: int | None, host: str | None = None) -> bool:
    """Whether process `pid` is alive here; a pid from another host counts as alive (we cannot tell)."""
    if not pid:
        return False
    if host and host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, ValueError):
        return False
    # A zombie (exited, not yet reaped by its parent) is not running.
    try:
        with open(f"/proc/{int(pid)}/stat", encoding="ascii") as f:
            if f.read().rsplit(")", 1)[-1].split()[0] == "Z":
                return False
    except OSError:
        pass
    return True


def run_info(path: str | os.PathLike[str]) -> RunInfo:
    """The state and summary of one run folder."""
    path = Path(path)
    events = read_events(path / EVENTS_FILE)
    summary = summarize(events)
    state = summary.state
    if state == "running":
        started = [e for e in events if e.get("type") == "run_started"]
        last = started[-1] if started else {}
        if not pid_alive(last.get("pid"), last.get("host")):
            state = "interrupted"
    name = path.name
    match = re.match(r"^\d{8}-\d{6}-(.+)$", name)
    if match:
        name = match.group(1)
    created = summary.started
    if created is None:
        try:
            created = path.stat().st_mtime
        except OSError:
            created = 0.0
    return RunInfo(path=path, name=name, state=state, summary=summary, created=float(created))


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and ((path / EVENTS_FILE).exists() or (path / CONFIG_FILE).exists())


def list_runs(runs_dir: str | os.PathLike[str] | None = None) -> list[RunInfo]:
    """Every run under `runs_dir`, newest first."""
    base = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    if not base.is_dir():
        return []
    runs = [run_info(p) for p in base.iterdir() if is_run_dir(p)]
    runs.sort(key=lambda r: (r.created, r.path.name), reverse=True)
    return runs


def resolve_run(ref: str | os.PathLike[str], runs_dir: str | os.PathLike[str] | None = None) -> Path:
    """A run given as a folder path, or as a folder name (or unique suffix) under `runs_dir`."""
    from .errors import UserError

    path = Path(ref).expanduser()
    if is_run_dir(path):
        return path
    base = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    candidate = base / str(ref)
    if is_run_dir(candidate):
        return candidate
    matches = []
    if base.is_dir():
        matches = sorted(p for p in base.iterdir() if is_run_dir(p) and p.name.endswith(str(ref)))
        if len(matches) == 1:
            return matches[0]
    listing = f"`dpo-tutor runs --runs-dir {base}` lists them"
    if len(matches) > 1:
        names = ", ".join(p.name for p in matches[-3:])
        raise UserError(f"'{ref}' matches {len(matches)} runs ({names}{', ...' if len(matches) > 3 else ''})",
                        where="run", remedy="give more of the folder name")
    inside = sorted((p for p in path.iterdir() if is_run_dir(p)), key=lambda p: p.name) if path.is_dir() else []
    if inside:
        count = f"{len(inside)} runs" if len(inside) > 1 else "1 run"
        raise UserError(f"'{ref}' is a folder of {count}, not a run", where="run",
                        remedy=f"name one of them, e.g. {inside[-1]}; `dpo-tutor runs --runs-dir {path}` lists them")
    if path.is_dir():
        raise UserError(f"'{ref}' is not a run folder (no {EVENTS_FILE} or {CONFIG_FILE} in it)", where="run",
                        remedy=listing)
    raise UserError(f"no run folder '{ref}'", where="run", remedy=listing)
