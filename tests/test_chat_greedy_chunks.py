"""Greedy chunks (several decode steps per host sync) and the incremental detokeniser: same tokens, same text,
same events as one step per token and as one model generating alone."""

from __future__ import annotations

import random
import threading

import pytest
from aligned_run import perturbed_peft_model

PROMPT = "How do I bake a cake?"
SIDES = ("base", "aligned")


@pytest.fixture(scope="module")
def models():
    return perturbed_peft_model()


def prompts_for(tokenizer, prompt: str = PROMPT) -> dict[str, str]:
    from dpo_tutor.engine.generation import render_messages

    return {side: render_messages(tokenizer, [{"role": "user", "content": prompt}]) for side in SIDES}


def stream(model, tokenizer, strategy, max_new_tokens, *, chunk, block=8, static=True, stop=None, stop_after=None):
    """All events of one two-sided answer; with stop_after, `stop` is set once that many events arrived."""
    from dpo_tutor.engine.generation import GenerationSettings, stream_both

    events = []
    for event in stream_both(model, tokenizer, prompts_for(tokenizer), GenerationSettings(max_new_tokens),
                             strategy=strategy, chunk=chunk, block=block, static=static, stop=stop):
        events.append(event)
        if stop_after is not None and len(events) == stop_after:
            stop.set()
    return events


def summary(events) -> dict[str, tuple[str, int, str]]:
    """Per side: (text, tokens, finish reason)."""
    done = {e.side: e for e in events if e.done}
    return {side: ("".join(e.text for e in events if e.side == side), done[side].tokens, done[side].reason)
            for side in SIDES}


def single_model_ids(model, tokenizer, side: str, max_new_tokens: int) -> list[int]:
    """transformers' own greedy generate on one model: the base with the adapter off, the aligned with it on."""
    import contextlib

    import torch

    ids = tokenizer(prompts_for(tokenizer)[side], add_special_tokens=False, return_tensors="pt")
    context = model.disable_adapter() if side == "base" else contextlib.nullcontext()
    with torch.no_grad(), context:
        out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
    return out[0, ids["input_ids"].shape[1]:].tolist()


@pytest.fixture
def chunk_sizes(monkeypatch):
    """The n of every `_StaticRows.greedy(n)` call: proof that the chunked path ran."""
    from dpo_tutor.engine.generation import _StaticRows

    sizes: list[int] = []
    greedy = _StaticRows.greedy

    def spy(self, n):
        sizes.append(n)
        return greedy(self, n)

    monkeypatch.setattr(_StaticRows, "greedy", spy)
    return sizes


def chunked_and_stepped(model, tokenizer):
    """20 greedy tokens per row of the batched strategy, twice: in chunks of 7, 8 and 4 steps that pick
    their own tokens, and one logits step per token with argmax on the host. Returns (chunked rows, their
    tokens, the per-token tokens)."""
    import torch
    from dpo_tutor.engine.generation import batched_rows

    prompts = prompts_for(tokenizer)
    # Different prompt lengths, so the batch is left-padded.
    prompts["aligned"] = prompts["aligned"].replace("bake a cake", "bake a really big chocolate cake")
    with torch.inference_mode():
        stepped = batched_rows(model, tokenizer, [prompts["base"], prompts["aligned"]], 20)
        tokens = stepped.prefill().argmax(-1)
        per_token = [tokens.tolist()]
        for _ in range(19):
            tokens = stepped.step(tokens).argmax(-1)
            per_token.append(tokens.tolist())
        chunked = batched_rows(model, tokenizer, [prompts["base"], prompts["aligned"]], 20, chunk=8)
        first = chunked.prefill().argmax(-1)
        chunked.feed(first)
        rows = [[t] for t in first.tolist()]
        for n in (7, 8, 4):
            for row, picked in zip(rows, chunked.greedy(n), strict=True):
                row.extend(picked)
    return chunked, rows, [list(col) for col in zip(*per_token, strict=True)]


def test_greedy_chunks_pick_the_same_tokens_as_host_steps(models):
    model, tokenizer, _ = models
    chunked, rows, per_token = chunked_and_stepped(model, tokenizer)
    assert rows == per_token and len(rows[0]) == 20 and rows[0] != rows[1]
    # The cache counted every step: the prompt's slots plus one per decoded token.
    assert int(chunked.cache.layers[0].cumulative_length) == chunked.length + 19


@pytest.mark.gpu
def test_on_cuda_the_captured_greedy_step_equals_the_captured_logits_step():
    """The CUDA-graph path (capture, warm-up undone, replays that advance their own slot) on a real GPU."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    model, tokenizer, _ = perturbed_peft_model()
    model.to("cuda")
    chunked, rows, per_token = chunked_and_stepped(model, tokenizer)
    assert chunked.decode == "cuda-graph" and chunked.greedy_graph is not None
    assert rows == per_token
    assert int(chunked.cache.layers[0].cumulative_length) == chunked.length + 19
    for strategy in ("batched", "sequential"):
        chunked_events = stream(model, tokenizer, strategy, 40, chunk=8, static=None)
        assert summary(chunked_events) == summary(stream(model, tokenizer, strategy, 40, chunk=1, block=1,
                                                         static=None))


@pytest.mark.parametrize("strategy", ["batched", "mixed", "sequential"])
def test_chunked_stream_equals_per_token_stream_and_single_model_generate(models, chunk_sizes, strategy):
    model, tokenizer, _ = models
    # 13 is no multiple of the chunk (4) nor of the sequential block (4): the last chunk is cut short.
    chunked = stream(model, tokenizer, strategy, 13, chunk=4, block=4)
    sizes = list(chunk_sizes)
    per_token = stream(model, tokenizer, strategy, 13, chunk=1, block=1)
    assert len(chunk_sizes) == len(sizes)  # chunk 1 / block 1: no greedy chunks at all
    # Each side: 1 (prefill) + 3 + 4 + 4 + 1 tokens; sequential: one chunk per side per turn.
    assert sizes == ([3, 3, 4, 4, 4, 4, 1, 1] if strategy == "sequential" else [3, 4, 4, 1])
    assert summary(chunked) == summary(per_token)
    for side in SIDES:
        ids = single_model_ids(model, tokenizer, side, 13)
        assert summary(chunked)[side] == (tokenizer.decode(ids, skip_special_tokens=True), 13, "length")
        mine = [e for e in chunked if e.side == side]
        assert [e.tokens for e in mine] == list(range(1, 14))  # one event per token, in order
        assert [e.done for e in mine] == [False] * 12 + [True]
    assert summary(chunked)["base"][0] != summary(chunked)["aligned"][0]


@pytest.mark.parametrize("strategy", ["batched", "sequential"])
def test_eos_in_the_middle_of_a_chunk_ends_that_side_there(models, monkeypatch, strategy):
    model, tokenizer, _ = models
    base, aligned = (single_model_ids(model, tokenizer, side, 24) for side in SIDES)
    # Make a token the aligned side says (and the base never does) a stop token, where its first
    # occurrence falls inside a chunk of 8 (not its last token).
    eos = next((t for p, t in enumerate(aligned) if p and t not in base and aligned.index(t) == p and (p + 1) % 8), None)
    assert eos is not None
    at = aligned.index(eos)
    monkeypatch.setattr(model.generation_config, "eos_token_id", [tokenizer.eos_token_id, eos])
    events = stream(model, tokenizer, strategy, 24, chunk=8, block=8)
    assert summary(events)["aligned"] == (tokenizer.decode(aligned[:at], skip_special_tokens=True), at, "eos")
    assert summary(events)["base"] == (tokenizer.decode(base, skip_special_tokens=True), 24, "length")
    assert summary(events) == summary(stream(model, tokenizer, strategy, 24, chunk=1, block=1))
    assert [e.tokens for e in events if e.side == "aligned"] == [*range(1, at + 1), at]


def test_a_chunk_may_overshoot_the_last_token_by_chunk_minus_one_steps(models):
    """Rows that finished keep decoding to the end of a chunk: the static cache has room for it."""
    import torch
    from dpo_tutor.engine.generation import batched_rows

    model, tokenizer, _ = models
    prompts = prompts_for(tokenizer)
    with torch.inference_mode():
        rows = batched_rows(model, tokenizer, [prompts["base"], prompts["aligned"]], 10, chunk=8)
        rows.feed(rows.prefill().argmax(-1))
        picked = rows.greedy(9 + 7)  # max_new_tokens - 1 steps, and 7 more
    assert len(picked[0]) == 16


@pytest.mark.parametrize("strategy", ["batched", "sequential"])
def test_stop_inside_a_chunk_ends_both_sides_at_that_token(models, chunk_sizes, strategy):
    model, tokenizer, _ = models
    stop = threading.Event()
    # Batched: events alternate base/aligned, so 6 events are 3 tokens per side, inside the first chunk.
    events = stream(model, tokenizer, strategy, 100, chunk=8, stop=stop, stop_after=6)
    done = summary(events)
    assert {reason for _, _, reason in done.values()} == {"stopped"}
    if strategy == "batched":  # one chunk (tokens 2-8) was decoded; tokens 4-8 are dropped
        assert chunk_sizes == [7] and done["base"][1] == done["aligned"][1] == 3
    else:  # sequential: the stop is seen after the base's turn (8 tokens, handed out after the turn)
        assert chunk_sizes == [7] and done["base"][1] == 8 and done["aligned"][1] == 0
    full = summary(stream(model, tokenizer, strategy, 100, chunk=1, block=1))
    for side in SIDES:
        text, tokens, _ = done[side]
        assert full[side][0].startswith(text)
        assert [e.tokens for e in events if e.side == side] == [*range(1, tokens + 1), tokens]


# ---- the incremental detokeniser ----------------------------------------------------------------------

MULTI_BYTE = [
    "Bake it 🎂 at 180 °C — then enjoy 🍰🎉!",
    "你好，世界。日本語のテキストもある。",
    "naïve café, 👨‍👩‍👧‍👦 family, ẞ and  Ωmega.",
]


def sentencepiece_style_tokenizer():
    """A Llama-style tokenizer: "▁" for spaces, byte-fallback pieces, and a decoder that strips the
    text's leading space (so a piece decodes differently alone than after its neighbours)."""
    import json

    from tokenizers import Tokenizer, decoders, models, normalizers, trainers
    from transformers import PreTrainedTokenizerFast

    normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    trained = Tokenizer(models.BPE(unk_token="<unk>"))
    trained.normalizer = normalizer
    corpus = ["Hello world, how do I bake a cake? Mix flour and sugar. The cake is good. Tell me a number: 7."]
    trained.train_from_iterator(corpus * 4, trainers.BpeTrainer(vocab_size=120, special_tokens=["<unk>", "</s>"],
                                                                show_progress=False))
    model = json.loads(trained.to_str())["model"]
    vocab = dict(model["vocab"])
    for byte in range(256):
        vocab.setdefault(f"<0x{byte:02X}>", len(vocab))
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True))
    tok.normalizer = normalizer
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", unk_token="<unk>")


@pytest.fixture(scope="module", params=["byte-level", "sentencepiece"])
def tokenizer(request, models):
    return models[1] if request.param == "byte-level" else sentencepiece_style_tokenizer()


class CountingTokenizer:
    """A tokenizer that counts how many ids each decode call gets."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.sizes: list[int] = []

    def decode(self, ids, **kwargs):
        self.sizes.append(len(ids))
        return self.tokenizer.decode(ids, **kwargs)


def deltas(tokenizer, ids: list[int]) -> list[str]:
    from dpo_tutor.engine.generation import _Decoder

    decoder = _Decoder(tokenizer)
    return [decoder.push(i) for i in ids] + [decoder.flush()]


@pytest.mark.parametrize("text", MULTI_BYTE)
def test_incremental_decoder_equals_full_decode_on_multi_byte_text(tokenizer, text):
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    # The characters really are split across tokens (a lone piece decodes to U+FFFD).
    assert any(tokenizer.decode([i]) == "\ufffd" for i in ids)
    out = deltas(tokenizer, ids)
    assert "".join(out) == tokenizer.decode(ids, skip_special_tokens=True) == text
    assert not any("\ufffd" in d for d in out)  # incomplete characters are held back, never shown
    assert sum(1 for d in out if d) >= len(text) // 4  # and the text still arrives in pieces


def test_incremental_decoder_decodes_a_short_window_per_token(tokenizer):
    counting = CountingTokenizer(tokenizer)
    ids = tokenizer(" ".join(MULTI_BYTE * 6), add_special_tokens=False)["input_ids"]
    out = deltas(counting, ids)
    assert "".join(out) == tokenizer.decode(ids, skip_special_tokens=True)
    assert len(ids) > 300
    pushes = counting.sizes[:-1]  # the flush decodes the whole answer once
    assert max(pushes) <= 12 and sum(pushes) < 10 * len(ids)


def test_incremental_decoder_equals_full_decode_on_random_ids(tokenizer):
    """Random ids: special tokens (skipped) and characters cut anywhere; byte-level: invalid byte sequences too.

    Not the byte-fallback pieces of the SentencePiece-style tokenizer: its decoder turns a whole run of
    pieces that is not valid UTF-8 into U+FFFDs, so a valid byte already shown can become U+FFFD later,
    which no streaming decoder can take back (a model's real output is valid UTF-8)."""
    rng = random.Random(0)
    pool = [i for i in range(len(tokenizer)) if not tokenizer.convert_ids_to_tokens(i).startswith("<0x")]
    for _ in range(300):
        ids = [rng.choice(pool) for _ in range(rng.randrange(1, 40))]
        assert "".join(deltas(tokenizer, ids)) == tokenizer.decode(ids, skip_special_tokens=True)
