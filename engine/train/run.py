"""One training run, start to end: the run folder, the event log, signals, and how a run ends.

`run_training(config, run_dir)` is what `dpo-tutor train` calls in its own process (the UI starts that
command as a subprocess). It writes into the run folder `config.toml` (the settings), `events.jsonl`
(the event log, see events.py), `train.log`, checkpoints, `adapter/`, optionally `merged/`, and `base/`
for the tiny random model (artifacts.py). A run is: plan (plan.py), the backend's imports, the data
(pairs.py), the model, the trainer (trainer.py, its DPOConfig from args.py), training, saving.

SIGINT/SIGTERM end training at the end of the current step: a checkpoint and the adapter are saved
and a `stopped` event written. CUDA out of memory ends as `failed` with remedies, not a traceback.
Measurement tools (benchmarks/) attach to the trainer from outside through `callbacks`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from ..config import TrainConfig
from ..errors import UserError
from ..events import EVENTS_FILE, EventWriter, read_events
from ..models import TINY, ModelSource, resolve_model
from ..preflight import is_write_error
from ..runs import CONFIG_FILE, LOG_FILE, stderr_is_run_log
from . import artifacts
from .args import dpo_config
from .backends import backend_module
from .fast import compiled_layers
from .launch import allow_indexed_cpu_locations, is_main_process, launcher_pid, world_size
from .machine import gpu_name, process_devices
from .pairs import prepare_data
from .plan import TrainPlan, long_run_compile, plan_run, step_token_limit
from .stop import StopRequest

log = logging.getLogger("dpo_tutor.train")

OOM_REMEDIES_TEMPLATE = (
    "reduce the batch size to 1 (--batch-size 1)",
    "increase gradient accumulation to keep the effective batch (--grad-accum {accum})",
    "use shorter sequences (--max-length {short})",
    "enable gradient checkpointing (gradient_checkpointing = true in the config file)",
    "or use a smaller model",
)
DISK_REMEDIES = (
    "free some disk space",
    "or choose a writable folder with --runs-dir / --out",
)

_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS}


@dataclass
class RunResult:
    state: str  # finished | stopped | failed
    exit_code: int
    run_dir: Path
    step: int = 0


class _StopBeforeTraining(BaseException):
    """Raised by the signal handler while the run is still loading (nothing to checkpoint yet)."""


def oom_remedies(config: TrainConfig) -> list[str]:
    accum = config.grad_accum * max(1, config.batch_size)
    short = max(64, config.max_length // 2)
    return [r.format(accum=accum, short=short) for r in OOM_REMEDIES_TEMPLATE]


def is_oom(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def versions(extra: dict[str, Any] | None = None) -> dict[str, str]:
    import peft
    import torch
    import transformers
    import trl

    out = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
        "peft": peft.__version__,
        "python": sys.version.split()[0],
    }
    try:
        from dpo_tutor import __version__

        out["dpo_tutor"] = __version__
    except ImportError:
        pass
    for key, value in (extra or {}).items():
        if isinstance(value, str):
            out[key] = value
    return out


class _Run:
    """The state of one run while it executes (kept small: run_training reads top to bottom)."""

    def __init__(self, config: TrainConfig, run_dir: Path, on_event: Callable[[dict], None] | None,
                 callbacks: Sequence[Any] = ()):
        self.config = config
        self.run_dir = run_dir
        self.on_event = on_event
        self.callbacks = list(callbacks)
        # Under a multi-process launcher only the main process writes the log.
        self.main_process = is_main_process()
        self.writer = EventWriter(run_dir / EVENTS_FILE) if self.main_process else None
        self.stop = StopRequest()
        self.training = False
        self.step = 0
        self.preloaded: Any = None  # data a preflight already read

    def emit(self, type: str, **fields: Any) -> dict:
        if self.writer is None:
            return {}
        event = self.writer.emit(type, **fields)
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:
                log.exception("progress display failed")
        return event

    def phase(self, name: str, message: str = "", **extra: Any) -> None:
        log.info("[%s] %s", name, message)
        self.emit("phase", phase=name, message=message, **extra)

    def handle_signal(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if not self.training:
            raise _StopBeforeTraining(name)
        if self.stop.requested:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            return
        log.warning("%s: stopping at the end of this step (checkpoint + adapter)", name)
        self.stop.request(name)


def _install_signals(run: _Run) -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, run.handle_signal)
    return previous


def _restore_signals(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def _setup_log_file(run_dir: Path) -> logging.Handler | None:
    """Log to the run folder's train.log (to stderr when stderr is that file already, or on other ranks)."""
    if stderr_is_run_log(run_dir) or not is_main_process():
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
    else:
        handler = logging.FileHandler(run_dir / LOG_FILE, encoding="utf-8")
    if not is_main_process():  # rank 0 tells the story; the others only their warnings
        handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("dpo_tutor").addHandler(handler)
    logging.getLogger("dpo_tutor").setLevel(logging.INFO)
    return handler


def run_training(
    config: TrainConfig,
    run_dir: str | os.PathLike[str],
    *,
    resume: bool = False,
    on_event: Callable[[dict], None] | None = None,
    data: Any = None,
    callbacks: Sequence[Any] = (),
) -> RunResult:
    """Run one training (or resume one) in this process; return how it ended.

    data: the `LoadResult` a preflight already read (engine/preflight.py), so it is not read twice.
    callbacks: transformers TrainerCallbacks added to the trainer (benchmarks' measurement tools); one
    with an `attach(trainer)` method is handed the trainer once it is built, before training.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = _setup_log_file(run_dir)
    run = _Run(config, run_dir, on_event, callbacks)
    run.preloaded = data
    previous = _install_signals(run)
    try:
        return _execute(run, resume)
    finally:
        _restore_signals(previous)
        if run.writer is not None:
            run.writer.close()
        if handler is not None:
            logging.getLogger("dpo_tutor").removeHandler(handler)
            handler.close()


def _execute(run: _Run, resume: bool) -> RunResult:
    """Train, and turn every way a run can end into its terminal event and exit code."""
    config, run_dir = run.config, run.run_dir
    checkpoint: Path | None = None
    skip_through = 0
    if resume:
        checkpoint = artifacts.last_checkpoint(run_dir)
        if checkpoint is None:
            raise UserError(
                "this run has no complete checkpoint to resume from",
                where=str(run_dir),
                remedy="start a new run with the same settings: dpo-tutor train --config "
                f"{run_dir / CONFIG_FILE}",
            )
        steps = [int(e.get("step", 0)) for e in read_events(run_dir) if e.get("type") == "step"]
        skip_through = max(steps, default=0)
    if run.main_process:
        artifacts.atomic_write_text(run_dir / CONFIG_FILE, config.to_toml())
    try:
        # What the backend sets up for the run's life (lean imports) ends with it, even on an error.
        with contextlib.ExitStack() as run_scope:
            return _train(run, checkpoint, skip_through, run_scope)
    except _StopBeforeTraining as stop:
        run.emit("stopped", step=run.step, reason=str(stop), checkpoint=None, adapter=None)
        return RunResult("stopped", 0, run_dir, run.step)
    except UserError as exc:
        run.emit("failed", step=run.step, kind=type(exc).__name__, message=exc.one_line(), remedies=[])
        raise
    except BaseException as exc:  # noqa: BLE001 - every end of a run is written to its log
        if is_oom(exc):
            message = str(exc).splitlines()[0][:300]
            run.emit("failed", step=run.step, kind="out_of_memory", message=message,
                     remedies=oom_remedies(config))
            remedies = "; ".join(oom_remedies(config))
            print(f"dpo-tutor train: out of GPU memory at step {run.step + 1} (try: {remedies})", file=sys.stderr)
            return RunResult("failed", 3, run_dir, run.step)
        # a full disk also arrives wrapped: safetensors' SafetensorError, torch.save's RuntimeError
        if (isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS) or is_write_error(exc):
            run.emit("failed", step=run.step, kind="disk", message=f"cannot write the run: {exc}",
                     remedies=list(DISK_REMEDIES))
            print(f"dpo-tutor train: cannot write the run: {exc}", file=sys.stderr)
            return RunResult("failed", 4, run_dir, run.step)
        if isinstance(exc, KeyboardInterrupt):
            run.emit("stopped", step=run.step, reason="SIGINT (forced)", checkpoint=None, adapter=None)
            return RunResult("stopped", 130, run_dir, run.step)
        run.emit("failed", step=run.step, kind=type(exc).__name__, message=str(exc)[:500] or repr(exc),
                 remedies=[])
        traceback.print_exc()
        return RunResult("failed", 1, run_dir, run.step)


def _train(run: _Run, checkpoint: Path | None, skip_through: int, run_scope: contextlib.ExitStack) -> RunResult:
    source, plan, backend = _start(run, checkpoint, run_scope)
    train_ds, eval_ds = _load_data(run, plan)
    model, tokenizer, peft_config = _load_model(run, source, plan, backend)
    plan = _plan_for_length(run, plan, model, len(train_ds))
    trainer, callback = _build_trainer(run, plan, skip_through, model, tokenizer, peft_config, train_ds, eval_ds)
    _fit(run, trainer, callback, checkpoint)
    return _finish(run, plan, trainer, tokenizer, callback, eval_ds)


def _model_source(run: _Run) -> ModelSource:
    source = resolve_model(run.config.model)
    base = run.run_dir / artifacts.TINY_BASE_DIR
    if source.is_tiny and (base / "config.json").exists():
        source = ModelSource("folder", TINY, str(base), source.name, "the run's saved tiny model")
    return source


def _start(run: _Run, checkpoint: Path | None, run_scope: contextlib.ExitStack) -> tuple[ModelSource, TrainPlan, ModuleType]:
    """Plan the run, import its backend (Unsloth before anything else heavy), write run_started."""
    config = run.config
    source = _model_source(run)
    world = world_size()
    plan = plan_run(config, world=world, tiny=source.is_tiny)
    backend = backend_module(plan.backend)
    notes = backend.prepare(config, source, run_scope, lean_imports=plan.switches.lean_imports)
    if world > 1 and not plan.cuda:
        allow_indexed_cpu_locations()  # resuming N CPU processes (see launch.py)
    run.emit(
        "run_started",
        run=run.run_dir.name,
        pid=launcher_pid() or os.getpid(),  # the process to signal to stop the run
        host=socket.gethostname(),
        world_size=world,
        devices=process_devices(world, plan.cuda),
        backend=plan.backend,
        backend_reason=plan.backend_reason,
        device=plan.device,
        gpu_name=gpu_name(int(os.environ.get("LOCAL_RANK", "0"))) if plan.cuda else "",
        versions=versions(notes),
        config=config.to_dict(),
        plan=plan.to_dict(),  # how the run computes, and why
        model=source.name,
        model_reason=source.reason,
        precision=plan.precision,
        resumed_from=artifacts.checkpoint_step(checkpoint),
        total_steps=config.max_steps,
        cpu_logprob=bool(notes.get("cpu_logprob")),
        imports_left_out=list(notes.get("imports_left_out") or []),  # backends/lean_imports.py
    )
    log.info("backend %s: %s", plan.backend, plan.backend_reason)
    return source, plan, backend


def _load_data(run: _Run, plan: TrainPlan):
    """The train and held-out datasets, with phase events saying what was read."""
    config = run.config
    run.phase("loading_data", f"reading {config.describe_data()}")
    result, train_ds, eval_ds = prepare_data(config, preloaded=run.preloaded, run_dir=run.run_dir,
                                             world=plan.world_size, switches=plan.switches)
    if getattr(result, "note", ""):
        run.phase("loading_data", result.note)  # where the default data came from (hub, local copies, sample)
    for warning in config.check(len(train_ds)):
        log.warning("%s", warning)
        run.phase("loading_data", f"warning: {warning}")
    run.phase(
        "loading_data",
        f"{len(train_ds)} training pairs, {len(eval_ds) if eval_ds is not None else 0} held out "
        f"({result.format} format)",
        train_pairs=len(train_ds),
        eval_pairs=len(eval_ds) if eval_ds is not None else 0,
    )
    return train_ds, eval_ds


def _load_model(run: _Run, source: ModelSource, plan: TrainPlan, backend: ModuleType):
    """(model, tokenizer, LoRA config or None); the tiny random model's weights kept in the run folder."""
    run.phase("loading_model", f"{source.name}: {source.reason}")
    model, tokenizer, peft_config = backend.load(run.config, source, dtype=plan.torch_dtype(), device=plan.device)
    if source.is_tiny:
        base = run.run_dir / artifacts.TINY_BASE_DIR
        if run.main_process:
            artifacts.save_tiny_base(model, tokenizer, run.run_dir)
        model.config.name_or_path = model.name_or_path = str(base.resolve())
    return model, tokenizer, peft_config


def _compiling_message(plan: TrainPlan) -> str:
    """What the UI shows while the first step compiles ('' when nothing compiles)."""
    if plan.backend == "unsloth":
        return "the first step compiles Unsloth's kernels"
    if plan.compile:
        return "the first step compiles the decoder layers (torch.compile; cached for later runs)"
    return ""


def _reference_progress(run: _Run):
    """Phase events for the reference pass: minutes on a CPU, and the UI's only sign of life then."""

    def report(name: str, scored: int, total: int, finished: bool) -> None:
        if finished and scored == 0:
            message = f"reference log-probs of the {total:,} {name} pairs found in the cache: no reference pass"
        elif finished:
            message = f"scored the reference model on the {total:,} {name} pairs"
        else:
            message = f"scoring the reference model on the {name} pairs: {scored:,}/{total:,}"
        run.phase("loading_model", message, done=total if finished else scored, total=total)

    return report


def _pairs_to_train(config: TrainConfig, plan: TrainPlan, train_pairs: int) -> int:
    """Pairs the run will train: max_steps of the effective batch, else its epochs over the data."""
    per_step = config.effective_batch * plan.world_size
    if config.max_steps > 0:
        return config.max_steps * per_step
    return int(math.ceil(train_pairs / per_step) * config.epochs) * per_step


def _plan_for_length(run: _Run, plan: TrainPlan, model, train_pairs: int) -> TrainPlan:
    """The plan once the run's length and model size are known (`long_run_compile`, `step_token_limit`)."""
    quantized = bool(getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False))
    parameters = sum(p.numel() for p in model.parameters())
    decided = long_run_compile(plan, run.config, pairs=_pairs_to_train(run.config, plan, train_pairs),
                               parameters=parameters, quantized=quantized)
    if not decided.compile and decided.compile_reason != plan.compile_reason:
        run.phase("loading_model", f"decoder layers not compiled: {decided.compile_reason}")
    decided = step_token_limit(decided, run.config, parameters=parameters)
    if decided.step_tokens:
        run.phase("loading_model", f"a step of more than {decided.step_tokens:,} tokens runs in parts of its "
                  f"pairs, for less memory ({decided.step_tokens_reason})", step_tokens=decided.step_tokens)
    return decided


def _build_trainer(run: _Run, plan: TrainPlan, skip_through: int, model, tokenizer, peft_config, train_ds, eval_ds):
    """The trainer (TRL's class or ours, as the plan says), its event callback and the benchmarks'
    callbacks; compiled layers and recorded steps switched on."""
    # Imported here, after the backend's prepare(): importing transformers or TRL before Unsloth would
    # miss its patches (and a run's imports start inside the hf backend's lean scope).
    from transformers import PrinterCallback

    from .callback import EventCallback
    from .trainer import TrainerOptions, make_trainer

    config = run.config
    if plan.cuda:
        compiled_layers.tune_cuda_training()
    args = dpo_config(config, plan, run.run_dir, evaluates=eval_ds is not None and config.eval_steps > 0)
    callback = EventCallback(
        run.emit,
        pairs_per_step=config.batch_size * config.grad_accum * plan.world_size,
        stop=run.stop,
        skip_through_step=skip_through,
        inject_oom_at=plan.switches.inject_oom_at_step or None,
        compiling=_compiling_message(plan),
    )
    run.phase("loading_model", f"preparing the trainer (tokenizing {len(train_ds)} pairs)")
    if config.precompute_ref:
        run.phase("loading_model", "scoring the reference model once on every pair (precompute_ref)")
    options = TrainerOptions.for_run(config, plan, ref_progress=_reference_progress(run))
    trainer = make_trainer(
        options,
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[callback],
    )
    trainer.remove_callback(PrinterCallback)  # it prints every log dict to stdout
    for extra in run.callbacks:
        trainer.add_callback(extra)
        if hasattr(extra, "attach"):
            extra.attach(trainer)
    if plan.compile:
        layers = compiled_layers.compile_layers(trainer.model, backend=plan.switches.compile_backend)
        log.info("torch.compile: %d decoder layers (%s)", layers, plan.compile_reason)
        run.phase("loading_model", f"torch.compile: {layers} decoder layers ({plan.compile_reason})",
                  compiled_layers=layers)
    elif config.compile == "on":
        run.phase("loading_model", f"compile on is ignored: {plan.compile_reason}")
    if plan.graphs:
        if trainer.use_graphs():
            run.phase("loading_model", "CUDA graphs: each step shape is recorded once, then replayed",
                      cuda_graphs=True)
        else:
            run.phase("loading_model", f"CUDA graphs off: {trainer.graphs_note}", cuda_graphs=False)
    return trainer, callback


def _fit(run: _Run, trainer, callback, checkpoint: Path | None) -> None:
    """Train (from the checkpoint when resuming) until the last step or a stop request."""
    run.training = True
    if run.stop.requested:
        raise _StopBeforeTraining(run.stop.reason)
    try:
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    finally:
        run.step = callback.last_step or run.step
    run.step = int(trainer.state.global_step)


def _finish(run: _Run, plan: TrainPlan, trainer, tokenizer, callback, eval_ds) -> RunResult:
    """After training: the final evaluation, the adapter (and merged model), the terminal event."""
    config, run_dir = run.config, run.run_dir
    if run.stop.requested:
        run.phase("saving", "saving the adapter after the stop request")
        if not run.main_process:
            return RunResult("stopped", 0, run_dir, run.step)
        adapter = artifacts.save_adapter(trainer, tokenizer, run_dir)
        ckpt = callback.checkpoints[-1] if callback.checkpoints else None
        run.emit("stopped", step=run.step, reason=run.stop.reason, checkpoint=ckpt, adapter=str(adapter))
        return RunResult("stopped", 0, run_dir, run.step)

    if eval_ds is not None and config.eval_steps > 0 and not (callback.evals and callback.evals[-1]["step"] == run.step):
        run.phase("evaluating", f"final evaluation on {len(eval_ds)} held-out pairs")
        trainer.evaluate()
    run.phase("saving", "saving the adapter")
    if not run.main_process:  # rank 0 saves the adapter and writes the end of the log
        return RunResult("finished", 0, run_dir, run.step)
    adapter = artifacts.save_adapter(trainer, tokenizer, run_dir)
    merged = None
    if config.merge:
        run.phase("saving", "merging the adapter into a 16-bit model")
        merged = artifacts.save_merged(trainer, tokenizer, run_dir, plan.backend)
    run.emit("finished", step=run.step, adapter=str(adapter), merged=str(merged) if merged else None,
             summary=_summary(callback, trainer))
    return RunResult("finished", 0, run_dir, run.step)


def _summary(callback, trainer) -> dict[str, Any]:
    history = callback.history
    out: dict[str, Any] = {"steps": int(trainer.state.global_step)}
    keys = ("loss", "rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected")
    if history:
        out["first"] = {k: history[0][k] for k in keys if k in history[0]}
        out["last"] = {k: history[-1][k] for k in keys if k in history[-1]}
        steady = [h["pairs_per_s"] for h in history[1:] if "pairs_per_s" in h] or [
            h["pairs_per_s"] for h in history if "pairs_per_s" in h
        ]
        if steady:
            out["pairs_per_s"] = sum(steady) / len(steady)
        peaks = [h["gpu_mem_peak_gib"] for h in history if "gpu_mem_peak_gib" in h]
        if peaks:
            out["gpu_mem_peak_gib"] = max(peaks)
    if callback.first_step_time is not None:
        out["first_step_s"] = callback.first_step_time  # from the start of training (Unsloth: compile included)
    if callback.train_begin is not None:
        out["train_s"] = time.perf_counter() - callback.train_begin
    if callback.evals:
        out["eval"] = callback.evals[-1]
    graphs = getattr(trainer, "step_graphs", None)
    if graphs is not None or getattr(trainer, "graphs_note", ""):
        out["cuda_graphs"] = {
            "recorded": dict(graphs.recordings) if graphs else {},  # shapes, by kind (step, reference)
            "replayed": dict(graphs.replays) if graphs else {},
            "recordings_failed": len(graphs.failed) if graphs else 0,  # shapes whose recording failed (retried once)
            "split_steps": getattr(trainer, "split_steps", 0),  # micro-batches run in parts (plan.step_tokens)
            "note": getattr(trainer, "graphs_note", ""),
        }
    return out
