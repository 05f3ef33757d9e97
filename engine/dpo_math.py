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
