"""The plain-torch stand-in for TRL's Triton log-prob kernel: same values and gradients as full logits."""

from __future__ import annotations

import pytest
import torch
from dpo_tutor.engine.train.backends import cpu_logprob
from dpo_tutor.engine.train.backends.cpu_logprob import CpuChunkedLogProb

ALL = ("entropy", "log_sum_sq_probs", "mean_logits", "is_top1")


def reference(hidden, weight, bias, targets, temperature, softcap, logit_scale):
    """The direct computation: full logits, transformed, then log-softmax."""
    z = hidden @ weight.t()
    if bias is not None:
        z = z + bias
    z = z * logit_scale
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    z = z / temperature
    logp = torch.log_softmax(z, dim=-1)
    p = logp.exp()
    return (
        logp.gather(-1, targets[:, None]).squeeze(-1),
        -(p * logp).sum(-1),
        torch.log((p * p).sum(-1)),
        z.mean(-1),
        z.argmax(-1) == targets,
    )


@pytest.mark.parametrize(
    "temperature,softcap,logit_scale,with_bias",
    [(1.0, None, 1.0, False), (0.7, 30.0, 1.0, True), (1.3, 5.0, 0.5, False), (1.0, None, 2.0, True)],
)
def test_values_and_gradients_match_full_logits(monkeypatch, temperature, softcap, logit_scale, with_bias):
    monkeypatch.setattr(cpu_logprob, "TOKEN_CHUNK", 7)  # several chunks and a ragged last one
    g = torch.Generator().manual_seed(0)
    n, h, v = 23, 16, 50
    hidden = torch.randn(n, h, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(v, h, generator=g, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(v, generator=g, dtype=torch.float64, requires_grad=True) if with_bias else None
    targets = torch.randint(0, v, (n,), generator=g)

    got = CpuChunkedLogProb.apply(hidden, weight, bias, targets, temperature, 32768, softcap, logit_scale, ALL)
    want = reference(hidden, weight, bias, targets, temperature, softcap, logit_scale)
    assert len(got) == 5
    for a, b in zip(got[:4], want[:4], strict=True):
        assert torch.allclose(a.double(), b, atol=1e-6), (a, b)
    assert torch.equal(got[4], want[4])
    assert got[4].any() or not want[4].any()

    # Gradients of a loss that uses both log-probs and entropy, as TRL's DPO loss and metrics do.
    w1 = torch.randn(n, generator=g, dtype=torch.float64)
    inputs = [hidden, weight] + ([bias] if with_bias else [])
    loss_got = (got[0].double() * w1).sum() + 0.1 * got[1].double().sum()
    loss_want = (want[0] * w1).sum() + 0.1 * want[1].sum()
    grads_got = torch.autograd.grad(loss_got, inputs)
    grads_want = torch.autograd.grad(loss_want, inputs)
    for a, b in zip(grads_got, grads_want, strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_only_requested_outputs_are_computed():
    hidden, weight = torch.randn(4, 8), torch.randn(12, 8)
    out = CpuChunkedLogProb.apply(hidden, weight, None, torch.tensor([0, 1, 2, 3]), 1.0, 32768, None, 1.0, ())
    assert out[0].shape == (4,) and all(x is None for x in out[1:])


def test_empty_selection_stays_differentiable():
    hidden = torch.randn(0, 8, requires_grad=True)
    weight = torch.randn(12, 8, requires_grad=True)
    logp, *_ = CpuChunkedLogProb.apply(hidden, weight, None, torch.zeros(0, dtype=torch.long), 1.0, 1, None, 1.0, ALL)
    assert logp.shape == (0,)
    (logp.sum() * 0).backward()  # TRL's masked_scatter path needs a connected zero
    assert weight.grad is not None


def test_install_only_when_the_kernel_is_missing(monkeypatch):
    from trl.trainer import utils

    sentinel = object()
    monkeypatch.setattr(utils, "_ChunkedLogProbFunction", sentinel)
    assert cpu_logprob.install() is False
    assert utils._ChunkedLogProbFunction is sentinel
    monkeypatch.setattr(utils, "_ChunkedLogProbFunction", None)
    assert cpu_logprob.install() is True
    assert utils._ChunkedLogProbFunction is CpuChunkedLogProb


def test_refuses_an_unknown_trl_version(monkeypatch):
    import trl
    from trl.trainer import utils

    monkeypatch.setattr(utils, "_ChunkedLogProbFunction", None)
    monkeypatch.setattr(trl, "__version__", "9.0.0")
    with pytest.raises(RuntimeError, match="1.15"):
        cpu_logprob.install()


def test_matches_trls_fused_head_through_a_model():
    """TRL's own add_fused_lm_head with the stand-in gives the log-probs of the full-logits forward."""
    from dpo_tutor.engine.models import build_tiny_model
    from trl.trainer import utils

    if utils._ChunkedLogProbFunction is None:
        cpu_logprob.install()
    if utils._ChunkedLogProbFunction is not CpuChunkedLogProb:
        pytest.skip("TRL's own Triton kernel is present here")
    model, tok = build_tiny_model()
    ids = torch.tensor([tok("How do I bake a cake? Mix flour and eggs.")["input_ids"]])
    labels = ids.clone()
    labels[0, :3] = -100
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, :-1]
        full = torch.log_softmax(logits.float(), -1).gather(-1, ids[0, 1:, None]).squeeze(-1)[2:]
    utils.add_fused_lm_head(model, outputs=("log_probs", "entropy"))
    with torch.no_grad():
        out = model(input_ids=ids, labels=labels, fused_lm_head=True)
    fused = out.log_probs[0][2:]
    assert torch.allclose(fused, full, atol=1e-5)
