"""Sequence log-probabilities of a completion given its prompt: the one function evaluation and tests use.

For each (prompt_text, completion_text) the completion's tokens are scored under the model, and we keep
the **sum** over completion tokens (what TRL's `logps/chosen` reports and what DPO's implicit reward uses)
and the **per-token mean** (length-normalised, so long answers are not punished for being long).

`adapter=False` scores with the LoRA adapter switched off (`with model.disable_adapter():`), which is
exactly the reference model of a PEFT DPO run: no second copy is loaded.

The log-softmax is taken only at completion positions and in chunks of `chunk_tokens` rows, so a batch
never materialises batch x sequence x vocabulary logits (SmolLM2's vocabulary is 49,152 wide). Models
whose head is more than a plain linear layer (logit soft-capping, logit scaling) fall back to the full
logits from the model's own forward.

Tokenisation follows TRL 1.15: the prompt and prompt+completion are tokenised, and the completion starts
where the two token sequences diverge; prompt+completion is cut to `max_length` keeping the start, and
a pair whose prompt alone fills `max_length` has no completion tokens left (`n_tokens == 0`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field


@dataclass
class SequenceLogprobs:
    """Log-probs of completions, one entry per (prompt, completion) in input order."""

    summed: list[float] = field(default_factory=list)
    mean: list[float] = field(default_factory=list)
    n_tokens: list[int] = field(default_factory=list)
    truncated: list[bool] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.summed)


@dataclass
class _Encoded:
    ids: list[int]
    start: int  # index of the first completion token in ids
    truncated: bool


def encode_pair(tokenizer, prompt: str, completion: str, max_length: int | None = None) -> _Encoded:
    """Token ids of prompt+completion and where the completion starts (TRL's divergence rule)."""
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    full_ids = tokenizer(prompt + completion, add_special_tokens=False)["input_ids"]
    start = 0
    for a, b in zip(prompt_ids, full_ids, strict=False):
        if a != b:
            break
        start += 1
    truncated = False
    if max_length is not None and len(full_ids) > max_length:
        full_ids = full_ids[:max_length]
        truncated = True
    start = min(start, len(full_ids))
    return _Encoded(full_ids, start, truncated)


def adapter_context(model, adapter: bool):
    """`disable_adapter()` when adapter is False and the model has one; a no-op otherwise."""
    if not adapter and hasattr(model, "disable_adapter"):
        return model.disable_adapter()
    return contextlib.nullcontext()


def _split_head(model):
    """(decoder, lm_head) when the head is a plain linear map of the last hidden state, else None."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(base, "config", None)
    if getattr(config, "final_logit_softcapping", None) or getattr(config, "logit_scale", None):
        return None
    get_decoder = getattr(base, "get_decoder", None)
    head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    if get_decoder is None or head is None:
        return None
    try:
        decoder = get_decoder()
    except (AttributeError, NotImplementedError):
        return None
    if decoder is None or decoder is base:
        return None
    return decoder, head


def _batches(n: int, size: int) -> Iterator[range]:
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


def _pad_batch(encoded: list[_Encoded], pad_id: int, device):
    import torch

    width = max(len(e.ids) for e in encoded)
    ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    # labels_mask[b, t] is True where token t+1 is a completion token (it is predicted at position t).
    target_mask = torch.zeros((len(encoded), width - 1 if width > 1 else 0), dtype=torch.bool)
    for row, e in enumerate(encoded):
        ids[row, : len(e.ids)] = torch.tensor(e.ids, dtype=torch.long)
        mask[row, : len(e.ids)] = 1
        if len(e.ids) > 1:
            first = max(e.start, 1)
            target_mask[row, first - 1 : len(e.ids) - 1] = True
    return ids.to(device), mask.to(device), target_mask.to(device)


def _model_device(model):
    try:
        return next(model.parameters()).device
    except StopIteration:  # pragma: no cover - a model without parameters
        import torch

        return torch.device("cpu")


def _token_logps_chunked(hidden, head, targets, chunk_tokens: int):
    """log p(target) for rows of hidden states (N, H), computing at most chunk_tokens logits at a time."""
    import torch

    out = torch.empty(targets.shape[0], dtype=torch.float32, device=hidden.device)
    for start in range(0, targets.shape[0], chunk_tokens):
        stop = start + chunk_tokens
        logits = head(hidden[start:stop]).float()
        out[start:stop] = logits.gather(1, targets[start:stop, None]).squeeze(1) - torch.logsumexp(logits, -1)
    return out


def _batch_token_logps(model, ids, mask, target_mask, *, chunk_tokens: int, full_logits: bool):
    """Per-completion-token log-probs of one padded batch, flattened in row order."""
    import torch

    targets = ids[:, 1:][target_mask]
    split = None if full_logits else _split_head(model)
    if split is None:
        logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, :-1]
        logits = logits[target_mask].float()
        return logits.gather(1, targets[:, None]).squeeze(1) - torch.logsumexp(logits, -1)
    decoder, head = split
    hidden = decoder(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state[:, :-1]
    return _token_logps_chunked(hidden[target_mask], head, targets, chunk_tokens)


def sequence_logprobs(
    model,
    tokenizer,
    pairs: Sequence[tuple[str, str]],
    *,
    adapter: bool = True,
    batch_size: int = 8,
    max_length: int | None = None,
    chunk_tokens: int = 1024,
    full_logits: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> SequenceLogprobs:
    """Summed and per-token-mean log-probs of each completion given its prompt.

    pairs: (prompt_text, completion_text), texts as rendered for training (`render_pair`).
    adapter: False scores the reference (the adapter disabled). full_logits: force the plain forward
    (used by tests to check the chunked path against it).
    """
    import torch

    device = _model_device(model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    encoded = [encode_pair(tokenizer, p, c, max_length) for p, c in pairs]
    result = SequenceLogprobs()
    done = 0
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), adapter_context(model, adapter):
            for rows in _batches(len(encoded), batch_size):
                batch = [encoded[i] for i in rows]
                ids, mask, target_mask = _pad_batch(batch, pad_id, device)
                counts = target_mask.sum(1).tolist()
                if sum(counts) == 0:
                    token_logps = torch.empty(0, device=device)
                else:
                    token_logps = _batch_token_logps(
                        model, ids, mask, target_mask, chunk_tokens=chunk_tokens, full_logits=full_logits
                    )
                for e, piece in zip(batch, torch.split(token_logps, counts), strict=True):
                    n = int(piece.numel())
                    total = float(piece.double().sum()) if n else 0.0
                    result.summed.append(total)
                    result.mean.append(total / n if n else 0.0)
                    result.n_tokens.append(n)
                    result.truncated.append(e.truncated)
                done += len(rows)
                if progress is not None:
                    progress(done, len(encoded))
    finally:
        model.train(was_training)
    return result


def policy_and_reference(model, tokenizer, pairs, **kwargs) -> tuple[SequenceLogprobs, SequenceLogprobs]:
    """The same completions scored with the adapter on (policy) and off (reference)."""
    return (
        sequence_logprobs(model, tokenizer, pairs, adapter=True, **kwargs),
        sequence_logprobs(model, tokenizer, pairs, adapter=False, **kwargs),
    )


def token_kl_to_reference(
    model,
    tokenizer,
    pairs: Sequence[tuple[str, str]],
    *,
    batch_size: int = 8,
    max_length: int | None = None,
    chunk_tokens: int = 512,
) -> list[float]:
    """Per sequence, the mean over completion positions of KL(policy || reference) of the next-token
    distributions (exact over the whole vocabulary, teacher-forced on the given completions)."""
    import torch

    device = _model_device(model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    encoded = [encode_pair(tokenizer, p, c, max_length) for p, c in pairs]
    out: list[float] = []
    was_training = model.training
    model.eval()
    split = _split_head(model)
    try:
        with torch.inference_mode():
            for rows in _batches(len(encoded), batch_size):
                batch = [encoded[i] for i in rows]
                ids, mask, target_mask = _pad_batch(batch, pad_id, device)
                counts = target_mask.sum(1).tolist()
                states = []
                for on in (True, False):
                    with adapter_context(model, on):
                        if split is None:
                            logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
                            states.append(logits[:, :-1][target_mask])
                        else:
                            hidden = split[0](input_ids=ids, attention_mask=mask, use_cache=False)
                            states.append(hidden.last_hidden_state[:, :-1][target_mask])
                kl = torch.empty(states[0].shape[0], dtype=torch.float32, device=device)
                for start in range(0, kl.shape[0], chunk_tokens):
                    stop = start + chunk_tokens
                    if split is None:
                        lp, lq = (s[start:stop].float().log_softmax(-1) for s in states)
                    else:
                        lp = split[1](states[0][start:stop]).float().log_softmax(-1)
                        with adapter_context(model, False):
                            lq = split[1](states[1][start:stop]).float().log_softmax(-1)
                    kl[start:stop] = (lp.exp() * (lp - lq)).sum(-1)
                for piece in torch.split(kl, counts):
                    out.append(float(piece.double().mean()) if piece.numel() else 0.0)
    finally:
        model.train(was_training)
    return out
