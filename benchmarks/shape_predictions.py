"""Predicted pairs/s and peak GiB of `dpo-tutor bench --shape` on one H200, written before measuring (issue 23).

Each pipeline's measured 135M step (BENCHMARKS.md) is split into arithmetic (its FLOPs at UTILISATION of the
GPU's dense bf16 peak) and the rest (host, launches, small memory-bound kernels). At another size the
arithmetic scales with the matmul parameters and the tokens a pair costs that pipeline; the rest with the
layer count (low) or with layers x width (high: if it is memory-bound); a 4-bit base adds its dequantizing
passes. Memory: weights + LoRA with AdamW + checkpointed activations + one layer's working set, plus the
135M run's unexplained rest scaled by the vocabulary. Every constant is named below; change one, rerun.

usage: python benchmarks/shape_predictions.py [--utilisation 0.45]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from dpo_tutor.engine.model_shapes import SHAPES, Shape

PEAK_FLOPS = 989e12  # H200 SXM, dense bf16 (the H100 SXM's figure)
DEQUANT_BYTES_PER_S = 3.5e12  # a dequantize pass's traffic (of the H200's 4.8 TB/s)
GIB = 2**30
BATCH = 32  # pairs per optimizer step, every pipeline
LORA_R = 16
BASE = SHAPES["smollm2-135m"]

# Tokens a pair costs each way of batching: the bench's HH-RLHF harmless pairs with SmolLM2's tokenizer
# (prompt 144, chosen 40, rejected 50 tokens on average; counted with the project's loader and the chat
# template): two rows 372 at max_length 512; the prompt once (packed) 230, plus bucket padding; a batch
# padded to its longest row costs more the more rows it holds (an estimate, not counted).
TOKENS = {"packed": 240, "grouped": 390, "padded-64-rows": 960, "padded-16-rows": 760, "padded-4-rows": 500}


@dataclass(frozen=True)
class Anchor:
    """A pipeline as measured at 135M (H200 unless said) and how its step computes."""

    pairs_per_s: float
    peak_gib: float
    micro_batch: int  # pairs per forward
    reference_each_step: bool
    tokens: str  # key of TOKENS
    offloads_activations: bool = False  # Unsloth's checkpointing keeps layer inputs in host memory
    note: str = ""


ANCHORS = {
    "ours-hf": Anchor(300.0, 1.74, 32, False, "packed", note="ninth round, 297-304"),
    "low-memory": Anchor(209.0, 0.81, 8, False, "packed", note="ninth round, 208-210"),
    "ours-hf-eager": Anchor(66.9, 2.71, 32, False, "grouped", note="issue 23's call; peak from the fourth round"),
    "trl-tuned": Anchor(66.9, 2.71, 32, False, "padded-64-rows", note="not measured: assumed ours-hf-eager's host time"),
    "ours-unsloth": Anchor(138.0, 1.36, 32, False, "grouped", True, note="ninth round, 94-138"),
    "trl-defaults": Anchor(17.6, 1.00, 8, True, "padded-16-rows", note="ninth round, 13-21"),
    "unsloth-notebook": Anchor(4.1, 0.51, 2, True, "padded-4-rows", True, note="first round, H100"),
}


def lora_parameters(s: Shape) -> int:
    h, i, kv = s.hidden_size, s.intermediate_size, s.num_key_value_heads * s.head_dim
    return s.num_hidden_layers * LORA_R * (2 * (h + h) + 2 * (h + kv) + 3 * (h + i))


def layer_linear_parameters(s: Shape) -> int:
    """What bitsandbytes quantizes: the decoder layers' linear weights (embeddings and head stay bf16)."""
    h, kv = s.hidden_size, s.num_key_value_heads * s.head_dim
    return s.num_hidden_layers * (2 * h * h + 2 * h * kv + 3 * h * s.intermediate_size)


def step_flops(s: Shape, a: Anchor) -> float:
    passes = 8 if a.reference_each_step else 6  # forward, recomputed forward, backward (+ the reference's forward)
    return BATCH * passes * s.matmul_parameters() * TOKENS[a.tokens]


def dequant_seconds(s: Shape, a: Anchor, bits: int) -> float:
    if bits != 4:
        return 0.0
    passes = 4 if a.reference_each_step else 3
    micro_batches = BATCH // a.micro_batch
    return micro_batches * passes * layer_linear_parameters(s) * 4.5 / DEQUANT_BYTES_PER_S  # read 0.5 + write 2 + read 2


def predict_rate(s: Shape, a: Anchor, bits: int, utilisation: float) -> tuple[float, float]:
    """(low, high) pairs/s. Low: the rest grows with layers x width and adds to the arithmetic. High: it grows
    with the layers only and overlaps the arithmetic (a host that runs ahead of the GPU: the whole 135M step
    was then the rest)."""
    step = BATCH / a.pairs_per_s
    rest = max(0.0, step - step_flops(BASE, a) / (utilisation * PEAK_FLOPS))
    arithmetic = step_flops(s, a) / (utilisation * PEAK_FLOPS) + dequant_seconds(s, a, bits)
    layers = s.num_hidden_layers / BASE.num_hidden_layers
    low = arithmetic + rest * layers * s.hidden_size / BASE.hidden_size
    return BATCH / low, BATCH / max(arithmetic, step * layers)


def memory_bytes(s: Shape, a: Anchor, bits: int) -> float:
    """Weights, LoRA with AdamW, activations (without the 135M rest)."""
    h, i, L = s.hidden_size, s.intermediate_size, s.num_hidden_layers
    if bits == 4:
        weights = layer_linear_parameters(s) * 4.127 / 8 + 2 * (s.parameters() - layer_linear_parameters(s))
    else:
        weights = 2 * s.parameters()
    lora = 16 * lora_parameters(s)  # fp32 weights and gradients, two AdamW states
    tokens = a.micro_batch * TOKENS[a.tokens]
    saved = 0 if a.offloads_activations else tokens * h * 2 * L
    working = tokens * (4 * i + 8 * h) * 2
    return weights + lora + saved + working


def predict_memory(s: Shape, a: Anchor, bits: int) -> float:
    rest = max(0.0, a.peak_gib * GIB - memory_bytes(BASE, a, 16))
    return (memory_bytes(s, a, bits) + rest * s.vocab_size / BASE.vocab_size) / GIB


def table(utilisation: float) -> str:
    rows = ["| size | pipeline | pairs/s (predicted) | peak GiB (predicted) | 135M measured | FLOPs a step |",
            "|---|---|---:|---:|---|---:|"]
    plan = [("smollm2-360m", 16, list(ANCHORS)), ("smollm2-1.7b", 16, list(ANCHORS)),
            ("llama-3.1-8b", 4, ["ours-hf", "ours-unsloth", "trl-defaults", "unsloth-notebook"]),
            ("qwen2.5-7b", 4, ["ours-hf", "ours-unsloth", "trl-defaults", "unsloth-notebook"])]
    for name, bits, keys in plan:
        s = SHAPES[name]
        for key in keys:
            a = ANCHORS[key]
            low, high = predict_rate(s, a, bits, utilisation)
            rows.append(f"| {s.title}{' 4-bit' if bits == 4 else ''} | {key} | {low:.0f}-{high:.0f} | "
                        f"{predict_memory(s, a, bits):.1f} | {a.pairs_per_s:g} pairs/s, {a.peak_gib:g} GiB ({a.note}) | "
                        f"{step_flops(s, a) / 1e12:.0f} T |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utilisation", type=float, default=0.45, help="share of the dense bf16 peak the matmuls reach")
    args = parser.parse_args(argv)
    print(table(args.utilisation))
    return 0


if __name__ == "__main__":
    sys.exit(main())
