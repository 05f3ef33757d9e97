"""What the Train screen's status line says, and how the log pane reads a growing stderr file (no UI)."""

from __future__ import annotations

from pathlib import Path

from dpo_tutor.tui.run_state import RunState, TextTail
from dpo_tutor.tui.run_watcher import train_command
from dpo_tutor.tui.widgets.train_status import IDLE_TEXT, status_text

T0 = 1_000_000.0


def started(**extra) -> dict:
    return {"type": "run_started", "time": T0, "backend": "unsloth", "device": "cuda", "gpu_name": "NVIDIA H100",
            "total_steps": 100, "pid": 1, "host": "h", **extra}


def step(n: int, t: float, **metrics) -> dict:
    return {"type": "step", "time": t, "step": n, "total_steps": 100, "metrics": {"loss": 0.6, **metrics}}


def test_idle_and_starting():
    assert status_text(None) == IDLE_TEXT
    state = RunState(path=Path("runs/x"), launched=T0)
    assert status_text(state, now=T0 + 3) == "starting the training process (3s)"


def test_before_the_first_step_it_says_what_is_happening():
    state = RunState(path=Path("runs/x"))
    state.apply(started())
    state.apply({"type": "phase", "time": T0 + 2, "phase": "compiling", "message": "Unsloth is compiling kernels"})
    text = status_text(state, now=T0 + 14)
    assert text == ("compiling kernels: Unsloth is compiling kernels (12s) | no steps yet: Unsloth compiles its "
                    "kernels for ~40 s before the first step\nunsloth on NVIDIA H100")


def test_training_shows_step_progress_eta_throughput_memory_backend():
    state = RunState(path=Path("runs/x"))
    state.apply(started())
    for n in range(1, 11):  # one step every 2 s
        state.apply(step(n, T0 + 40 + 2 * n, pairs_per_s=16.04, gpu_mem_gib=0.61, gpu_mem_peak_gib=0.7))
    text = status_text(state, now=T0 + 61)
    assert text == ("training step 10/100 | 10% | ETA 3m00s\nloss 0.600\n16.0 pairs/s | GPU 0.61 GiB (peak 0.70) | "
                    "unsloth on NVIDIA H100")


def test_the_status_shows_the_latest_loss_accuracy_and_margin():
    state = RunState(path=Path("runs/x"))
    state.apply(started())
    state.apply(step(1, T0 + 40, **{"rewards/accuracies": 0.8125, "rewards/margins": 0.93}))
    assert status_text(state, now=T0 + 41).splitlines()[1] == "loss 0.600 | accuracy 0.81 | margin 0.930"


def test_a_failure_says_the_engine_message():
    state = RunState(path=Path("runs/x"))
    state.apply(started(backend="hf", device="cpu", gpu_name=""))
    state.apply(step(3, T0 + 5))
    state.apply({"type": "failed", "time": T0 + 6, "step": 3, "kind": "oom", "message": "CUDA out of memory",
                 "remedies": ["batch_size 1"]})
    assert status_text(state, now=T0 + 7) == "FAILED at step 3/100 | CUDA out of memory\nloss 0.600\nhf on cpu"


def test_replay_says_it_is_a_replay_and_of_what_hardware():
    state = RunState(path=Path("runs/20261125-lesson"), mode="replay", replay_speed=4)
    state.apply(started())
    state.apply(step(1, T0 + 40))
    assert status_text(state).startswith("REPLAY of 20261125-lesson (recorded on NVIDIA H100), at 4x\ntraining")


def test_text_tail_keeps_complete_lines_and_what_a_progress_bar_last_showed(tmp_path):
    log = tmp_path / "train.log"
    tail = TextTail(log)
    assert tail.poll() == []
    log.write_bytes(b"loading\nTokenizing:   0%|\rTokenizing: 100%|\nhalf a li")
    assert tail.poll() == ["loading", "Tokenizing: 100%|"]
    with open(log, "ab") as f:
        f.write(b"ne\n")
    assert tail.poll() == ["half a line"]


def test_train_command_follows_the_engine_contract(tmp_path):
    cfg, run = tmp_path / "c.toml", tmp_path / "run"
    cmd = train_command((), cfg, run, resume=False)
    assert cmd[1:] == ["-m", "dpo_tutor", "train", "--config", str(cfg), "--out", str(run), "--quiet"]
    assert train_command(("fake",), cfg, run, resume=True) == [
        "fake", "train", "--config", str(cfg), "--out", str(run), "--resume", str(run), "--quiet"]


def test_a_phase_between_steps_is_named_with_its_message():
    state = RunState(path=Path("runs/x"))
    state.apply(started())
    state.apply(step(25, T0 + 50))
    state.apply({"type": "phase", "time": T0 + 51, "phase": "evaluating", "message": "64 held-out pairs"})
    assert status_text(state, now=T0 + 52).startswith("evaluating: 64 held-out pairs | step 25/100 | 25%")


def test_the_reference_pass_shows_how_long_it_has_left():
    state = RunState(path=Path("runs/x"))
    state.apply(started(backend="hf", device="cpu", gpu_name=""))
    state.apply({"type": "phase", "time": T0 + 2, "phase": "loading_model", "message": "preparing the trainer"})
    for t, done in ((T0 + 10, 0), (T0 + 30, 16)):  # 16 of 48 pairs in 20 s: 40 s to go at that pace
        state.apply({"type": "phase", "time": t, "phase": "loading_model", "done": done, "total": 48,
                     "message": f"scoring the reference model on the train pairs: {done}/48"})
    text = status_text(state, now=T0 + 31)
    assert text.startswith("loading model: scoring the reference model on the train pairs: 16/48 (29s, ~40s left)")
    state.apply({"type": "phase", "time": T0 + 70, "phase": "loading_model", "done": 48, "total": 48,
                 "message": "scored the reference model on the 48 train pairs"})
    assert "left" not in status_text(state, now=T0 + 71)  # done: no estimate
