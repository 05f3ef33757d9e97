"""Stop a real `dpo-tutor train` process (SIGTERM, and SIGKILL), then resume it: the curve continues."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import assert_graceful_stop, steps_of
from dpo_tutor.engine.events import read_events
from dpo_tutor.engine.runs import run_info

TRAIN = [
    "--model", "tiny", "--batch-size", "2", "--grad-accum", "1", "--max-length", "96", "--lr", "5e-3",
    "--eval-steps", "0", "--max-steps", "5000", "--quiet",
]


def start(run_dir: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dpo_tutor", "train", *TRAIN, "--out", str(run_dir), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


def wait_for(run_dir: Path, predicate, proc: subprocess.Popen, timeout: float = 60.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = read_events(run_dir)
        if predicate(events):
            return events
        if proc.poll() is not None:
            raise AssertionError(f"train exited early ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("timed out waiting for the run")


def resume(run_dir: Path, max_steps: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dpo_tutor", "train", "--resume", str(run_dir), "--max-steps", str(max_steps),
         "--quiet"],
        check=False, capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


def test_sigterm_stops_gracefully_and_resume_continues(tmp_path):
    run_dir = tmp_path / "run"
    proc = start(run_dir, "--save-steps", "0")
    wait_for(run_dir, lambda ev: len(steps_of(ev)) >= 3, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert out.strip().endswith(str(run_dir))
    k = assert_graceful_stop(run_dir)
    assert run_info(run_dir).state == "stopped"

    done = resume(run_dir, k + 6)
    assert done.returncode == 0, done.stderr[-2000:]
    events = read_events(run_dir)
    assert steps_of(events) == list(range(1, k + 7))  # the curve continues; no step repeated
    restarted = [e for e in events if e["type"] == "run_started"]
    assert len(restarted) == 2 and restarted[1]["resumed_from"] == k
    assert events[-1]["type"] == "finished" and events[-1]["step"] == k + 6
    assert run_info(run_dir).state == "finished"


def test_sigkill_leaves_an_interrupted_run_that_resumes(tmp_path):
    run_dir = tmp_path / "run"
    proc = start(run_dir, "--save-steps", "4")
    events = wait_for(
        run_dir, lambda ev: any(e["type"] == "checkpoint" for e in ev) and len(steps_of(ev)) >= 6, proc
    )
    proc.kill()  # SIGKILL: no handler runs
    proc.communicate(timeout=30)
    # A torn last line, as a kill in the middle of a write leaves it.
    with open(run_dir / "events.jsonl", "a", encoding="utf-8") as f:
        f.write('{"v": 1, "type": "step", "step": 9')
    events = read_events(run_dir)
    logged = steps_of(events)
    assert logged == list(range(1, len(logged) + 1))
    info = run_info(run_dir)
    assert info.state == "interrupted"
    checkpoints = sorted(int(p.name.split("-")[1]) for p in (run_dir / "checkpoints").glob("checkpoint-*"))
    assert checkpoints and checkpoints[-1] % 4 == 0

    target = logged[-1] + 3
    done = resume(run_dir, target)
    assert done.returncode == 0, done.stderr[-2000:]
    events = read_events(run_dir)
    assert steps_of(events) == list(range(1, target + 1))  # none repeated, none missing
    restarted = [e for e in events if e["type"] == "run_started"]
    assert restarted[-1]["resumed_from"] in checkpoints
    assert run_info(run_dir).state == "finished"
