"""`dpo-tutor train --gpus N`: the accelerate launch command (unit), and real 2-process gloo runs on CPU.

The CPU runs use the same path as N GPUs (accelerate's torchrun launcher, TRL's DPOTrainer under DDP),
with gloo instead of NCCL: one coherent event log written by rank 0 only.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import assert_graceful_stop, steps_of
from dpo_tutor.engine.errors import UserError
from dpo_tutor.engine.events import read_events
from dpo_tutor.engine.runs import run_info
from dpo_tutor.engine.train import launch
from dpo_tutor.engine.train.machine import process_devices
from dpo_tutor.engine.train.plan import backend_for_processes

TRAIN = ["--model", "tiny", "--batch-size", "2", "--grad-accum", "1", "--max-length", "64", "--lr", "5e-3",
         "--quiet"]


# ---- the launch command and environment (nothing started) --------------------------------------
def test_build_launch_is_a_valid_accelerate_command_with_multicast_off():
    from accelerate.commands.launch import launch_command_parser

    train_argv = ["--model", "tiny", "--gpus", "2", "--out", "/runs/r"]
    plan = launch.build_launch(train_argv, 2, cuda=True, environ={"PATH": "/bin"}, python="/py", pid=4242,
                               cpu_count=16)
    assert plan.argv[:3] == ["/py", "-m", "accelerate.commands.launch"]
    # accelerate's own parser reads it as 2 local processes running `python -m dpo_tutor train ...`
    args = launch_command_parser().parse_args(plan.argv[3:])
    assert args.multi_gpu and not args.cpu and args.num_processes == 2 and args.num_machines == 1
    assert args.module and args.training_script == "dpo_tutor"
    assert args.training_script_args == ["train", *train_argv]
    assert args.main_process_port == 0  # a free port each time: parallel runs do not collide
    env = plan.env
    assert env["NCCL_NVLS_ENABLE"] == "0" and env["TORCH_SYMM_MEM_DISABLE_MULTICAST"] == "1"
    assert env[launch.LAUNCHER_PID_ENV] == "4242" and env["PATH"] == "/bin"
    assert env["TORCH_ELASTIC_SHUTDOWN_TIMEOUT"] == str(launch.SHUTDOWN_TIMEOUT_S)
    assert env["OMP_NUM_THREADS"] == "8" and "ACCELERATE_USE_CPU" not in env


def test_build_launch_on_cpu_and_user_settings_kept():
    environ = {"TORCH_ELASTIC_SHUTDOWN_TIMEOUT": "5", "OMP_NUM_THREADS": "3", "NCCL_NVLS_ENABLE": "1"}
    plan = launch.build_launch(["--model", "tiny"], 4, cuda=False, environ=environ, cpu_count=2)
    assert plan.env["ACCELERATE_USE_CPU"] == "true"
    assert plan.env["TORCH_ELASTIC_SHUTDOWN_TIMEOUT"] == "5" and plan.env["OMP_NUM_THREADS"] == "3"
    assert plan.env["NCCL_NVLS_ENABLE"] == "0"  # multicast is never left on, whatever the caller had
    assert plan.argv[plan.argv.index("--num_processes") + 1] == "4"
    with pytest.raises(ValueError):
        launch.build_launch([], 1, cuda=False)


def test_process_roles_from_the_environment():
    worker = {launch.LAUNCHER_PID_ENV: "77", "LOCAL_RANK": "1", "RANK": "1", "WORLD_SIZE": "2"}
    assert launch.launched_worker(worker) and launch.launcher_pid(worker) == 77
    assert launch.world_size(worker) == 2 and launch.rank(worker) == 1 and not launch.is_main_process(worker)
    plain: dict[str, str] = {}
    assert not launch.launched_worker(plain) and launch.launcher_pid(plain) is None
    assert launch.world_size(plain) == 1 and launch.is_main_process(plain)
    assert process_devices(2, cuda=False) == ["cpu", "cpu"]


def test_unsloth_falls_back_to_hf_for_several_processes():
    choice, note = backend_for_processes("unsloth", 2, cuda=True)
    assert choice.name == "hf" and "one GPU" in choice.reason and "2 processes" in note
    choice, note = backend_for_processes("auto", 2, cuda=True)
    assert choice.name == "hf" and "Unsloth trains on one" in note
    choice, note = backend_for_processes("auto", 2, cuda=False)
    assert choice.name == "hf" and note == ""
    with pytest.raises(UserError, match="unknown backend"):
        backend_for_processes("tpu", 2, cuda=False)


def test_gpu_count_checks():
    launch.check_gpus(2, cuda=True, device_count=2)
    launch.check_gpus(2, cuda=False, device_count=0)  # CPU processes
    with pytest.raises(UserError, match="more GPUs than this machine has"):
        launch.check_gpus(3, cuda=True, device_count=2)
    with pytest.raises(UserError, match="1 or more"):
        launch.check_gpus(0, cuda=True, device_count=2)


def test_the_launcher_ends_a_log_the_processes_left_open(tmp_path):
    from dpo_tutor.engine.events import EventWriter

    with EventWriter(tmp_path / "events.jsonl") as w:
        w.emit("run_started", run="r")
        w.emit("step", step=1, metrics={})
        w.emit("step", step=2, metrics={})
    new = read_events(tmp_path)
    ended = launch.ensure_ended(tmp_path, new, -9, None)
    assert ended["type"] == "failed" and ended["kind"] == "launcher" and ended["step"] == 2
    assert read_events(tmp_path)[-1] == json.loads(json.dumps(ended)) and launch.exit_code(ended) == 1
    # a terminal event already there is kept, not doubled
    assert launch.ensure_ended(tmp_path, read_events(tmp_path), 1, None)["time"] == ended["time"]
    assert len(read_events(tmp_path)) == 4
    forced = launch.ensure_ended(tmp_path / "x", [], -9, "SIGTERM")
    assert forced["type"] == "stopped" and "forced" in forced["reason"] and launch.exit_code(forced) == 130
    assert launch.exit_code({"type": "finished"}) == 0 and launch.exit_code({"type": "stopped", "reason": "SIGTERM"}) == 0
    assert launch.exit_code({"type": "failed", "kind": "out_of_memory"}) == 3


def test_train_help_shows_gpus():
    out = subprocess.run([sys.executable, "-m", "dpo_tutor", "train", "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert "--gpus N" in out and "accelerate" in out


def test_too_many_gpus_is_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "dpo_tutor", "train", *TRAIN, "--gpus", "0", "--out",
                           str(tmp_path / "r")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and "--gpus" in done.stderr
    assert not (tmp_path / "r").exists()


# ---- real 2-process runs on CPU (gloo) ---------------------------------------------------------
def _train(*extra: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dpo_tutor", "train", *TRAIN, "--gpus", "2", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore", "TQDM_DISABLE": "1"}, **kwargs,
    )


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("mp") / "run"
    started = time.monotonic()
    proc = _train("--max-steps", "4", "--eval-steps", "2", "--save-steps", "2", "--out", str(run_dir))
    out, err = proc.communicate(timeout=120)
    return run_dir, proc, out, err, time.monotonic() - started


def test_two_processes_write_one_coherent_log(two_process_run):
    run_dir, proc, out, err, seconds = two_process_run
    assert proc.returncode == 0, err[-3000:]
    assert out.strip() == str(run_dir)  # printed once, by the launcher
    events = read_events(run_dir)
    types = [e["type"] for e in events]
    assert types.count("run_started") == 1 and types[0] == "run_started"
    assert types.count("finished") == 1 and types[-1] == "finished"
    assert not {"failed", "stopped"} & set(types)
    started = events[0]
    assert started["world_size"] == 2 and started["devices"] == ["cpu", "cpu"]
    assert started["pid"] == proc.pid  # the launcher: the process to signal to stop the run
    assert started["backend"] == "hf" and started["device"] == "cpu"
    assert steps_of(events) == [1, 2, 3, 4]  # consecutive, no step written twice
    assert [e["step"] for e in events if e["type"] == "checkpoint"] == [2, 4]
    assert [e["step"] for e in events if e["type"] == "eval"] == [2, 4]
    assert [e["phase"] for e in events if e["type"] == "phase"].count("training") == 1
    assert [e["message"] for e in events if e["type"] == "phase" and e["phase"] == "saving"] == ["saving the adapter"]
    step1 = next(e for e in events if e["type"] == "step")["metrics"]
    assert step1["loss"] == pytest.approx(math.log(2), abs=1e-4)  # policy == reference at step 1
    assert step1["pairs_per_s"] > 0 and "gpu_mem_gib_per_device" not in step1  # CPU: no GPU memory
    assert all(math.isfinite(e["metrics"]["loss"]) for e in events if e["type"] == "step")
    assert events[-1]["summary"]["steps"] == 4
    print(f"2-process tiny run: {seconds:.1f} s")


def test_two_processes_leave_one_run_folder(two_process_run):
    run_dir, proc, *_ = two_process_run
    assert proc.returncode == 0
    names = {p.name for p in run_dir.iterdir()}
    assert names == {"adapter", "base", "checkpoints", "config.toml", "events.jsonl", "train.log"}, names
    assert (run_dir / "adapter" / "adapter_model.safetensors").exists()
    checkpoint = run_dir / "checkpoints" / "checkpoint-4"
    assert (checkpoint / "trainer_state.json").exists()
    assert {p.name for p in checkpoint.glob("rng_state_*.pth")} == {"rng_state_0.pth", "rng_state_1.pth"}
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    log_text = (run_dir / "train.log").read_text()
    assert log_text.count("backend hf") == 1  # rank 0 logs there; rank 1 only to stderr
    info = run_info(run_dir)
    assert info.state == "finished" and info.has_adapter
    leftovers = [p for p in Path(os.environ.get("TMPDIR", "/tmp")).glob("dpo-tutor-ranks-*")
                 if p.stat().st_mtime >= run_dir.stat().st_mtime - 120]
    assert not leftovers  # the processes' shared scratch folder is removed


@pytest.mark.slow
def test_sigterm_to_the_launcher_stops_every_process_and_resume_continues(tmp_path):
    run_dir = tmp_path / "run"
    proc = _train("--max-steps", "5000", "--eval-steps", "0", "--save-steps", "0", "--out", str(run_dir))
    deadline = time.monotonic() + 90
    while len(steps_of(read_events(run_dir))) < 3:
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.monotonic() < deadline, "no steps"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err[-3000:]
    assert [e["type"] for e in read_events(run_dir)].count("stopped") == 1
    k = assert_graceful_stop(run_dir)

    resumed = _train("--resume", str(run_dir), "--max-steps", str(k + 3))
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err[-3000:]
    events = read_events(run_dir)
    assert steps_of(events) == list(range(1, k + 4))  # the curve continues; no step repeated
    restarted = [e for e in events if e["type"] == "run_started"]
    assert len(restarted) == 2 and restarted[1]["resumed_from"] == k and restarted[1]["world_size"] == 2
    assert events[-1]["type"] == "finished" and events[-1]["step"] == k + 3
    assert run_info(run_dir).state == "finished"


# ---- per-GPU memory: the metric and what the Train screen's status line makes of it ------------
def test_gpu_memory_per_device_is_absent_on_cpu():
    import torch
    from dpo_tutor.engine.train.callback import any_process, gpu_memory_per_device

    assert gpu_memory_per_device(torch.device("cpu"), 2) is None
    assert any_process(True, torch.device("cpu")) is True  # no process group: this process's own flag
    assert any_process(False, torch.device("cpu")) is False


def test_status_line_shows_memory_of_each_gpu():
    from dpo_tutor.tui.run_state import RunState
    from dpo_tutor.tui.widgets.train_status import status_text

    state = RunState(path=Path("runs/x"))
    state.apply({"type": "run_started", "time": 1.0, "backend": "hf", "device": "cuda", "gpu_name": "NVIDIA H100",
                 "total_steps": 10, "pid": 1, "host": "h", "world_size": 2})
    state.apply({"type": "step", "time": 3.0, "step": 1, "total_steps": 10,
                 "metrics": {"loss": 0.69, "pairs_per_s": 20.0, "gpu_mem_gib": 1.25, "gpu_mem_peak_gib": 2.0,
                             "gpu_mem_gib_per_device": [1.25, 1.5]}})
    text = status_text(state, now=4.0)
    assert "2 GPUs 1.25 / 1.50 GiB" in text and "GPU 1.25 GiB" not in text
    # the lists stay out of the charted series (numbers only); the single numbers are charted as before
    assert "gpu_mem_gib" in state.store.train and "gpu_mem_gib_per_device" not in state.store.train


def test_a_run_of_one_process_sees_one_gpu():
    # On a 2-GPU host a plain `dpo-tutor train` failed: the Trainer wrapped the model in nn.DataParallel,
    # which TRL refuses. One process now gets the first visible GPU; `--gpus N` workers keep them all.
    env: dict[str, str] = {}
    assert launch.pin_one_gpu(env) == "0" and env["CUDA_VISIBLE_DEVICES"] == "0"
    env = {"CUDA_VISIBLE_DEVICES": "2,3"}
    assert launch.pin_one_gpu(env) == "2" and env["CUDA_VISIBLE_DEVICES"] == "2"
    env = {"CUDA_VISIBLE_DEVICES": "1"}
    assert launch.pin_one_gpu(env) is None and env["CUDA_VISIBLE_DEVICES"] == "1"
    env = {"WORLD_SIZE": "2", "CUDA_VISIBLE_DEVICES": "0,1"}
    assert launch.pin_one_gpu(env) is None and env["CUDA_VISIBLE_DEVICES"] == "0,1"
