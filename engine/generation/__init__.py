"""Two-sided generation: the base and the aligned model answer from ONE model in memory.

The aligned model is the base with the run's LoRA adapter ("default"); the base is the same model with
the adapter switched off. Two strategies answer both at once, token by token, with a KV cache each:

- **mixed**: one batch of two rows, one forward pass per token for both sides, with PEFT's per-row
  `adapter_names=["__base__", "default"]`. Exact on a plain transformers + PEFT model. An Unsloth model
  silently ignores `adapter_names` (every row gets the adapter: ../shared/gpu/README.md), so `auto`
  never picks it there and asking for it raises.
- **batched**: the same batch of two rows, but the
  LoRA update is multiplied by a per-row 0/1 tensor (row 0, the base, gets exactly + 0), so the whole
  decode step is one CUDA graph for both sides. Plain PEFT LoRA on linear layers only (no DoRA, no Unsloth).
  Greedy, the step can also pick its token (argmax) and set up the next step on the device, so a chunk
  of n steps is n replays and ONE host sync (`_StaticRows.greedy`, `chunk=n`); off by default for this
  strategy, whose step is bound by the GPU, not the host.
- **stacked** (what `auto` picks on a GPU for a plain PEFT model): the same batch of two rows on one
  CUDA graph, but each LoRA linear layer becomes ONE batched matmul against a stack of two weights:
  the base's own weight for row 0 and the merged `W + scale * B @ A` (summed in float32, stored in the
  model's dtype) for row 1. The row-scaled step runs 5 kernels per adapted layer (base matmul, A, B,
  scale, add); this runs 1, and a small model's decode step is made of such launches. Costs
  two copies of the adapted weights while answering (`auto` takes it only where they fit in half the
  free GPU memory). Plain `nn.Linear` bases only (no DoRA, no fan-in-fan-out, no LoRA bias); otherwise
  `batched` is used.
- **sequential** (what `auto` picks otherwise): two batches of one row, stepped in turn; the base's steps run
  inside `with model.disable_adapter():`. Works on any PEFT model, Unsloth included. On a GPU each side's
  decode step is captured once as a CUDA graph (the base's with the adapter off) and replayed per token;
  greedy, a side's turn of `block` tokens is one chunk as above.

Both stream: `TwoSidedChat.stream()` yields `Delta(side, text, ...)` events as tokens arrive on each
side, stops when each side ends (EOS or `max_new_tokens`) or when a `threading.Event` is set, and keeps
a separate multi-turn history per side (each side sees its own earlier answers), rendered with the
tokenizer's chat template.
"""

from __future__ import annotations

from .chat import TwoSidedChat, answer_once, stream_both
from .decoding import _Decoder, _pick, _Rows, _StaticRows, batched_rows, render_messages, stop_token_ids
from .results import (
    BASE_ADAPTER,
    PROBE_PROMPTS,
    SIDES,
    STRATEGIES,
    ChatResult,
    Delta,
    GenerationSettings,
    SideResult,
)
from .strategies import (
    _lora_layers,
    batched_supported,
    has_adapter,
    is_unsloth_model,
    mixed_supported,
    resolve_strategy,
    row_scaled_adapter,
    stacked_adapter,
    stacked_extra_bytes,
    stacked_fits,
    stacked_supported,
)

__all__ = [
    "BASE_ADAPTER", "PROBE_PROMPTS", "SIDES", "STRATEGIES", "ChatResult", "Delta", "GenerationSettings",
    "SideResult", "TwoSidedChat", "_Decoder", "_Rows", "_pick", "_StaticRows", "_lora_layers", "answer_once",
    "batched_rows", "batched_supported", "has_adapter", "is_unsloth_model", "mixed_supported",
    "render_messages", "resolve_strategy", "row_scaled_adapter", "stacked_adapter", "stacked_extra_bytes",
    "stacked_fits", "stacked_supported", "stop_token_ids", "stream_both",
]
