"""The hf backend: transformers + PEFT + TRL's DPOTrainer, on CUDA or CPU.

On a CPU-only torch, TRL 1.15's Triton log-prob kernel is missing; `prepare()` installs the plain-torch
stand-in from cpu_logprob so the same TRL trainer runs.
"""

from __future__ import annotations

import contextlib
from typing import Any

from ...config import TrainConfig
from ...models import ModelSource, load_model_and_tokenizer
from .lean_imports import hidden_for_hf, import_hf_stack, lean

NAME = "hf"


def prepare(config: TrainConfig, source: ModelSource, run_scope: contextlib.ExitStack, *,
            lean_imports: bool = True) -> dict[str, Any]:
    """Import the stack, for the run's life without the optional packages it never uses
    (lean_imports.py; lean_imports False: all of them); return notes for the run_started event."""
    from . import cpu_logprob  # imports torch and TRL: inside the lean scope

    left_out = run_scope.enter_context(lean(hidden_for_hf(config.optim, source), enabled=lean_imports))
    import_hf_stack()
    notes: dict[str, Any] = {"cpu_logprob": cpu_logprob.install()}
    if left_out:
        notes["imports_left_out"] = left_out  # a list: versions() copies only the strings
    return notes


def target_modules(config: TrainConfig) -> str | list[str]:
    text = config.target_modules.strip()
    if text in ("", "all-linear"):
        return "all-linear"
    return [part.strip() for part in text.split(",") if part.strip()]


def lora_config(config: TrainConfig):
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=target_modules(config),
        bias="none",
        task_type="CAUSAL_LM",
    )


def load(config: TrainConfig, source: ModelSource, *, dtype: Any, device: str):
    """(model, tokenizer, peft_config): the base model; DPOTrainer wraps it with the LoRA."""
    model, tokenizer = load_model_and_tokenizer(
        source,
        dtype=dtype,
        device=None,  # the Trainer places it
        trust_remote_code=config.trust_remote_code,
        allow_pickle=config.allow_pickle,
    )
    if source.is_tiny:
        model.to(dtype)
    return model, tokenizer, lora_config(config)
