"""`dpo-tutor bench`: the same pairs, hyperparameters and number of optimizer steps, trained by several
pipelines, each in its own `dpo-tutor train` process (so import time, time to first step and peak GPU
memory are each pipeline's own), and a table of what each achieved.

A pipeline changes only how a step is computed (micro-batch vs accumulation, gradient checkpointing,
reference scored once or every step, length grouping, backend, optimizer), never the learning setup:
every pipeline uses the same learning rate, beta, effective batch, max_length, LoRA and seed.
Results and their history: BENCHMARKS.md.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dpo_tutor.engine.events import read_events
from dpo_tutor.engine.model_shapes import is_shape_spec
from dpo_tutor.engine.models import prepare_model_files
from dpo_tutor.engine.switches import ENV as SWITCHES_ENV
from dpo_tutor.engine.switches import Switches, encode


@dataclass(frozen=True)
class Pipeline:
    key: str
    label: str
    flags: tuple[str, ...]
    needs_cuda: bool = False
    needs_unsloth: bool = False
    switches: tuple[tuple[str, str], ...] = ()  # switches (engine/switches.py) of this pipeline's process only


EFFECTIVE_BATCH = 32
LAUNCH_FILE = "launched_at.json"  # timed_train.py's note of when it started a run's process


def _flags(backend: str, batch: int, accum: int, *, precompute: bool, grouped: bool, compile: str | None = None,
           optim: str = "adamw_torch", graphs: str | None = None) -> tuple[str, ...]:
    """`dpo-tutor train` flags for one way of computing a step (every pipeline checkpoints; batch x accum
    is always EFFECTIVE_BATCH). compile None: not passed (Unsloth compiles its own kernels). graphs:
    --cuda-graphs (recorded steps, hf on a GPU), None: not passed."""
    assert batch * accum == EFFECTIVE_BATCH
    flags = ("--backend", backend, "--batch-size", str(batch), "--grad-accum", str(accum), "--gradient-checkpointing",
             "--precompute-ref" if precompute else "--no-precompute-ref",
             "--group-by-length" if grouped else "--no-group-by-length")
    flags += (("--compile", compile) if compile else ()) + (("--cuda-graphs", graphs) if graphs else ())
    return flags + ("--optim", optim)


PIPELINES: dict[str, Pipeline] = {
    p.key: p
    for p in (
        Pipeline(
            "trl-defaults",
            "plain TRL (its defaults: batch 8 x 4, gradient checkpointing, reference every step)",
            _flags("hf", 8, 4, precompute=False, grouped=False, compile="off", graphs="off"),
            switches=(("drop_padding_mask", "0"),),  # TRL's own DPOTrainer class, padding mask and all
        ),
        Pipeline(
            "trl-tuned",
            "plain TRL tuned: batch 32, reference once, its checkpointing (TRL's own class; issue 23's baseline)",
            _flags("hf", 32, 1, precompute=True, grouped=False, compile="off", graphs="off"),
            switches=(("drop_padding_mask", "0"),),
        ),
        Pipeline(
            "unsloth-notebook",
            "Unsloth as its DPO notebooks configure it (batch 2 x 16, its checkpointing, 8-bit AdamW)",
            _flags("unsloth", 2, 16, precompute=False, grouped=False, optim="adamw_8bit"),
            needs_cuda=True, needs_unsloth=True,
        ),
        Pipeline(
            "ours-hf",
            "our default recipe (hf, what auto picks): batch 32, length-grouped, reference once, checkpointing, "
            "steps replayed as CUDA graphs on a GPU, layers compiled only on runs long enough to pay",
            _flags("hf", 32, 1, precompute=True, grouped=True, compile="auto", graphs="auto"),
        ),
        Pipeline(
            "ours-hf-eager",
            "the same without CUDA graphs: every step launched from Python",
            _flags("hf", 32, 1, precompute=True, grouped=True, compile="off", graphs="off"),
            needs_cuda=True,  # on a CPU it is ours-hf
        ),
        Pipeline(
            "ours-hf-compiled",
            "ours on hf with compiled decoder layers: batch 32, length-grouped, reference once, checkpointing",
            _flags("hf", 32, 1, precompute=True, grouped=True, compile="on", graphs="off"),
            needs_cuda=True,  # compiling on a CPU costs minutes and tells nothing about the GPU
        ),
        Pipeline(
            "ours-hf-graph-compiled",
            "ours-hf with --compile on: each decoder layer compiled (inductor), inside the recorded steps",
            _flags("hf", 32, 1, precompute=True, grouped=True, compile="on", graphs="auto"),
            needs_cuda=True,  # compiling on a CPU costs minutes and tells nothing about the GPU
        ),
        Pipeline(
            "ours-unsloth",
            "our default recipe on Unsloth: batch 32, length-grouped, reference once, Unsloth's checkpointing",
            _flags("unsloth", 32, 1, precompute=True, grouped=True),
            needs_cuda=True, needs_unsloth=True,
        ),
        Pipeline(
            "low-memory",
            "the low-memory preset (hf): batch 8 x 4, length-grouped, checkpointing, reference once, CUDA graphs",
            _flags("hf", 8, 4, precompute=True, grouped=True, compile="auto", graphs="auto"),
        ),
        Pipeline(
            "low-memory-unsloth",
            "low memory on Unsloth: batch 16 x 2, length-grouped, Unsloth's checkpointing, reference once",
            _flags("unsloth", 16, 2, precompute=True, grouped=True),
            needs_cuda=True, needs_unsloth=True,
        ),
    )
}
BASELINE = "trl-defaults"
MIN_STEADY_STEPS = 6  # fewer steady steps than this and the table says the pairs/s is unreliable


@dataclass
class BenchResult:
    key: str
    label: str
    state: str
    skipped: str = ""
    pairs_per_s: float | None = None
    steady_steps: int = 0  # the steps pairs_per_s is measured over
    run_pairs_per_s: float | None = None
    tokens_per_s: float | None = None
    first_step_s: float | None = None
    peak_gib: float | None = None
    loss: float | None = None
    margin: float | None = None
    accuracy: float | None = None
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def available(pipeline: Pipeline) -> str:
    """Empty when the pipeline can run here, else why not."""
    if pipeline.needs_cuda or pipeline.needs_unsloth:
        import importlib.util

        if Switches.from_env().no_cuda:
            return "needs CUDA"
        try:
            import torch
        except ImportError:  # pragma: no cover - torch is a dependency
            return "needs torch"
        if not torch.cuda.is_available():
            return "needs CUDA"
        if pipeline.needs_unsloth and importlib.util.find_spec("unsloth") is None:
            return "needs Unsloth (pip install 'dpo-tutor[gpu]')"
    return ""


def steady_gaps(steps: list[dict[str, Any]], skip: int = 2) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The consecutive (step, next step) pairs the steady state is measured over, from the (skip+1)-th
    step on. Left out: a step that recorded a new CUDA graph shape (an eager step plus a recording, a
    one-off; in a short length-grouped run that is many steps) and the step after it (its log waited for
    the recording), and one-off stalls of more than 3x the median step (a recompile)."""
    if len(steps) < skip + 2:
        skip = 0
    gaps = []
    after_recording = False
    for a, b in itertools.pairwise(steps[skip:]):
        recorded = _recorded_between(a, b)
        if not recorded and not after_recording and b["time"] > a["time"]:
            gaps.append((a, b))
        after_recording = recorded
    if not gaps:
        return []
    per_step = [(b["time"] - a["time"]) / max(1, b["step"] - a["step"]) for a, b in gaps]
    typical = statistics.median(per_step)
    return [gap for gap, t in zip(gaps, per_step, strict=True) if t <= 3 * typical]


def steady_rate(steps: list[dict[str, Any]], pairs_per_step: int, skip: int = 2) -> float | None:
    """Steady-state pairs per second: the pairs of the steps `steady_gaps` keeps over the time those
    steps took (a sum, not a median: recorded steps' logs are written one step late, so the gap between
    two step events alternates short and long while their sum stays the time the steps took)."""
    gaps = steady_gaps(steps, skip)
    if not gaps:
        return None
    return pairs_per_step * _steps_in(gaps) / sum(b["time"] - a["time"] for a, b in gaps)


def steady_step_count(steps: list[dict[str, Any]], skip: int = 2) -> int:
    """How many steps `steady_rate` measures over. Few (a short run of a graphed pipeline, most of whose
    steps recorded a new shape) make the rate unreliable: lagged logs make single gaps alternate short
    and long, and only their sum over many steps is the time the steps took."""
    return _steps_in(steady_gaps(steps, skip))


def _steps_in(gaps: list[tuple[dict[str, Any], dict[str, Any]]]) -> int:
    return sum(max(1, b["step"] - a["step"]) for a, b in gaps)


def steady_tokens_rate(steps: list[dict[str, Any]], skip: int = 2) -> float | None:
    """Tokens per second over the same steps as `steady_rate`, from the running token count each step
    logs (`tokens_seen`); None for logs without it."""
    gaps = [(a, b) for a, b in steady_gaps(steps, skip)
            if "tokens_seen" in a.get("metrics", {}) and "tokens_seen" in b.get("metrics", {})]
    if not gaps:
        return None
    tokens = sum(b["metrics"]["tokens_seen"] - a["metrics"]["tokens_seen"] for a, b in gaps)
    return tokens / sum(b["time"] - a["time"] for a, b in gaps)


def _recorded_between(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether step b recorded a new CUDA graph shape (an eager step plus a recording: a one-off)."""
    key = "cuda_graph_recordings"
    before, after = a.get("metrics", {}).get(key), b.get("metrics", {}).get(key)
    return before is not None and after is not None and after > before


def run_rate(steps: list[dict[str, Any]], pairs_per_step: int) -> float | None:
    """Pairs per second from the first logged step to the last, everything included."""
    if len(steps) < 2:
        return None
    a, b = steps[0], steps[-1]
    elapsed = b["time"] - a["time"]
    return (b["step"] - a["step"]) * pairs_per_step / elapsed if elapsed > 0 else None


STARTUP_PARTS = ("imports", "data", "model", "tokenizing", "reference", "trainer", "first step")


def startup_breakdown(events: list[dict[str, Any]], launched_at: float | None = None) -> dict[str, float]:
    """Where the time to the first logged step went, in seconds, from a run's events: imports (process
    start to run_started), reading the data, loading the model, tokenizing (TRL's dataset preparation),
    the reference pass (train and held-out), the trainer's setup, and the first step itself. Parts whose
    marks are missing from the log are left out. launched_at: when the bench started the process (wall
    clock); logs written before the plan recorded `process_started` in run_started instead."""
    started = next((e for e in events if e["type"] == "run_started"), None)
    first = next((e for e in events if e["type"] == "step"), None)
    if started is None or first is None:
        return {}
    phases = [e for e in events if e["type"] == "phase" and e["time"] <= first["time"]]

    def mark(test) -> float | None:
        return next((e["time"] for e in phases if test(e)), None)

    marks = {
        "process": launched_at if launched_at is not None else started.get("process_started"),
        "run_started": started["time"],
        "model": mark(lambda e: e.get("phase") == "loading_model"),
        "tokenizing": mark(lambda e: str(e.get("message", "")).startswith("preparing the trainer")),
        "reference": mark(lambda e: "total" in e),
        "reference_end": next((e["time"] for e in reversed(phases) if "total" in e), None),
        "trainer_end": mark(lambda e: e.get("phase") in ("training", "compiling")),
        "first": first["time"],
    }
    order = ("process", "run_started", "model", "tokenizing", "reference", "reference_end", "trainer_end", "first")
    out: dict[str, float] = {}
    for part, (a, b) in zip(STARTUP_PARTS, itertools.pairwise(order), strict=True):
        if marks[a] is not None and marks[b] is not None:
            out[part] = round(marks[b] - marks[a], 2)
    if marks["reference"] is None and "tokenizing" not in out and marks["tokenizing"] and marks["trainer_end"]:
        out["tokenizing"] = round(marks["trainer_end"] - marks["tokenizing"], 2)  # no reference pass
    return out


def format_startup_table(results: list[BenchResult]) -> str:
    """Seconds of each start-up part to the first logged step, one row per pipeline."""
    rows = ["| pipeline | " + " | ".join(STARTUP_PARTS) + " | total |", "|---|" + "---:|" * (len(STARTUP_PARTS) + 1)]
    for r in results:
        parts = r.extra.get("startup") or {}
        if not parts:
            continue
        cells = [f"{parts[p]:.1f}" if p in parts else "-" for p in STARTUP_PARTS]
        rows.append(f"| {r.key} | " + " | ".join(cells) + f" | {sum(parts.values()):.1f} |")
    return "\n".join(rows) if len(rows) > 2 else ""


def summarize_run(run_dir: Path, pipeline: Pipeline, tail: int = 5, launched_at: float | None = None) -> BenchResult:
    """A pipeline's result from its run folder. launched_at: when its process was started (wall clock),
    so the time to the first step counts imports and start-up too."""
    events = read_events(run_dir)
    if launched_at is None:
        launched_at = launch_time(run_dir)
    result = BenchResult(pipeline.key, pipeline.label, state="missing")
    steps = [e for e in events if e["type"] == "step"]
    started = next((e for e in events if e["type"] == "run_started"), None)
    end = next((e for e in reversed(events) if e["type"] in ("finished", "stopped", "failed")), None)
    result.state = end["type"] if end else "interrupted"
    if end and end["type"] == "failed":
        result.error = f"{end.get('kind')}: {end.get('message')}"
    if steps:
        result.pairs_per_s = steady_rate(steps, EFFECTIVE_BATCH)
        result.steady_steps = steady_step_count(steps)
        result.run_pairs_per_s = run_rate(steps, EFFECTIVE_BATCH)
        result.tokens_per_s = steady_tokens_rate(steps)
        if result.tokens_per_s is None:  # logs from before tokens_seen: the median of the steps' own rates
            tok = [s["metrics"].get("tokens_per_s") for s in steps[2:] if s["metrics"].get("tokens_per_s")]
            result.tokens_per_s = statistics.median(tok) if tok else None
        last = [s["metrics"] for s in steps[-tail:]]
        result.loss = statistics.fmean(m["loss"] for m in last if "loss" in m)
        result.margin = statistics.fmean(m.get("rewards/margins", 0.0) for m in last)
        result.accuracy = statistics.fmean(m.get("rewards/accuracies", 0.0) for m in last)
        peaks = [s["metrics"].get("gpu_mem_peak_gib") for s in steps if s["metrics"].get("gpu_mem_peak_gib")]
        result.peak_gib = max(peaks) if peaks else None
        if launched_at is not None:
            result.first_step_s = steps[0]["time"] - launched_at
        elif started is not None:  # older logs carried it in their summary
            proc_start = (end or {}).get("summary", {}).get("first_step_since_start_s")
            result.first_step_s = proc_start if proc_start is not None else steps[0]["time"] - started["time"]
        result.extra["startup"] = startup_breakdown(events, launched_at)
        if started is not None:
            result.extra["backend"] = started.get("backend")
            result.extra["gpu"] = started.get("gpu_name") or started.get("device")
    return result


def launch_time(run_dir: Path) -> float | None:
    """When timed_train.py started the run's process (wall clock), or None."""
    try:
        return float(json.loads((run_dir / LAUNCH_FILE).read_text(encoding="utf-8"))["launched_at"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def run_pipeline(pipeline: Pipeline, *, out: Path, common: list[str], timeout: float | None = None) -> BenchResult:
    why = available(pipeline)
    if why:
        return BenchResult(pipeline.key, pipeline.label, state="skipped", skipped=why)
    cmd = [sys.executable, "-m", "dpo_tutor", "train", "--out", str(out), "--quiet", *common, *pipeline.flags]
    base = os.environ.get(SWITCHES_ENV, "")
    switches = dict(pipeline.switches)
    cache = None
    if not Switches.parse(base).dataset_cache_dir:
        # Every pipeline starts cold, as a first run does: its own, empty dataset cache (no tokenized
        # rows or reference log-probs left by the pipeline before it). Set the switch to share one.
        cache = out.parent / f".dataset-cache-{pipeline.key}"
        shutil.rmtree(cache, ignore_errors=True)
        switches["dataset_cache_dir"] = str(cache)
    env = {**os.environ, SWITCHES_ENV: encode(switches, base)}
    launched_at = time.time()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    finally:
        if cache is not None:
            shutil.rmtree(cache, ignore_errors=True)
    result = summarize_run(out, pipeline, launched_at=launched_at)
    if proc.returncode != 0 and not result.error:
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        result.error = lines[-1] if lines else f"exit code {proc.returncode}"
        result.state = "failed"
    return result


def format_table(results: list[BenchResult]) -> str:
    base = next((r for r in results if r.key == BASELINE and r.pairs_per_s), None)

    def num(value: float | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    rows = [
        "| pipeline | pairs/s | steady steps | x plain TRL | whole-run pairs/s | tokens/s | first step s | peak GiB "
        "| loss | margin | accuracy | note |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        ratio = r.pairs_per_s / base.pairs_per_s if (base and r.pairs_per_s) else None
        note = r.skipped or r.error or r.state
        if r.pairs_per_s and r.steady_steps < MIN_STEADY_STEPS:
            note += f"; pairs/s from {r.steady_steps} step{'s' if r.steady_steps != 1 else ''}: unreliable"
        rows.append(
            f"| {r.key} | {num(r.pairs_per_s, '.1f')} | {r.steady_steps or '-'} | {num(ratio, '.2f')} | "
            f"{num(r.run_pairs_per_s, '.1f')} | "
            f"{num(r.tokens_per_s, '.0f')} | "
            f"{num(r.first_step_s, '.1f')} | {num(r.peak_gib, '.2f')} | {num(r.loss, '.3f')} | "
            f"{num(r.margin, '.3f')} | {num(r.accuracy, '.3f')} | {note} |"
        )
    return "\n".join(rows)


def run_bench(
    *, model: str, data: str, steps: int, pipelines: list[str], out_dir: Path, max_length: int = 512,
    max_pairs: int = 0, lr: float = 5e-4, beta: float = 0.1, seed: int = 42, progress=None,
) -> list[BenchResult]:
    from dpo_tutor.engine.errors import UserError

    unknown = [p for p in pipelines if p not in PIPELINES]
    if unknown:
        raise UserError(f"unknown pipeline(s): {', '.join(unknown)}", remedy=f"known: {', '.join(PIPELINES)}")
    # A pipeline's run folder must start empty: train refuses a used one, and the old run's events would
    # then be read as this pipeline's result.
    used = [key for key in pipelines if (out_dir / key).is_dir() and any((out_dir / key).iterdir())]
    if used:
        raise UserError(f"{out_dir} already holds runs of {', '.join(used)}", where="--out",
                        remedy="give a new or empty --out folder")
    common = ["--model", model, "--max-steps", str(steps), "--max-length", str(max_length), "--lr", str(lr),
              "--beta", str(beta), "--seed", str(seed), "--eval-steps", "0", "--save-steps", "0"]
    if data:
        common += ["--data", data]
    if max_pairs:
        common += ["--max-pairs", str(max_pairs)]
    if is_shape_spec(model):  # its random weights written once here, not in the first pipeline's time
        if progress:
            progress(f"bench: {model}: writing its random weights (once, cached) ...")
        prepare_model_files(model)
    results = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for key in pipelines:
        if progress:
            progress(f"bench: {key} ...")
        result = run_pipeline(PIPELINES[key], out=out_dir / key, common=common)
        results.append(result)
        if progress:
            progress(f"bench: {key}: {result.state} {json.dumps(result.__dict__, default=str)}")
    return results
