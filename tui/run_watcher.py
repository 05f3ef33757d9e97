"""The App-owned worker that starts, follows, stops and replays a training run.

Training never runs in the UI process: `start()` launches `python -m dpo_tutor train --config ...
--out RUN` as a subprocess (its stderr goes to `RUN/train.log`, so it survives the UI quitting), and
an async worker owned by the App (not by a screen: switching modes never stops it) tails the run's
`events.jsonl` with `EventTail`. Everything it learns goes into a plain `RunState` (run_state.py); the Train screen is told with `RunWatcher.Changed`, a message that
replaces an unprocessed one of its kind, so a backlog of steps collapses into one redraw.

The worker's `finally` ends the process it started (SIGTERM: the engine stops gracefully, saving a
checkpoint) unless the learner chose to leave the run running detached when quitting.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dpo_tutor.engine.events import EVENTS_FILE, TERMINAL_TYPES, EventTail, read_events
from dpo_tutor.engine.runs import CONFIG_FILE, LOG_FILE, remove_unstarted
from textual.message import Message

from .replay import replay_delays
from .run_state import RunState, TextTail

if TYPE_CHECKING:
    from dpo_tutor.engine.config import TrainConfig
    from textual.app import App
    from textual.message_pump import MessagePump
    from textual.worker import Worker

POLL_S = 0.1


def log_path(run: Path) -> Path:
    return run / LOG_FILE


def train_command(prefix: tuple[str, ...], config_path: Path, run: Path, resume: bool) -> list[str]:
    """The engine's CLI contract: `[python -m dpo_tutor] train --config F --out RUN [--resume RUN]`."""
    base = list(prefix) if prefix else [sys.executable, "-m", "dpo_tutor"]
    cmd = [*base, "train", "--config", str(config_path), "--out", str(run)]
    if resume:
        cmd += ["--resume", str(run)]
    return [*cmd, "--quiet"]  # no progress bar in the log: the UI draws its own


def pid_is_alive(pid: Any, host: Any) -> bool:
    from dpo_tutor.engine.runs import pid_alive

    return pid_alive(pid, host)


@dataclass
class Launch:
    """A process this UI starts: its command, the temporary config it reads, and the process."""

    command: list[str]
    config_file: Path | None = None
    process: asyncio.subprocess.Process | None = None

    def forget_config_file(self, state: RunState) -> None:
        """Remove the temporary config once the process has read it (it has, once it logged an event)."""
        if self.config_file is None:
            return
        exited = self.process is not None and self.process.returncode is not None
        if state.summary.state != "new" or exited:
            self.config_file.unlink(missing_ok=True)
            self.config_file = None


class RunWatcher:
    """One per App (see `watcher_of`): the run on show, and the process this UI started, if any."""

    class Changed(Message):
        """The run's state moved (events or log lines arrived). Replaces an unprocessed one."""

        def __init__(self, state: RunState) -> None:
            super().__init__()
            self.state = state

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, RunWatcher.Changed)

    class Ended(Message):
        """The run reached a terminal state (finished, stopped, failed) or its replay ended."""

        def __init__(self, state: RunState) -> None:
            super().__init__()
            self.state = state

    def __init__(self, app: App) -> None:
        self.app = app
        self.state: RunState | None = None
        self.process: asyncio.subprocess.Process | None = None
        self.worker: Worker | None = None
        self.target: MessagePump | None = None  # the Train screen, told about changes
        self.detach = False  # leave our process running when the worker ends (quit: "leave running")
        self.command: list[str] = []
        self.stop_requested = False

    # ---- what is going on -----------------------------------------------------------------------
    @property
    def following(self) -> bool:
        return self.worker is not None and self.worker.is_running

    @property
    def process_running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    @property
    def run_is_live(self) -> bool:
        """A run is training right now (started here or re-attached), not a replay."""
        return self.following and self.state is not None and not self.state.is_replay and not self.state.ended

    # ---- actions --------------------------------------------------------------------------------
    def start(self, config: TrainConfig, run: Path, *, resume: bool = False) -> RunState:
        """Write `run/config.toml` and launch the engine on it; follow its log."""
        config_path = run / CONFIG_FILE
        temporary = None
        if not resume or not config_path.exists():
            # The engine wants --out empty (train.log aside) and writes its own config.toml there:
            # hand it the form's settings in a file of their own, removed once the run has started.
            fd, name = tempfile.mkstemp(prefix=f"dpo-tutor-{run.name}-", suffix=".toml")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(config.to_toml())
            config_path = temporary = Path(name)
        prefix = tuple(getattr(getattr(self.app, "context", None), "train_command", ()) or ())
        self.command = train_command(prefix, config_path, run, resume)
        state = RunState(path=run, mode="live")
        self._follow(state, Launch(self.command, temporary))
        return state

    def attach(self, run: Path) -> RunState:
        """Follow a run someone else started (e.g. before an SSH drop): its log and its stderr file."""
        state = RunState(path=run, mode="attached")
        self._follow(state, None)
        return state

    def replay(self, run: Path, speed: float = 0.0) -> RunState:
        """Show a finished run's curves again: at once (`speed` 0) or paced at `speed` x recorded time."""
        state = RunState(path=run, mode="replay", replay_speed=speed)
        state.summary.replay_of = run.name
        self._follow(state, None)
        return state

    def stop(self) -> bool:
        """Ask the training process to stop gracefully (SIGTERM); True when a signal was sent."""
        self.stop_requested = True
        if self.process_running:
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)
            return True
        state = self.state
        if state and state.mode == "attached" and state.summary.pid and not state.ended:
            host = state.host
            if host in (None, socket.gethostname()) and pid_is_alive(state.summary.pid, host):
                os.kill(int(state.summary.pid), signal.SIGTERM)
                return True
        return False

    def cancel(self) -> None:
        """Stop following (a replay or an attached run); a process started here is stopped too."""
        if self.worker is not None:
            self.worker.cancel()

    # ---- the worker -----------------------------------------------------------------------------
    def _follow(self, state: RunState, launch: Launch | None) -> None:
        if self.process_running:
            raise RuntimeError("a run started here is still training: stop it first")
        if self.worker is not None:
            self.worker.cancel()
        self.state = state
        self.detach = False
        self.stop_requested = False
        self.process = None
        self.worker = self.app.run_worker(
            self._watch(state, launch),
            name=f"run:{state.name}",
            group="train-run",
            exclusive=True,
            exit_on_error=False,
        )

    def _tell(self, message: Message) -> None:
        target = self.target
        if target is not None and target.is_attached:
            target.post_message(message)

    async def _watch(self, state: RunState, launch: Launch | None) -> None:
        # `launch` (and its process) belongs to this worker alone: a later worker never touches it.
        try:
            if launch is not None:
                try:
                    await self._launch(state, launch)
                except OSError as exc:
                    state.summary.state = "failed"
                    state.summary.failure = {"kind": "launch", "message": f"could not start the engine: {exc}",
                                             "remedies": [f"check the command: {' '.join(launch.command)}"]}
                    self._end(state)
                    return
            if state.is_replay:
                await self._replay(state)
            else:
                await self._tail(state, launch)
        except Exception as exc:
            # A bug here must not take the app down (exit_on_error=False) nor go unseen.
            state.ended = True
            self.app.notify(f"{type(exc).__name__}: {exc}", title="Following the run stopped", severity="error")
            raise
        finally:
            process = launch.process if launch else None
            if launch is not None:
                launch.forget_config_file(state)
            if process is not None and process.returncode is None and not (self.detach or self.stop_requested):
                process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), timeout=5)
                except (asyncio.TimeoutError, asyncio.CancelledError):
                    pass  # it is saving its checkpoint; it ends by itself (own session)

    async def _launch(self, state: RunState, launch: Launch) -> None:
        # As `dpo-tutor train --detach` does: stdout and stderr (where the engine logs; it sees that its
        # stderr is train.log) go to the run's train.log, so the run outlives this UI if asked to.
        log = open(state.path / LOG_FILE, "ab")  # noqa: SIM115, ASYNC230 - handed to the child, closed below
        try:
            launch.process = self.process = await asyncio.create_subprocess_exec(
                *launch.command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # our terminal's signals are not its signals; it may outlive us
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        finally:
            log.close()
        state.add_log([f"$ {' '.join(launch.command)}"])

    async def _tail(self, state: RunState, launch: Launch | None) -> None:
        events_tail = EventTail(state.path / EVENTS_FILE)
        log_tail = TextTail(log_path(state.path))
        while True:
            moved = self._poll(state, events_tail, log_tail, launch)
            terminal = state.summary.state in TERMINAL_TYPES
            process = launch.process if launch else None
            if process is not None and process.returncode is not None:
                await asyncio.sleep(POLL_S)  # let the last lines land
                self._poll(state, events_tail, log_tail, launch)
                state.exit_code = process.returncode
                if state.summary.state not in TERMINAL_TYPES:
                    state.mark_crashed(process.returncode)
                    if (state.summary.failure or {}).get("kind") == "refused":
                        remove_unstarted(state.path)  # the line is shown; an empty run is not kept
                break
            if terminal and process is None:
                break
            if process is None and state.summary.state == "running" and not self._attached_alive(state):
                await asyncio.sleep(POLL_S)
                self._poll(state, events_tail, log_tail, launch)
                if state.summary.state not in TERMINAL_TYPES:
                    state.summary.state = "interrupted"
                break
            if moved:
                self._tell(RunWatcher.Changed(state))
            await asyncio.sleep(POLL_S)
        self._end(state)

    def _attached_alive(self, state: RunState) -> bool:
        if state.summary.pid is None:
            return True
        return pid_is_alive(state.summary.pid, state.host)

    def _poll(self, state: RunState, events_tail: EventTail, log_tail: TextTail, launch: Launch | None) -> bool:
        events = events_tail.poll()
        for event in events:
            state.apply(event)
        if events and launch is not None:
            launch.forget_config_file(state)
        lines = log_tail.poll()
        state.add_log(lines)
        return bool(events or lines)

    async def _replay(self, state: RunState) -> None:
        events = read_events(state.path / EVENTS_FILE)
        lines = TextTail(log_path(state.path)).poll()
        state.add_log(lines)
        delays = replay_delays(events, state.replay_speed)
        for event, delay in zip(events, delays, strict=True):
            if delay > 0:
                self._tell(RunWatcher.Changed(state))
                await asyncio.sleep(delay)
            state.apply(event)
        self._end(state)

    def _end(self, state: RunState) -> None:
        state.ended = True
        self._tell(RunWatcher.Changed(state))
        self._tell(RunWatcher.Ended(state))
        if not state.is_replay:
            notify_outcome(self.app, state)


def notify_outcome(app: App, state: RunState) -> None:
    """A notification for how a live run ended; a failure carries the engine's remedy."""
    summary = state.summary
    if summary.state == "failed":
        failure = summary.failure or {}
        remedies = failure.get("remedies") or []
        text = str(failure.get("message") or "the run failed")
        if remedies:
            text += "\nTry: " + "; ".join(str(r) for r in remedies)
        app.notify(text, title=f"Run failed ({failure.get('kind') or 'error'})", severity="error", timeout=30)
    elif summary.state == "stopped":
        app.notify(f"Stopped at step {summary.step}; a checkpoint was saved. Resume it from the runs list.",
                   title="Run stopped", timeout=10)
    elif summary.state == "finished":
        where = f" Adapter: {summary.adapter}" if summary.adapter else ""
        app.notify(f"Finished {summary.step} steps.{where}", title="Run finished", timeout=10)
    elif summary.state == "interrupted":
        app.notify("The run's process is gone and its log has no final event.", title="Run interrupted",
                   severity="warning", timeout=10)


def watcher_of(app: App) -> RunWatcher:
    """The App's one run watcher, created on first use."""
    watcher = getattr(app, "run_watcher", None)
    if watcher is None:
        watcher = RunWatcher(app)
        app.run_watcher = watcher  # type: ignore[attr-defined]
    return watcher
