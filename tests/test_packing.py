"""Packed pairs (prompt once: [prompt, chosen, rejected] in one row) must score every answer exactly as
TRL's two rows (prompt + chosen, prompt + rejected) do: same truncation, positions, attention, sums."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from dpo_tutor.engine.train.fast import graphed_step, packing

HH = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-rlhf" / "harmless-base-test.jsonl.gz"


@pytest.fixture(scope="module")
def tiny():
    from dpo_tutor.engine.models import build_tiny_model
    from dpo_tutor.engine.train.backends import cpu_logprob
    from peft import LoraConfig, get_peft_model

    cpu_logprob.install()  # TRL's log-prob kernel needs Triton; a CPU-only torch gets the stand-in

    model, tokenizer = build_tiny_model(seed=1)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.0))
    for module in model.modules():  # LoRA's B starts at 0: make the adapter count
        if hasattr(module, "lora_B"):
            for layer in module.lora_B.values():
                torch.nn.init.normal_(layer.weight, std=0.05)
    return model.eval(), tokenizer


def real_examples(tokenizer, count: int) -> list[dict]:
    """Real HH-RLHF pairs, rendered with the chat template and tokenized as TRL cuts them."""
    from dpo_tutor.engine.data.load import load_triplets
    from dpo_tutor.engine.data.render import render_pair

    if not HH.exists():
        pytest.skip(f"no real data at {HH}")
    examples = []
    for triplet in load_triplets(str(HH)).triplets[:count]:
        prompt, chosen, rejected = render_pair(triplet, tokenizer)

        def ids(text):
            return tokenizer(text, add_special_tokens=False)["input_ids"]

        examples.append({"prompt_ids": ids(prompt), "chosen_ids": ids(chosen), "rejected_ids": ids(rejected)})
    return examples


def trls_logps(model, examples, max_length, pad_id):
    """Each sequence's summed log-probs from TRL's collator rows ([2B]: chosen sides, then rejected)."""
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    batch = DataCollatorForPreference(pad_token_id=pad_id, max_length=max_length)(examples)
    log_probs = graphed_step._per_token(model, batch["input_ids"], ("log_probs",))[0]
    return (log_probs * batch["completion_mask"][:, 1:]).sum(dim=1), int(batch["attention_mask"].sum())


def packed_logps(model, packed, pairs):
    log_probs = graphed_step._packed_per_token(model, packed, ("log_probs",))[0]
    member = (packed["pack_owner"][None, :] == torch.arange(2 * pairs)[:, None]).float() * packed["pack_weight"]
    return (member * log_probs[None, :]).sum(dim=1)


@pytest.mark.parametrize("max_length", [512, 40])  # 40: prompts cut, some fill it (no answer tokens left)
@pytest.mark.parametrize("row_tokens", [0, 256])  # a pair a row / several short pairs a row
def test_packed_rows_score_answers_as_trls_rows(tiny, max_length, row_tokens):
    model, tokenizer = tiny
    pad = tokenizer.pad_token_id
    examples = real_examples(tokenizer, 12) + [
        {"prompt_ids": [], "chosen_ids": [5, 6, 7], "rejected_ids": [8, 9]},  # no prompt: first token unscored
        {"prompt_ids": [10, 11, 12], "chosen_ids": [], "rejected_ids": [13]},  # an empty answer
        {"prompt_ids": [14], "chosen_ids": [15], "rejected_ids": [15, 16, 17, 18]},
    ]
    packed = packing.pack_examples(examples, max_length, pad, row_tokens)
    with torch.no_grad():
        expected, num_tokens = trls_logps(model, examples, max_length, pad)
        got = packed_logps(model, packed, len(examples))
    assert got == pytest.approx(expected.tolist(), rel=1e-6, abs=1e-4)  # fp32 rounding of sums
    assert float(packed["pack_num_tokens"].sum()) == num_tokens
    assert (expected != 0).sum() >= 5  # real log-probs compared, not only empty rows
    rows, width = packed["pack_input_ids"].shape
    assert width % packing.ROW_BUCKET == 0
    if row_tokens:
        assert rows < len(examples) and rows % packing.ROWS_MULTIPLE == 0  # pairs shared rows
    else:
        assert rows == len(examples)


def test_packing_computes_each_prompt_once():
    examples = [{"prompt_ids": list(range(1, 101)), "chosen_ids": [1] * 20, "rejected_ids": [2] * 30}] * 4
    packed = packing.pack_examples(examples, 512, 0)
    # TRL's two rows: 2 x 4 rows of 130 tokens; packed: 4 rows of 150 tokens padded to 192
    assert packed["pack_input_ids"].shape == (4, 192)
    assert int(packed["pack_weight"].sum()) == 4 * 50  # the head scores the answers only
    positions = packed["pack_position_ids"][0]
    assert positions[:120].tolist() == list(range(120))
    assert positions[120:150].tolist() == list(range(100, 130))  # rejected: where its own row puts it


def test_attention_bias_keeps_answers_apart():
    # one row: prompt p0 p1, chosen c0, rejected r0 r1, then padding; a second pair would be apart too
    segment = torch.tensor([[0, 0, 0, 0, 0, -1]])
    branch = torch.tensor([[packing.PROMPT, packing.PROMPT, packing.CHOSEN, packing.REJECTED, packing.REJECTED,
                            packing.PAD]])
    allowed = packing.attention_bias(segment, branch, torch.float32)[0, 0] == 0
    assert allowed[2].tolist() == [True, True, True, False, False, False]  # chosen: prompt and itself
    assert allowed[3].tolist() == [True, True, False, True, False, False]  # rejected: not the chosen answer
    assert allowed[4].tolist() == [True, True, False, True, True, False]
    assert allowed[5].tolist() == [False] * 5 + [True]  # padding sees padding only: no empty row


def test_answer_capacity_buckets():
    assert [packing.answer_capacity(n) for n in (0, 64, 65, 96, 97, 128, 129, 3000)] == [
        64, 64, 96, 96, 128, 128, 192, 3072]


def test_a_batch_replayed_in_a_roomier_recorded_shape_trains_the_same(tiny, monkeypatch):
    """A packed batch copied into a recorded shape with longer rows and more answer slots (instead of
    recording its own) gives the same loss, statistics and gradients as in its own shape."""
    model, tokenizer = tiny
    pad = tokenizer.pad_token_id
    examples = real_examples(tokenizer, 6)
    wide = packing.pack_examples(examples, 512, pad)
    short = [{"prompt_ids": e["prompt_ids"][:20], "chosen_ids": e["chosen_ids"][:6], "rejected_ids": e["rejected_ids"][:5]}
             for e in examples]
    narrow = packing.pack_examples(short, 512, pad)
    assert narrow["pack_input_ids"].shape[1] < wide["pack_input_ids"].shape[1]
    assert narrow["pack_source"].shape[0] < wide["pack_source"].shape[0]
    refs = {"ref_chosen_logps": torch.full((6,), -50.0), "ref_rejected_logps": torch.full((6,), -60.0)}

    def run(graphs, batch):
        for p in model.parameters():
            p.grad = None
        stats = graphs.step({**batch, **refs, "input_ids": torch.zeros(12, 8, dtype=torch.long)}, 1.0)
        return stats, [g.clone() for g in graphs.grads]

    model.train()
    alone_stats, alone_grads = run(graphed_step.StepGraphs(model, graphed_step.PreferenceLoss(beta=0.1), 512, pad_id=pad), narrow)
    monkeypatch.setattr(graphed_step, "ROOMIER_ROWS", 100.0)  # any longer recorded row will do
    monkeypatch.setattr(graphed_step, "ROOMIER_SLOTS", 100.0)
    graphs = graphed_step.StepGraphs(model, graphed_step.PreferenceLoss(beta=0.1), 512, pad_id=pad)
    run(graphs, wide)  # records the wide shape
    roomy_stats, roomy_grads = run(graphs, narrow)
    model.eval()
    assert graphs.recordings["step"] == 1 and graphs.replays["step"] == 1  # the narrow batch replayed it
    assert roomy_stats.tolist() == pytest.approx(alone_stats.tolist(), rel=1e-5, abs=1e-5)
    for a, b in zip(alone_grads, roomy_grads, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)
    assert max(float(g.abs().max()) for g in alone_grads) > 0  # gradients, not zeros, compared


def test_part_bounds_split_a_long_batch_into_the_fewest_near_equal_parts_that_fit():
    # a length-grouped batch comes longest first; rows pad to multiples of 64 tokens
    lengths = [700, 650, 600, 500, 300, 200, 100, 60]
    assert packing.part_bounds(lengths, 0) == [(0, 8)]  # 0: never split
    assert packing.part_bounds(lengths, 8 * 704) == [(0, 8)]  # fits whole
    assert packing.part_bounds(lengths, 8 * 704 - 1) == [(0, 4), (4, 8)]  # 4 x 704 and 4 x 320
    assert packing.part_bounds(lengths, 3 * 704) == [(0, 3), (3, 6), (6, 8)]  # near-equal: 3, 3, 2
    assert packing.part_bounds(lengths, 100) == [(i, i + 1) for i in range(8)]  # a pair a part at least
    assert packing.part_bounds([5], 1) == [(0, 1)]


def test_a_long_batch_comes_as_packed_parts_with_their_reference_log_probs(tiny):
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    _, tokenizer = tiny
    pad = tokenizer.pad_token_id
    examples = real_examples(tokenizer, 6)
    for i, example in enumerate(examples):
        example["ref_chosen_logps"], example["ref_rejected_logps"] = -10.0 - i, -20.0 - i
    base = DataCollatorForPreference(pad_token_id=pad, max_length=512)
    whole = packing.PackingCollator(base, 512, pad)(examples)
    assert packing.PARTS not in whole and "pack_input_ids" in whole
    tokens = whole["pack_input_ids"].numel()
    split = packing.PackingCollator(base, 512, pad, max_tokens=tokens - 1)(examples)
    assert "pack_input_ids" not in split and split["input_ids"].shape == whole["input_ids"].shape  # TRL's rows stay
    parts = split[packing.PARTS]
    assert [int(p["pack_num_tokens"].shape[0]) for p in parts] == [3, 3]
    for part, (a, b) in zip(parts, [(0, 3), (3, 6)], strict=True):
        assert part["pack_input_ids"].numel() <= tokens - 1
        expected = packing.pack_examples(examples[a:b], 512, pad)
        assert all(torch.equal(part[k], expected[k]) for k in packing.KEYS)
        assert part["ref_chosen_logps"].tolist() == [-10.0 - i for i in range(a, b)]
        assert part["ref_rejected_logps"].tolist() == [-20.0 - i for i in range(a, b)]


@pytest.mark.parametrize("bounds", [[(0, 3), (3, 6)], [(0, 4), (4, 5), (5, 6)]])  # equal parts, and not
def test_a_step_in_parts_trains_as_the_whole_step(tiny, bounds):
    """The same pairs as one packed step, or as parts one after the other into the same gradients (each
    part's loss weighed by its share of the pairs): the same loss, statistics and gradients."""
    model, tokenizer = tiny
    pad = tokenizer.pad_token_id
    examples = real_examples(tokenizer, 6)
    refs = {"ref_chosen_logps": torch.linspace(-60.0, -40.0, 6), "ref_rejected_logps": torch.linspace(-70.0, -45.0, 6)}
    loss = graphed_step.PreferenceLoss(beta=0.1)

    def grads_after(run):
        for p in model.parameters():
            p.grad = None
        graphs = graphed_step.StepGraphs(model, loss, 512, pad_id=pad)
        return run(graphs), [g.clone() for g in graphs.grads]

    def whole(graphs):
        return graphs.step({**packing.pack_examples(examples, 512, pad), **refs}, 0.5)

    def in_parts(graphs):
        parts = [{**packing.pack_examples(examples[a:b], 512, pad), **{k: v[a:b] for k, v in refs.items()}}
                 for a, b in bounds]
        return graphs.step_in_parts(parts, 0.5)

    model.train()
    whole_stats, whole_grads = grads_after(whole)
    parts_stats, parts_grads = grads_after(in_parts)
    model.eval()
    assert parts_stats.tolist() == pytest.approx(whole_stats.tolist(), rel=1e-5, abs=1e-5)
    for a, b in zip(whole_grads, parts_grads, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)
    assert max(float(g.abs().max()) for g in whole_grads) > 0  # gradients, not zeros, compared
