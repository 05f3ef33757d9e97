"""The two training backends, each a module with `prepare(config, source, run_scope, switches)` (its
imports, first in the run) and `load(config, source, dtype=)` (model, tokenizer, LoRA config): `hf`
(transformers + PEFT + TRL) and `unsloth` (Unsloth's FastLanguageModel, CUDA only)."""

from __future__ import annotations

from types import ModuleType


def backend_module(name: str) -> ModuleType:
    """The module of backend `name`; importing it imports nothing heavy (prepare() does)."""
    if name == "unsloth":
        from . import unsloth

        return unsloth
    from . import hf

    return hf
