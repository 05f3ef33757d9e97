"""Before and after: held-out preference accuracy, generations, and reward-hacking checks.

Two ways to ask "does the model prefer the chosen answer?", both on held-out pairs:

(a) **DPO's implicit reward** r = beta * (log pi(y|x) - log pi_ref(y|x)), the number TRL logs as
    `rewards/accuracies`. Before training the policy *is* the reference, so every reward is 0 and every
    pair is a **tie**. TRL's strict `>` would score that 0 %; we report ties as ties (wins / ties / losses)
    and never count a tie as wrong.
(b) **The model's own likelihood preference**: is log pi(chosen) > log pi(rejected)? Summed over tokens
    (what DPO compares) and per token (fair to answers of different lengths). This gives the base model a
    real "before" number.

Accuracies get Wilson 95 % intervals; mean margins a normal-approximation 95 % interval.
All DPO arithmetic goes through `dpo_math`; all log-probs through `logprobs.sequence_logprobs`.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import checks as checks_mod
from . import dpo_math, text_signals
from .generation import PROBE_PROMPTS, GenerationSettings, TwoSidedChat

Progress = Callable[[str, int, int], None]

TIE_NOTE = (
    "Before training the policy is the reference, so DPO's implicit reward is 0 for every answer and every "
    "pair is a tie. Ties are shown as ties, not as wrong answers (TRL's rewards/accuracies uses a strict '>' "
    "and would read 0%). Accuracy here is wins / all pairs; 'decided' is wins / (wins + losses)."
)
Z95 = 1.959963984540054


@dataclass
class EvalOptions:
    pairs: int = 200  # held-out pairs scored (0 = all)
    batch_size: int = 8
    max_length: int | None = None  # default: the run's max_length
    heldout_probes: int = 3  # held-out prompts added to the seed's three probes
    max_new_tokens: int = 128
    temperature: float = 0.7  # for the sampled generations
    top_p: float = 0.9
    seed: int = 0
    strategy: str = "auto"
    generations: bool = True  # probes, harmless, harmful and KL samples (the slow part)
    probes: bool = True  # the helpful / harmless / honest probes, greedy and sampled
    harmful_prompts: int = 24  # held-out red-team prompts answered by both sides
    kl_samples: int = 16  # aligned answers sampled for the on-policy KL (0 = none)
    kl: bool = True
    device: str | None = None  # default: cuda when available, else cpu


# ---- statistics -------------------------------------------------------------------------------------


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion (good at 0 and 1, unlike the normal approximation)."""
    if n <= 0:
        return (float("nan"), float("nan"))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def mean_interval(values: Sequence[float], z: float = Z95) -> tuple[float, float, float]:
    """(mean, low, high) with a normal-approximation interval."""
    n = len(values)
    if n == 0:
        return (float("nan"),) * 3
    mean = sum(values) / n
    if n == 1:
        return (mean, mean, mean)
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    half = z * math.sqrt(var / n)
    return (mean, mean - half, mean + half)


def preference_stats(margins: Sequence[float], ties: Sequence[bool] | None = None) -> dict[str, Any]:
    """Wins (margin > 0), ties, losses; accuracy = wins / n with a Wilson interval; mean margin with CI."""
    n = len(margins)
    tie_flags = list(ties) if ties is not None else [m == 0 for m in margins]
    wins = sum(1 for m, t in zip(margins, tie_flags, strict=True) if m > 0 and not t)
    n_ties = sum(1 for t in tie_flags if t)
    losses = n - wins - n_ties
    lo, hi = wilson_interval(wins, n)
    mean, mlo, mhi = mean_interval(list(margins))
    decided = wins + losses
    return {
        "n": n,
        "wins": wins,
        "ties": n_ties,
        "losses": losses,
        "accuracy": wins / n if n else float("nan"),
        "accuracy_ci": [lo, hi],
        "decided_accuracy": wins / decided if decided else None,
        "mean_margin": mean,
        "margin_ci": [mlo, mhi],
    }


# ---- held-out pairs ---------------------------------------------------------------------------------


def render_pairs(triplets, tokenizer) -> list[tuple[str, str, str]]:
    from .data.render import render_pair

    return [render_pair(t, tokenizer) for t in triplets]


def score_pairs(
    model,
    tokenizer,
    rendered: Sequence[tuple[str, str, str]],
    *,
    batch_size: int = 8,
    max_length: int | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """The four log-prob lists (policy/reference x chosen/rejected), each summed and per-token."""
    from .logprobs import sequence_logprobs

    chosen = [(p, c) for p, c, _ in rendered]
    rejected = [(p, r) for p, _, r in rendered]
    out: dict[str, Any] = {}
    jobs = [("policy_chosen", chosen, True), ("policy_rejected", rejected, True),
            ("ref_chosen", chosen, False), ("ref_rejected", rejected, False)]
    for i, (name, pairs, adapter) in enumerate(jobs):
        def step(done: int, total: int, i: int = i) -> None:
            if progress:
                progress("scoring held-out pairs", i * total + done, 4 * total)

        out[name] = sequence_logprobs(
            model, tokenizer, pairs, adapter=adapter, batch_size=batch_size, max_length=max_length, progress=step
        )
    return out


def before_after(scores: dict[str, Any], beta: float) -> dict[str, Any]:
    """The before/after table from the four log-prob lists."""
    pc, pr = scores["policy_chosen"], scores["policy_rejected"]
    rc, rr = scores["ref_chosen"], scores["ref_rejected"]
    n = len(pc)
    keep = [i for i in range(n) if pc.n_tokens[i] > 0 and pr.n_tokens[i] > 0]
    aligned_pairs = [dpo_math.dpo_pair(beta, pc.summed[i], pr.summed[i], rc.summed[i], rr.summed[i]) for i in keep]
    # The base model's policy is its own reference: the same four numbers with policy = reference.
    base_pairs = [dpo_math.dpo_pair(beta, rc.summed[i], rr.summed[i], rc.summed[i], rr.summed[i]) for i in keep]

    def implicit(pairs) -> dict[str, Any]:
        stats = preference_stats([p.margin for p in pairs], [p.tie for p in pairs])
        stats["mean_loss"] = sum(p.loss for p in pairs) / len(pairs) if pairs else float("nan")
        stats["reward_chosen"] = sum(p.reward_chosen for p in pairs) / len(pairs) if pairs else float("nan")
        stats["reward_rejected"] = sum(p.reward_rejected for p in pairs) / len(pairs) if pairs else float("nan")
        return stats

    def likelihood(chosen, rejected, per_token: bool) -> dict[str, Any]:
        a = chosen.mean if per_token else chosen.summed
        b = rejected.mean if per_token else rejected.summed
        return preference_stats([a[i] - b[i] for i in keep])

    def logps(chosen, rejected) -> dict[str, float]:
        return {
            "chosen_summed": _avg(chosen.summed[i] for i in keep),
            "rejected_summed": _avg(rejected.summed[i] for i in keep),
            "chosen_per_token": _avg(chosen.mean[i] for i in keep),
            "rejected_per_token": _avg(rejected.mean[i] for i in keep),
        }

    return {
        "pairs": n,
        "scored": len(keep),
        "skipped": n - len(keep),
        "beta": beta,
        "tie_note": TIE_NOTE,
        "implicit_reward": {"base": implicit(base_pairs), "aligned": implicit(aligned_pairs)},
        "likelihood_summed": {"base": likelihood(rc, rr, False), "aligned": likelihood(pc, pr, False)},
        "likelihood_per_token": {"base": likelihood(rc, rr, True), "aligned": likelihood(pc, pr, True)},
        "logps": {"base": logps(rc, rr), "aligned": logps(pc, pr)},
        "truncated": sum(1 for i in range(n) if pc.truncated[i] or pr.truncated[i]),
    }


def _avg(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


# ---- generations ------------------------------------------------------------------------------------


def probe_prompts(heldout, k: int, seed: int) -> list[dict[str, Any]]:
    """The seed's three probes and k held-out prompts (each a list of chat messages)."""
    probes = [
        {"label": label, "source": "seed", "messages": [{"role": "user", "content": text}]}
        for label, text in zip(("helpful", "harmless", "honest"), PROBE_PROMPTS, strict=True)
    ]
    if k and heldout:
        rng = random.Random(seed)
        for t in rng.sample(list(heldout), min(k, len(heldout))):
            probes.append({"label": "held-out", "source": t.id or "held-out", "messages": [dict(m) for m in t.prompt]})
    return probes


def generate_probes(
    model, tokenizer, probes: list[dict[str, Any]], options: EvalOptions, progress: Progress | None = None
) -> list[dict[str, Any]]:
    """Greedy and sampled answers of both sides to each probe, with lengths in tokens."""
    out = []
    total = len(probes) * 2
    done = 0
    for index, probe in enumerate(probes):
        settings = {
            "greedy": GenerationSettings(max_new_tokens=options.max_new_tokens),
            "sampled": GenerationSettings(
                max_new_tokens=options.max_new_tokens, temperature=options.temperature, top_p=options.top_p,
                seed=options.seed + index,
            ),
        }
        for mode, s in settings.items():
            chat = TwoSidedChat(model, tokenizer, strategy=options.strategy)
            chat.history = {side: [dict(m) for m in probe["messages"][:-1]] for side in chat.history}
            result = chat.answer(probe["messages"][-1]["content"], s)
            out.append({
                "label": probe["label"],
                "source": probe["source"],
                "prompt": probe["messages"][-1]["content"],
                "turns": sum(1 for m in probe["messages"] if m["role"] == "user"),
                "mode": mode,
                "settings": s.label(),
                "base": result.base.text,
                "aligned": result.aligned.text,
                "base_tokens": result.base.tokens,
                "aligned_tokens": result.aligned.tokens,
            })
            done += 1
            if progress:
                progress("generating answers", done, total)
    return out


def answer_prompts(
    model, tokenizer, prompts: Sequence[str], options: EvalOptions, what: str, progress: Progress | None = None
) -> list[dict]:
    """Greedy answers of both sides to single-turn prompts, with what their text shows (text_signals)."""
    settings = GenerationSettings(max_new_tokens=min(64, options.max_new_tokens))
    out = []
    for i, prompt in enumerate(prompts):
        result = TwoSidedChat(model, tokenizer, strategy=options.strategy).answer(prompt, settings)
        row = {"prompt": prompt, "base": result.base.text, "aligned": result.aligned.text}
        for side in ("base", "aligned"):
            row[f"{side}_refuses"] = text_signals.is_refusal(row[side])
            row[f"{side}_safe"] = text_signals.is_safe_response(row[side])
            row[f"{side}_loops"] = text_signals.loops(row[side])
        out.append(row)
        if progress:
            progress(what, i + 1, len(prompts))
    return out


def answer_harmless(model, tokenizer, options: EvalOptions, progress: Progress | None = None) -> list[dict]:
    return answer_prompts(model, tokenizer, checks_mod.HARMLESS_PROMPTS, options, "harmless prompts", progress)


def harmful_prompts(heldout, k: int, seed: int) -> tuple[list[str], str]:
    """Up to k red-team prompts: the opening request of held-out pairs from a harmlessness source (their
    first user turn; single-turn pairs first), else our own RED_TEAM_PROMPTS. Returns (prompts, where)."""
    red = [t for t in heldout if "harmless" in (t.source or "").lower() and t.prompt]
    if not red:
        return list(checks_mod.RED_TEAM_PROMPTS[:k]), "built-in red-team prompts"
    openings: dict[str, int] = {}
    for t in red:
        first = next((m["content"] for m in t.prompt if m["role"] == "user"), "").strip()
        if first and len(first) <= 300:
            openings[first] = min(openings.get(first, 99), t.turns)
    ordered = sorted(openings, key=lambda p: (openings[p] > 1, p))
    rng = random.Random(seed)
    single = [p for p in ordered if openings[p] == 1]
    pool = single if len(single) >= k else ordered
    chosen = sorted(rng.sample(pool, min(k, len(pool))))
    return chosen, "held-out red-team prompts of the data's harmless half"


def sample_kl(model, tokenizer, prompts: Sequence[str], options: EvalOptions,
              progress: Progress | None = None) -> tuple[float | None, list[str]]:
    """KL(policy || reference) per token on answers the aligned model samples itself (temperature 1):
    the KL the model's own generations carry, which dataset answers can hide."""
    from .logprobs import token_kl_to_reference

    settings = GenerationSettings(max_new_tokens=min(64, options.max_new_tokens), temperature=1.0, top_p=1.0,
                                  seed=options.seed)
    pairs, texts = [], []
    for i, prompt in enumerate(prompts):
        chat = TwoSidedChat(model, tokenizer, strategy=options.strategy)
        text = chat.answer(prompt, settings).aligned.text
        texts.append(text)
        if text.strip():
            rendered = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                     add_generation_prompt=True)
            pairs.append((rendered, text))
        if progress:
            progress("sampling for the KL", i + 1, len(prompts))
    if not pairs:
        return None, texts
    per_seq = token_kl_to_reference(model, tokenizer, pairs, batch_size=options.batch_size)
    return _avg(per_seq), texts


def _rates(rows: list[dict], flag: str) -> tuple[float | None, float | None]:
    """(base, aligned) share of rows whose answer has `flag` (refuses, safe, loops)."""
    return (text_signals.share([r[f"base_{flag}"] for r in rows]),
            text_signals.share([r[f"aligned_{flag}"] for r in rows]))


# ---- the run's log ----------------------------------------------------------------------------------


def train_accuracy(events: list[dict[str, Any]]) -> float | None:
    """Mean training rewards/accuracies over the last 10 % of logged steps (at least the last one)."""
    values = [e["metrics"]["rewards/accuracies"] for e in events
              if e.get("type") == "step" and "rewards/accuracies" in e.get("metrics", {})]
    if not values:
        return None
    tail = values[-max(1, len(values) // 10):]
    return sum(tail) / len(tail)


CURVE_KEYS = (
    ("step", "loss"), ("step", "rewards/accuracies"), ("step", "rewards/margins"),
    ("step", "rewards/chosen"), ("step", "rewards/rejected"),
    ("eval", "eval_loss"), ("eval", "eval_rewards/accuracies"), ("eval", "eval_rewards/margins"),
)


def curves(events: list[dict[str, Any]]) -> dict[str, list[list[float]]]:
    """Training and in-training eval curves as [step, value] lists."""
    out: dict[str, list[list[float]]] = {}
    for kind, key in CURVE_KEYS:
        points = [[e.get("step", 0), e["metrics"][key]] for e in events
                  if e.get("type") == kind and key in e.get("metrics", {})]
        if points:
            out[key] = points
    return out


# ---- the whole evaluation ---------------------------------------------------------------------------


def pick_heldout(heldout, n: int, seed: int) -> list:
    heldout = list(heldout)
    if n <= 0 or n >= len(heldout):
        return heldout
    rng = random.Random(seed)
    keep = sorted(rng.sample(range(len(heldout)), n))
    return [heldout[i] for i in keep]


def evaluate_loaded(
    model,
    tokenizer,
    config,
    heldout,
    *,
    events: list[dict[str, Any]] | None = None,
    options: EvalOptions | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Everything the report needs, from a loaded base+LoRA model and the held-out triplets."""
    options = options or EvalOptions()
    events = events or []
    started = time.time()
    max_length = options.max_length or getattr(config, "max_length", None)
    beta = float(config.beta)
    chosen = pick_heldout(heldout, options.pairs, options.seed)
    rendered = render_pairs(chosen, tokenizer)
    scores = score_pairs(model, tokenizer, rendered, batch_size=options.batch_size, max_length=max_length,
                         progress=progress)
    table = before_after(scores, beta)

    kl = None
    if options.kl and rendered:
        from .logprobs import token_kl_to_reference

        if progress:
            progress("KL to the reference", 0, 1)
        per_seq = token_kl_to_reference(model, tokenizer, [(p, c) for p, c, _ in rendered],
                                        batch_size=options.batch_size, max_length=max_length)
        kl = _avg(per_seq)

    generations: list[dict[str, Any]] = []
    harmless: list[dict[str, Any]] = []
    harmful: list[dict[str, Any]] = []
    harmful_where = ""
    kl_on_samples, kl_sampled = None, 0
    if options.generations:
        if options.probes:
            generations = generate_probes(model, tokenizer, probe_prompts(chosen, options.heldout_probes,
                                                                          options.seed), options, progress)
        harmless = answer_harmless(model, tokenizer, options, progress)
        if options.harmful_prompts > 0:
            prompts, harmful_where = harmful_prompts(heldout, options.harmful_prompts, options.seed)
            harmful = answer_prompts(model, tokenizer, prompts, options, "harmful prompts", progress)
        if options.kl_samples > 0:
            prompts = [t.prompt_text for t in pick_heldout(heldout, options.kl_samples, options.seed + 1)]
            kl_on_samples, _ = sample_kl(model, tokenizer, prompts, options, progress)
            kl_sampled = len(prompts)

    greedy = [g for g in generations if g["mode"] == "greedy"]
    answered = greedy + harmless + harmful  # every greedy answer, for the degeneration check
    sides = {side: [row[side] for row in answered] for side in ("base", "aligned")}
    degeneration = {
        side: {"loops": text_signals.share([text_signals.loops(a) for a in texts]),
               "distinct_2": text_signals.distinct_n(texts, 2), "answers": len(texts)}
        for side, texts in sides.items()
    }
    delta_c = table["logps"]["aligned"]["chosen_per_token"] - table["logps"]["base"]["chosen_per_token"]
    delta_r = table["logps"]["aligned"]["rejected_per_token"] - table["logps"]["base"]["rejected_per_token"]
    found = [
        checks_mod.length_ratio_check([g["base_tokens"] for g in greedy], [g["aligned_tokens"] for g in greedy],
                                      options.max_new_tokens),
        checks_mod.refusal_check([h["base"] for h in harmless], [h["aligned"] for h in harmless]),
        checks_mod.harmful_check([h["base"] for h in harmful], [h["aligned"] for h in harmful], harmful_where),
        checks_mod.degeneration_check(sides["base"], sides["aligned"], degeneration["base"]["distinct_2"],
                                      degeneration["aligned"]["distinct_2"]),
        checks_mod.displacement_check(delta_c, delta_r),
        checks_mod.overfitting_check(train_accuracy(events), table["implicit_reward"]["aligned"]["accuracy"]),
        checks_mod.kl_check(kl, beta),
        checks_mod.sample_kl_check(kl_on_samples, kl_sampled),
    ]
    implicit = table["implicit_reward"]["aligned"]
    rates = {
        "harmless_refusals": _rates(harmless, "refuses"),
        "harmful_safe": _rates(harmful, "safe"),
        "loops": (degeneration["base"]["loops"], degeneration["aligned"]["loops"]),
    }
    interval = implicit.get("accuracy_ci") or [None, None]
    verdict = checks_mod.verdict(implicit["accuracy"] if rendered else None, interval[0], found, rates)
    return {
        "before_after": table,
        "kl_per_token": kl,
        "generations": generations,
        "harmless": harmless,
        "harmful": harmful,
        "harmful_source": harmful_where,
        "degeneration": degeneration,
        "kl_on_samples": kl_on_samples,
        "verdict": verdict,
        "checks": [c.to_dict() for c in found],
        "curves": curves(events),
        "options": dict(options.__dict__),
        "eval_seconds": time.time() - started,
    }


def load_heldout(config) -> tuple[list, dict[str, Any]]:
    """The run's held-out split, rebuilt exactly as training split it (the same `split_for_run`)."""
    from .data.split import run_row_limit, split_for_run

    loaded, _, heldout = split_for_run(config)
    max_rows = run_row_limit(config)
    mix = [dict(u.to_dict(), heldout=sum(1 for t in heldout if t.source == u.name)) for u in loaded.mix or []]
    info = {"source": loaded.source if loaded.mix is not None else (config.data or "the bundled sample"),
            "format": loaded.format, "pairs": len(loaded.triplets),
            "heldout": len(heldout), "heldout_fraction": config.heldout_fraction, "seed": config.seed,
            "max_rows": max_rows, "mix": mix, "note": loaded.note}
    return list(heldout), info


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def evaluate_run(
    run_dir: str | Path, options: EvalOptions | None = None, progress: Progress | None = None
) -> dict[str, Any]:
    """Load a run (base + its adapter), rebuild its held-out split and evaluate. Returns report data."""
    from .events import read_events
    from .models import load_aligned

    run = Path(run_dir)
    if progress:
        progress("loading the model", 0, 1)
    model, tokenizer, config = load_aligned(run, device=(options.device if options else None) or default_device())
    if progress:
        progress("loading the data", 0, 1)
    heldout, data_info = load_heldout(config)
    events = read_events(run)
    result = evaluate_loaded(model, tokenizer, config, heldout, events=events, options=options, progress=progress)
    result["data"] = data_info
    result["config"] = config.to_dict()
    result["device"] = str(next(model.parameters()).device)
    result["dtype"] = str(next(model.parameters()).dtype).replace("torch.", "")
    return result
