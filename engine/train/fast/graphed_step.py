"""Training steps replayed as CUDA graphs (hf backend, CUDA GPU): the host out of the step.

Why: a step of the 135M model is thousands of small kernels launched one by one from Python (PEFT's
LoRA layers, RMSNorm, RoPE, autograd), and the GPU waits on that Python most of the time
(a small share of a step is GPU work). A CUDA graph records every kernel of
a micro-step once and replays them with one launch: forward through the LoRA model (gradient
checkpointing as configured), TRL's chunked log-prob kernel, the preference loss, the backward pass,
and the accumulation of each gradient into its parameter's `.grad`.

A graph needs fixed shapes, so each batch is padded on the right to a bucket length (a multiple of
`BUCKET`, at most the run's max_length) and each (rows, bucket) shape gets its own graph, recorded the
first time that shape comes: that step runs eagerly (a real step, it also warms up the kernels) and
is then recorded; later steps of that shape replay it. All graphs share one memory pool, and nothing
of a graph outlives its step but a small vector of statistics, so the graphs together need about
what the largest step needs, not one step's memory each.

What is learned does not change: the same model, kernels and loss on the same tokens. Padding at the
end of a row is never seen by a real token (causal attention) and is outside every sum (completion
mask 0), as in `padding.py`. The step is ours, not TRL's `_compute_loss`, because TRL's reads its
metrics with `.item()` and selects the completion tokens with a boolean mask, and a graph can record
neither: here the log-probs of every position are computed and the mask multiplies them (TRL's own
kernel, same values at the completion tokens). It covers TRL's sigmoid, IPO and robust (label
smoothing) losses, each optionally with TRL's "sft" term on the chosen answers (RPO), reverse KL,
reference log-probs scored once, no dropout; anything else runs TRL's eager step
(`unsupported_reason`). The tests check losses, metrics and gradients against TRL's step.

Training batches are packed by default (`packing.py`: a pair one row, its prompt computed once, the head
on the answers' tokens only): `packed_step_statistics` is the same step on that layout. Their shapes
come bucketed from the collator, and a batch replays a recorded shape slightly roomier than its own
(`ROOMIER_ROWS`) rather than recording one more. The reference pass keeps TRL's two rows.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field
from typing import Any

from .compiled_layers import decoder_layers
from .packing import KEYS as PACKED_KEYS
from .packing import PAD as PAD_BRANCH
from .packing import attention_bias

BUCKET = 64  # padded lengths are multiples of this: few shapes (few recordings), little padding
# A packed batch replays a recorded shape whose rows are at most this much longer (and whose answer
# slots at most ROOMIER_SLOTS x as many) instead of recording its own: fewer recordings for a little
# more padding (benchmarks/graph_shapes.py counts both on real pairs).
ROOMIER_ROWS = 1.125
ROOMIER_SLOTS = 2.0

# The statistics vector a step returns, in this order (everything TRL's step logs).
STATS = (
    "loss", "entropy_sum", "completion_tokens", "num_tokens", "chosen_logits_sum", "chosen_tokens",
    "rejected_logits_sum", "rejected_tokens", "correct_tokens", "rewards_chosen", "rewards_rejected",
    "rewards_accuracy", "rewards_margin", "logps_chosen", "logps_rejected",
)
PACKED = "pack_input_ids"  # a batch with this key is packed (packing.py)
HEAD_OUTPUTS = ("log_probs", "entropy", "mean_logits", "is_top1")  # what TRL's DPO asks its fused head for


# TRL loss types a recorded step computes; each may be followed by TRL's "sft" term (an NLL on chosen).
GRAPHED_LOSSES = ("sigmoid", "ipo", "robust")


@dataclass(frozen=True)
class PreferenceLoss:
    """The loss a recorded step computes, as TRL's DPOTrainer would from the same settings."""

    kind: str = "sigmoid"  # one of GRAPHED_LOSSES
    beta: float = 0.1
    label_smoothing: float = 0.0  # robust only
    nll_weight: float = 0.0  # weight of TRL's "sft" term: mean NLL of the chosen answers' tokens

    @classmethod
    def from_trainer(cls, trainer: Any) -> PreferenceLoss:
        types = list(getattr(trainer, "loss_types", None) or ["sigmoid"])
        weights = list(getattr(trainer, "loss_weights", None) or [1.0] * len(types))
        return cls(kind=types[0], beta=float(trainer.beta),
                   label_smoothing=float(getattr(trainer, "label_smoothing", 0.0) or 0.0),
                   nll_weight=float(weights[1]) if len(types) == 2 else 0.0)


def loss_supported(loss_types: list[str], loss_weights: list[float]) -> bool:
    """Whether TRL's loss list is one a recorded step computes: [kind] or [kind, "sft"], kind weighted 1."""
    if not loss_types or loss_types[0] not in GRAPHED_LOSSES or float(loss_weights[0]) != 1.0:
        return False
    return len(loss_types) == 1 or (len(loss_types) == 2 and loss_types[1] == "sft")


def bucket_length(length: int, max_length: int) -> int:
    """The padded length of a batch whose longest row has `length` tokens."""
    padded = -(-length // BUCKET) * BUCKET
    return max(length, min(padded, max_length)) if max_length > 0 else padded


def unsupported_reason(trainer: Any) -> str | None:
    """Why this trainer's steps cannot be graphed (None: they can). Readable on a CPU too."""
    import torch

    loss_types = list(getattr(trainer, "loss_types", None) or [])
    weights = list(getattr(trainer, "loss_weights", None) or [1.0] * len(loss_types))
    if not loss_supported(loss_types, weights):
        return f"loss {loss_types} (graphed steps do {', '.join(GRAPHED_LOSSES)}, optionally + sft)"
    if getattr(trainer, "f_divergence_type", "reverse_kl") != "reverse_kl":
        return "an f-divergence other than reverse KL"
    if getattr(trainer, "ld_alpha", None) is not None or getattr(trainer, "use_weighting", False):
        return "ld_alpha or WPO weighting"
    if getattr(trainer, "aux_loss_enabled", False):
        return "a mixture-of-experts auxiliary loss"
    if not getattr(trainer, "precompute_ref_logps", False):
        return "the reference is scored every step (precompute_ref off)"
    if getattr(trainer.args, "activation_offloading", False):
        return "activation offloading"
    model = trainer.model
    if not hasattr(model, "get_base_model"):
        return "no LoRA adapter"
    base = model.get_base_model()
    config = base.config.get_text_config()
    for name in ("final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier",
                 "logits_scaling"):
        if getattr(config, name, None) not in (None, 1.0):
            return f"the model's {name}"
    if float(getattr(config, "attention_dropout", 0.0) or 0.0) > 0:
        return "attention dropout"
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout) and module.p > 0 and module.training:
            return "dropout (a recorded step would replay one dropout mask)"
    if any(getattr(m, "use_dora", {}).get("default", False) for m in model.modules() if hasattr(m, "use_dora")):
        return "DoRA"
    head = base.get_output_embeddings()
    if head is None or head.weight.requires_grad or getattr(head, "bias", None) is not None:
        return "a trained or biased LM head"
    if not decoder_layers(model):
        return "no decoder layers found"
    return None


def _per_token(model: Any, input_ids: Any, outputs: tuple[str, ...]) -> tuple[Any, ...]:
    """TRL's fused-head outputs ([rows, L-1] each, None where not asked) at EVERY position of a
    right-padded batch: the decoder stack without an attention mask (causal attention is exact for
    right padding, padding.py), then TRL's chunked log-prob kernel. Every position, not only the
    completion's as TRL's head selects them, so that the shapes are fixed; the caller masks."""
    from trl.trainer import utils as trl_utils

    causal_lm = model.get_base_model()
    backbone = causal_lm.base_model  # what TRL's fused head calls: the decoder stack, LoRA layers inside
    hidden = backbone(input_ids=input_ids, use_cache=False).last_hidden_state[:, :-1]
    per_token = trl_utils._ChunkedLogProbFunction.apply(
        hidden.reshape(-1, hidden.shape[-1]), causal_lm.get_output_embeddings().weight, None,
        input_ids[:, 1:].reshape(-1), 1.0, trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE, None, 1.0, outputs,
    )
    return tuple(None if x is None else x.view(input_ids.shape[0], -1) for x in per_token)


def step_statistics(model: Any, batch: dict[str, Any], *, loss: PreferenceLoss, scale: Any) -> Any:
    """One DPO micro-step on a right-padded batch: forward, loss, `backward()` of loss * scale (the
    gradients accumulate into `.grad`), and the statistics vector (STATS), all on the device, with no
    host synchronisation (so that a CUDA graph can record it).

    batch: input_ids, attention_mask, completion_mask [2B, L] (chosen rows, then rejected rows),
    ref_chosen_logps, ref_rejected_logps [B]. scale: a 0-d tensor (1 / gradient accumulation).
    """
    import torch

    log_probs, entropy, _, mean_logits, is_top1 = _per_token(model, batch["input_ids"], HEAD_OUTPUTS)
    fmask = batch["completion_mask"][:, 1:].to(torch.float32)
    value, sides = _loss_backward((log_probs * fmask).sum(dim=1), fmask.sum(dim=1), batch, loss, scale)

    with torch.no_grad():
        chosen_mask, rejected_mask = fmask.chunk(2, dim=0)
        chosen_mean_logits, rejected_mean_logits = mean_logits.chunk(2, dim=0)
        chosen_top1, _ = is_top1.chunk(2, dim=0)
        return _statistics(value, [
            (entropy.detach() * fmask).sum(),
            fmask.sum(),
            batch["attention_mask"].sum().float(),
            (chosen_mean_logits * chosen_mask).sum(),
            chosen_mask.sum(),
            (rejected_mean_logits * rejected_mask).sum(),
            rejected_mask.sum(),
            (chosen_top1 & chosen_mask.bool()).sum().float(),
        ], sides, loss.beta)


def _loss_backward(
    logps: Any, lengths: Any, batch: dict[str, Any], loss: PreferenceLoss, scale: Any
) -> tuple[Any, tuple]:
    """TRL's loss (`loss.kind`, plus its "sft" term when `loss.nll_weight`) of summed log-probs ([2B]:
    chosen sides, then rejected) and answer lengths in tokens ([2B]), `backward()` of loss * scale;
    returns the loss and (chosen logps, rejected logps, chosen / rejected log-ratios)."""
    import torch.nn.functional as F

    chosen_logps, rejected_logps = logps.chunk(2, dim=0)
    chosen_logratios = chosen_logps - batch["ref_chosen_logps"]
    rejected_logratios = rejected_logps - batch["ref_rejected_logps"]
    delta = chosen_logratios - rejected_logratios
    if loss.kind == "ipo":  # TRL normalises IPO's log-ratios by the answers' lengths
        chosen_len, rejected_len = lengths.clamp(min=1.0).chunk(2, dim=0)
        per_pair = (chosen_logratios / chosen_len - rejected_logratios / rejected_len - 1 / (2 * loss.beta)) ** 2
    elif loss.kind == "robust":
        eps = loss.label_smoothing
        per_pair = (-(1 - eps) * F.logsigmoid(loss.beta * delta) + eps * F.logsigmoid(-loss.beta * delta)) / (1 - 2 * eps)
    else:
        per_pair = -F.logsigmoid(loss.beta * delta)
    value = per_pair.mean()
    if loss.nll_weight:
        chosen_tokens = lengths.chunk(2, dim=0)[0].sum().clamp(min=1.0)
        value = value + loss.nll_weight * (-chosen_logps.sum() / chosen_tokens)
    (value * scale).backward()
    return value, (chosen_logps, rejected_logps, chosen_logratios, rejected_logratios)


def _statistics(loss: Any, token_sums: list[Any], sides: tuple, beta: float) -> Any:
    """The STATS vector: the loss, the token sums (entropy_sum .. correct_tokens, in STATS order), then
    the rewards and log-probs TRL logs (`_loss_backward`'s sides). Call under no_grad."""
    import torch

    chosen_logps, rejected_logps, chosen_logratios, rejected_logratios = sides
    chosen_rewards = beta * chosen_logratios.detach()
    rejected_rewards = beta * rejected_logratios.detach()
    return torch.stack([
        loss.detach().float(),
        *token_sums,
        chosen_rewards.mean(),
        rejected_rewards.mean(),
        (chosen_rewards > rejected_rewards).float().mean(),
        (chosen_rewards - rejected_rewards).mean(),
        chosen_logps.detach().mean(),
        rejected_logps.detach().mean(),
    ])


def _packed_per_token(model: Any, batch: dict[str, Any], outputs: tuple[str, ...]) -> tuple[Any, ...]:
    """TRL's fused-head outputs ([N] each, None where not asked) for the answer tokens of a packed batch
    (`packing.py`): the decoder stack over the packed rows with their positions and pair mask, then
    TRL's chunked log-prob kernel on the hidden state that predicts each answer token."""
    from trl.trainer import utils as trl_utils

    causal_lm = model.get_base_model()
    backbone = causal_lm.base_model
    head = causal_lm.get_output_embeddings().weight
    ids = batch["pack_input_ids"]
    mask = attention_bias(batch["pack_segment"], batch["pack_branch"], head.dtype)
    hidden = backbone(input_ids=ids, attention_mask=mask, position_ids=batch["pack_position_ids"],
                      use_cache=False).last_hidden_state
    chosen = hidden.reshape(-1, hidden.shape[-1]).index_select(0, batch["pack_source"])
    return trl_utils._ChunkedLogProbFunction.apply(
        chosen, head, None, batch["pack_labels"], 1.0, trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE, None, 1.0, outputs,
    )


def packed_step_statistics(model: Any, batch: dict[str, Any], *, loss: PreferenceLoss, scale: Any) -> Any:
    """`step_statistics` on a packed batch (prompt once, answers' tokens only): the same loss, backward
    and statistics vector, from the same log-probs."""
    import torch

    log_probs, entropy, _, mean_logits, is_top1 = _packed_per_token(model, batch, HEAD_OUTPUTS)
    weight = batch["pack_weight"]
    pairs = batch["pack_num_tokens"].shape[0]
    member = _membership(batch)
    value, sides = _loss_backward(_sequence_sums(member, log_probs), member.sum(dim=1), batch, loss, scale)

    with torch.no_grad():
        chosen_slot = member[:pairs].sum(dim=0)
        rejected_slot = member[pairs:].sum(dim=0)
        return _statistics(value, [
            (entropy.detach().float() * weight).sum(),
            weight.sum(),
            batch["pack_num_tokens"].sum(),
            (mean_logits.float() * chosen_slot).sum(),
            chosen_slot.sum(),
            (mean_logits.float() * rejected_slot).sum(),
            rejected_slot.sum(),
            (is_top1.float() * chosen_slot).sum(),
        ], sides, loss.beta)


def reference_logps(model: Any, batch: dict[str, Any]) -> Any:
    """The reference's summed completion log-probs of a right-padded batch ([2B]: chosen rows, then
    rejected rows): the base model (adapter off), no gradient, no host synchronisation."""
    import torch

    with torch.no_grad(), model.disable_adapter():
        log_probs = _per_token(model, batch["input_ids"], ("log_probs",))[0]
        return (log_probs * batch["completion_mask"][:, 1:].to(torch.float32)).sum(dim=1)


def _sequence_sums(member: Any, log_probs: Any) -> Any:
    """Each sequence's summed answer log-probs ([2B]) from per-slot values: fp32 sums (a matmul could
    run in TF32)."""
    return (member * log_probs.float()[None, :]).sum(dim=1)


def _membership(batch: dict[str, Any]) -> Any:
    """[2B, N]: 1 where answer slot n belongs to sequence s (chosen sides first, as TRL's rows)."""
    import torch

    owner = batch["pack_owner"]
    sides = torch.arange(2 * batch["pack_num_tokens"].shape[0], device=owner.device)
    return (owner[None, :] == sides[:, None]).to(torch.float32) * batch["pack_weight"][None, :]


# The STATS entries that are sums over the batch's tokens (entropy_sum .. correct_tokens, in a row: a split
# step adds its parts'); the others are the loss and means over its pairs (weighed by the parts' pairs).
SUMMED_STATS = slice(STATS.index("entropy_sum"), STATS.index("correct_tokens") + 1)


def merge_parts(stats: list[Any], pairs: list[int]) -> Any:
    """One statistics vector (STATS order) of a step run as parts (`packing.PARTS`) of `pairs` pairs each:
    what the whole batch in one micro-step would have given. On the device: nothing read, nothing copied
    from the host (the step's log is read one step late)."""
    total = sum(pairs)
    merged = sum(values * (count / total) for values, count in zip(stats, pairs, strict=True))
    merged[SUMMED_STATS] = sum(values[SUMMED_STATS] for values in stats)
    return merged


def record_metrics(trainer: Any, values: list[float]) -> None:
    """Append one step's statistics to TRL's metric lists, as TRL's `_compute_loss` does."""
    stats = dict(zip(STATS, values, strict=True))
    metrics = trainer._metrics["train"]
    tokens = stats["completion_tokens"]
    metrics["entropy"].append(stats["entropy_sum"] / tokens if tokens > 0 else 0.0)
    trainer._total_train_tokens += int(stats["num_tokens"]) // getattr(trainer, "_tp_size", 1)
    metrics["num_tokens"] = [trainer._total_train_tokens]
    chosen, rejected = stats["chosen_tokens"], stats["rejected_tokens"]
    metrics["logits/chosen"].append(stats["chosen_logits_sum"] / chosen if chosen > 0 else 0.0)
    metrics["logits/rejected"].append(stats["rejected_logits_sum"] / rejected if rejected > 0 else 0.0)
    metrics["mean_token_accuracy"].append(stats["correct_tokens"] / chosen if chosen > 0 else 0.0)
    metrics["rewards/chosen"].append(stats["rewards_chosen"])
    metrics["rewards/rejected"].append(stats["rewards_rejected"])
    metrics["rewards/accuracies"].append(stats["rewards_accuracy"])
    metrics["rewards/margins"].append(stats["rewards_margin"])
    metrics["logps/chosen"].append(stats["logps_chosen"])
    metrics["logps/rejected"].append(stats["logps_rejected"])


def _no_checkpoint(function, *args, **kwargs):
    """A layer's forward without checkpointing: its activations are kept for the backward pass."""
    return function(*args, **kwargs)


def checkpointed_layers(count: int, fraction: float = 1.0) -> int:
    """How many of `count` decoder layers (the first ones) recompute their activations in the
    backward pass: `fraction` of them, clamped to [0, 1] (the checkpoint_fraction switch: each layer
    left out trades its activations' memory for one less forward pass)."""
    return round(min(1.0, max(0.0, fraction)) * count)


@contextlib.contextmanager
def recordable(model: Any, checkpoint_fraction: float = 1.0):
    """The settings under which a step is run eagerly before being recorded, and recorded.

    - bf16 autocast as the Trainer's own, but without its weight-cast cache (a graph must record the
      casts, not reuse tensors cast before it);
    - PEFT's cast of each LoRA layer's input to float32 is skipped: autocast casts it straight back
      to bf16 for the matmul, so the two copies change no value;
    - gradient checkpointing without saving and restoring the RNG state (there is no dropout: see
      `unsupported_reason`), non-reentrant (it records inside a graph).
    """
    import torch
    from peft.helpers import disable_input_dtype_casting
    from torch.utils.checkpoint import checkpoint

    layers = [layer for layer in decoder_layers(model) if hasattr(layer, "_gradient_checkpointing_func")]
    saved = [layer._gradient_checkpointing_func for layer in layers]
    plain = functools.partial(checkpoint, use_reentrant=False, preserve_rng_state=False)
    kept = checkpointed_layers(len(layers), checkpoint_fraction)
    dtype = next(p for p in model.parameters() if not p.requires_grad).dtype
    autocast = (
        torch.autocast("cuda", dtype=dtype, cache_enabled=False)
        if dtype in (torch.bfloat16, torch.float16) else contextlib.nullcontext()
    )
    for i, layer in enumerate(layers):
        layer._gradient_checkpointing_func = plain if i < kept else _no_checkpoint
    try:
        with autocast, disable_input_dtype_casting(model):
            yield
    finally:
        for layer, func in zip(layers, saved, strict=True):
            layer._gradient_checkpointing_func = func


def roomier_shape(key: tuple, recorded, rows_ratio: float | None = None, slots_ratio: float | None = None) -> tuple:
    """A recorded packed shape (kind, rows, row length, answer slots, pairs) that holds this batch with
    little more padding (rows at most ROOMIER_ROWS x as long, at most ROOMIER_SLOTS x the answer slots),
    else `key` itself: recording a shape costs several replays, and a length-grouped run sees many."""
    rows_ratio = ROOMIER_ROWS if rows_ratio is None else rows_ratio
    slots_ratio = ROOMIER_SLOTS if slots_ratio is None else slots_ratio
    kind, rows, width, slots, pairs = key
    fits = [k for k in recorded
            if k[0] == kind and k[1] == rows and k[4] == pairs
            and width <= k[2] <= width * rows_ratio and slots <= k[3] <= slots * slots_ratio]
    return min(fits, key=lambda k: (k[2], k[3])) if fits else key


def _fill_packed(static: dict[str, Any], batch: dict[str, Any], pad_id: int) -> None:
    """Copy a packed batch into a recorded shape as large or larger: rows padded on the right (padding
    tokens, a segment of their own), answer slots padded with empty ones (weight 0), and each source
    index moved to the wider row."""
    width, wide = batch[PACKED].shape[1], static[PACKED].shape[1]
    slots = batch["pack_source"].shape[0]
    for key, tensor in static.items():
        if key in ("pack_input_ids", "pack_position_ids", "pack_segment", "pack_branch"):
            tensor[:, :width].copy_(batch[key])
            if wide > width:
                fill = {"pack_input_ids": pad_id, "pack_position_ids": 0, "pack_segment": -1}.get(key, PAD_BRANCH)
                tensor[:, width:].fill_(fill)
        elif key in ("pack_source", "pack_labels", "pack_owner", "pack_weight"):
            values = batch[key]
            if key == "pack_source" and wide > width:
                values = values // width * wide + values % width
            tensor[:slots].copy_(values)
            tensor[slots:].zero_()
        else:
            tensor.copy_(batch[key])


@dataclass
class _Recorded:
    graph: Any
    inputs: dict[str, Any]
    scale: Any
    output: Any  # what the recorded computation returns (a step's statistics, or reference log-probs)


@dataclass
class StepGraphs:
    """The recorded steps (and reference passes) of one trainer, keyed by (kind, rows, padded length)."""

    model: Any
    loss: PreferenceLoss
    max_length: int
    pad_id: int = 0
    roomier: bool = True  # a packed batch may replay a roomier recorded shape (the graph_roomier switch)
    warm_each: bool = False  # every new shape runs eagerly before it is recorded (else only the first)
    # compiled layers: a shape whose recording failed (a new shape may compile, which a recording cannot
    # hold) runs eagerly, and is recorded after an eager warm-up the next time it comes, before giving up
    retry_failed: bool = False
    checkpoint_fraction: float = 1.0  # share of decoder layers that recompute activations (checkpointing)
    recorded: dict[tuple[str, int, int], _Recorded] = field(default_factory=dict)
    replays: dict[str, int] = field(default_factory=lambda: {"step": 0, "reference": 0})
    recordings: dict[str, int] = field(default_factory=lambda: {"step": 0, "reference": 0})
    broken: str = ""  # why recording failed (then the trainer goes back to TRL's eager step)
    failed: set[tuple] = field(default_factory=set)  # shapes whose recording failed (retry_failed: retried once)

    def __post_init__(self):
        import torch

        self.params = [p for p in self.model.parameters() if p.requires_grad]
        # The gradients live in tensors of ours that every graph adds into: `.grad` is pointed at them
        # before each step (the Trainer sets `.grad` to None after each optimizer step).
        self.grads = [torch.zeros_like(p) for p in self.params]
        self.pool = None  # one memory pool for every recorded shape (made at the first recording)

    def _bind_grads(self) -> None:
        import torch

        if all(p.grad is g for p, g in zip(self.params, self.grads, strict=True)):
            return  # accumulating into the same buffers
        if all(p.grad is None for p in self.params):
            torch._foreach_zero_(self.grads)
        else:
            for p, g in zip(self.params, self.grads, strict=True):
                if p.grad is None:
                    g.zero_()
                elif p.grad is not g:
                    g.copy_(p.grad)
        for p, g in zip(self.params, self.grads, strict=True):
            p.grad = g

    def _static_inputs(self, rows: int, length: int, device: Any) -> dict[str, Any]:
        import torch

        long = dict(dtype=torch.long, device=device)
        return {
            "input_ids": torch.full((rows, length), self.pad_id, **long),
            "attention_mask": torch.zeros((rows, length), **long),
            "completion_mask": torch.zeros((rows, length), **long),
            "ref_chosen_logps": torch.zeros(rows // 2, dtype=torch.float32, device=device),
            "ref_rejected_logps": torch.zeros(rows // 2, dtype=torch.float32, device=device),
        }

    def _roomier(self, key: tuple) -> tuple:
        """`roomier_shape` among this trainer's recorded shapes (none when `roomier` is off)."""
        if not self.roomier:
            return key  # every shape recorded
        return roomier_shape(key, self.recorded)

    def _fill(self, static: dict[str, Any], batch: dict[str, Any]) -> None:
        if PACKED in static:
            _fill_packed(static, batch, self.pad_id)
            return
        length = batch["input_ids"].shape[1]
        for key in ("input_ids", "attention_mask", "completion_mask"):
            static[key][:, :length].copy_(batch[key])
            if length < static[key].shape[1]:
                static[key][:, length:].fill_(self.pad_id if key == "input_ids" else 0)
        for key in ("ref_chosen_logps", "ref_rejected_logps"):
            if key in batch:  # not in the reference pass's batches
                static[key].copy_(batch[key])

    def knows(self, batch: dict[str, Any], kind: str = "step") -> bool:
        """Whether this batch's shape is recorded already (its step is a replay)."""
        if kind == "step" and PACKED in batch:
            kind = "packed"
        return self._shape(kind, batch) in self.recorded

    def _shape(self, kind: str, batch: dict[str, Any]) -> tuple:
        """The recorded shape this batch runs in: its own, or for a packed batch a roomier one."""
        key = self._key(kind, batch)
        return self._roomier(key) if kind == "packed" and key not in self.recorded else key

    def _key(self, kind: str, batch: dict[str, Any]) -> tuple:
        if kind == "packed":  # the collator made the shapes (bucketed): rows, row length, answer slots
            return (kind, *batch[PACKED].shape, batch["pack_source"].shape[0], batch["pack_num_tokens"].shape[0])
        rows, length = batch["input_ids"].shape
        return (kind, rows, bucket_length(length, self.max_length))

    def step(self, batch: dict[str, Any], scale: float) -> Any:
        """Train on one micro-batch (gradients into `.grad`); return the statistics (STATS order) as a
        tensor on the device, not read yet: reading waits for the GPU, and the host has the optimizer
        step to launch meanwhile."""
        self._bind_grads()
        return self._run("packed" if PACKED in batch else "step", batch, scale)

    def step_in_parts(self, parts: list[dict[str, Any]], scale: float) -> Any:
        """A micro-batch too long for one step (packing.PARTS), one part after the other into the same
        gradients: each part's mean loss weighed by its share of the pairs, so the gradient is the whole
        batch's; one statistics vector, as the whole batch would give (`merge_parts`)."""
        pairs = [int(part["pack_num_tokens"].shape[0]) for part in parts]
        total = sum(pairs)
        stats = [self.step(part, scale * count / total) for part, count in zip(parts, pairs, strict=True)]
        return merge_parts(stats, pairs)

    def reference(self, batch: dict[str, Any]) -> Any:
        """The reference log-probs of a batch ([2B] on the device; TRL's precompute pass copies them)."""
        return self._run("reference", batch, 0.0)

    def _compute(self, kind: str, inputs: dict[str, Any], scale: Any) -> Any:
        with recordable(self.model, self.checkpoint_fraction):
            if kind == "step":
                return step_statistics(self.model, inputs, loss=self.loss, scale=scale)
            if kind == "packed":
                return packed_step_statistics(self.model, inputs, loss=self.loss, scale=scale)
            return reference_logps(self.model, inputs)

    def _run(self, kind: str, batch: dict[str, Any], scale: float) -> Any:
        import torch

        key = self._shape(kind, batch)
        counter = "reference" if kind == "reference" else "step"
        entry = self.recorded.get(key)
        if entry is not None:
            self._fill(entry.inputs, batch)
            entry.scale.fill_(scale)
            self.replays[counter] += 1
            if entry.graph is None:  # off a GPU: the same computation, run again eagerly (the tests' path)
                return self._compute(kind, entry.inputs, entry.scale)
            entry.graph.replay()
            return entry.output.clone()  # the next replay overwrites the graph's own output

        device = batch[PACKED if kind == "packed" else "input_ids"].device
        if kind == "packed":
            inputs = {k: torch.empty_like(batch[k]) for k in (*PACKED_KEYS, "ref_chosen_logps", "ref_rejected_logps")}
        else:
            inputs = self._static_inputs(key[1], key[2], device)
        self._fill(inputs, batch)
        scale_tensor = torch.full((), scale, dtype=torch.float32, device=device)
        if not self._records_on(device):
            self.recorded[key] = _Recorded(None, inputs, scale_tensor, None)
            self.recordings[counter] += 1
            return self._compute(kind, inputs, scale_tensor)
        if self.recordings[counter] and not self.warm_each and key not in self.failed:
            # Kernels, handles and the capture stream are warm from the first recording: record this
            # shape straight away and replay it (a recording runs nothing).
            try:
                self._record(key, inputs, scale_tensor)
            except Exception as error:  # noqa: BLE001 - nothing ran: this batch runs eagerly
                self._recording_failed(key, error)
                return self._compute(kind, inputs, scale_tensor)
            return self._run(kind, batch, scale)  # recorded now: the replay path
        # The first batch of a shape runs eagerly on a side stream (a real step: it also initialises
        # what a recording must not, e.g. compiling TRL's Triton kernel), then it is recorded.
        result = self._warm_up(kind, inputs, scale_tensor)
        try:
            self._record(key, inputs, scale_tensor)
        except Exception as error:  # noqa: BLE001 - this batch is done; later ones run eagerly
            self.failed.add(key)  # warmed up already: no retry
            self._recording_failed(key, error)
        return result

    def _recording_failed(self, key: tuple, error: Exception) -> None:
        """A recording of `key` failed: with `retry_failed`, the first time for this shape, note it (its
        next batch warms it up eagerly, then records); else recording stops for the run (`broken`)."""
        if self.retry_failed and key not in self.failed:
            self.failed.add(key)
            return
        self.broken = f"{type(error).__name__}: {error}"

    def _records_on(self, device: Any) -> bool:
        """Whether steps on this device are recorded (a CUDA GPU), else run again eagerly."""
        return device.type == "cuda"

    def _warm_up(self, kind: str, inputs: dict[str, Any], scale: Any) -> Any:
        """Run a step eagerly on a side stream, as a recording must be preceded."""
        import torch

        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            result = self._compute(kind, inputs, scale)
        torch.cuda.current_stream().wait_stream(side)
        return result

    def _record(self, key: tuple[str, int, int], inputs: dict[str, Any], scale: Any) -> None:
        """Record a shape. Recording runs no kernel: it changes no gradient, no weight."""
        import torch

        if self.pool is None:
            self.pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool, capture_error_mode="thread_local"):
            output = self._compute(key[0], inputs, scale)
        if not all(p.grad is None or p.grad is g for p, g in zip(self.params, self.grads, strict=True)):
            # autograd replaced a `.grad` instead of adding into it: a replay would write elsewhere
            raise RuntimeError("a recorded step did not accumulate into the bound gradients")
        self.recorded[key] = _Recorded(graph, inputs, scale, output)
        self.recordings["reference" if key[0] == "reference" else "step"] += 1
