"""`dpo-tutor bench` keeps working on CPU: the same steps under each pipeline, and a table."""

from __future__ import annotations

import pytest
from dpo_tutor.engine.bench import PIPELINES, format_table, run_bench, steady_rate


def test_bench_runs_each_pipeline_and_they_learn_the_same(tmp_path, monkeypatch):
    monkeypatch.setenv("DPO_TUTOR_FORCE_NO_CUDA", "1")
    results = run_bench(
        model="tiny", data="", steps=3, max_length=96, pipelines=["trl-defaults", "ours-hf", "ours-unsloth"],
        out_dir=tmp_path, lr=5e-3, beta=0.5,
    )
    by_key = {r.key: r for r in results}
    assert by_key["ours-unsloth"].state == "skipped" and by_key["ours-unsloth"].skipped == "needs CUDA"
    for key in ("trl-defaults", "ours-hf"):
        r = by_key[key]
        assert r.state == "finished", r.error
        assert r.pairs_per_s and r.pairs_per_s > 0 and r.first_step_s and r.first_step_s > 0
    # Same data, seed and hyperparameters: the pipelines differ in how they compute, not in what is learned.
    assert by_key["trl-defaults"].loss == pytest.approx(by_key["ours-hf"].loss, abs=2e-3)
    table = format_table(results)
    assert table.splitlines()[0].startswith("| pipeline | pairs/s | x plain TRL")
    assert "| trl-defaults |" in table and "| 1.00 |" in table and "needs CUDA" in table


def test_steady_rate_skips_the_first_steps():
    steps = [{"step": i, "time": t} for i, t in [(1, 0.0), (2, 10.0), (3, 11.0), (4, 12.0), (5, 13.0)]]
    assert steady_rate(steps, 32, skip=2) == pytest.approx(2 * 32 / 2.0)


def test_unknown_pipeline_is_one_clear_error(tmp_path):
    from dpo_tutor.engine.errors import UserError

    with pytest.raises(UserError, match="unknown pipeline"):
        run_bench(model="tiny", data="", steps=1, pipelines=["warp-drive"], out_dir=tmp_path)
    assert "trl-defaults" in PIPELINES
