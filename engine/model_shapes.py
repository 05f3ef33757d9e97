"""Model shapes: the architectures of models people align, as tables, so that a run can train a model of
that size with random weights (`--model shape:smollm2-1.7b`) without downloading it.

Speed and memory do not depend on the weights' values, so a random model of the real shape measures
what the real one would. Every number in `SHAPES` is copied from that model's config.json on the
Hugging Face hub (the `hub_id` named). The tokenizer is SmolLM2's unless the spec names another: its
49,152 ids fit every vocabulary here, so a pair has the same tokens at every size. Imports nothing heavy.

Spec: `shape:NAME[,bits=4|16][,tokenizer=SPEC]`; bits is the base's precision (16: bf16 LoRA, 4: a
bitsandbytes NF4 base, QLoRA), by default the shape's own (4 for the 7-8B shapes, as Unsloth's notebooks).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from .errors import ModelError

SHAPE_PREFIX = "shape:"
TINY_HEAD_DIM = 8  # tests' tiny width: every head this wide, head and kv-head counts kept
TINY_LAYERS = 2


@dataclass(frozen=True)
class Shape:
    """One architecture, as its config.json on the hub gives it."""

    name: str  # what --shape takes
    title: str  # what people call the model
    hub_id: str  # the config.json these numbers are copied from
    architecture: str  # LlamaForCausalLM | Qwen2ForCausalLM
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    intermediate_size: int
    vocab_size: int
    max_position_embeddings: int
    rope_theta: float
    tie_word_embeddings: bool
    rms_norm_eps: float = 1e-5
    initializer_range: float = 0.02
    rope_scaling: tuple[tuple[str, Any], ...] = ()  # e.g. Llama 3.1's llama3 scaling
    qkv_bias: bool = False  # Qwen2: biases on the q, k and v projections (none on o)
    bits: int = 16  # the base's precision by default: 16 (bf16) or 4 (NF4)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def parameters(self) -> int:
        """The parameter count from the numbers alone (a tied head counted once), without building it."""
        h, kv = self.hidden_size, self.num_key_value_heads * self.head_dim
        attention = 2 * h * h + 2 * h * kv + (h + 2 * kv if self.qkv_bias else 0)
        layer = attention + 3 * h * self.intermediate_size + 2 * h  # + two RMSNorm weights
        embeddings = self.vocab_size * h * (1 if self.tie_word_embeddings else 2)
        return embeddings + self.num_hidden_layers * layer + h  # + the final norm

    def matmul_parameters(self) -> int:
        """Parameters a token meets in matrix products: the layers and the head (not the embedding lookup)."""
        return self.parameters() - self.vocab_size * self.hidden_size * (0 if self.tie_word_embeddings else 1) - (
            self.hidden_size * (2 * self.num_hidden_layers + 1))


SHAPES: dict[str, Shape] = {
    s.name: s
    for s in (
        Shape("smollm2-135m", "SmolLM2-135M", "HuggingFaceTB/SmolLM2-135M-Instruct", "LlamaForCausalLM",
              hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
              intermediate_size=1536, vocab_size=49152, max_position_embeddings=8192, rope_theta=100000.0,
              tie_word_embeddings=True, initializer_range=0.041666666666666664),
        Shape("smollm2-360m", "SmolLM2-360M", "HuggingFaceTB/SmolLM2-360M-Instruct", "LlamaForCausalLM",
              hidden_size=960, num_hidden_layers=32, num_attention_heads=15, num_key_value_heads=5,
              intermediate_size=2560, vocab_size=49152, max_position_embeddings=8192, rope_theta=100000.0,
              tie_word_embeddings=True),
        Shape("smollm2-1.7b", "SmolLM2-1.7B", "HuggingFaceTB/SmolLM2-1.7B-Instruct", "LlamaForCausalLM",
              hidden_size=2048, num_hidden_layers=24, num_attention_heads=32, num_key_value_heads=32,
              intermediate_size=8192, vocab_size=49152, max_position_embeddings=8192, rope_theta=130000.0,
              tie_word_embeddings=True),
        Shape("llama-3.1-8b", "Llama-3.1-8B", "meta-llama/Llama-3.1-8B-Instruct", "LlamaForCausalLM",
              hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
              intermediate_size=14336, vocab_size=128256, max_position_embeddings=131072, rope_theta=500000.0,
              tie_word_embeddings=False,
              rope_scaling=(("rope_type", "llama3"), ("factor", 8.0), ("low_freq_factor", 1.0),
                            ("high_freq_factor", 4.0), ("original_max_position_embeddings", 8192)),
              bits=4),
        Shape("qwen2.5-7b", "Qwen2.5-7B", "Qwen/Qwen2.5-7B-Instruct", "Qwen2ForCausalLM",
              hidden_size=3584, num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
              intermediate_size=18944, vocab_size=152064, max_position_embeddings=32768, rope_theta=1000000.0,
              tie_word_embeddings=False, rms_norm_eps=1e-6, qkv_bias=True, bits=4),
    )
}


@dataclass(frozen=True)
class ShapeSpec:
    """What a `shape:` model spec asks for: the shape, the base's bits, and where the tokenizer comes from."""

    shape: Shape
    bits: int
    tokenizer: str = ""  # a model spec whose tokenizer to use ("": SmolLM2-135M-Instruct, as resolved)

    @property
    def four_bit(self) -> bool:
        return self.bits == 4

    def text(self) -> str:
        """The spec written out, every part explicit except a default tokenizer."""
        out = f"{SHAPE_PREFIX}{self.shape.name},bits={self.bits}"
        return out + (f",tokenizer={self.tokenizer}" if self.tokenizer else "")

    def describe(self) -> str:
        """One line for a bench table: what was trained, and why its numbers stand for the real model."""
        s = self.shape
        base = "a 4-bit NF4 base (bitsandbytes, QLoRA)" if self.four_bit else "a bf16 base (LoRA)"
        smollm2 = not self.tokenizer or "smollm2" in self.tokenizer.lower()
        tokenizer = ("SmolLM2's (the same tokens per pair as the 135M rows)" if smollm2 else "") + (
            f" from {self.tokenizer}" if self.tokenizer else "")
        return (f"{s.title}'s architecture ({s.architecture}, {s.parameters() / 1e9:.2f}B parameters, config.json of "
                f"{s.hub_id}) with random weights: speed and memory do not depend on the weights' values, so "
                f"loss, margin and accuracy mean nothing here; {base}; tokenizer {tokenizer.strip()}")


def is_shape_spec(spec: str | None) -> bool:
    return bool(spec) and spec.strip().lower().startswith(SHAPE_PREFIX)


def shape_spec(name: str, *, bits: int | None = None, tokenizer: str = "") -> str:
    """The model spec for shape `name` (bits None: the shape's own)."""
    out = f"{SHAPE_PREFIX}{name}" + (f",bits={bits}" if bits else "")
    return out + (f",tokenizer={tokenizer}" if tokenizer else "")


def parse_shape_spec(spec: str) -> ShapeSpec:
    """`shape:NAME[,bits=4|16][,tokenizer=SPEC]` -> ShapeSpec, or one ModelError line."""
    body = spec.strip()[len(SHAPE_PREFIX):]
    name, *options = [part.strip() for part in body.split(",")]
    shape = SHAPES.get(name.lower())
    if shape is None:
        raise ModelError(f"unknown model shape '{name}'", where=spec, remedy=f"known: {', '.join(SHAPES)}")
    bits, tokenizer = shape.bits, ""
    for option in options:
        key, _, value = option.partition("=")
        key, value = key.strip().lower(), value.strip()
        if key == "bits" and value in ("4", "16"):
            bits = int(value)
        elif key == "tokenizer" and value:
            tokenizer = value
        else:
            raise ModelError(f"unknown shape option '{option}'", where=spec,
                             remedy="shape:NAME, optionally ,bits=4 or ,bits=16 and ,tokenizer=MODEL")
    return ShapeSpec(shape, bits, tokenizer)


def tiny_shape(shape: Shape) -> Shape:
    """The same architecture at a test's width: head and kv-head counts (so the grouping), the MLP's ratio
    to the width, tying, rope and biases kept; every head TINY_HEAD_DIM wide, TINY_LAYERS layers."""
    hidden = shape.num_attention_heads * TINY_HEAD_DIM
    ratio = shape.intermediate_size / shape.hidden_size
    return replace(shape, hidden_size=hidden, num_hidden_layers=TINY_LAYERS,
                   intermediate_size=max(8, round(hidden * ratio / 8) * 8))


def shape_config(shape: Shape | str, *, tiny: bool = False, vocab_size: int | None = None,
                 token_ids: dict[str, int | None] | None = None):
    """The transformers config of `shape` (tiny: `tiny_shape`, for tests; vocab_size: a smaller vocabulary,
    for tests whose tokenizer is smaller). token_ids: bos/eos/pad ids of the tokenizer the model gets."""
    shape = SHAPES[shape] if isinstance(shape, str) else shape
    if tiny:
        shape = tiny_shape(shape)
    rope = {"rope_type": "default", **dict(shape.rope_scaling), "rope_theta": shape.rope_theta}
    common: dict[str, Any] = dict(
        vocab_size=vocab_size or shape.vocab_size,
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_key_value_heads,
        max_position_embeddings=shape.max_position_embeddings,
        rms_norm_eps=shape.rms_norm_eps,
        initializer_range=shape.initializer_range,
        tie_word_embeddings=shape.tie_word_embeddings,
        rope_parameters=rope,
        hidden_act="silu",
        **{f"{k}_token_id": v for k, v in (token_ids or {}).items()},
    )
    if shape.architecture == "Qwen2ForCausalLM":
        from transformers import Qwen2Config

        config = Qwen2Config(use_sliding_window=False, sliding_window=None,
                             max_window_layers=shape.num_hidden_layers, **common)
    else:
        from transformers import LlamaConfig

        config = LlamaConfig(attention_bias=shape.qkv_bias, mlp_bias=False, head_dim=shape.head_dim, **common)
    config.architectures = [shape.architecture]
    return config
