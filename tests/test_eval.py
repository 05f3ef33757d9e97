"""Evaluation: numbers computed two ways agree, ties are ties, the report has every section."""

from __future__ import annotations

import json
import math

import pytest
from aligned_run import make_aligned_run, perturbed_peft_model


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_aligned_run(tmp_path_factory.mktemp("runs") / "fixture-run")


@pytest.fixture(scope="module")
def evaluated(run_dir):
    from dpo_tutor.engine.evaluate import EvalOptions, evaluate_run
    from dpo_tutor.engine.report import build_report, write_report

    stages = []
    result = evaluate_run(run_dir, EvalOptions(pairs=0, max_new_tokens=6, heldout_probes=2),
                          progress=lambda stage, done, total: stages.append((stage, done, total)))
    report = build_report(run_dir, result)
    write_report(run_dir, report)
    return report, stages


# ---- statistics ------------------------------------------------------------------------------------


def test_wilson_interval_matches_known_values():
    from dpo_tutor.engine.evaluate import wilson_interval

    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    lo, hi = wilson_interval(180, 300)
    assert hi - lo == pytest.approx(0.110, abs=0.002)  # a few hundred pairs: about +-5.5 points at 60 %


def test_preference_stats_counts_ties_as_ties_not_as_losses():
    from dpo_tutor.engine.evaluate import preference_stats

    s = preference_stats([0.0, 0.0, 0.0, 1.0, -1.0])
    assert (s["wins"], s["ties"], s["losses"]) == (1, 3, 1)
    assert s["accuracy"] == pytest.approx(0.2)
    assert s["decided_accuracy"] == pytest.approx(0.5)
    all_ties = preference_stats([0.0] * 4)
    assert (all_ties["wins"], all_ties["ties"], all_ties["losses"]) == (0, 4, 0)
    assert all_ties["decided_accuracy"] is None


# ---- the before/after table, two ways -------------------------------------------------------------


@pytest.fixture(scope="module")
def scored():
    from dpo_tutor.engine.evaluate import score_pairs

    peft_model, tokenizer, _ = perturbed_peft_model()
    from aligned_run import PROMPTS

    rendered = [(f"<|im_start|>user\n{p}<|im_end|>\n<|im_start|>assistant\n", c + "<|im_end|>", r + "<|im_end|>")
                for p, c, r in PROMPTS]
    return score_pairs(peft_model, tokenizer, rendered, batch_size=3)


def test_implicit_reward_accuracy_agrees_with_dpo_math_on_tensors(scored):
    import torch
    from dpo_tutor.engine.dpo_math import torch_dpo_terms
    from dpo_tutor.engine.evaluate import before_after

    beta = 0.25
    table = before_after(scored, beta)
    t = {k: torch.tensor(v.summed, dtype=torch.float64) for k, v in scored.items()}
    terms = torch_dpo_terms(beta, t["policy_chosen"], t["policy_rejected"], t["ref_chosen"], t["ref_rejected"])
    aligned = table["implicit_reward"]["aligned"]
    assert aligned["accuracy"] == pytest.approx(float(terms["accurate"].mean()))
    assert aligned["mean_margin"] == pytest.approx(float(terms["margin"].mean()), abs=1e-9)
    assert aligned["mean_loss"] == pytest.approx(float(terms["loss"].mean()), abs=1e-9)
    # A third way: straight from the log-ratio difference.
    delta = (t["policy_chosen"] - t["ref_chosen"]) - (t["policy_rejected"] - t["ref_rejected"])
    assert aligned["wins"] == int((delta > 0).sum())
    assert 0 < aligned["wins"] < len(delta)  # the fixture is neither all right nor all wrong


def test_base_ties_every_pair_and_likelihood_gives_it_a_real_number(scored):
    from dpo_tutor.engine.evaluate import before_after

    table = before_after(scored, 0.1)
    base = table["implicit_reward"]["base"]
    assert (base["wins"], base["ties"], base["losses"]) == (0, table["scored"], 0)
    assert base["mean_margin"] == 0.0
    like = table["likelihood_summed"]["base"]
    rc, rr = scored["ref_chosen"].summed, scored["ref_rejected"].summed
    assert like["wins"] == sum(1 for a, b in zip(rc, rr, strict=False) if a > b)
    assert like["ties"] == 0


def test_per_token_and_summed_likelihood_agree_with_their_definitions(scored):
    from dpo_tutor.engine.evaluate import before_after

    table = before_after(scored, 0.1)
    pc, pr = scored["policy_chosen"], scored["policy_rejected"]
    per_token = [c / nc - r / nr for c, r, nc, nr in zip(pc.summed, pr.summed, pc.n_tokens, pr.n_tokens, strict=False)]
    got = table["likelihood_per_token"]["aligned"]
    assert got["mean_margin"] == pytest.approx(sum(per_token) / len(per_token), abs=1e-9)
    assert got["wins"] == sum(1 for d in per_token if d > 0)
    # The fixture's chosen answers are longer on average, so the two views disagree here: summed
    # punishes length, per-token does not. That is why both are shown.
    assert table["likelihood_summed"]["aligned"]["wins"] != got["wins"]


def test_an_untouched_adapter_ties_every_pair_on_both_sides():
    from aligned_run import PROMPTS
    from dpo_tutor.engine.evaluate import before_after, score_pairs

    zero, tokenizer, _ = perturbed_peft_model(scale=0.0)
    rendered = [(p, " " + c, " " + r) for p, c, r in PROMPTS]
    table = before_after(score_pairs(zero, tokenizer, rendered), 0.1)
    aligned = table["implicit_reward"]["aligned"]
    assert (aligned["wins"], aligned["ties"], aligned["losses"]) == (0, len(PROMPTS), 0)


# ---- checks ----------------------------------------------------------------------------------------


def test_checks_thresholds_and_verdicts():
    from dpo_tutor.engine import checks

    assert checks.length_ratio_check([10, 10], [30, 30], 64).status == "warn"
    assert checks.length_ratio_check([10, 10], [12, 11], 64).status == "ok"
    assert checks.length_ratio_check([10, 10], [3, 2], 64).status == "warn"
    assert checks.length_ratio_check([], [], 64).status == "n/a"
    assert checks.refusal_check(["Sure, here is how."] * 4,
                                ["I'm sorry, but I can't help with that."] * 2 + ["Sure."] * 2).status == "warn"
    assert checks.refusal_check(["Sure."] * 4, ["Of course!"] * 4).status == "ok"
    assert checks.displacement_check(-0.2, -0.5).status == "warn"
    assert checks.displacement_check(0.1, -0.5).status == "ok"
    assert checks.overfitting_check(0.95, 0.6).status == "warn"
    assert checks.overfitting_check(0.7, 0.65).status == "ok"
    assert checks.overfitting_check(None, 0.65).status == "n/a"
    assert checks.kl_check(2.0, 0.1).status == "warn"
    assert checks.kl_check(0.05, 0.1).status == "ok"


@pytest.mark.parametrize("text, refuses", [
    ("I'm sorry, but I can't help with that.", True),
    ("I cannot provide instructions for that.", True),
    ("As an AI language model, I don't have opinions.", True),
    ("I won't assist with breaking into cars.", True),
    ("Sure! Preheat the oven to 180 C, then mix the flour and sugar.", False),
    ("To kill a stuck process, run `kill -9 PID`.", False),
    ("Paris is the capital of France.", False),
])
def test_refusal_detector(text, refuses):
    from dpo_tutor.engine.checks import is_refusal

    assert is_refusal(text) is refuses


def test_train_accuracy_comes_from_the_last_logged_steps():
    from dpo_tutor.engine.evaluate import train_accuracy

    events = [{"type": "step", "step": i, "metrics": {"rewards/accuracies": i / 20}} for i in range(1, 21)]
    assert train_accuracy(events) == pytest.approx((19 / 20 + 20 / 20) / 2)
    assert train_accuracy([]) is None


# ---- the whole evaluation and its report -----------------------------------------------------------


def test_report_has_every_section_and_json_matches(evaluated, run_dir):
    from dpo_tutor.engine.generation import PROBE_PROMPTS
    from dpo_tutor.engine.report import SECTIONS

    _report, stages = evaluated
    md = (run_dir / "report.md").read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f"## {section}" in md
    on_disk = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    for key in ("config", "versions", "hardware", "created", "curves", "before_after", "generations", "checks",
                "data", "run"):
        assert on_disk.get(key), key
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]
    # Every probe prompt, greedy and sampled, both sides, with lengths.
    prompts = {(g["prompt"], g["mode"]) for g in on_disk["generations"]}
    for text in PROBE_PROMPTS:
        assert (text, "greedy") in prompts and (text, "sampled") in prompts
    assert sum(1 for g in on_disk["generations"] if g["label"] == "held-out") == 4
    assert all(g["base_tokens"] > 0 and g["aligned_tokens"] > 0 for g in on_disk["generations"])
    # Eight checks, each with a status, a threshold, a verdict and a lesson.
    ids = [c["id"] for c in on_disk["checks"]]
    assert ids == ["length_ratio", "evasive_refusals", "harmful_prompts", "degeneration", "likelihood_displacement",
                   "overfitting", "kl_to_reference", "sample_kl"]
    for c in on_disk["checks"]:
        assert c["status"] in ("ok", "warn", "n/a") and c["threshold"] and c["verdict"] and c["lesson"]
    # The fixture's log says train accuracy 1.0: the overfitting check must compare it with held-out.
    over = on_disk["checks"][ids.index("overfitting")]
    assert over["status"] == "warn" and "train 100%" in over["value_text"]
    # The bundled sample has no harmlessness half: our own red-team prompts stand in, every one answered.
    assert on_disk["harmful_source"] == "built-in red-team prompts" and len(on_disk["harmful"]) > 0
    assert {"base", "aligned"} <= set(on_disk["degeneration"]) and on_disk["kl_on_samples"] is not None
    assert on_disk["verdict"]["label"] in ("better", "worse", "mixed") and md.count("**Verdict: ") == 1
    assert md.index("**Verdict: ") < md.index(f"## {SECTIONS[0]}")
    assert on_disk["curves"]["loss"][0] == [1, pytest.approx(0.663)]
    assert "Ties." in md and "0W/" in md
    assert {s[0] for s in stages} >= {"loading the model", "scoring held-out pairs", "generating answers"}


def test_report_numbers_match_a_direct_computation_on_the_same_heldout_pairs(evaluated, run_dir):
    from dpo_tutor.engine import dpo_math
    from dpo_tutor.engine.evaluate import load_heldout, render_pairs
    from dpo_tutor.engine.logprobs import policy_and_reference
    from dpo_tutor.engine.models import load_aligned

    report, _ = evaluated
    model, tokenizer, config = load_aligned(run_dir)
    heldout, info = load_heldout(config)
    assert info["heldout"] == report["before_after"]["pairs"] == len(heldout) > 0
    rendered = render_pairs(heldout, tokenizer)
    pol_c, ref_c = policy_and_reference(model, tokenizer, [(p, c) for p, c, _ in rendered], batch_size=1)
    pol_r, ref_r = policy_and_reference(model, tokenizer, [(p, r) for p, _, r in rendered], batch_size=1)
    pairs = [dpo_math.dpo_pair(config.beta, a, b, c, d)
             for a, b, c, d in zip(pol_c.summed, pol_r.summed, ref_c.summed, ref_r.summed, strict=False)]
    summary = dpo_math.summarize_pairs(pairs)
    aligned = report["before_after"]["implicit_reward"]["aligned"]
    assert aligned["accuracy"] == pytest.approx(summary.accuracy)
    assert aligned["mean_margin"] == pytest.approx(summary.margin, abs=1e-5)
    assert aligned["ties"] == summary.ties


def test_eval_command_json_prints_report_json(run_dir, capsys):
    from dpo_tutor.cli import main

    assert main(["eval", str(run_dir), "--json", "--pairs", "3", "--no-generations", "--quiet"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    assert printed["before_after"]["pairs"] == 3
    assert printed["generations"] == []
    assert printed["checks"][0]["status"] == "n/a"
    assert not math.isnan(printed["before_after"]["implicit_reward"]["aligned"]["accuracy"])


def test_eval_command_names_a_missing_run_in_one_line(tmp_path, capsys):
    from dpo_tutor.cli import main

    assert main(["eval", str(tmp_path / "nope"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dpo-tutor eval:")


def test_every_check_names_a_lesson_that_exists():
    from dpo_tutor.engine import checks
    from dpo_tutor.engine.lessons import load_lessons

    ids = {lesson.id for lesson in load_lessons()}
    made = [
        checks.length_ratio_check([1], [1], 8), checks.refusal_check([""], [""]),
        checks.displacement_check(0.0, 0.0), checks.overfitting_check(None, 0.5), checks.kl_check(0.1, 0.1),
    ]
    assert {c.lesson for c in made} <= ids


def test_heldout_of_the_bundled_sample_is_rebuilt_like_training_splits_it():
    from dpo_tutor.engine.config import TrainConfig
    from dpo_tutor.engine.data.load import load_triplets
    from dpo_tutor.engine.data.sample import sample_path
    from dpo_tutor.engine.data.split import train_heldout_split
    from dpo_tutor.engine.evaluate import load_heldout

    config = TrainConfig(model="tiny", data="", heldout_fraction=0.2, seed=3)
    heldout, info = load_heldout(config)
    _, expected = train_heldout_split(load_triplets(str(sample_path())).triplets, 0.2, 3)
    assert heldout == expected and info["heldout"] == len(expected) > 0


def test_heldout_matches_the_training_drivers_split_with_a_row_limit(tmp_path):
    from dpo_tutor.engine.config import TrainConfig
    from dpo_tutor.engine.data.render import to_trl_record
    from dpo_tutor.engine.evaluate import load_heldout
    from dpo_tutor.engine.switches import Switches
    from dpo_tutor.engine.train.pairs import prepare_data

    config = TrainConfig(model="tiny", data="", max_pairs=20, eval_pairs=1000, eval_steps=5, seed=5)
    heldout, info = load_heldout(config)
    _, _, eval_ds = prepare_data(config, preloaded=None, run_dir=tmp_path, world=1, switches=Switches.from_env())
    assert info["max_rows"] is not None
    assert [to_trl_record(t) for t in heldout] == eval_ds.to_list()
