"""Named starting points for the Train screen's form (and for scripts): overrides of `TrainConfig`.

One engine-side place for them, so the UI, the lessons and classroom scripts agree. Measured on one
H100 (BENCHMARKS.md, 2026-11-25): the default recipe (batch 16 x 2, reference scored once, lr 5e-4,
2 epochs over the 2,073 training pairs of HH-RLHF harmless-base test = 128 steps) trains in 74 s on
the hf backend (first step 43 s after start) and 57 s on Unsloth (first step 86 s after start), ending
at train loss 0.34 and accuracy 0.90. Durations in the labels are for one GPU; on a CPU everything
takes far longer.
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


PRESETS: dict[str, Preset] = {
    p.key: p
    for p in (
        Preset(
            "quick-demo",
            "quick demo (1 min)",
            "a few dozen steps on a slice of the data: enough to see the loss leave ln 2",
            {"max_steps": 40, "max_pairs": 1280, "batch_size": 16, "grad_accum": 2, "max_length": 384,
             "eval_steps": 10, "eval_pairs": 32, "save_steps": 0},
        ),
        Preset(
            "lesson-run",
            "lesson run (~4 min, the video segment)",
            "the default recipe (2 epochs): the margin grows and train accuracy climbs past 0.75",
            {"max_steps": 0, "epochs": 2.0, "max_pairs": 0, "batch_size": 16, "grad_accum": 2,
             "max_length": 512, "eval_steps": 25, "eval_pairs": 64, "save_steps": 50},
        ),
        Preset(
            "full-epoch",
            "full epoch",
            "one pass over all the training pairs (long: tens of minutes on one GPU)",
            {"max_steps": 0, "epochs": 1.0, "max_pairs": 0, "batch_size": 16, "grad_accum": 2,
             "max_length": 512, "eval_steps": 100, "eval_pairs": 128, "save_steps": 200},
        ),
    )
}


def preset(key: str) -> Preset:
    try:
        return PRESETS[key]
    except KeyError:
        from .errors import ConfigError

        raise ConfigError(f"no preset '{key}'", remedy=f"known: {', '.join(PRESETS)}") from None
