"""A plain-torch stand-in for TRL 1.15's Triton log-prob kernel, so DPO trains on a CPU-only torch.

TRL 1.15 scores completions through a fused LM head (`trl.trainer.utils.add_fused_lm_head`) that calls
`_ChunkedLogProbFunction.apply(hidden, weight, bias, targets, temperature, chunk_size, softcap,
logit_scale, outputs)`. That function is a Triton kernel; without Triton (CPU-only torch) TRL sets it
to None and DPO fails with "'NoneType' object has no attribute 'apply'". `install()` puts this
stand-in in its place, only when it is None. It computes the same five per-token outputs with ordinary
torch ops, chunked over tokens to bound memory, and lets autograd do the backward.

It replaces a private TRL name, so it is pinned to the TRL versions it was written against
(`SUPPORTED_TRL`); `install()` refuses others with a clear message.
"""

from __future__ import annotations

import torch

SUPPORTED_TRL = ("1.15.",)
TOKEN_CHUNK = 1024


class CpuChunkedLogProb:
    """`apply(...)` with the signature and return of TRL's `ChunkedLogProbFunction.apply`."""

    @staticmethod
    def apply(
        hidden: torch.Tensor,  # [N, H]
        weight: torch.Tensor,  # [V, H]
        bias: torch.Tensor | None,  # [V]
        targets: torch.Tensor,  # [N]
        temperature: float = 1.0,
        chunk_size: int = 32768,  # TRL's vocabulary tile width; irrelevant here
        softcap: float | None = None,
        logit_scale: float = 1.0,
        outputs: tuple[str, ...] = ("entropy", "log_sum_sq_probs", "mean_logits", "is_top1"),
    ):
        """Return (log_probs, entropy, log_sum_sq_probs, mean_logits, is_top1), each [N] or None."""
        del chunk_size
        parts: list[list[torch.Tensor | None]] = [[] for _ in range(5)]
        # One pass even with no token, so that the (empty) outputs stay connected for backward.
        for start in range(0, max(hidden.shape[0], 1), TOKEN_CHUNK):
            h = hidden[start : start + TOKEN_CHUNK]
            t = targets[start : start + TOKEN_CHUNK]
            for slot, value in enumerate(_chunk(h, weight, bias, t, temperature, softcap, logit_scale, outputs)):
                parts[slot].append(value)
        return tuple(None if values[0] is None else torch.cat(values) for values in parts)  # type: ignore[arg-type]


def _chunk(h, weight, bias, targets, temperature, softcap, logit_scale, outputs):
    z = torch.nn.functional.linear(h, weight, bias)
    if z.dtype in (torch.float16, torch.bfloat16):
        z = z.float()  # statistics in fp32, as TRL's kernel keeps them
    z = z * logit_scale
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    z = z / temperature
    log_z = torch.logsumexp(z, dim=-1)
    target_logit = z.gather(-1, targets.long().unsqueeze(-1)).squeeze(-1)
    log_probs = target_logit - log_z
    entropy = log_sum_sq = mean_logits = is_top1 = None
    if "entropy" in outputs:
        p = torch.softmax(z, dim=-1)
        entropy = log_z - (p * z).sum(-1)
    with torch.no_grad():
        zd = z.detach()
        if "log_sum_sq_probs" in outputs:
            log_sum_sq = torch.logsumexp(2 * zd, dim=-1) - 2 * log_z.detach()
        if "mean_logits" in outputs:
            mean_logits = zd.mean(-1)
        if "is_top1" in outputs:
            # Like TRL's kernel: the first maximum counts, so a tie with an earlier token is not top-1.
            is_top1 = zd.argmax(-1) == targets.long()
    return log_probs, entropy, log_sum_sq, mean_logits, is_top1


def needed() -> bool:
    """Whether TRL's own kernel is missing (CPU-only torch, no Triton)."""
    from trl.trainer import utils

    return getattr(utils, "_ChunkedLogProbFunction", None) is None


def install() -> bool:
    """Install the stand-in when TRL's kernel is missing; return whether it was installed."""
    import trl
    from trl.trainer import utils

    if not hasattr(utils, "_ChunkedLogProbFunction"):
        raise RuntimeError(f"trl {trl.__version__} has no _ChunkedLogProbFunction: the CPU path needs trl 1.15.x")
    if utils._ChunkedLogProbFunction is not None:
        return False
    if not trl.__version__.startswith(SUPPORTED_TRL):
        raise RuntimeError(
            f"the CPU log-prob stand-in is written for trl {SUPPORTED_TRL[0]}x, found {trl.__version__}"
        )
    utils._ChunkedLogProbFunction = CpuChunkedLogProb
    return True
