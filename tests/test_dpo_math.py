"""engine.dpo_math: a hand-computed pair, edge cases, the torch twin, and TRL 1.15's own loss code."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from types import SimpleNamespace

import pytest
from dpo_tutor.engine import dpo_math as dm


def test_hand_computed_pair():
    # beta 0.1; the policy left chosen alone and made rejected 5 nats less likely than the reference did.
    r = dm.dpo_pair(0.1, pc=-40.0, pr=-55.0, rc=-40.0, rr=-50.0)
    # delta = (−40 − −40) − (−55 − −50) = 5; margin = 0.1 · 5 = 0.5
    assert r.reward_chosen == pytest.approx(0.0)
    assert r.reward_rejected == pytest.approx(-0.5)
    assert r.margin == pytest.approx(0.5)
    # loss = −log σ(0.5) = ln(1 + e^−0.5) = ln(1.6065306597) = 0.4740769842
    assert r.loss == pytest.approx(0.4740769842, abs=1e-9)
    # weight = σ(−0.5) = 1 / (1 + e^0.5) = 1 / 2.6487212707 = 0.3775406688
    assert r.gradient_weight == pytest.approx(0.3775406688, abs=1e-9)
    assert r.accurate and not r.tie


def test_step_zero_is_a_tie_with_loss_ln2_and_accuracy_zero():
    pairs = [dm.dpo_pair(0.1, pc=p, pr=q, rc=p, rr=q) for p, q in [(-74.33, -62.015), (-3.0, -90.0)]]
    summary = dm.summarize_pairs(pairs)
    assert summary.loss == pytest.approx(math.log(2))
    assert summary.accuracy == 0.0  # strict >: a tie is not counted as right
    assert summary.ties == 2
    assert summary.margin == 0.0
    assert summary.as_trl_logs("eval_")["eval_rewards/accuracies"] == 0.0


def test_wrongly_ranked_pair_has_large_loss_and_weight_near_one():
    r = dm.dpo_pair(0.5, pc=-60.0, pr=-40.0, rc=-50.0, rr=-50.0)  # delta = −10 − 10 = −20
    assert r.margin == pytest.approx(-10.0)
    assert r.loss == pytest.approx(10.0 + math.log1p(math.exp(-10.0)))
    assert r.gradient_weight > 0.9999
    assert not r.accurate


def test_log_sigmoid_is_stable_far_out():
    assert dm.log_sigmoid(-1000.0) == pytest.approx(-1000.0)
    assert dm.log_sigmoid(1000.0) == 0.0
    assert dm.sigmoid(-1000.0) == 0.0 and dm.sigmoid(1000.0) == 1.0


def test_beta_must_be_positive():
    with pytest.raises(ValueError):
        dm.dpo_pair(0.0, -1, -1, -1, -1)


def test_curves_for_the_beta_explorer():
    deltas = dm.linspace(-20, 20, 41)
    assert deltas[20] == pytest.approx(0.0)
    loss = dm.loss_curve(0.5, deltas)
    weight = dm.weight_curve(0.5, deltas)
    assert loss[20] == pytest.approx(math.log(2)) and weight[20] == pytest.approx(0.5)
    assert all(a > b for a, b in itertools.pairwise(loss))  # falls as delta grows
    assert all(a > b for a, b in itertools.pairwise(weight))
    # a larger beta reaches a given loss after a smaller move
    assert dm.delta_for_loss(1.0, 0.3) < dm.delta_for_loss(0.1, 0.3)
    d = dm.delta_for_loss(0.1, 0.3)
    assert dm.dpo_loss_from_delta(0.1, d) == pytest.approx(0.3)


def test_torch_version_matches_floats():
    torch = pytest.importorskip("torch")
    rows = [(-73.193, -62.841, -74.33, -62.015), (-40.0, -55.0, -40.0, -50.0), (-5.0, -5.0, -5.0, -5.0)]
    pc, pr, rc, rr = (torch.tensor(col, dtype=torch.float64) for col in zip(*rows, strict=False))
    terms = dm.torch_dpo_terms(0.1, pc, pr, rc, rr)
    for i, row in enumerate(rows):
        expected = dm.dpo_pair(0.1, *row)
        assert terms["loss"][i].item() == pytest.approx(expected.loss, abs=1e-12)
        assert terms["margin"][i].item() == pytest.approx(expected.margin, abs=1e-12)
        assert terms["gradient_weight"][i].item() == pytest.approx(expected.gradient_weight, abs=1e-12)
        assert terms["accurate"][i].item() == float(expected.accurate)
    # the loss is differentiable; d loss / d pc = −beta · σ(−beta·delta) for each pair (mean over 3)
    pc.requires_grad_(True)
    dm.torch_dpo_loss(0.1, pc, pr, rc, rr).backward()
    for i, row in enumerate(rows):
        expected = -0.1 * dm.dpo_pair(0.1, *row).gradient_weight / len(rows)
        assert pc.grad[i].item() == pytest.approx(expected, abs=1e-12)


def _run_trl_compute_loss(beta, pc, pr, rc, rr):
    """Run TRL 1.15's own DPOTrainer._compute_loss on given sequence log-probs.

    TRL exposes no public function for the loss: it lives inside `DPOTrainer._compute_loss`. We call
    that method unbound, with a stand-in trainer (the attributes it reads) and a stand-in model whose
    per-token log-probs sum to our sequence log-probs; reference log-probs go in as
    `ref_*_logps` (TRL's precompute_ref_log_probs path). TRL then computes the loss and logs
    rewards/chosen, rewards/rejected, rewards/margins and rewards/accuracies into `_metrics`.
    """
    torch = pytest.importorskip("torch")
    from trl.trainer.dpo_trainer import DPOTrainer

    n, seq = len(pc), 4
    policy = torch.tensor(list(pc) + list(pr), dtype=torch.float32)
    per_token = (policy / (seq - 1)).unsqueeze(1).repeat(1, seq - 1)  # sums back to the sequence log-prob

    class StandInModel:
        training = True

        def __call__(self, **kwargs):
            shape = per_token.shape
            return SimpleNamespace(
                log_probs=per_token,
                entropy=torch.zeros(shape),
                mean_logits=torch.zeros(shape),
                is_top1=torch.zeros(shape, dtype=torch.bool),
            )

    model = StandInModel()
    trainer = SimpleNamespace(
        model=model,
        accelerator=SimpleNamespace(device="cpu", gather=lambda t: t, gather_for_metrics=lambda t: t),
        aux_loss_enabled=False,
        ld_alpha=None,
        precompute_ref_logps=True,
        f_divergence_type="reverse_kl",
        loss_types=["sigmoid"],
        loss_weights=[1.0],
        beta=beta,
        use_weighting=False,
        label_smoothing=0.0,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
        _total_train_tokens=0,
        _tp_size=1,
    )
    ids = torch.ones((2 * n, seq), dtype=torch.long)
    inputs = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "completion_mask": torch.cat([torch.zeros((2 * n, 1), dtype=torch.long), torch.ones((2 * n, seq - 1),
                                                                                         dtype=torch.long)], 1),
        "ref_chosen_logps": torch.tensor(rc, dtype=torch.float32),
        "ref_rejected_logps": torch.tensor(rr, dtype=torch.float32),
    }
    loss = DPOTrainer._compute_loss(trainer, model, inputs, False)
    metrics = {k: v[-1] for k, v in trainer._metrics["train"].items()}
    return float(loss), metrics


def test_matches_trl_115_sigmoid_loss_and_logged_rewards():
    import trl

    assert trl.__version__ == "1.15.0"  # the version this comparison was written against
    beta = 0.1
    rows = [(-73.193, -62.841, -74.33, -62.015), (-40.0, -55.0, -40.0, -50.0), (-12.5, -9.0, -12.0, -10.0),
            (-30.0, -30.0, -30.0, -30.0)]
    pc, pr, rc, rr = (list(col) for col in zip(*rows, strict=False))
    trl_loss, trl_logs = _run_trl_compute_loss(beta, pc, pr, rc, rr)
    ours = dm.summarize_pairs([dm.dpo_pair(beta, *row) for row in rows]).as_trl_logs()
    assert trl_loss == pytest.approx(ours["loss"], rel=1e-5)
    for key in ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"):
        assert trl_logs[key] == pytest.approx(ours[key], rel=1e-4, abs=1e-5), key
    # the tie in the last row and the wrongly ranked third row both count 0: 2 of 4 right
    assert trl_logs["rewards/accuracies"] == 0.5


def test_trl_step_zero_reads_accuracy_zero_like_ours():
    rows = [(-74.33, -62.015), (-20.0, -25.0)]
    pc = [r[0] for r in rows]
    pr = [r[1] for r in rows]
    trl_loss, trl_logs = _run_trl_compute_loss(0.1, pc, pr, pc, pr)
    assert trl_loss == pytest.approx(math.log(2), rel=1e-6)
    assert trl_logs["rewards/accuracies"] == 0.0
