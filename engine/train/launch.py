"""Training on several processes of one host (`dpo-tutor train --gpus N`) through Hugging Face accelerate.

With N > 1 the train command does not train in its own process: it re-runs itself under `accelerate
launch` (torchrun underneath) as N processes, rank 0..N-1, one per GPU, and waits for them. Each runs
the normal training path (run.run_training); TRL's DPOTrainer gathers its metrics across them, and
only rank 0 writes the run folder (events.jsonl, config.toml, adapter; checkpoints are the Trainer's
own coordinated saves). On a machine without CUDA the processes use the gloo backend on CPU (for tests
and classrooms); accelerate's `--cpu` flag would start a single process there unless MPI is installed,
so both cases use its torchrun launcher (`--multi_gpu`) and the Trainer's `use_cpu` picks gloo.

Every process gets NCCL_NVLS_ENABLE=0 and TORCH_SYMM_MEM_DISABLE_MULTICAST=1: NVLink multicast stays
off (the lent multi-GPU machines must never call cuMulticastCreate).

Stopping: the launcher runs accelerate in its own session and passes the first SIGINT/SIGTERM on to it;
torchrun's agent passes it to every process, which end at the same step (the callback agrees on the
stop across processes) with a checkpoint, the adapter and a `stopped` event. The agent SIGKILLs a
process still alive after TORCH_ELASTIC_SHUTDOWN_TIMEOUT seconds (SHUTDOWN_TIMEOUT_S unless set).
If the processes end without a terminal event (killed, or a crash outside rank 0's handler), the
launcher writes one, so the log always ends.

Nothing heavy is imported at module level: the train command imports this before torch.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..events import EVENTS_FILE, TERMINAL_TYPES, EventWriter, read_events

NO_MULTICAST_ENV = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1"}
LAUNCHER_PID_ENV = "DPO_TUTOR_LAUNCHER_PID"
SHARED_DIR = ".ranks-cache"  # in the run folder: the datasets' cache the processes share, removed at the end
SHUTDOWN_TIMEOUT_ENV = "TORCH_ELASTIC_SHUTDOWN_TIMEOUT"
SHUTDOWN_TIMEOUT_S = 120

BACKEND_SUPPORT = (
    "hf (transformers + PEFT + TRL): one GPU, several GPUs through accelerate (data parallel), or CPU",
    "unsloth: one GPU only; with --gpus N > 1 the run uses hf",
)


# ---- where this process stands ----------------------------------------------------------------
def world_size(environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    return max(1, int(env.get("WORLD_SIZE", "1") or 1))


def rank(environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    return int(env.get("RANK", "0") or 0)


def is_main_process(environ: Mapping[str, str] | None = None) -> bool:
    return rank(environ) == 0


def launched_worker(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process is one of the N processes a `--gpus N` launcher started."""
    env = os.environ if environ is None else environ
    return bool(env.get(LAUNCHER_PID_ENV)) and "LOCAL_RANK" in env


def launcher_pid(environ: Mapping[str, str] | None = None) -> int | None:
    """The pid of the launcher (the process to signal to stop the run), when launched by one."""
    env = os.environ if environ is None else environ
    value = env.get(LAUNCHER_PID_ENV, "")
    return int(value) if value.isdigit() and launched_worker(env) else None


def pin_one_gpu(environ: MutableMapping[str, str] | None = None) -> str | None:
    """Make a run of one process see one GPU (the first visible one); return what was set, or None.

    Seeing several, transformers' Trainer wraps the model in `nn.DataParallel`, which TRL's DPOTrainer
    refuses ("does not support nn.DataParallel"): found on a lent 2-GPU machine, where a plain
    `dpo-tutor train` failed. `--gpus N` runs (WORLD_SIZE > 1) keep every GPU. Call it before anything
    asks CUDA how many devices there are: CUDA reads the variable once.
    """
    env = os.environ if environ is None else environ
    if world_size(env) > 1:
        return None
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        env["CUDA_VISIBLE_DEVICES"] = "0"
    elif "," in visible:
        env["CUDA_VISIBLE_DEVICES"] = visible.split(",")[0].strip()
    else:
        return None
    return env["CUDA_VISIBLE_DEVICES"]


def allow_indexed_cpu_locations() -> None:
    """Let torch.load map storages to "cpu:N", the device the Trainer names on multi-process CPU runs.

    transformers' Trainer loads a checkpoint's optimizer state with map_location=args.device when
    world_size > 1; on gloo/CPU processes that is `cpu:0`, which torch's own "cpu" deserializer refuses
    ("don't know how to restore data location"), so a --gpus N resume on CPU would fail. CUDA is unaffected.
    """
    import torch.serialization as ser

    global _CPU_LOCATIONS_REGISTERED
    if _CPU_LOCATIONS_REGISTERED:
        return

    def deserialize(storage, location: str):
        return storage if location.startswith("cpu:") else None

    ser.register_package(97, lambda obj: None, deserialize)  # after torch's own
    _CPU_LOCATIONS_REGISTERED = True


_CPU_LOCATIONS_REGISTERED = False


# ---- the launch command -----------------------------------------------------------------------
@dataclass(frozen=True)
class LaunchPlan:
    argv: list[str]
    env: dict[str, str]
    num_processes: int
    cuda: bool


def build_launch(
    train_argv: Sequence[str],
    num_processes: int,
    *,
    cuda: bool,
    environ: Mapping[str, str] | None = None,
    python: str | None = None,
    pid: int | None = None,
    cpu_count: int | None = None,
) -> LaunchPlan:
    """The command and environment that run `dpo-tutor train <train_argv>` as `num_processes` processes.

    Pure: nothing is started. `train_argv` are the train command's own flags (with --out or --resume).
    """
    if num_processes < 2:
        raise ValueError("a launch needs at least 2 processes")
    argv = [
        python or sys.executable, "-m", "accelerate.commands.launch",
        "--multi_gpu",  # torchrun: N local processes (gloo on CPU, NCCL on CUDA)
        "--num_processes", str(num_processes),
        "--num_machines", "1",
        "--machine_rank", "0",
        "--main_process_port", "0",  # a free port: runs side by side do not collide
        "--mixed_precision", "no",  # the Trainer's own bf16/fp16 settings decide
        "--dynamo_backend", "no",
        "-m", "dpo_tutor", "train", *train_argv,
    ]
    env = dict(os.environ if environ is None else environ)
    env.update(NO_MULTICAST_ENV)
    env[LAUNCHER_PID_ENV] = str(pid if pid is not None else os.getpid())
    env.setdefault(SHUTDOWN_TIMEOUT_ENV, str(SHUTDOWN_TIMEOUT_S))
    cores = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
    env.setdefault("OMP_NUM_THREADS", str(max(1, cores // num_processes)))
    env.setdefault("PYTHONUNBUFFERED", "1")
    if not cuda:
        env["ACCELERATE_USE_CPU"] = "true"
    return LaunchPlan(argv, env, num_processes, cuda)


def check_gpus(gpus: int, cuda: bool, device_count: int) -> None:
    """Refuse a process count this machine cannot run, in one line."""
    if gpus < 1:
        raise UserError(f"--gpus must be 1 or more, not {gpus}", where="--gpus")
    if cuda and gpus > device_count:
        raise UserError(
            f"--gpus {gpus} asks for more GPUs than this machine has ({device_count})",
            where="--gpus",
            remedy=f"use --gpus {device_count} or fewer",
        )


# ---- running it -------------------------------------------------------------------------------
def run_launch(plan: LaunchPlan, run_dir: Path) -> int:
    """Start the processes, pass the first stop signal on, wait; make sure the log ends; the exit code."""
    before = len(read_events(run_dir))
    try:
        return _run_and_wait(plan, run_dir, before, plan.env)
    finally:
        shutil.rmtree(run_dir / SHARED_DIR, ignore_errors=True)  # the datasets' cache the processes shared


def _run_and_wait(plan: LaunchPlan, run_dir: Path, before: int, env: dict[str, str]) -> int:
    proc = subprocess.Popen(plan.argv, env=env, start_new_session=True)
    stop: list[str] = []

    def forward(signum, frame) -> None:
        name = signal.Signals(signum).name
        if stop:
            print(f"dpo-tutor train: {name}: already stopping at the end of this step", file=sys.stderr)
            return
        stop.append(name)
        print(f"dpo-tutor train: {name}: stopping all {plan.num_processes} processes at the end of this step",
              file=sys.stderr)
        try:
            os.kill(proc.pid, signum)
        except ProcessLookupError:
            pass

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, forward)
        except ValueError:  # not the main thread
            break
    try:
        returncode = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if proc.poll() is None:  # an exception here: never leave the processes behind
            proc.terminate()
            proc.wait()
    new_events = read_events(run_dir)[before:]
    terminal = ensure_ended(run_dir, new_events, returncode, stop[0] if stop else None)
    return exit_code(terminal)


def ensure_ended(run_dir: Path, new_events: list[dict], returncode: int, stop_signal: str | None) -> dict:
    """The terminal event of this launch; written here when the processes ended without one."""
    for event in reversed(new_events):
        if event.get("type") in TERMINAL_TYPES:
            return event
    steps = [int(e.get("step", 0)) for e in new_events if e.get("type") == "step"]
    step = max(steps, default=0)
    with EventWriter(run_dir / EVENTS_FILE) as writer:
        if stop_signal:
            return writer.emit("stopped", step=step, reason=f"{stop_signal} (forced: the processes were killed)",
                               checkpoint=None, adapter=None)
        return writer.emit(
            "failed", step=step, kind="launcher",
            message=f"the training processes ended (exit code {returncode}) before the run did; see train.log",
            remedies=["run again with --gpus 1 to see the error of a single process"],
        )


def exit_code(terminal: dict) -> int:
    """The train command's exit code for how the run ended (as the single-process path returns it)."""
    kind = terminal.get("type")
    if kind == "finished":
        return 0
    if kind == "stopped":
        return 130 if "forced" in str(terminal.get("reason", "")) else 0
    return {"out_of_memory": 3, "disk": 4}.get(str(terminal.get("kind")), 1)
