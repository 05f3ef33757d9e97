"""The speed options change how a run computes, not what it learns."""

from __future__ import annotations

import pytest
from dpo_tutor.engine.config import TrainConfig
from dpo_tutor.engine.events import read_events
from dpo_tutor.engine.train.trainer import pair_lengths


def _losses(tmp_path, name, **changes) -> list[float]:
    from dpo_tutor.engine.train.driver import run_training

    config = TrainConfig(
        model="tiny", max_steps=4, batch_size=4, grad_accum=1, max_length=96, learning_rate=5e-3, beta=0.5,
        warmup_ratio=0.0, eval_steps=0, save_steps=0, seed=3, **changes,
    )
    result = run_training(config, tmp_path / name)
    assert result.state == "finished"
    return [e["metrics"]["loss"] for e in read_events(tmp_path / name) if e["type"] == "step"]


def test_precomputed_reference_gives_the_same_losses_as_scoring_it_every_step(tmp_path):
    every_step = _losses(tmp_path, "every", precompute_ref=False)
    once = _losses(tmp_path, "once", precompute_ref=True)
    assert len(every_step) == len(once) == 4
    assert every_step == pytest.approx(once, rel=1e-4, abs=1e-5)
    assert every_step[0] == pytest.approx(0.6931, abs=1e-3)  # step 1: policy == reference, a tie


def test_length_grouped_run_trains(tmp_path):
    losses = _losses(tmp_path, "grouped", group_by_length=True)
    assert len(losses) == 4 and all(loss == loss for loss in losses)  # finite, no NaN


def test_pair_lengths_take_the_longer_answer():
    rows = {"prompt_ids": [[1, 2], [1]], "chosen_ids": [[3], [4, 5, 6]], "rejected_ids": [[7, 8, 9], [0]]}
    assert pair_lengths(rows) == [5, 4]
