"""`dpo-tutor train`: train a model with DPO (headless).

Flags override a `--config` TOML file, which overrides the defaults (engine/config.py). In the
foreground a progress line goes to stderr and the run folder is printed; `--detach` starts the same
command in its own session (it survives the terminal or SSH link going away), with its output in the
run folder's `train.log`, and prints the run folder at once.
"""

from __future__ import annotations

import argparse
import os
import sys

DESCRIPTION = """\
Train a model with DPO on preference pairs, on a GPU with Unsloth or anywhere with transformers + PEFT +
TRL. Each step is written to <run folder>/events.jsonl; Ctrl-C or SIGTERM stops gracefully (a checkpoint
and the adapter are saved) and --resume continues."""

EPILOG = """\
examples:
  dpo-tutor train --model tiny --max-steps 20                 a quick CPU demo (random tiny model)
  dpo-tutor train --preset cpu-look                           SmolLM2-135M on a CPU in ~2 minutes
  dpo-tutor train --data ../shared/data/hh-rlhf/harmless-base-test.jsonl.gz --max-pairs 2000
  dpo-tutor train --data a.jsonl.gz --data b.jsonl.gz --data-weights 1,3    mix two sources, 1:3
  dpo-tutor train --data hf:Anthropic/hh-rlhf/harmless-base --data hf:Anthropic/hh-rlhf/helpful-base

data: without --data, HH-RLHF harmless-base + helpful-base 2:1: from the hub when it answers, else the
local copies in $DPO_TUTOR_DATA_DIR, ./data or ../shared/data, else the bundled sample (said on stderr).
Repeat --data to mix sources; --data-weights gives their shares (equal when left out).
  dpo-tutor train --config my.toml --lr 1e-4 --detach         start and leave it running
  dpo-tutor train --resume runs/20261125-120000-smollm2       continue a stopped run
"""

# flag -> (TrainConfig field, type, metavar)
_VALUE_FLAGS: list[tuple[str, str, type, str]] = [
    ("--model", "model", str, "MODEL"),
    ("--data", "data", str, "SOURCE"),  # repeatable: several sources make a mix
    ("--data-weights", "data_weights", str, "W,W"),
    ("--format", "data_format", str, "FORMAT"),
    ("--columns", "columns", str, "MAP"),
    ("--beta", "beta", float, "B"),
    ("--loss-type", "loss_type", str, "LOSS"),
    ("--label-smoothing", "label_smoothing", float, "EPS"),
    ("--nll-weight", "nll_weight", float, "W"),
    ("--lr", "learning_rate", float, "LR"),
    ("--max-steps", "max_steps", int, "N"),
    ("--epochs", "epochs", float, "E"),
    ("--batch-size", "batch_size", int, "N"),
    ("--grad-accum", "grad_accum", int, "N"),
    ("--max-length", "max_length", int, "TOKENS"),
    ("--lora-r", "lora_r", int, "R"),
    ("--backend", "backend", str, "auto|unsloth|hf"),
    ("--seed", "seed", int, "N"),
    ("--max-pairs", "max_pairs", int, "N"),
    ("--eval-steps", "eval_steps", int, "N"),
    ("--save-steps", "save_steps", int, "N"),
    ("--optim", "optim", str, "NAME"),
    ("--compile", "compile", str, "auto|on|off"),
    ("--cuda-graphs", "cuda_graphs", str, "auto|off"),
]
_BOOL_FLAGS: list[tuple[str, str]] = [
    ("--merge", "merge"),
    ("--trust-remote-code", "trust_remote_code"),
    ("--allow-pickle", "allow_pickle"),
]


# on/off switches: --precompute-ref / --no-precompute-ref
_SWITCH_FLAGS: list[tuple[str, str]] = [
    ("--precompute-ref", "precompute_ref"),
    ("--group-by-length", "group_by_length"),
    ("--gradient-checkpointing", "gradient_checkpointing"),
]


def add_parser(sub: argparse._SubParsersAction) -> None:
    from dpo_tutor.engine.config import BACKENDS, COMPILE_MODES, CUDA_GRAPH_MODES, HELP, LOSS_TYPES

    choices = {"--backend": BACKENDS, "--compile": COMPILE_MODES, "--cuda-graphs": CUDA_GRAPH_MODES,
               "--loss-type": LOSS_TYPES}

    p = sub.add_parser(
        "train",
        help="train a model with DPO (headless)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", metavar="F", help="a TOML file of settings (flags override it)")
    from dpo_tutor.engine.presets import PRESETS

    p.add_argument("--preset", choices=list(PRESETS), metavar="NAME",
                   help="start from one of the Train screen's presets (flags override it): "
                   + "; ".join(f"{key}: {p.label}" for key, p in PRESETS.items()))
    for flag, name, kind, metavar in _VALUE_FLAGS:
        kwargs: dict = {"dest": name, "type": kind, "metavar": metavar, "default": None, "help": HELP[name]}
        if flag in choices:
            kwargs["choices"] = choices[flag]
            kwargs.pop("metavar")
        if flag == "--data":
            kwargs["action"] = "append"
            kwargs["help"] += " (repeat --data to mix several)"
        p.add_argument(flag, **kwargs)
    for flag, name in _BOOL_FLAGS:
        p.add_argument(flag, dest=name, action="store_true", default=None, help=HELP[name])
    for flag, name in _SWITCH_FLAGS:
        p.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=HELP[name])
    p.add_argument("--out", metavar="RUN_FOLDER", help="write the run into this folder (default: a new one under --runs-dir)")
    p.add_argument("--name", help="a short name for the run folder (default: the model's name)")
    p.add_argument("--detach", action="store_true", help="run in the background, survive the terminal closing; print the run folder")
    p.add_argument("--resume", metavar="RUN", help="continue this run (folder or name) from its last checkpoint")
    p.add_argument(
        "--runs-dir", metavar="DIR", default=argparse.SUPPRESS,
        help="where runs live (default: $DPO_TUTOR_RUNS_DIR or ./runs)",
    )
    p.add_argument(
        "--gpus", type=int, default=1, metavar="N",
        help="train on N GPUs of this machine: N processes through accelerate, hf backend (default: 1; "
        "without CUDA, N CPU processes)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress line")


def config_from_args(args: argparse.Namespace):
    """The TrainConfig the flags describe: defaults < --config file (or the resumed run's) < flags."""
    from dpo_tutor.engine.config import TrainConfig, parse_columns, parse_weights

    base = TrainConfig()
    if getattr(args, "_resume_config", None) is not None:
        base = args._resume_config
    if args.config:
        base = TrainConfig.from_toml(args.config)
    if getattr(args, "preset", None):
        from dpo_tutor.engine.presets import preset

        base = preset(args.preset).apply(base)
    changes = {}
    for _flag, name, _kind, _metavar in _VALUE_FLAGS:
        value = getattr(args, name, None)
        if value is None:
            continue
        if name == "columns":
            value = parse_columns(value)
        elif name == "data_weights":
            value = parse_weights(value)
        elif name == "data":
            value = value[0] if len(value) == 1 else list(value)
        changes[name] = value
    for _flag, name in _BOOL_FLAGS:
        if getattr(args, name, None):
            changes[name] = True
    for _flag, name in _SWITCH_FLAGS:
        if getattr(args, name, None) is not None:
            changes[name] = getattr(args, name)
    return base.replace(**changes)


def flag_fields(args: argparse.Namespace) -> list[str]:
    """The settings given as flags (so a bad value is blamed on its flag, not on the config file)."""
    names = [name for _f, name, _k, _m in _VALUE_FLAGS if getattr(args, name, None) is not None]
    return (
        names
        + [name for _f, name in _BOOL_FLAGS if getattr(args, name, None)]
        + [name for _f, name in _SWITCH_FLAGS if getattr(args, name, None) is not None]
    )


def _runs_dir(args: argparse.Namespace):
    from pathlib import Path

    from dpo_tutor.engine.runs import default_runs_dir

    value = getattr(args, "runs_dir", None)
    return Path(value).expanduser() if value else default_runs_dir()


def run(args: argparse.Namespace, *, callbacks=()) -> int:
    """The train command. callbacks: TrainerCallbacks for the trainer (benchmarks' measurement tools)."""
    from dpo_tutor.engine.errors import UserError

    try:
        return _run(args, callbacks)
    except UserError as e:
        print(f"dpo-tutor train: {e.one_line()}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, callbacks=()) -> int:
    from pathlib import Path

    from dpo_tutor.engine.config import TrainConfig
    from dpo_tutor.engine.errors import DataError, UserError
    from dpo_tutor.engine.runs import CONFIG_FILE, LOG_FILE, new_run_dir, resolve_run, safe_name

    runs_dir = _runs_dir(args)
    resume_dir = None
    if args.resume:
        resume_dir = resolve_run(args.resume, runs_dir)
        if not (resume_dir / CONFIG_FILE).exists():
            raise UserError("this run has no config.toml to resume from", where=str(resume_dir))
        args._resume_config = TrainConfig.from_toml(resume_dir / CONFIG_FILE)
        args.resume = str(resume_dir)
        if getattr(args, "preset", None):
            raise UserError("--preset would change the settings of the run being resumed", where="--preset",
                            remedy="resume without it (flags such as --max-steps still apply)")
    config = config_from_args(args)
    from dpo_tutor.engine.train import launch

    worker = launch.launched_worker()  # one of the N processes a `--gpus N` launcher started
    if resume_dir is None and not worker and not config.data_sources:
        from dpo_tutor.engine.preflight import check_config

        check_config(config, config_file=args.config, flag_fields=flag_fields(args))  # before saying the data
        config = _default_data(args, config)
    if args.gpus == 1 and not worker:
        launch.pin_one_gpu()  # one process, one GPU: no nn.DataParallel on a host with several
    if args.gpus != 1 and not worker:
        from dpo_tutor.engine.train.machine import cuda_available
        from dpo_tutor.engine.train.plan import backend_for_processes

        cuda = cuda_available()
        launch.check_gpus(args.gpus, cuda, _cuda_device_count() if cuda else 0)
        if args.gpus > 1:
            _choice, note = backend_for_processes(config.backend, args.gpus, cuda=cuda)
            if note:
                print(f"dpo-tutor train: {note}", file=sys.stderr)
            if not cuda:
                print(f"dpo-tutor train: no CUDA GPU here: {args.gpus} CPU processes (gloo)", file=sys.stderr)
    # Check settings, model files and data before a run folder exists and before torch is imported:
    # a bad input costs a fraction of a second, gives one line, and leaves nothing behind.
    from dpo_tutor.engine.preflight import preflight

    try:
        checked = preflight(config, config_file=args.config, flag_fields=flag_fields(args))
    except DataError:
        if not getattr(args, "_default_from_hub", False):
            raise
        config = _default_data(args, config.replace(data=""), hub=False, why="the hub did not give the data")
        checked = preflight(config, config_file=args.config, flag_fields=flag_fields(args))
    for warning in [] if worker else checked.warnings:  # the launcher said them already
        print(f"dpo-tutor train: warning: {warning}", file=sys.stderr)
    if not (worker or args.quiet or args.gpus > 1):
        from dpo_tutor.engine.presets import cpu_time_warning
        from dpo_tutor.engine.train.machine import gpu_visible

        slow = cpu_time_warning(config, gpu_visible(), remedy="`--preset cpu-look` takes ~2 min.")
        if slow:
            print(f"dpo-tutor train: note: {slow}", file=sys.stderr)
    from dpo_tutor.engine.train.plan import select_backend

    if args.gpus == 1 and not worker:
        select_backend(config.backend)

    if resume_dir is not None:
        run_dir = resume_dir
    elif worker:
        run_dir = Path(args.out)  # made by the launcher; rank 0 may already be writing into it
    elif args.out:
        run_dir = Path(args.out).expanduser()
        if run_dir.is_dir() and any(p.name != LOG_FILE for p in run_dir.iterdir()):
            raise UserError("the --out folder exists and is not empty", where=str(run_dir),
                            remedy="give a new folder, or --resume it")
        _make_folder(lambda: run_dir.mkdir(parents=True, exist_ok=True), run_dir)
    else:
        name = args.name or _default_name(config.model)
        run_dir = _make_folder(lambda: new_run_dir(runs_dir, safe_name(name)), runs_dir)

    if args.detach:
        return _detach(args, run_dir)
    if args.gpus > 1 and not worker:
        return _launch(args, run_dir)

    from dpo_tutor.engine.runs import remove_unstarted, stderr_is_run_log
    from dpo_tutor.engine.train.run import run_training

    progress = None if args.quiet else _Progress()
    try:
        result = run_training(config, run_dir, resume=resume_dir is not None, on_event=progress,
                              data=checked.data, callbacks=callbacks)
    except UserError:
        # a run started detached or by the UI (stderr is its train.log) leaves its folder to its starter
        if resume_dir is None and not stderr_is_run_log(run_dir) and not worker:
            remove_unstarted(run_dir)
        raise
    finally:
        if progress:
            progress.close()
    if not worker:  # the launcher prints it
        print(run_dir)
    return result.exit_code


def _default_data(args: argparse.Namespace, config, *, hub: bool | None = None, why: str = ""):
    """No --data: resolve the default mix now (hub, local copies or the sample), say which in one line, and
    name its sources in the config (so config.toml, --detach and --gpus N runs all read the same data)."""
    from dpo_tutor.engine.data.mix import resolve_default

    default = resolve_default(config.data_weights or None, hub=hub)
    if not default.forced:
        print(f"dpo-tutor train: {why + '; ' if why else ''}{default.note}", file=sys.stderr)
    args._default_from_hub = default.origin == "hub"
    if default.origin == "sample":
        return config
    args.data = default.data
    args.data_weights = ",".join(f"{s.weight:g}" for s in default.sources)
    return config.replace(data=default.data, data_weights=[s.weight for s in default.sources])


def _cuda_device_count() -> int:
    import torch

    return torch.cuda.device_count()


def _launch(args: argparse.Namespace, run_dir) -> int:
    """Run this command as --gpus N processes through accelerate (engine/train/launch.py); wait."""
    from dpo_tutor.engine.train import launch
    from dpo_tutor.engine.train.machine import cuda_available

    argv = _argv_from_args(args)
    if not args.resume:
        argv += ["--out", str(run_dir)]
    if args.quiet:
        argv.append("--quiet")
    plan = launch.build_launch(argv, args.gpus, cuda=cuda_available())
    code = launch.run_launch(plan, run_dir)
    print(run_dir)
    return code


def _make_folder(make, where):
    """Create the run folder; a path that cannot hold one is one line, not a traceback."""
    from dpo_tutor.engine.errors import UserError

    try:
        return make()
    except OSError as e:
        raise UserError(f"cannot create the run folder: {e.strerror or e}", where=str(where),
                        remedy="choose a writable folder with --runs-dir or --out") from None


def _default_name(model: str) -> str:
    from pathlib import Path

    from dpo_tutor.engine.model_shapes import is_shape_spec, parse_shape_spec

    if is_shape_spec(model):  # shape:NAME,... -> shape-NAME
        return f"shape-{parse_shape_spec(model).shape.name}"
    tail = Path(model.rstrip("/")).name or "run"
    return tail.replace(".gguf", "").lower()[:40]


def _detach(args: argparse.Namespace, run_dir) -> int:
    """Re-execute this command in a new session, output to the run folder's log; print the folder."""
    import subprocess

    from dpo_tutor.engine.runs import LOG_FILE

    argv = ["train", *_argv_from_args(args)]
    if not args.resume:
        argv += ["--out", str(run_dir)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    log = open(run_dir / LOG_FILE, "ab")  # noqa: SIM115 - handed to the child
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dpo_tutor", *argv, "--quiet"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            cwd=os.getcwd(),
        )
    finally:
        log.close()
    print(run_dir)
    print(f"dpo-tutor train: running in the background (pid {proc.pid}); see `dpo-tutor runs`", file=sys.stderr)
    return 0


def _argv_from_args(args: argparse.Namespace) -> list[str]:
    """The flags of this command (without --detach/--out), rebuilt from the parsed arguments."""
    argv: list[str] = []
    if args.config:
        argv += ["--config", str(args.config)]
    for flag, name, _kind, _metavar in _VALUE_FLAGS:
        value = getattr(args, name, None)
        if isinstance(value, list):
            for item in value:
                argv += [flag, str(item)]
        elif value is not None:
            argv += [flag, str(value)]
    for flag, name in _BOOL_FLAGS:
        if getattr(args, name, None):
            argv.append(flag)
    for flag, name in _SWITCH_FLAGS:
        value = getattr(args, name, None)
        if value is not None:
            argv.append(flag if value else "--no-" + flag[2:])
    if args.name:
        argv += ["--name", args.name]
    if args.resume:
        argv += ["--resume", str(args.resume)]
    if getattr(args, "runs_dir", None):
        argv += ["--runs-dir", str(args.runs_dir)]
    if args.gpus != 1:
        argv += ["--gpus", str(args.gpus)]
    return argv


class _Progress:
    """A one-line progress bar on stderr, fed with events."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self._last_len = 0

    def __call__(self, event: dict) -> None:
        kind = event.get("type")
        if kind == "phase":
            ongoing = isinstance(event.get("total"), int) and event.get("done") != event.get("total")
            # long work's progress (the reference pass) overwrites its own line on a terminal
            self._line(f"[{event.get('phase')}] {event.get('message', '')}", newline=not (ongoing and self.tty))
        elif kind == "run_started":
            self._line(
                f"run {event.get('run')}  backend {event.get('backend')} ({event.get('backend_reason')})  "
                f"device {event.get('device')}"
                + (f" x {event['world_size']} processes" if int(event.get("world_size") or 1) > 1 else ""),
                newline=True,
            )
        elif kind == "step":
            step, total = int(event.get("step", 0)), int(event.get("total_steps") or 0)
            m = event.get("metrics", {})
            width = 24
            done = int(width * step / total) if total else 0
            bar = "#" * done + "-" * (width - done)
            text = f"[{bar}] {step}/{total}  loss {m.get('loss', float('nan')):.4f}"
            if "rewards/accuracies" in m:
                text += f"  acc {m['rewards/accuracies']:.2f}"
            if "rewards/margins" in m:
                text += f"  margin {m['rewards/margins']:.3f}"
            if "pairs_per_s" in m:
                text += f"  {m['pairs_per_s']:.1f} pairs/s"
            self._line(text, newline=not self.tty)
        elif kind == "eval":
            m = event.get("metrics", {})
            self._line(
                f"eval @ {event.get('step')}: loss {m.get('eval_loss', float('nan')):.4f}  "
                f"acc {m.get('eval_rewards/accuracies', float('nan')):.2f}",
                newline=True,
            )
        elif kind == "checkpoint":
            self._line(f"checkpoint {event.get('path')}", newline=True)
        elif kind in ("finished", "stopped"):
            self._line(f"{kind} at step {event.get('step')}; adapter {event.get('adapter')}", newline=True)
        elif kind == "failed":  # the run or this command prints the failure itself
            self._line("failed", newline=True)

    def _line(self, text: str, *, newline: bool) -> None:
        if self.tty:
            pad = max(0, self._last_len - len(text))
            sys.stderr.write("\r" + text + " " * pad + ("\n" if newline else ""))
            self._last_len = 0 if newline else len(text)
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.tty and self._last_len:
            sys.stderr.write("\n")
            sys.stderr.flush()
