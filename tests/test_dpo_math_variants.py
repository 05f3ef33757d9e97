"""The loss variants lesson 12 compares (IPO, robust, SimPO-style) against hand arithmetic and TRL's code."""

from __future__ import annotations

import math

import pytest
from dpo_tutor.engine import dpo_math as dm

# lesson 4's real pair: SmolLM2-135M-Instruct log-probs and token counts (benchmarks/worked_example_logps.py)
PC, PR, RC, RR, NC, NR = -73.193, -62.841, -74.33, -62.015, 25, 23


def test_ipo_has_its_minimum_at_one_over_two_tau_and_pushes_back_past_it():
    assert dm.ipo_loss(0.1, 5.0) == 0.0
    assert dm.ipo_slope(0.1, 5.0) == 0.0
    assert dm.ipo_slope(0.1, 7.0) > 0 > dm.ipo_slope(0.1, 3.0)
    assert dm.ipo_loss(0.5, 0.0) == pytest.approx(1.0)


def test_sigmoid_keeps_pulling_where_ipo_has_stopped():
    delta = 50.0
    assert dm.gradient_weight(0.1, delta) > 0  # sigma(-5) = 0.0067, never 0
    assert dm.gradient_weight(0.1, delta) == pytest.approx(1 / (1 + math.exp(5)))


def test_robust_with_no_smoothing_is_the_sigmoid_loss():
    for d in (-10.0, 0.0, 3.0, 40.0):
        assert dm.robust_loss(0.1, d, 0.0) == pytest.approx(dm.dpo_loss_from_delta(0.1, d))
        assert dm.robust_slope(0.1, d, 0.0) == pytest.approx(-0.1 * dm.gradient_weight(0.1, d))


def test_robust_matches_trl_formula_and_its_slope_is_the_derivative():
    beta, eps, d = 0.1, 0.1, 1.963
    z = beta * d
    clean = -(1 - eps) * dm.log_sigmoid(z)
    flipped = -eps * dm.log_sigmoid(-z)
    assert dm.robust_loss(beta, d, eps) == pytest.approx((clean - flipped) / (1 - 2 * eps))
    h = 1e-5
    numeric = (dm.robust_loss(beta, d + h, eps) - dm.robust_loss(beta, d - h, eps)) / (2 * h)
    assert dm.robust_slope(beta, d, eps) == pytest.approx(numeric, rel=1e-6)
    with pytest.raises(ValueError):
        dm.robust_loss(beta, d, 0.5)


def test_simpo_is_reference_free_and_length_normalised():
    base = dm.simpo_loss(2.0, 1.0, PC, PR, NC, NR)
    # another reference changes nothing: SimPO never reads it
    assert dm.loss_variants(PC, PR, RC + 5, RR - 5, NC, NR)[3].loss == pytest.approx(base)
    # doubling an answer (twice the tokens, twice the log-prob) keeps its per-token score
    assert dm.simpo_loss(2.0, 1.0, 2 * PC, PR, 2 * NC, NR) == pytest.approx(base)
    s = 2.0 * PC / NC - 2.0 * PR / NR - 1.0
    assert base == pytest.approx(-dm.log_sigmoid(s))


def test_variants_on_the_real_pair():
    variants = dm.loss_variants(PC, PR, RC, RR, NC, NR)
    assert [v.name for v in variants] == ["sigmoid (DPO)", "IPO", "robust", "SimPO-style"]
    sigmoid, ipo, robust, simpo = variants
    delta = (PC - RC) - (PR - RR)
    assert sigmoid.score == pytest.approx(1.963)
    assert sigmoid.loss == pytest.approx(dm.dpo_loss_from_delta(0.1, delta))
    h = (PC - RC) / NC - (PR - RR) / NR
    assert ipo.score == pytest.approx(h) and ipo.loss == pytest.approx((h - 5.0) ** 2)
    assert ipo.slope < 0  # far below its target of 5 nats a token: IPO still pulls hard
    # at a positive delta the flipped-label term lowers the loss but keeps the pull stronger, and never 0
    assert robust.loss < sigmoid.loss and robust.slope < sigmoid.slope < 0
    assert dm.robust_slope(0.1, 500.0, 0.1) < -0.1 * 0.1 / 0.8 * 0.99
    # SimPO: the chosen answer is less likely per token than the rejected one, so it ranks the pair wrong
    assert simpo.score < 0 and simpo.loss > math.log(2)
