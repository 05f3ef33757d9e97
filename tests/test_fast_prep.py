"""The cheaper start-up passes (engine/train/fast/fast_prep.py) must produce what TRL's do: the same token ids
for every pair, and each row's own reference log-probs when the pairs are scored longest first."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from conftest import shared_file
from dpo_tutor.engine.config import TrainConfig
from dpo_tutor.engine.events import read_events
from dpo_tutor.engine.train.fast import fast_prep


def _real_pairs(count: int):
    from datasets import Dataset
    from dpo_tutor.engine.data.load import load_triplets
    from dpo_tutor.engine.data.render import to_trl_record

    path = shared_file("hh-rlhf", "harmless-base-test.jsonl.gz")
    triplets = load_triplets(str(path), max_rows=count).triplets
    return Dataset.from_list([to_trl_record(t) for t in triplets])


def test_batched_tokenization_gives_trls_ids_on_real_pairs(tmp_path):
    from dpo_tutor.engine.models import build_tiny_tokenizer
    from trl import DPOConfig, DPOTrainer

    tokenizer = build_tiny_tokenizer()
    pairs = _real_pairs(300)
    assert fast_prep.batched_tokenization_applies(pairs, tokenizer, world=1)
    # max_length short enough that TRL's filter drops the pairs whose prompt alone fills it
    args = DPOConfig(output_dir=str(tmp_path / "out"), max_length=96, report_to="none", use_cpu=True)
    theirs = DPOTrainer._prepare_dataset(SimpleNamespace(_tokenizer=tokenizer), pairs, tokenizer, args, "train")
    ours = fast_prep.tokenize_pairs(pairs, tokenizer, args, "train")

    assert 0 < len(theirs) < len(pairs)  # the filter dropped some
    assert ours.column_names == theirs.column_names
    for column in ("prompt_ids", "chosen_ids", "rejected_ids", "prompt", "chosen"):
        assert ours[column] == theirs[column], column


def test_other_data_keeps_trls_tokenization():
    from datasets import Dataset
    from dpo_tutor.engine.models import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    chat = {"prompt": [{"role": "user", "content": "hi"}], "chosen": [{"role": "assistant", "content": "a"}],
            "rejected": [{"role": "assistant", "content": "b"}]}
    assert fast_prep.batched_tokenization_applies(Dataset.from_list([chat]), tokenizer, world=1)
    assert not fast_prep.batched_tokenization_applies(Dataset.from_list([chat]), tokenizer, world=2)
    plain = {"prompt": "hi", "chosen": "a", "rejected": "b"}
    assert not fast_prep.batched_tokenization_applies(Dataset.from_list([plain]), tokenizer, world=1)
    with_tools = {**chat, "tools": "[]"}
    assert not fast_prep.batched_tokenization_applies(Dataset.from_list([with_tools]), tokenizer, world=1)


def test_longest_first_and_back():
    lengths = {"prompt_ids": [[1], [1, 2, 3], [1, 2]], "chosen_ids": [[1], [1], [1]], "rejected_ids": [[1], [1], [1]]}
    dataset = _Columns(lengths)
    order = fast_prep.longest_first(dataset)
    assert order == [1, 2, 0]
    assert [order[i] for i in fast_prep.inverse(order)] == [0, 1, 2]
    assert fast_prep.longest_first(_Columns({k: [v[1], v[2], v[0]] for k, v in lengths.items()})) is None


class _Columns(dict):
    """Just enough of a datasets.Dataset for pair_lengths: columns by name."""


def _run(tmp_path, name):
    from dpo_tutor.engine.train.run import run_training

    config = TrainConfig(model="tiny", max_steps=4, batch_size=4, grad_accum=1, max_length=512, learning_rate=5e-3,
                         beta=0.5, warmup_ratio=0.0, eval_steps=2, eval_pairs=6, save_steps=0, seed=3)
    assert run_training(config, tmp_path / name).state == "finished"
    return [e for e in read_events(tmp_path / name) if e["type"] in ("step", "eval")]


def test_pairs_scored_longest_first_keep_their_own_reference_log_probs(tmp_path, monkeypatch):
    sorted_run = []
    original = fast_prep.longest_first

    def spying(dataset):
        order = original(dataset)
        sorted_run.append(order is not None)
        return order

    monkeypatch.setattr(fast_prep, "longest_first", spying)
    longest_first = _run(tmp_path, "sorted")
    assert sorted_run and all(sorted_run)  # the train and held-out pairs were scored out of order

    monkeypatch.setattr(fast_prep, "longest_first", lambda dataset: None)
    in_order = _run(tmp_path, "in-order")
    assert len(longest_first) == len(in_order) == 6
    for a, b in zip(in_order, longest_first, strict=True):
        assert (a["type"], a["step"]) == (b["type"], b["step"])
        for key in ("loss", "rewards/chosen", "rewards/margins", "eval_loss", "eval_rewards/margins"):
            if key in a["metrics"]:
                # padding to other lengths moves a summed log-prob by ~1e-5 in float32; a row given another
                # row's log-probs moves its reward by ~0.1-10
                assert b["metrics"][key] == pytest.approx(a["metrics"][key], rel=1e-3, abs=1e-4), key
    # the rewards are not all ~0 (policy == reference would hide a row given another row's log-probs)
    assert max(abs(e["metrics"].get("rewards/margins", 0.0)) for e in in_order[1:]) > 1e-3


def test_the_reference_is_scored_in_eval_mode_and_training_resumes_in_train_mode(tmp_path, monkeypatch):
    # Unsloth compiles each decoder block per grad mode in training mode only: a reference pass in
    # training mode compiled a graph used by nothing else (trainer.scoring_mode)
    from trl import DPOTrainer

    seen = {"reference": [], "step": []}
    score, step = DPOTrainer.compute_ref_log_probs, DPOTrainer.training_step

    def scoring(self, model, inputs):
        seen["reference"].append(any(m.training for m in self.model.modules()))
        return score(self, model, inputs)

    def training(self, model, inputs, *args, **kwargs):
        result = step(self, model, inputs, *args, **kwargs)
        seen["step"].append(all(m.training for m in self.model.modules() if m.__class__.__name__ != "Dropout"))
        return result

    monkeypatch.setattr(DPOTrainer, "compute_ref_log_probs", scoring)
    monkeypatch.setattr(DPOTrainer, "training_step", training)
    events = _run(tmp_path, "modes")
    assert len(events) == 6
    assert seen["reference"] and not any(seen["reference"])  # every batch of the pass: no module training
    assert seen["step"] and all(seen["step"])


def test_scoring_mode_puts_every_module_back_in_its_own_mode():
    import torch
    from dpo_tutor.engine.train.trainer import scoring_mode

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.1), torch.nn.Linear(2, 2))
    model.train()
    model[1].eval()  # one module left in eval mode by its owner
    with scoring_mode(model):
        assert not any(m.training for m in model.modules())
    assert [m.training for m in model.modules()] == [True, True, False, True]
    with pytest.raises(RuntimeError), scoring_mode(model):
        raise RuntimeError("a failed pass")
    assert [m.training for m in model.modules()] == [True, True, False, True]
