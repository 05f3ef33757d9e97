"""run_facts: the numbers a lesson quotes come from the learner's run, or a shipped recording, and say which."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
from dpo_tutor.engine import run_facts as rf
from dpo_tutor.engine.events import read_events

FIXTURES = Path(__file__).parent / "fixtures" / "runs"


def _copy_run(tmp_path: Path, fixture: str, name: str) -> Path:
    runs = tmp_path / "runs"
    runs.mkdir(exist_ok=True)
    dest = runs / name
    shutil.copytree(FIXTURES / fixture, dest)
    return runs


def test_latest_reads_the_newest_run_and_names_it(tmp_path):
    runs = _copy_run(tmp_path, "normal", "20261203-100000-mine")
    facts = rf.pick_facts("latest", runs)
    assert isinstance(facts, rf.RunFacts) and facts.kind == "run"
    assert facts.name == "20261203-100000-mine"
    events = read_events(runs / facts.name)
    steps = [e for e in events if e["type"] == "step"]
    last = steps[-1]["metrics"]
    assert facts.last["rewards/margins"] == last["rewards/margins"]
    lines = rf.fact_lines(facts, ["margin", "first_step", "accuracy"])
    assert lines[0].startswith("Numbers from your run 20261203-100000-mine (finished")
    margin, beta = last["rewards/margins"], 0.1
    assert f"margin is {margin:.2f} at beta 0.1" in lines[1]
    assert f"delta = {margin:.2f} / 0.1 = {margin / beta:.1f} nats" in lines[1]
    assert f"loss {steps[0]['metrics']['loss']:.4f}" in lines[2]
    evals = [e for e in events if e["type"] == "eval"]
    assert f"held-out {evals[-1]['metrics']['eval_rewards/accuracies']:.2f}" in lines[3]


def test_a_run_without_steps_is_skipped_and_no_run_falls_back_to_a_recording(tmp_path):
    runs = tmp_path / "runs"
    (runs / "20261203-120000-empty").mkdir(parents=True)
    (runs / "20261203-120000-empty" / "config.toml").write_text("[train]\n")
    facts = rf.pick_facts("latest", runs)
    assert isinstance(facts, rf.RunFacts) and facts.kind == "recording"
    assert facts.name in rf.FALLBACK_RECORDINGS
    assert "no run in" in facts.why and "logged a step" in facts.why
    assert "shipped recording" in rf.fact_lines(facts, ["margin"])[0]


def test_the_over_refusal_recording_facts_match_its_report():
    facts = rf.read_facts(rf.recording("over-refusal-h100"), kind="recording")
    report = json.loads((facts.path / "report.json").read_text())
    assert facts.refusal == (0.1, 0.8, 10)
    assert facts.report_heldout[0] == report["before_after"]["implicit_reward"]["aligned"]["accuracy"]
    assert facts.heldout_peak[0] == 50  # held-out accuracy peaks early, then falls
    assert facts.heldout_peak[1] > facts.heldout_accuracy[1]
    assert math.isclose(facts.first["loss"], math.log(2), rel_tol=1e-6)
    assert facts.first["rewards/accuracies"] == 0.125  # not 0.0: noise breaks ties at step 1
    text = " ".join(rf.fact_lines(facts, rf.FACT_KEYS))
    assert "aligned 80%, base 10%" in text
    assert "52.5% of held-out pairs before training and 55.1% after" in text
    assert "3 of 5 checks warn" in text


def test_train_accuracy_agrees_with_the_overfitting_checks_definition():
    evaluate = pytest.importorskip("dpo_tutor.engine.evaluate")
    path = rf.recording("over-refusal-h100")
    assert rf.read_facts(path).train_accuracy == evaluate.train_accuracy(read_events(path))


def test_a_recording_that_is_not_shipped_says_so(tmp_path):
    missing = rf.pick_facts("recording:no-such-run")
    assert isinstance(missing, rf.Missing)
    assert rf.fact_lines(missing, ["margin"]) == ["No numbers to show: the recording no-such-run is not in this install yet."]
    assert rf.fill("delta {delta}", missing) == "delta ?"


def test_no_run_and_no_recording(tmp_path):
    empty = tmp_path / "recorded"
    empty.mkdir()
    missing = rf.pick_facts("latest", tmp_path / "runs", recordings=empty)
    assert isinstance(missing, rf.Missing) and "no recording ships" in missing.why


def test_fill_puts_the_runs_numbers_in_a_template(tmp_path):
    runs = _copy_run(tmp_path, "normal", "20261203-100000-mine")
    facts = rf.pick_facts("latest", runs)
    margin = facts.last["rewards/margins"]
    assert rf.fill("{margin} at beta {beta}: delta {delta}; {unknown}", facts) == (
        f"{margin:.2f} at beta 0.1: delta {margin / 0.1:.1f}; ?")
    assert [s for s, _ in facts.step_deltas] == [s for s, _ in facts.step_margins]
    assert facts.step_deltas[-1][1] == pytest.approx(margin / 0.1)


def test_unknown_fact_or_run_is_an_error():
    facts = rf.read_facts(rf.recording("over-refusal-h100"))
    with pytest.raises(ValueError):
        rf.fact_sentence(facts, "nope")
    with pytest.raises(ValueError):
        rf.pick_facts("newest")


def test_compare_rows_name_a_mix_of_sources_and_a_missing_side():
    left = rf.read_facts(rf.recording("over-refusal-h100"))
    mixed = rf.read_facts(rf.recording("over-refusal-h100"))
    mixed.config = dict(mixed.config, data=["/d/harmless-base.jsonl.gz", "hf:Anthropic/hh-rlhf/helpful-base"])
    rows = {what: (a, b) for what, a, b in rf.compare_rows(left, mixed)}
    assert rows["data"] == ("harmless-base-test.jsonl.gz", "harmless-base.jsonl.gz + helpful-base")
    rows = {what: (a, b) for what, a, b in rf.compare_rows(rf.Missing("gone"), left)}
    assert rows["train accuracy"] == ("not shipped yet", f"{left.train_accuracy:.2f}")


def test_the_reports_verdict_line_when_the_report_has_one(tmp_path):
    facts = rf.read_facts(rf.recording("over-refusal-h100"))
    assert rf.fact_sentence(facts, "verdict") is None  # written before reports had a verdict
    facts.report = dict(facts.report, verdict={"label": "worse", "line": "Worse than the base: refuses 80%."})
    assert rf.fact_sentence(facts, "verdict") == "The report's verdict: Worse than the base: refuses 80%."


def test_a_first_step_near_ln2_is_called_a_tie_and_its_accuracy_rounding():
    facts = rf.read_facts(rf.recording("over-refusal-h100"))
    text = rf.fact_sentence(facts, "first_step")
    assert "up to rounding" in text and "accuracy of 0.125 is that rounding breaking ties" in text
    facts.first = dict(facts.first, loss=0.6836, **{"rewards/accuracies": 0.625, "rewards/margins": 0.0203})
    text = rf.fact_sentence(facts, "first_step")  # the default recording's step 1, at learning rate 0
    assert "loss 0.6836" in text and "margin +0.020" in text and "0.625 is that rounding" in text
    facts.first = dict(facts.first, loss=0.60)
    assert "rounding" not in rf.fact_sentence(facts, "first_step")
