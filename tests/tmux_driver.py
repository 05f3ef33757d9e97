"""Drive a real terminal program in tmux, as a person at a keyboard would: keys in, screen text out.

    with Tmux.start(["dpo-tutor"], width=80, height=24, env={...}) as tty:
        tty.wait_for("Lessons")
        tty.send("3")
        screen = tty.wait_for(lambda text: "Start" in text)
        tty.resize(60, 20)

Each driver runs its own tmux server (`tmux -L <unique socket> -f /dev/null`), so a person's tmux and
its config are never touched. `kill()` ends the session, which sends SIGHUP to the program: what a
closed terminal or a dropped SSH link does.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


def tmux_available() -> bool:
    return shutil.which("tmux") is not None


class TmuxError(AssertionError):
    """The screen never showed what was waited for (the last screen is in the message)."""


class Tmux:
    def __init__(self, socket: str, session: str, env: Mapping[str, str], status_file: Path):
        self.socket = socket
        self.session = session
        self.env = dict(env)
        self.status_file = status_file  # the shell around the program writes its exit status here
        self.last_screen = ""

    # ---- lifecycle ------------------------------------------------------------------------------
    @classmethod
    def start(
        cls,
        command: Sequence[str],
        *,
        width: int = 80,
        height: int = 24,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> Tmux:
        name = f"dpo-tutor-test-{uuid.uuid4().hex[:8]}"
        full_env = {**os.environ, **(env or {})}
        full_env.pop("TMUX", None)  # not nested in a tmux the tests run under
        status_file = Path(tempfile.mkdtemp(prefix="tmux-driver-")) / "exit-status"
        tty = cls(name, "main", full_env, status_file)
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
        # A shell around the program keeps its exit status (tmux does not always know it).
        shell = (f"cd {shlex.quote(str(cwd or os.getcwd()))} && env {exports} {shlex.join(command)}; "
                 f"echo $? > {shlex.quote(str(status_file))}")
        tty.tmux("new-session", "-d", "-s", tty.session, "-x", str(width), "-y", str(height), shell)
        tty.tmux("set-option", "-t", tty.session, "remain-on-exit", "on")
        return tty

    def tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args],
            capture_output=True, text=True, env=self.env, check=check, timeout=30,
        )

    def kill(self) -> None:
        """End the session: the program gets SIGHUP, as when its terminal closes."""
        self.tmux("kill-session", "-t", self.session, check=False)

    def close(self) -> None:
        self.tmux("kill-server", check=False)
        shutil.rmtree(self.status_file.parent, ignore_errors=True)

    def __enter__(self) -> Tmux:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the program ----------------------------------------------------------------------------
    def pane_pid(self) -> int:
        """The shell in the pane."""
        return int(self.tmux("display-message", "-p", "-t", self.session, "#{pane_pid}").stdout.strip())

    def program_pid(self, timeout: float = 10.0) -> int:
        """The program the pane's shell started (its child)."""
        shell = self.pane_pid()
        deadline = time.monotonic() + timeout
        while True:
            try:
                children = Path(f"/proc/{shell}/task/{shell}/children").read_text().split()
            except OSError:
                children = []
            if children:
                return int(children[0])
            if time.monotonic() > deadline:
                raise TmuxError("the program in the pane never started")
            time.sleep(0.05)

    def program_exited(self) -> bool:
        return self.status_file.exists() or self._pane_dead()

    def _pane_dead(self) -> bool:
        out = self.tmux("display-message", "-p", "-t", self.session, "#{pane_dead}", check=False)
        return out.returncode != 0 or out.stdout.strip() == "1"

    def exit_status(self, timeout: float = 5.0) -> int | None:
        """The program's exit status once it has exited (None while it runs)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return int(self.status_file.read_text().strip())
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)

    # ---- keys and screen ------------------------------------------------------------------------
    def send(self, *keys: str) -> None:
        """tmux key names: "3", "Enter", "Tab", "C-r", "F1", "Escape", "Home"..."""
        for key in keys:
            self.tmux("send-keys", "-t", self.session, key)
            time.sleep(0.05)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", self.session, "-l", text)

    def capture(self) -> str:
        out = self.tmux("capture-pane", "-p", "-t", self.session, check=False)
        self.last_screen = out.stdout
        return out.stdout

    def size(self) -> tuple[int, int]:
        out = self.tmux("display-message", "-p", "-t", self.session, "#{window_width} #{window_height}")
        width, height = out.stdout.split()
        return int(width), int(height)

    def resize(self, width: int, height: int) -> None:
        self.tmux("resize-window", "-t", self.session, "-x", str(width), "-y", str(height))

    def wait_for(
        self, expected: str | Callable[[str], bool], timeout: float = 30.0, interval: float = 0.2
    ) -> str:
        """The screen once it shows `expected` (text, or a predicate on the screen's text)."""
        test = (lambda screen: expected in screen) if isinstance(expected, str) else expected
        deadline = time.monotonic() + timeout
        while True:
            screen = self.capture()
            if test(screen):
                return screen
            if time.monotonic() > deadline:
                what = expected if isinstance(expected, str) else getattr(expected, "__name__", "condition")
                raise TmuxError(f"the screen never showed {what!r} in {timeout:.0f} s; last screen:\n{screen}")
            time.sleep(interval)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the current screen to a file (kept beside a failing test's output)."""
        path = Path(path)
        path.write_text(self.capture(), encoding="utf-8")
        return path
