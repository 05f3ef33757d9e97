"""DPO's arithmetic, once, for lessons, training metrics and evaluation.

Every quantity is built from four sequence log-probabilities (each the sum over the completion's
tokens, as TRL computes them):

    pc, pr   log pi_theta(chosen | prompt), log pi_theta(rejected | prompt)   (the policy)
    rc, rr   log pi_ref(chosen | prompt),   log pi_ref(rejected | prompt)     (the frozen reference)

    reward_chosen   = beta * (pc - rc)          TRL logs its batch mean as rewards/chosen
    reward_rejected = beta * (pr - rr)          rewards/rejected
    margin          = reward_chosen - reward_rejected = beta * delta,
                      delta = (pc - rc) - (pr - rr)           rewards/margins
    loss            = -log sigmoid(beta * delta)              TRL's loss_type="sigmoid"
    gradient weight = sigmoid(-beta * delta)                  how hard this pair still pulls
    accurate        = reward_chosen > reward_rejected         strict, as TRL's rewards/accuracies

The plain-float functions need nothing but `math`; `torch_*` functions import torch when called and
work on tensors of any shape (a batch of pairs), so training code can use the same definitions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

LN2 = math.log(2.0)


def sigmoid(x: float) -> float:
    """The logistic function, stable for large |x|."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def log_sigmoid(x: float) -> float:
    """log(sigmoid(x)) without overflow: -softplus(-x)."""
    if x >= 0:
        return -math.log1p(math.exp(-x))
    return x - math.log1p(math.exp(x))


def implicit_reward(beta: float, policy_logp: float, ref_logp: float) -> float:
    """beta * log(pi_theta / pi_ref) of one completion."""
    return beta * (policy_logp - ref_logp)


def logratio_delta(pc: float, pr: float, rc: float, rr: float) -> float:
    """delta = (pc - rc) - (pr - rr): how much more the policy moved toward chosen than toward rejected."""
    return (pc - rc) - (pr - rr)


def dpo_loss_from_delta(beta: float, delta: float) -> float:
    """-log sigmoid(beta * delta): ln 2 at delta = 0, falls toward 0 as the margin grows."""
    return -log_sigmoid(beta * delta)


def gradient_weight(beta: float, delta: float) -> float:
    """sigmoid(-beta * delta): the factor in front of DPO's gradient.

    Near 1 when the policy ranks the pair wrongly, 0.5 at a tie, near 0 once the pair is learned, so
    learned pairs stop pulling. The full gradient is -beta * weight * (grad log pi(chosen) - grad log pi(rejected)).
    """
    return sigmoid(-beta * delta)


@dataclass(frozen=True)
class PairResult:
    """Everything DPO says about one preference pair."""

    beta: float
    reward_chosen: float
    reward_rejected: float
    margin: float
    loss: float
    gradient_weight: float
    # 1 if chosen's reward is strictly greater, 0 otherwise (ties included), as TRL counts it.
    accurate: bool
    tie: bool


def dpo_pair(beta: float, pc: float, pr: float, rc: float, rr: float) -> PairResult:
    """The DPO loss, rewards, margin and gradient weight of one pair from its four log-probs."""
    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta}")
    r_c = implicit_reward(beta, pc, rc)
    r_r = implicit_reward(beta, pr, rr)
    delta = logratio_delta(pc, pr, rc, rr)
    return PairResult(
        beta=beta,
        reward_chosen=r_c,
        reward_rejected=r_r,
        margin=r_c - r_r,
        loss=dpo_loss_from_delta(beta, delta),
        gradient_weight=gradient_weight(beta, delta),
        accurate=r_c > r_r,
        tie=r_c == r_r,
    )


@dataclass(frozen=True)
class BatchSummary:
    """Batch means with TRL's names (rewards/chosen ...), plus the ties TRL does not report."""

    loss: float
    reward_chosen: float
    reward_rejected: float
    margin: float
    accuracy: float  # strict >, TRL's rewards/accuracies
    ties: int
    n: int

    def as_trl_logs(self, prefix: str = "") -> dict[str, float]:
        """The same numbers under the keys TRL logs (prefix "eval_" for evaluation)."""
        return {
            f"{prefix}loss": self.loss,
            f"{prefix}rewards/chosen": self.reward_chosen,
            f"{prefix}rewards/rejected": self.reward_rejected,
            f"{prefix}rewards/margins": self.margin,
            f"{prefix}rewards/accuracies": self.accuracy,
        }


def summarize_pairs(pairs: Sequence[PairResult]) -> BatchSummary:
    """Means over pairs, as TRL averages one micro-batch."""
    if not pairs:
        raise ValueError("no pairs to summarize")
    n = len(pairs)
    return BatchSummary(
        loss=sum(p.loss for p in pairs) / n,
        reward_chosen=sum(p.reward_chosen for p in pairs) / n,
        reward_rejected=sum(p.reward_rejected for p in pairs) / n,
        margin=sum(p.margin for p in pairs) / n,
        accuracy=sum(1 for p in pairs if p.accurate) / n,
        ties=sum(1 for p in pairs if p.tie),
        n=n,
    )


# -- curves for the beta explorer -------------------------------------------------------------------


def linspace(lo: float, hi: float, n: int) -> list[float]:
    if n < 2:
        raise ValueError("need at least two points")
    step = (hi - lo) / (n - 1)
    return [lo + i * step for i in range(n)]


def loss_curve(beta: float, deltas: Sequence[float]) -> list[float]:
    """DPO loss at each log-ratio difference delta (the x axis of the beta explorer)."""
    return [dpo_loss_from_delta(beta, d) for d in deltas]


def weight_curve(beta: float, deltas: Sequence[float]) -> list[float]:
    """Gradient weight sigmoid(-beta * delta) at each delta."""
    return [gradient_weight(beta, d) for d in deltas]


def delta_for_loss(beta: float, loss: float) -> float:
    """The delta at which the loss reaches `loss` (e.g. how far the policy must move for loss 0.3)."""
    if not 0 < loss:
        raise ValueError("loss must be positive")
    # -log sigmoid(b d) = L  ->  sigmoid(b d) = e^-L  ->  b d = logit(e^-L)
    p = math.exp(-loss)
    return math.log(p / (1 - p)) / beta


# -- torch versions (imported lazily) ---------------------------------------------------------------


def torch_dpo_terms(beta: float, pc, pr, rc, rr) -> dict:
    """Per-pair tensors: loss, reward_chosen, reward_rejected, margin, gradient_weight, accurate.

    Same definitions as `dpo_pair`; rewards are detached like TRL's logged ones, the loss keeps its graph.
    """
    import torch.nn.functional as F

    chosen_logratios = pc - rc
    rejected_logratios = pr - rr
    delta = chosen_logratios - rejected_logratios
    reward_chosen = beta * chosen_logratios.detach()
    reward_rejected = beta * rejected_logratios.detach()
    return {
        "loss": -F.logsigmoid(beta * delta),
        "reward_chosen": reward_chosen,
        "reward_rejected": reward_rejected,
        "margin": reward_chosen - reward_rejected,
        "gradient_weight": (-beta * delta.detach()).sigmoid(),
        "accurate": (reward_chosen > reward_rejected).float(),
        "tie": (reward_chosen == reward_rejected).float(),
    }


def torch_dpo_loss(beta: float, pc, pr, rc, rr):
    """Mean sigmoid DPO loss over a batch of pairs (differentiable)."""
    return torch_dpo_terms(beta, pc, pr, rc, rr)["loss"].mean()


# -- beyond the sigmoid: the variants lesson 12 compares on one pair ---------------------------------
#
# Each takes the same four summed log-probs (and, where a variant normalises by length, the two
# answers' token counts) and returns the loss and its slope: the derivative of the loss with respect
# to the score it is a function of. A slope of 0 means the pair has stopped pulling.


def ipo_loss(tau: float, h: float) -> float:
    """IPO (Azar et al. 2023, arXiv 2310.12036, eq. 17): (h - 1/(2 tau))^2.

    `h` is the log-ratio difference; TRL's loss_type="ipo" averages each log-ratio over the answer's
    tokens first (its code notes the IPO authors confirmed that form). The loss has a minimum at
    h = 1/(2 tau): past it, the gradient pushes back, so h cannot grow without bound.
    """
    if tau <= 0:
        raise ValueError(f"tau must be positive, got {tau}")
    return (h - 1.0 / (2.0 * tau)) ** 2


def ipo_slope(tau: float, h: float) -> float:
    return 2.0 * (h - 1.0 / (2.0 * tau))


def robust_loss(beta: float, delta: float, eps: float) -> float:
    """Robust DPO (Chowdhury et al. 2024, arXiv 2403.00409), TRL's loss_type="robust".

    [-(1-eps) log sigma(beta delta) + eps log sigma(-beta delta)] / (1 - 2 eps): an unbiased estimate of
    the clean loss when a share `eps` of the pairs have their labels flipped.
    """
    if not 0 <= eps < 0.5:
        raise ValueError(f"label smoothing must lie in [0, 0.5), got {eps}")
    return (-(1 - eps) * log_sigmoid(beta * delta) + eps * log_sigmoid(-beta * delta)) / (1 - 2 * eps)


def robust_slope(beta: float, delta: float, eps: float) -> float:
    """d loss / d delta: -beta [(1-eps) sigma(-beta delta) + eps sigma(beta delta)] / (1 - 2 eps)."""
    return -beta * ((1 - eps) * sigmoid(-beta * delta) + eps * sigmoid(beta * delta)) / (1 - 2 * eps)


def simpo_loss(beta: float, gamma: float, pc: float, pr: float, n_chosen: int, n_rejected: int) -> float:
    """SimPO (Meng et al. 2024, arXiv 2405.14734): -log sigma(beta/|y_w| log pi(y_w) - beta/|y_l| log pi(y_l) - gamma).

    Reference-free: only the policy's log-probs, each averaged over its answer's tokens, so a longer
    answer gains nothing from its length; gamma is a target margin.
    """
    return -log_sigmoid(simpo_score(beta, gamma, pc, pr, n_chosen, n_rejected))


def simpo_score(beta: float, gamma: float, pc: float, pr: float, n_chosen: int, n_rejected: int) -> float:
    if n_chosen <= 0 or n_rejected <= 0:
        raise ValueError("token counts must be positive")
    return beta * pc / n_chosen - beta * pr / n_rejected - gamma


@dataclass(frozen=True)
class LossVariant:
    name: str
    formula: str
    score: float  # what the loss is a function of, at this pair
    loss: float
    slope: float  # d loss / d score; 0 = the pair no longer pulls
    fixes: str


def loss_variants(pc: float, pr: float, rc: float, rr: float, n_chosen: int, n_rejected: int, *,
                  beta: float = 0.1, tau: float = 0.1, eps: float = 0.1, simpo_beta: float = 2.0,
                  simpo_gamma: float = 1.0) -> list[LossVariant]:
    """The sigmoid, IPO, robust and SimPO losses of one pair, each with what it was made to fix."""
    delta = logratio_delta(pc, pr, rc, rr)
    h = (pc - rc) / n_chosen - (pr - rr) / n_rejected  # TRL's ipo: per-token log-ratios
    s = simpo_score(simpo_beta, simpo_gamma, pc, pr, n_chosen, n_rejected)
    return [
        LossVariant("sigmoid (DPO)", f"-log σ(β·δ), β={beta:g}", delta, dpo_loss_from_delta(beta, delta),
                    -beta * gradient_weight(beta, delta),
                    "the baseline: never reaches 0, so with a pair that is always preferred δ keeps growing"),
        LossVariant("IPO", f"(h - 1/(2τ))², τ={tau:g}, h per token", h, ipo_loss(tau, h), ipo_slope(tau, h),
                    f"a target h = {1 / (2 * tau):g}: past it the loss pushes back, so δ stays bounded"),
        LossVariant("robust", f"label smoothing ε={eps:g}", delta, robust_loss(beta, delta, eps),
                    robust_slope(beta, delta, eps),
                    f"noisy labels: unbiased if {eps:.0%} of pairs are flipped"),
        LossVariant("SimPO-style", f"-log σ(β/|y|·log π diff - γ), β={simpo_beta:g}, γ={simpo_gamma:g}", s,
                    -log_sigmoid(s), -sigmoid(-s),
                    "no reference model, and length: log-probs averaged per token"),
    ]
