"""`dpo-tutor bench` keeps working on CPU: the same steps under each pipeline, and a table."""

from __future__ import annotations

from dataclasses import replace

import pytest
from conftest import shared_file
from dpo_tutor.engine.bench import PIPELINES, format_table, run_bench, run_pipeline, run_rate, steady_rate


def test_bench_runs_each_pipeline_and_they_learn_the_same(tmp_path, monkeypatch):
    monkeypatch.setenv("DPO_TUTOR_FORCE_NO_CUDA", "1")
    # 200 real pairs: 3 steps of 32 are full batches in every pipeline (an epoch's short last batch is
    # averaged differently by 8 x 4 accumulation than by one batch of 32).
    data = str(shared_file("hh-rlhf", "harmless-base-test.jsonl.gz"))
    results = run_bench(
        model="tiny", data=data, steps=3, max_length=96, pipelines=["trl-defaults", "ours-hf", "ours-unsloth"],
        out_dir=tmp_path, lr=5e-3, beta=0.5, max_pairs=200,
    )
    by_key = {r.key: r for r in results}
    assert by_key["ours-unsloth"].state == "skipped" and by_key["ours-unsloth"].skipped == "needs CUDA"
    for key in ("trl-defaults", "ours-hf"):
        r = by_key[key]
        assert r.state == "finished", r.error
        assert r.pairs_per_s and r.pairs_per_s > 0 and r.first_step_s and r.first_step_s > 0
    # Same data, seed and hyperparameters. Length grouping changes which pairs share a batch, so the
    # losses of the first steps differ (what grouping does to learning is measured on the GPU over whole
    # runs: BENCHMARKS.md); everything else in our recipe changes how a step is computed, not its result:
    ours = PIPELINES["ours-hf"]
    ungrouped = replace(ours, key="ours-hf-ungrouped",
                        flags=tuple("--no-group-by-length" if f == "--group-by-length" else f for f in ours.flags))
    assert "--no-group-by-length" in ungrouped.flags
    same_batches = run_pipeline(ungrouped, out=tmp_path / "ungrouped", common=[
        "--model", "tiny", "--max-steps", "3", "--max-length", "96", "--lr", "0.005", "--beta", "0.5",
        "--seed", "42", "--eval-steps", "0", "--save-steps", "0", "--data", data, "--max-pairs", "200"])
    assert same_batches.state == "finished", same_batches.error
    assert by_key["trl-defaults"].loss == pytest.approx(same_batches.loss, abs=2e-3)
    assert by_key["ours-hf"].loss != pytest.approx(same_batches.loss, abs=1e-6)  # grouping is on in ours-hf
    table = format_table(results)
    assert table.splitlines()[0].startswith("| pipeline | pairs/s | x plain TRL")
    assert "| trl-defaults |" in table and "| 1.00 |" in table and "needs CUDA" in table


def test_steady_rate_skips_the_first_steps_and_one_off_stalls():
    steps = [{"step": i, "time": t} for i, t in [(1, 0.0), (2, 10.0), (3, 11.0), (4, 12.0), (5, 13.0)]]
    assert steady_rate(steps, 32, skip=2) == pytest.approx(32 / 1.0)
    assert run_rate(steps, 32) == pytest.approx(4 * 32 / 13.0)
    stalled = steps + [{"step": 6, "time": 30.0}, {"step": 7, "time": 31.0}]  # a recompile at step 6
    assert steady_rate(stalled, 32, skip=2) == pytest.approx(32.0)
    assert run_rate(stalled, 32) == pytest.approx(6 * 32 / 31.0)


def test_steady_rate_leaves_out_the_steps_that_recorded_a_new_graph_shape():
    # Steps 2 and 3 record a shape (1 s each); the step after a recording is logged early (its log
    # waited for the recording): 0.01 s; then replays of 0.25 s.
    times = [0.0, 1.0, 2.0, 2.01, 2.26, 2.51, 2.76, 3.01]
    recorded = [1, 2, 3, 3, 3, 3, 3, 3]
    steps = [{"step": i + 1, "time": t, "metrics": {"cuda_graph_recordings": r}}
             for i, (t, r) in enumerate(zip(times, recorded, strict=True))]
    assert steady_rate(steps, 32, skip=0) == pytest.approx(32 / 0.25)
    unmarked = [{"step": s["step"], "time": s["time"], "metrics": {}} for s in steps]
    assert steady_rate(unmarked, 32, skip=0) != pytest.approx(32 / 0.25)  # the marks are what leave them out


def test_steady_rate_is_the_time_the_steps_took_not_a_median_gap():
    # Lagged logs: gaps alternate short and long while the steps take 1.45 s for 5 steps.
    times = [0.0, 0.05, 0.5, 0.55, 1.0, 1.45]
    steps = [{"step": i + 1, "time": t, "metrics": {}} for i, t in enumerate(times)]
    assert steady_rate(steps, 32, skip=0) == pytest.approx(5 * 32 / 1.45)


def test_unknown_pipeline_is_one_clear_error(tmp_path):
    from dpo_tutor.engine.errors import UserError

    with pytest.raises(UserError, match="unknown pipeline"):
        run_bench(model="tiny", data="", steps=1, pipelines=["warp-drive"], out_dir=tmp_path)
    assert "trl-defaults" in PIPELINES


def test_the_commands_help_names_every_pipeline_the_engine_knows():
    from dpo_tutor.engine.bench import PIPELINES

    from dpo_tutor.commands.bench import DEFAULT_PIPELINES

    assert set(DEFAULT_PIPELINES) | {"ours-hf-compiled"} == set(PIPELINES)
