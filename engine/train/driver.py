"""One training run, start to end: the run folder, the event log, the trainer, stop, resume, failure.

`run_training(config, run_dir)` is what `dpo-tutor train` calls in its own process (the UI starts that
command as a subprocess). It writes into the run folder:

- `config.toml` (the settings), `events.jsonl` (the event log, see events.py), `train.log`;
- `checkpoints/checkpoint-N/` (TRL/Trainer checkpoints, for --resume; complete once trainer_state.json
  is there, which the Trainer writes last);
- `adapter/` (the final LoRA, safetensors) and optionally `merged/`, each written under a temporary
  name and renamed, so a half-written folder is never presented as done;
- `base/` for the tiny random model only (its exact random weights, so the adapter can be reloaded).

SIGINT/SIGTERM end training at the end of the current step: a checkpoint and the adapter are saved
and a `stopped` event written. CUDA out of memory ends as `failed` with remedies, not a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..errors import UserError
from ..events import EVENTS_FILE, EventWriter, read_events
from ..runs import ADAPTER_DIR, CHECKPOINTS_DIR, CONFIG_FILE, LOG_FILE, MERGED_DIR
from ..safety import is_write_error
from .backend import select_backend
from .control import StopRequest, injected_oom_step
from .launch import (
    SHARED_DIR_ENV,
    allow_indexed_cpu_locations,
    choose_backend,
    is_main_process,
    launcher_pid,
    process_devices,
    world_size,
)

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


def checkpoint_complete(path: Path) -> bool:
    """Whether a checkpoint folder was written to the end: its trainer_state.json, which the Trainer
    writes last, is there and reads as JSON (a kill while it is written leaves it empty or torn)."""
    try:
        return isinstance(json.loads((path / "trainer_state.json").read_text(encoding="utf-8")), dict)
    except (OSError, ValueError):
        return False


def last_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint (`checkpoint_complete`)."""
    folder = run_dir / CHECKPOINTS_DIR
    if not folder.is_dir():
        return None
    found = []
    for path in folder.glob("checkpoint-*"):
        tail = path.name.rsplit("-", 1)[-1]
        if tail.isdigit() and checkpoint_complete(path):
            found.append((int(tail), path))
    return max(found)[1] if found else None


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _save_folder(target: Path, write: Callable[[Path], None]) -> Path:
    """Write a folder under a temporary name, then swap it into place."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        write(tmp)
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


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

    def __init__(self, config: TrainConfig, run_dir: Path, on_event: Callable[[dict], None] | None):
        self.config = config
        self.run_dir = run_dir
        self.on_event = on_event
        # Under a multi-process launcher (issue 10) only the main process writes the log.
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
    """Log to the run folder's train.log (a detached run's stdio already goes there)."""
    if os.environ.get("DPO_TUTOR_DETACHED") or not is_main_process():
        handler: logging.Handler = logging.StreamHandler(sys.stderr)  # other ranks: not the run folder
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
) -> RunResult:
    """Run one training (or resume one) in this process; return how it ended.

    `data`: the `LoadResult` a preflight already read (engine/safety.py), so it is not read twice.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = _setup_log_file(run_dir)
    run = _Run(config, run_dir, on_event)
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
    config, run_dir = run.config, run.run_dir
    checkpoint: Path | None = None
    skip_through = 0
    if resume:
        checkpoint = last_checkpoint(run_dir)
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
        _atomic_write_text(run_dir / CONFIG_FILE, config.to_toml())
    try:
        return _train(run, checkpoint, skip_through)
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


def _prepare_data(run: _Run):
    """Load the pairs, split off the held-out slice, and build TRL datasets."""
    from ..data.render import to_trl_record
    from ..data.split import split_for_run

    config = run.config
    result, train, heldout = split_for_run(config, getattr(run, "preloaded", None))
    heldout = heldout[: config.eval_pairs] if config.eval_pairs > 0 and config.eval_steps > 0 else []
    train_ds = _dataset([to_trl_record(t) for t in train])
    eval_ds = _dataset([to_trl_record(t) for t in heldout]) if heldout else None
    _keep_cache_in_bounds(train_ds, eval_ds)
    return result, train_ds, eval_ds


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


def _keep_cache_in_bounds(*datasets) -> None:
    """Mark the user-cache entries this run uses, then prune the least recently used others."""
    from .dataset_cache import entry_of, location, mark_used, prune

    folder = location()
    if folder is None or world_size() > 1:
        return
    for dataset in datasets:
        entry = entry_of(dataset, folder) if dataset is not None else None
        if entry is not None:
            mark_used(entry)
    prune(folder)


def _dataset(records: list[dict]):
    """A datasets.Dataset of the records, file-backed: TRL caches the tokenized rows and the precomputed
    reference log-probs next to the dataset's files (an in-memory dataset's cache path is per process).
    With several processes, in their shared folder (launch.SHARED_DIR_ENV), written by rank 0 and read
    by every rank; with one, in the user's cache (dataset_cache.location), else in memory."""
    from datasets import Dataset

    from .dataset_cache import location

    shared = os.environ.get(SHARED_DIR_ENV)
    if world_size() > 1 and shared:
        return Dataset.from_generator(_yield_records, gen_kwargs={"records": records}, cache_dir=shared)
    # One process: in the user's cache, where the next run of the same pairs finds TRL's tokenized rows
    # and reference log-probs (dataset_cache.py); in memory where that folder cannot be written.
    folder = location()
    if folder is not None and records:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return Dataset.from_generator(_yield_records, gen_kwargs={"records": records}, cache_dir=str(folder))
        except Exception as error:  # noqa: BLE001 - a cache must never cost the run: in memory instead
            log.warning("dataset cache %s not usable (%s): tokenizing in memory", folder, error)
    return Dataset.from_list(records)


def _yield_records(records: list[dict]):
    yield from records


def _train(run: _Run, checkpoint: Path | None, skip_through: int) -> RunResult:
    # What the backend sets up for the run's life (lean_imports.py) ends with it, even on an error.
    with contextlib.ExitStack() as run_scope:
        return _train_in(run, checkpoint, skip_through, run_scope)


def _train_in(run: _Run, checkpoint: Path | None, skip_through: int, run_scope: contextlib.ExitStack) -> RunResult:
    config, run_dir = run.config, run.run_dir
    from ..models import TINY, ModelSource, resolve_model

    source = resolve_model(config.model)
    tiny = source.is_tiny
    if (run_dir / "base" / "config.json").exists() and tiny:
        source = ModelSource("folder", TINY, str(run_dir / "base"), source.name, "the run's saved tiny model")
    world = world_size()
    from . import graphed_step

    # Recorded steps need one process and a recipe they compute; auto weighs it for the backend and compile.
    graphable_recipe = world == 1 and graphed_step.recipe_allows(config)
    if world > 1:
        choice, _note = choose_backend(config.backend, world)
    else:
        choice = select_backend(config.backend, graphed_recipe=graphable_recipe)
    if tiny and choice.name == "unsloth":
        if config.backend != "auto":
            raise UserError("the tiny test model trains with the hf backend", where="backend",
                            remedy="use --backend hf or auto")
        from .backend import BackendChoice

        choice = BackendChoice("hf", "auto: the tiny test model trains with hf")
    # Unsloth must be imported before transformers and TRL: prepare() comes first.
    if choice.name == "unsloth":
        from . import unsloth_backend as backend
    else:
        from . import hf_backend as backend  # type: ignore[no-redef]
    notes = backend.prepare(config, source, run_scope)

    import torch

    cuda = torch.cuda.is_available() and not os.environ.get("DPO_TUTOR_FORCE_NO_CUDA")
    device = "cuda" if cuda else "cpu"
    gpu_name = torch.cuda.get_device_name(int(os.environ.get("LOCAL_RANK", "0"))) if cuda else ""
    dtype, bf16, fp16 = _precision(config.precision, cuda)
    if world > 1 and not cuda:
        allow_indexed_cpu_locations()  # resuming N CPU processes (see launch.py)
    if config.optim == "adamw_8bit" and not cuda:
        raise UserError("the 8-bit optimizer needs a CUDA GPU", where="optim", remedy="use adamw_torch")
    run.emit(
        "run_started",
        run=run_dir.name,
        pid=launcher_pid() or os.getpid(),  # the process to signal to stop the run
        host=socket.gethostname(),
        world_size=world,
        devices=process_devices(world, cuda),
        backend=choice.name,
        backend_reason=choice.reason,
        device=device,
        gpu_name=gpu_name,
        versions=versions(notes),
        config=config.to_dict(),
        model=source.name,
        model_reason=source.reason,
        precision=str(dtype).replace("torch.", ""),
        resumed_from=_checkpoint_step(checkpoint),
        total_steps=config.max_steps,
        cpu_logprob=bool(notes.get("cpu_logprob")),
        imports_left_out=list(notes.get("imports_left_out") or []),  # lean_imports.py
        process_started=_process_start(),  # wall clock: imports and start-up before this event
    )
    log.info("backend %s: %s", choice.name, choice.reason)

    run.phase("loading_data", f"reading {config.data or 'the bundled sample'}")
    result, train_ds, eval_ds = _prepare_data(run)
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

    run.phase("loading_model", f"{source.name}: {source.reason}")
    model, tokenizer, peft_config = backend.load(config, source, dtype=dtype, device=device)
    if tiny:
        base = run_dir / "base"
        if not (base / "config.json").exists() and run.main_process:
            _save_folder(base, lambda p: (model.save_pretrained(p), tokenizer.save_pretrained(p)))
        model.config.name_or_path = model.name_or_path = str(base.resolve())

    from transformers import PrinterCallback
    from trl import DPOConfig

    from . import compile as compiling
    from .callback import EventCallback
    from .trainer import trainer_class

    use_compile, compile_reason = compiling.decision(
        config.compile, backend=choice.name, cuda=cuda, graphs=graphable_recipe
    )
    if cuda:
        compiling.tune_cuda_training()
    compiling_message = ""
    if choice.name == "unsloth":
        compiling_message = "the first step compiles Unsloth's kernels (~15 s on an H200)"
    elif use_compile:
        compiling_message = "the first step compiles the decoder layers (torch.compile; cached for later runs)"
    graphed = graphable_recipe and graphed_step.wanted(
        config.cuda_graphs, backend=choice.name, cuda=cuda, compiled=use_compile, world=world
    )
    workers = dataloader_workers()
    args = DPOConfig(
        output_dir=str(run_dir / CHECKPOINTS_DIR),
        beta=config.beta,
        loss_type=[config.loss_type] + (["sft"] if config.nll_weight else []),
        loss_weights=[1.0, config.nll_weight] if config.nll_weight else None,
        label_smoothing=config.label_smoothing,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=max(0, config.warmup_ratio),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps if config.max_steps > 0 else -1,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        max_length=config.max_length,
        seed=config.seed,
        bf16=bf16,
        fp16=fp16,
        use_cpu=not cuda,
        gradient_checkpointing=config.gradient_checkpointing and choice.name == "hf",
        precompute_ref_log_probs=config.precompute_ref,
        precompute_ref_batch_size=reference_batch_size(config.batch_size),
        optim=config.optim,
        logging_steps=1,
        report_to="none",
        disable_tqdm=True,
        eval_strategy="steps" if (eval_ds is not None and config.eval_steps > 0) else "no",
        eval_steps=config.eval_steps if config.eval_steps > 0 else None,
        save_strategy="steps" if config.save_steps > 0 else "no",
        save_steps=config.save_steps if config.save_steps > 0 else 500,
        save_total_limit=3,
        dataloader_pin_memory=cuda,
        # Workers collate the next batches while the GPU replays a step (BENCHMARKS.md, fifth round).
        dataloader_num_workers=workers,
        dataloader_persistent_workers=workers > 0,
        dataloader_prefetch_factor=4 if workers > 0 else None,
        # Fewer distinct shapes for the compiled layers, and tensor-core friendly widths; padding is masked.
        pad_to_multiple_of=16 if use_compile else None,
        # Recorded steps leave the loss on the GPU until the step is logged; TRL's default filter
        # would read it (a wait for the GPU) right after every step to drop NaN/inf losses.
        logging_nan_inf_filter=not graphed,
        # Recorded steps: each batch is copied to the GPU without the host waiting for the copy (it is
        # queued behind the step the GPU is running; the rows are in pinned memory).
        **({"accelerator_config": {"non_blocking": True}} if graphed and nonblocking_copies() else {}),
    )
    pairs_per_step = config.batch_size * config.grad_accum * max(1, int(os.environ.get("WORLD_SIZE", "1")))
    callback = EventCallback(
        run.emit,
        pairs_per_step=pairs_per_step,
        stop=run.stop,
        skip_through_step=skip_through,
        inject_oom_at=injected_oom_step(),
        compiling=compiling_message,
    )
    run.phase("loading_model", f"preparing the trainer (tokenizing {len(train_ds)} pairs)")
    if config.precompute_ref:
        run.phase("loading_model", "scoring the reference model once on every pair (precompute_ref)")

    trainer_cls = trainer_class(config.group_by_length, compiled=use_compile, graphed=graphed)
    if hasattr(trainer_cls, "ref_progress"):
        trainer_cls.ref_progress = _reference_progress(run)
    from .host_phases import install_from_env as host_phases_from_env
    from .host_phases import sync_debug_from_env

    host_phases = host_phases_from_env(trainer_cls)
    trainer = trainer_cls(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[callback],
    )
    trainer.remove_callback(PrinterCallback)  # it prints every log dict to stdout
    from .profiling import from_env as profile_from_env

    for developer_view in (profile_from_env(), host_phases, sync_debug_from_env()):
        if developer_view is not None:
            trainer.add_callback(developer_view)
    if use_compile:
        layers = compiling.compile_layers(trainer.model)
        log.info("torch.compile: %d decoder layers (%s)", layers, compile_reason)
        run.phase("loading_model", f"torch.compile: {layers} decoder layers ({compile_reason})", compiled_layers=layers)
    elif config.compile == "on":
        run.phase("loading_model", f"compile on is ignored: {compile_reason}")
    if graphed:
        if trainer.use_graphs():
            run.phase("loading_model", "CUDA graphs: each step shape is recorded once, then replayed",
                      cuda_graphs=True)
        else:
            run.phase("loading_model", f"CUDA graphs off: {trainer.graphs_note}", cuda_graphs=False)

    run.training = True
    if run.stop.requested:
        raise _StopBeforeTraining(run.stop.reason)
    try:
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    finally:
        run.step = callback.last_step or run.step
    run.step = int(trainer.state.global_step)

    if run.stop.requested:
        run.phase("saving", "saving the adapter after the stop request")
        if not run.main_process:
            return RunResult("stopped", 0, run_dir, run.step)
        adapter = _save_adapter(trainer, tokenizer, run_dir)
        ckpt = callback.checkpoints[-1] if callback.checkpoints else None
        run.emit("stopped", step=run.step, reason=run.stop.reason, checkpoint=ckpt, adapter=str(adapter))
        return RunResult("stopped", 0, run_dir, run.step)

    if eval_ds is not None and config.eval_steps > 0 and not (callback.evals and callback.evals[-1]["step"] == run.step):
        run.phase("evaluating", f"final evaluation on {len(eval_ds)} held-out pairs")
        trainer.evaluate()
    run.phase("saving", "saving the adapter")
    if not run.main_process:  # rank 0 saves the adapter and writes the end of the log
        return RunResult("finished", 0, run_dir, run.step)
    adapter = _save_adapter(trainer, tokenizer, run_dir)
    merged = None
    if config.merge:
        run.phase("saving", "merging the adapter into a 16-bit model")
        merged = _save_merged(trainer, tokenizer, run_dir, choice.name)
    run.emit("finished", step=run.step, adapter=str(adapter), merged=str(merged) if merged else None,
             summary=_summary(callback, trainer))
    return RunResult("finished", 0, run_dir, run.step)


def dataloader_workers() -> int:
    """Processes that collate batches beside the training loop: DPO_TUTOR_DATALOADER_WORKERS, else
    none (collating in the loop costs nothing while the host, not the GPU, is the bottleneck)."""
    value = os.environ.get("DPO_TUTOR_DATALOADER_WORKERS", "")
    if value.strip().isdigit():
        return int(value)
    return 0


def reference_batch_size(batch_size: int) -> int:
    """Pairs per batch of the reference pass (no gradients: twice the training batch, or
    DPO_TUTOR_REF_BATCH, a measurement knob)."""
    value = os.environ.get("DPO_TUTOR_REF_BATCH", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else batch_size * 2


def nonblocking_copies() -> bool:
    """Whether batches go to the GPU without the host waiting (recorded steps; DPO_TUTOR_NONBLOCKING=0: wait)."""
    from .knobs import switched_on

    return switched_on("DPO_TUTOR_NONBLOCKING")


def _process_start() -> float:
    """When this process started (wall clock): time to first step counts imports and loading too."""
    try:
        import psutil

        return psutil.Process().create_time()
    except Exception:  # noqa: BLE001 - psutil is optional: Linux's /proc says it too
        pass
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])  # starttime, field 22
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return _MODULE_LOADED


_MODULE_LOADED = time.time()


def _checkpoint_step(checkpoint: Path | None) -> int | None:
    if checkpoint is None:
        return None
    return int(checkpoint.name.rsplit("-", 1)[-1])


def _precision(precision: str, cuda: bool):
    import torch

    if not cuda or precision == "fp32":
        return torch.float32, False, False
    if precision == "fp16":
        return torch.float16, False, True
    if precision == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16, True, False
    return torch.float16, False, True


def _save_adapter(trainer, tokenizer, run_dir: Path) -> Path:
    model = trainer.model

    def write(path: Path) -> None:
        names = getattr(model, "peft_config", {}) or {}
        kwargs = {"selected_adapters": ["default"]} if len(names) > 1 and "default" in names else {}
        model.save_pretrained(str(path), safe_serialization=True, **kwargs)
        tokenizer.save_pretrained(str(path))

    return _save_folder(run_dir / ADAPTER_DIR, write)


def _save_merged(trainer, tokenizer, run_dir: Path, backend: str) -> Path:
    import torch

    model = trainer.model
    if "ref" in (getattr(model, "peft_config", {}) or {}):
        model.delete_adapter("ref")
        model.set_adapter("default")
    if backend == "unsloth":
        from .unsloth_backend import save_merged

        return _save_folder(run_dir / MERGED_DIR, lambda p: save_merged(model, tokenizer, str(p)))

    def write(path: Path) -> None:
        merged = model.merge_and_unload()
        merged = merged.to(torch.bfloat16)
        merged.save_pretrained(str(path), safe_serialization=True)
        tokenizer.save_pretrained(str(path))

    return _save_folder(run_dir / MERGED_DIR, write)


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
    if callback.first_step_at is not None:
        out["first_step_since_start_s"] = callback.first_step_at - _process_start()
    if callback.train_begin is not None:
        out["train_s"] = time.perf_counter() - callback.train_begin
    if callback.evals:
        out["eval"] = callback.evals[-1]
    graphs = getattr(trainer, "step_graphs", None)
    if graphs is not None or getattr(trainer, "graphs_note", ""):
        out["cuda_graphs"] = {
            "recorded": dict(graphs.recordings) if graphs else {},  # shapes, by kind (step, reference)
            "replayed": dict(graphs.replays) if graphs else {},
            "note": getattr(trainer, "graphs_note", ""),
        }
    return out
