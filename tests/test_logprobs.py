"""engine/logprobs.py: the same numbers computed two (or three) ways agree."""

from __future__ import annotations

import pytest
from aligned_run import perturbed_peft_model

PAIRS = [
    ("<|im_start|>user\nHow do I bake a cake?<|im_end|>\n<|im_start|>assistant\n", "Mix flour and eggs.<|im_end|>"),
    ("<|im_start|>user\nThank you!<|im_end|>\n<|im_start|>assistant\n", "You're welcome.<|im_end|>"),
    ("User: What is the capital of France?\nAssistant:", " Paris is the capital of France, as you know."),
    ("Hi", " there"),
]


@pytest.fixture(scope="module")
def models():
    return perturbed_peft_model()


def manual_logps(model, tokenizer, prompt, completion):
    """Token by token, the plain way: full logits, log_softmax, pick each completion token."""
    import torch

    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids = tokenizer(prompt + completion, add_special_tokens=False)["input_ids"]
    start = next((i for i, (a, b) in enumerate(zip(prompt_ids, ids, strict=False)) if a != b), len(prompt_ids))
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].double()
    logp = logits.log_softmax(-1)
    values = [float(logp[t - 1, ids[t]]) for t in range(max(start, 1), len(ids))]
    return sum(values), len(values)


def test_chunked_batched_path_equals_plain_token_by_token_computation(models):
    from dpo_tutor.engine.logprobs import sequence_logprobs

    _peft_model, tokenizer, plain = models
    got = sequence_logprobs(plain, tokenizer, PAIRS, batch_size=3, chunk_tokens=5)
    for i, (p, c) in enumerate(PAIRS):
        total, n = manual_logps(plain, tokenizer, p, c)
        assert got.n_tokens[i] == n > 0
        assert got.summed[i] == pytest.approx(total, abs=1e-4)
        assert got.mean[i] == pytest.approx(total / n, abs=1e-5)
        assert got.summed[i] == pytest.approx(got.mean[i] * got.n_tokens[i], rel=1e-9)


def test_chunked_head_equals_full_logits_forward_and_batch_size_does_not_matter(models):
    from dpo_tutor.engine.logprobs import sequence_logprobs

    peft_model, tokenizer, _ = models
    chunked = sequence_logprobs(peft_model, tokenizer, PAIRS, batch_size=4, chunk_tokens=3)
    full = sequence_logprobs(peft_model, tokenizer, PAIRS, batch_size=1, full_logits=True)
    assert chunked.summed == pytest.approx(full.summed, abs=1e-4)
    assert chunked.mean == pytest.approx(full.mean, abs=1e-5)
    assert chunked.n_tokens == full.n_tokens


def test_adapter_off_is_the_plain_base_model_and_adapter_on_differs(models):
    from dpo_tutor.engine.logprobs import policy_and_reference, sequence_logprobs

    peft_model, tokenizer, plain = models
    policy, reference = policy_and_reference(peft_model, tokenizer, PAIRS)
    base = sequence_logprobs(plain, tokenizer, PAIRS)
    assert reference.summed == pytest.approx(base.summed, abs=1e-4)
    assert max(abs(a - b) for a, b in zip(policy.summed, base.summed, strict=False)) > 0.05
    # On the aligned side the manual computation through the PEFT model agrees too.
    total, _ = manual_logps(peft_model, tokenizer, *PAIRS[0])
    assert policy.summed[0] == pytest.approx(total, abs=1e-4)


def test_max_length_keeps_the_start_and_a_full_prompt_leaves_no_completion(models):
    from dpo_tutor.engine.logprobs import sequence_logprobs

    _, tokenizer, plain = models
    prompt, completion = PAIRS[0]
    n_prompt = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    cut = sequence_logprobs(plain, tokenizer, [(prompt, completion)], max_length=n_prompt + 2)
    assert cut.n_tokens == [2] and cut.truncated == [True]
    none = sequence_logprobs(plain, tokenizer, [(prompt, completion)], max_length=n_prompt)
    assert none.n_tokens == [0] and none.summed == [0.0]


def test_kl_to_reference_is_zero_for_the_reference_and_positive_for_the_adapter(models):
    import torch
    from aligned_run import perturbed_peft_model
    from dpo_tutor.engine.logprobs import token_kl_to_reference

    peft_model, tokenizer, _ = models
    kl = token_kl_to_reference(peft_model, tokenizer, PAIRS, chunk_tokens=4)
    assert all(k > 1e-4 for k in kl)
    zero, tok, _ = perturbed_peft_model(scale=0.0)
    assert token_kl_to_reference(zero, tok, PAIRS) == pytest.approx([0.0] * len(PAIRS), abs=1e-6)
    # Exact KL by hand: full distributions at every completion position, averaged.
    prompt, completion = PAIRS[2]
    ids = tokenizer(prompt + completion, add_special_tokens=False)["input_ids"]
    start = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    with torch.no_grad():
        lp = peft_model(input_ids=torch.tensor([ids])).logits[0].double().log_softmax(-1)
        with peft_model.disable_adapter():
            lq = peft_model(input_ids=torch.tensor([ids])).logits[0].double().log_softmax(-1)
    per_position = (lp.exp() * (lp - lq)).sum(-1)[start - 1 : len(ids) - 1]
    assert len(per_position) > 3
    assert kl[2] == pytest.approx(float(per_position.mean()), rel=1e-3)
