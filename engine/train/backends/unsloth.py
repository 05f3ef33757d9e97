"""The unsloth backend: Unsloth's FastLanguageModel + LoRA, trained by TRL's DPOTrainer (as patched
by Unsloth). CUDA only.

`prepare()` imports Unsloth: it must run first in the training process, before transformers or TRL
are imported, because Unsloth patches them globally (its imports take seconds). Nothing else imports
this module.
"""

from __future__ import annotations

import contextlib
from typing import Any

from ...config import TrainConfig
from ...models import ModelSource, model_location
from .lean_imports import lean

NAME = "unsloth"
ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def prepare(config: TrainConfig, source: ModelSource, run_scope: contextlib.ExitStack, *,
            lean_imports: bool = True) -> dict[str, Any]:
    """Import Unsloth (before transformers and TRL); return notes for the run_started event."""
    import os

    os.environ.setdefault("UNSLOTH_DISABLE_CPU_FALLBACK", "1")  # never a silent CPU "Unsloth"
    # the installed distributions listed once; nothing hidden: Unsloth uses bitsandbytes and torchao
    run_scope.enter_context(lean(enabled=lean_imports))
    import unsloth

    return {"unsloth": getattr(unsloth, "__version__", "?")}


def target_modules(config: TrainConfig) -> list[str]:
    text = config.target_modules.strip()
    if text in ("", "all-linear"):
        return list(ALL_LINEAR)
    return [part.strip() for part in text.split(",") if part.strip()]


def load(config: TrainConfig, source: ModelSource, *, dtype: Any, device: str):
    """(peft_model, tokenizer, None): Unsloth builds the LoRA itself (TRL then adds a frozen 'ref' copy)."""
    from unsloth import FastLanguageModel

    location = model_location(source)
    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=location,
        max_seq_length=config.max_length,
        dtype=dtype,
        load_in_4bit=source.four_bit,  # a 4-bit shape: QLoRA, as Unsloth's notebooks train 7-8B models
        load_in_16bit=not source.four_bit,  # else a 16-bit LoRA, as the hf backend trains
        trust_remote_code=config.trust_remote_code,
        use_gradient_checkpointing="unsloth" if config.gradient_checkpointing else False,
        random_state=config.seed,
    )
    if getattr(tokenizer, "pad_token", None) is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = FastLanguageModel.get_peft_model(
        model,
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=target_modules(config),
        bias="none",
        use_gradient_checkpointing="unsloth" if config.gradient_checkpointing else False,
        random_state=config.seed,
    )
    return model, tokenizer, None


def save_merged(model, tokenizer, path: str) -> None:
    model.save_pretrained_merged(path, tokenizer, save_method="merged_16bit")
