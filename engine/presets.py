"""Named starting points for the Train screen's form (and for scripts): overrides of `TrainConfig`.

One engine-side place for them, so the UI, the lessons and classroom scripts agree. Measured on one
H200 (BENCHMARKS.md, 2026-12-01, eighth and ninth rounds): the default recipe (batch 32, length-grouped
batches, gradient checkpointing, reference scored once, lr 5e-4, 2 epochs over the 2,073 training pairs
of HH-RLHF harmless-base test = 128 steps) trains at ~300-350 pairs/s in 1.7-2.1 GiB on the hf backend
with recorded CUDA-graph steps on packed pairs (what auto picks; first step 14-16 s after a cold start,
~23 s of training), 94-138 pairs/s on Unsloth, ending near train loss 0.4 and held-out accuracy
0.71-0.75; the low-memory preset (8 x 4) at 200-210 pairs/s in 0.81 GiB. Durations in the labels are
for one GPU; on a CPU everything takes far longer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config import TrainConfig


@dataclass(frozen=True)
class Preset:
    key: str
    label: str
    description: str
    overrides: dict[str, Any]

    def apply(self, config: TrainConfig | None = None) -> TrainConfig:
        return (config or TrainConfig()).replace(**self.overrides)


# The default recipe's settings, spelled out so a preset resets what another preset changed.
LESSON_RUN = {"max_steps": 0, "epochs": 2.0, "max_pairs": 0, "batch_size": 32, "grad_accum": 1,
              "gradient_checkpointing": True, "group_by_length": True, "compile": "off",
              "max_length": 512, "eval_steps": 25, "eval_pairs": 64, "save_steps": 50}
# `benchmarks/preset_run.py --preset cpu-look` on this project's 2-core CPU machine (BENCHMARKS.md): the
# reference pass over 48 pairs done at 27.1 s, then 3.85 s per step (5.23 s with gradient checkpointing,
# which a CPU's memory does not need; the same losses): 84.7 s in all.
CPU_LOOK = {**LESSON_RUN, "max_steps": 12, "max_pairs": 48, "batch_size": 4, "max_length": 256, "eval_steps": 0,
            "save_steps": 0, "gradient_checkpointing": False}

# SmolLM2-135M on 2 cores (preset_run.py, BENCHMARKS.md): the GPU presets' batches of 32 with checkpointing
# (0.31-0.41 pairs/s: first step, then median) .. the CPU look's 4 pairs without (1.04)
CPU_PAIRS_PER_S = (0.3, 1.0)
CPU_WARN_PAIRS = 200  # fewer pairs than this finish in minutes on a CPU: no warning

PRESETS: dict[str, Preset] = {
    p.key: p
    for p in (
        Preset(
            "quick-demo",
            "quick demo (1 min)",
            "a few dozen steps on a slice of the data: enough to see the loss leave ln 2",
            {**LESSON_RUN, "max_steps": 40, "max_pairs": 1280, "max_length": 384, "eval_steps": 10,
             "eval_pairs": 32, "save_steps": 0},
        ),
        Preset(
            "cpu-look",
            "CPU look (~2 min, no GPU)",
            "12 steps of 4 pairs, 256 tokens: 85 s for SmolLM2-135M on 2 CPU cores, loss 0.69 -> ~0.3",
            CPU_LOOK,
        ),
        Preset(
            "lesson-run",
            "lesson run (~4 min, the video segment)",
            "the default recipe (2 epochs): the margin grows and train accuracy climbs past 0.75",
            LESSON_RUN,
        ),
        Preset(
            "full-epoch",
            "full epoch",
            "one pass over all the training pairs (long: tens of minutes on one GPU)",
            {**LESSON_RUN, "epochs": 1.0, "compile": "auto", "eval_steps": 100, "eval_pairs": 128,
             "save_steps": 200},
        ),
        Preset(
            "low-memory",
            "low memory (< 1.5 GiB of GPU memory)",
            "the lesson run in micro-batches of 8 (4 accumulated: the same learning), checkpointing, steps "
            "replayed as CUDA graphs on a GPU; under 1.5 GiB of GPU memory, for small or shared GPUs (BENCHMARKS.md)",
            {**LESSON_RUN, "batch_size": 8, "grad_accum": 4, "compile": "auto"},
        ),
    )
}


def default_preset(gpu: bool) -> str:
    """The Train form's first preset: the one-minute GPU demo, or the CPU look where no GPU shows."""
    return "quick-demo" if gpu else "cpu-look"


def pairs_to_train(config: TrainConfig) -> int | None:
    """Pairs the run will train on (repeats counted); None when it depends on the data's size."""
    if config.max_steps > 0:
        return config.max_steps * config.effective_batch
    if config.max_pairs > 0:
        return int(config.max_pairs * config.epochs)
    return None


def cpu_time_warning(config: TrainConfig, gpu: bool, remedy: str = "The 'CPU look' preset takes ~2 min.") -> str | None:
    """A sentence for a run that would take long on a machine without a GPU, else None."""
    if gpu or config.model == "tiny":
        return None
    pairs = pairs_to_train(config)
    if pairs is not None and pairs < CPU_WARN_PAIRS:
        return None
    slow, fast = CPU_PAIRS_PER_S
    if pairs is None:
        how_long = f"every pair for {config.epochs:g} epochs: hours"
    else:
        how_long = f"{pairs:,} pairs: ~{max(1, round(pairs / fast / 60))}-{round(pairs / slow / 60)} min"
    return (f"No GPU found: this trains on the CPU at ~{slow:g}-{fast:g} pairs/s for SmolLM2-135M ({how_long}). "
            + remedy)


def preset(key: str) -> Preset:
    try:
        return PRESETS[key]
    except KeyError:
        from .errors import ConfigError

        raise ConfigError(f"no preset '{key}'", remedy=f"known: {', '.join(PRESETS)}") from None
