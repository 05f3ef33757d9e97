"""Named starting points for the Train screen's form (and for scripts): overrides of `TrainConfig`.

One engine-side place for them, so the UI, the lessons and classroom scripts agree. The default recipe
is the one the recipe sweep chose by what the model does (RECIPES.md): one epoch over the balanced
HH-RLHF mix. Durations in the labels are for one GPU; on a CPU everything takes far longer.
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
LESSON_RUN = {"max_steps": 0, "epochs": 1.0, "max_pairs": 0, "batch_size": 32, "grad_accum": 1,
              "gradient_checkpointing": True, "group_by_length": True, "compile": "auto",
              "max_length": 512, "eval_steps": 25, "eval_pairs": 64, "save_steps": 50}
# A look at training on a CPU in under two minutes for SmolLM2-135M (`benchmarks/preset_run.py --preset
# cpu-look`): few short pairs, no gradient checkpointing (a CPU's memory does not need it).
CPU_LOOK = {**LESSON_RUN, "max_steps": 12, "max_pairs": 48, "batch_size": 4, "max_length": 256, "eval_steps": 0,
            "save_steps": 0, "gradient_checkpointing": False}

# SmolLM2-135M's pairs/s on 2 CPU cores (benchmarks/preset_run.py): the GPU presets' batches of 32 with
# checkpointing .. the CPU look's batches of 4 without; the form's time estimate for a CPU run
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
            "lesson run (~1 min on a GPU, the video segment)",
            "the default recipe (1 epoch of the HH-RLHF mix): the margin grows, the answers stay fluent",
            LESSON_RUN,
        ),
        Preset(
            "two-epochs",
            "two epochs (an overfitting experiment)",
            "a second pass over the pairs: train accuracy climbs to ~0.87 while held-out stays ~0.56 (RECIPES.md)",
            {**LESSON_RUN, "epochs": 2.0},
        ),
        Preset(
            "low-memory",
            "low memory (< 1.5 GiB of GPU memory)",
            "the lesson run in micro-batches of 8 (4 accumulated: the same learning), checkpointing, steps "
            "replayed as CUDA graphs on a GPU; under 1.5 GiB of GPU memory, for small or shared GPUs",
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
        how_long = f"every pair for {config.epochs:g} epoch{'' if config.epochs == 1 else 's'}: hours"
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
