"""Two-sided chat: each column is the real base / the real aligned model, streaming, stoppable, per-side history."""

from __future__ import annotations

import json
import threading

import pytest
from aligned_run import make_aligned_run, perturbed_peft_model

PROMPT = "How do I bake a cake?"


@pytest.fixture(scope="module")
def models():
    return perturbed_peft_model()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_aligned_run(tmp_path_factory.mktemp("runs") / "chat-run")


def reference_generate(model, tokenizer, messages, max_new_tokens):
    """transformers' own greedy generate on one model: the single-model reference."""
    import torch
    from dpo_tutor.engine.generation import render_messages

    text = render_messages(tokenizer, messages)
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)


@pytest.mark.parametrize("strategy", ["stacked", "batched", "mixed", "sequential"])
def test_each_column_equals_its_single_model_reference(run_dir, strategy):
    from dpo_tutor.engine.generation import GenerationSettings, TwoSidedChat
    from dpo_tutor.engine.models import load_aligned, load_model_and_tokenizer

    model, tokenizer, _ = load_aligned(run_dir)
    result = TwoSidedChat(model, tokenizer, strategy=strategy).answer(PROMPT, GenerationSettings(max_new_tokens=20))
    messages = [{"role": "user", "content": PROMPT}]
    # Base: a separate plain model (never wrapped by PEFT), loaded from the run's base folder.
    plain, _ = load_model_and_tokenizer(str(run_dir / "base"))
    assert result.base.text == reference_generate(plain, tokenizer, messages, 20)
    # Aligned: a separately loaded copy with the LoRA merged into its weights.
    merged_source, _, _ = load_aligned(run_dir)
    merged = merged_source.merge_and_unload()
    assert result.aligned.text == reference_generate(merged, tokenizer, messages, 20)
    assert result.base.text != result.aligned.text
    assert result.base.tokens == result.aligned.tokens == 20


def test_mixed_batch_equals_two_generations_in_turn(models):
    from dpo_tutor.engine.generation import GenerationSettings, TwoSidedChat

    model, tokenizer, _ = models
    for prompt in (PROMPT, "Hi"):
        settings = GenerationSettings(max_new_tokens=12)
        mixed = TwoSidedChat(model, tokenizer, strategy="mixed").answer(prompt, settings)
        seq = TwoSidedChat(model, tokenizer, strategy="sequential").answer(prompt, settings)
        batched = TwoSidedChat(model, tokenizer, strategy="batched").answer(prompt, settings)
        stacked = TwoSidedChat(model, tokenizer, strategy="stacked").answer(prompt, settings)
        assert (mixed.base.text, mixed.aligned.text) == (seq.base.text, seq.aligned.text)
        assert (batched.base.text, batched.aligned.text) == (seq.base.text, seq.aligned.text)
        assert (stacked.base.text, stacked.aligned.text) == (seq.base.text, seq.aligned.text)
        assert batched.decode == stacked.decode == "static cache"
    # The row scaling and the stacked forwards are undone afterwards: every LoRA layer's scaling is a
    # plain number again and its forward is the class's.
    from dpo_tutor.engine.generation import _lora_layers

    assert all(isinstance(v, float) for layer in _lora_layers(model) for v in layer.scaling.values())
    assert not any("forward" in vars(layer) for layer in _lora_layers(model))


def test_stacked_step_gives_each_row_its_own_models_logits(models):
    """One stacked forward of two rows = the base model on row 0 and the adapted model on row 1."""
    import torch
    from dpo_tutor.engine.generation import _lora_layers, stacked_adapter

    model, tokenizer, _ = models
    rows = [tokenizer(t, add_special_tokens=False)["input_ids"][:5] for t in ("How do I bake a cake?", "Tell me a joke")]
    ids = torch.tensor(rows)
    with torch.no_grad():
        keep: list = []
        with stacked_adapter(model, (False, True), keep):
            both = model(input_ids=ids).logits
        aligned = model(input_ids=ids).logits
        with model.disable_adapter():
            base = model(input_ids=ids).logits
    assert torch.allclose(both[0], base[0], atol=1e-5) and torch.allclose(both[1], aligned[1], atol=1e-5)
    assert not torch.allclose(base[1], aligned[1], atol=1e-3)  # the adapter does change row 1
    assert len(keep) == len(_lora_layers(model))


def test_stacked_is_refused_where_it_cannot_be_exact():
    from dpo_tutor.engine.errors import UserError
    from dpo_tutor.engine.generation import resolve_strategy
    from dpo_tutor.engine.models import build_tiny_model
    from peft import LoraConfig, get_peft_model

    model, _ = build_tiny_model()
    dora = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", use_dora=True))
    with pytest.raises(UserError, match="stacked strategy cannot be used"):
        resolve_strategy(dora, "stacked")
    assert resolve_strategy(dora, "auto") == "sequential"  # on the CPU auto never stacks


def test_sampled_answers_are_reproducible_with_a_seed_and_vary_without(models):
    from dpo_tutor.engine.generation import GenerationSettings, TwoSidedChat

    model, tokenizer, _ = models
    s = GenerationSettings(max_new_tokens=12, temperature=0.9, top_p=0.9, seed=3)
    a = TwoSidedChat(model, tokenizer, strategy="sequential").answer(PROMPT, s)
    b = TwoSidedChat(model, tokenizer, strategy="sequential").answer(PROMPT, s)
    assert (a.base.text, a.aligned.text) == (b.base.text, b.aligned.text)
    other = TwoSidedChat(model, tokenizer).answer(PROMPT, GenerationSettings(12, 0.9, 0.9, seed=4))
    assert (other.base.text, other.aligned.text) != (a.base.text, a.aligned.text)


def test_top_p_keeps_the_smallest_set_reaching_p():
    import torch
    from dpo_tutor.engine.generation import GenerationSettings, _pick

    logits = torch.log(torch.tensor([[0.6, 0.3, 0.05, 0.05]]))
    seen = {int(_pick(logits, GenerationSettings(temperature=1.0, top_p=0.8), torch.Generator().manual_seed(i)))
            for i in range(200)}
    assert seen == {0, 1}


@pytest.mark.parametrize("strategy", ["mixed", "sequential"])
def test_both_columns_stream_token_by_token_and_interleave(models, strategy):
    from dpo_tutor.engine.generation import GenerationSettings, TwoSidedChat

    model, tokenizer, _ = models
    chat = TwoSidedChat(model, tokenizer, strategy=strategy)
    events = list(chat.stream("What's the cure for cancer?", GenerationSettings(max_new_tokens=10)))
    sides = [e.side for e in events]
    for side in ("base", "aligned"):
        mine = [e for e in events if e.side == side]
        counts = [e.tokens for e in mine if not e.done]
        assert counts == list(range(1, len(counts) + 1)) and len(counts) >= 5  # one event per token
        assert sum(1 for e in mine if e.done) == 1 and mine[-1].done
        assert "".join(e.text for e in mine) == chat.last.side(side).text
        assert sum(1 for e in mine if e.text) >= 2  # text arrived in pieces, not at the end
    # Both at the same time: the first aligned event comes before the last base event and vice versa.
    assert sides.index("aligned") < len(sides) - 1 - sides[::-1].index("base")
    assert sides.index("base") < len(sides) - 1 - sides[::-1].index("aligned")
    assert chat.last.base.tokens_per_s > 0 and chat.last.aligned.tokens_per_s > 0
    assert chat.last.base.first_token_s is not None


@pytest.mark.parametrize("strategy", ["stacked", "batched", "mixed", "sequential"])
def test_stop_ends_both_sides_early(models, strategy):
    from dpo_tutor.engine.generation import GenerationSettings, TwoSidedChat

    model, tokenizer, _ = models
    chat = TwoSidedChat(model, tokenizer, strategy=strategy)
    stop = threading.Event()
    events = []
    for event in chat.stream(PROMPT, GenerationSettings(max_new_tokens=200), stop):
        events.append(event)
        if len(events) == 6:
            stop.set()
    done = {e.side: e for e in events if e.done}
    assert set(done) == {"base", "aligned"}
    assert all(e.reason == "stopped" for e in done.values())
    assert max(e.tokens for e in events) <= 8  # at most one turn's block (sequential) after the stop
    # The partial answers are kept in each side's history.
    assert chat.history["aligned"][-1]["content"] == chat.last.aligned.text


def test_history_is_kept_per_side_with_its_own_answers(models):
    from dpo_tutor.engine.generation import GenerationSettings, TwoSidedChat

    model, tokenizer, plain = models
    chat = TwoSidedChat(model, tokenizer)
    s = GenerationSettings(max_new_tokens=8)
    first = chat.answer(PROMPT, s)
    second = chat.answer("And then?", s)
    for side in ("base", "aligned"):
        h = chat.history[side]
        assert [m["role"] for m in h] == ["user", "assistant", "user", "assistant"]
        assert h[1]["content"] == first.side(side).text and h[3]["content"] == second.side(side).text
    assert chat.history["base"][1] != chat.history["aligned"][1]
    # The second base answer is what the plain model says given the base's own first answer.
    messages = chat.history["base"][:3]
    assert second.base.text == reference_generate(plain, tokenizer, messages, 8)
    assert second.aligned.text == reference_generate(model, tokenizer, chat.history["aligned"][:3], 8)
    chat.reset()
    assert chat.history == {"base": [], "aligned": []}


def test_mixed_is_refused_on_an_unsloth_model_and_auto_picks_sequential(models):
    from dpo_tutor.engine.errors import UserError
    from dpo_tutor.engine.generation import resolve_strategy

    model, _, _ = models
    assert resolve_strategy(model, "auto") == "sequential"
    assert resolve_strategy(model, "mixed") == "mixed"
    model.get_base_model().config.unsloth_version = "2026.10.9"  # how Unsloth marks the models it loads
    try:
        assert resolve_strategy(model, "auto") == "sequential"
        with pytest.raises(UserError):
            resolve_strategy(model, "mixed")
    finally:
        del model.get_base_model().config.unsloth_version


def test_chat_command_json(run_dir, capsys):
    from dpo_tutor.cli import main

    code = main(["chat", str(run_dir), "--prompt", PROMPT, "--json", "--max-new-tokens", "6", "--device", "cpu"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert isinstance(out["base"], str) and isinstance(out["aligned"], str) and out["base"] != out["aligned"]
    assert out["base_tokens_per_s"] > 0 and out["aligned_tokens_per_s"] > 0
    assert out["strategy"] == "sequential"


@pytest.mark.parametrize("strategy", ["mixed", "sequential"])
def test_static_cache_decoding_equals_the_dynamic_cache(models, strategy):
    """The bookkeeping the GPU's CUDA-graph path relies on (static cache, 4D masks, left padding), run eagerly."""
    from dpo_tutor.engine.generation import GenerationSettings, TwoSidedChat

    model, tokenizer, _ = models
    settings = GenerationSettings(max_new_tokens=12)
    for prompt in (PROMPT, "Hi"):  # different lengths: the mixed batch is left-padded
        chat = TwoSidedChat(model, tokenizer, strategy=strategy, static=True)
        history = [{"role": "user", "content": "Thank you!"}, {"role": "assistant", "content": "You're welcome."}]
        chat.history["aligned"] = list(history)  # the two sides' prompts differ in length
        static = chat.answer(prompt, settings)
        dynamic_chat = TwoSidedChat(model, tokenizer, strategy=strategy, static=False)
        dynamic_chat.history["aligned"] = list(history)
        dynamic = dynamic_chat.answer(prompt, settings)
        assert static.decode == "static cache" and dynamic.decode == "eager"
        assert (static.base.text, static.aligned.text) == (dynamic.base.text, dynamic.aligned.text)


def test_stacked_memory_is_two_copies_of_the_adapted_weights(models):
    from dpo_tutor.engine.generation import _lora_layers, stacked_extra_bytes, stacked_fits

    model, _, _ = models
    weights = [layer.get_base_layer().weight for layer in _lora_layers(model)]
    expected = 2 * sum(w.numel() * w.element_size() for w in weights)
    assert stacked_extra_bytes(model) == expected > 0
    assert stacked_fits(model, 2 * expected) and not stacked_fits(model, 2 * expected - 2)


def test_chat_command_says_so_when_an_answer_has_no_visible_text(run_dir, capsys, monkeypatch):
    """The CLI's text output for an answer of whitespace only (what a random model often writes)."""
    from dpo_tutor.engine.generation import ChatResult, SideResult, TwoSidedChat

    from dpo_tutor.cli import main

    def whitespace(self, prompt, settings, stop=None):
        return ChatResult(SideResult("\n\n\n", 3), SideResult("A real answer.", 4), strategy="sequential")

    monkeypatch.setattr(TwoSidedChat, "answer", whitespace)
    assert main(["chat", str(run_dir), "--prompt", PROMPT, "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    base = lines.index(next(line for line in lines if line.startswith("[base]")))
    assert lines[base + 1].startswith("(no visible text: 3 tokens of whitespace")
    assert "A real answer." in lines
