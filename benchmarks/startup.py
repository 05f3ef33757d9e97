"""Start-up times: `dpo-tutor --help` and the TUI's first frame, each in a fresh process.

    /work/venv/bin/python benchmarks/startup.py [--runs 7]

`--help`: wall time of the console script in a subprocess, start to exit.
First frame: wall time from spawning a Python process to Textual's `Ready` event, which the App
receives once the DOM is ready and the first frame has been rendered; the app runs headless at
100x30 and exits at once. Includes interpreter start, imports and building the Learn screen.
Medians of N runs; goals: --help <= 0.3 s, first frame <= 1.0 s.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

CHILD = """
import sys, time
from dpo_tutor.tui.app import DpoTutorApp, make_app

class Timed(DpoTutorApp):
    def on_ready(self):
        print(f"READY {{time.time():.6f}}", flush=True)
        self.exit()

app = make_app(walkthrough={walkthrough}, lesson={lesson!r})
app.__class__ = Timed
app.run(headless=True, size=(100, 30))
"""

GOALS = {"help": 0.3, "frame": 1.0}


def time_help(exe: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([*exe, "--help"], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def time_first_frame(walkthrough: bool = False, lesson: str | None = None) -> float:
    code = CHILD.format(walkthrough=walkthrough, lesson=lesson)
    env = dict(os.environ, TEXTUAL="", NO_COLOR="")
    start = time.time()
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env)
    for line in out.stdout.splitlines():
        if line.startswith("READY "):
            return float(line.split()[1]) - start
    raise RuntimeError(f"the app never reported its first frame:\n{out.stdout}\n{out.stderr}")


def median_of(fn, runs: int) -> tuple[float, float, float]:
    fn()  # warm the file cache (bytecode, site-packages) so runs measure start-up, not the disk
    times = [fn() for _ in range(runs)]
    return statistics.median(times), min(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description="dpo-tutor start-up times")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    script = shutil.which("dpo-tutor", path=os.path.dirname(sys.executable)) or shutil.which("dpo-tutor")
    exe = [script] if script else [sys.executable, "-m", "dpo_tutor"]
    rows = [
        ("dpo-tutor --help", "help", lambda: time_help(exe)),
        ("first frame: dpo-tutor (lesson 1)", "frame", lambda: time_first_frame()),
        ("first frame: --lesson beta (plot)", "frame", lambda: time_first_frame(lesson="beta")),
        ("first frame: --walkthrough", "frame", lambda: time_first_frame(walkthrough=True)),
    ]
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"runs: {args.runs} each (after one warm-up)\n")
    print("| what | median s | min s | max s | goal s | ok |")
    print("|---|---|---|---|---|---|")
    for label, kind, fn in rows:
        med, lo, hi = median_of(fn, args.runs)
        goal = GOALS[kind]
        print(f"| {label} | {med:.3f} | {lo:.3f} | {hi:.3f} | {goal} | {'yes' if med <= goal else 'NO'} |")


if __name__ == "__main__":
    main()
