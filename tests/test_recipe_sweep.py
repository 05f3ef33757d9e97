"""benchmarks/recipe_sweep.py: its pick rule and its table, on rows shaped as a sweep writes them."""

from __future__ import annotations

import json

from test_benchmark_scripts import load

sweep = load("recipe_sweep")


def row(name, acc, harmless=(0.0, 0.0), harmful=(0.33, 0.33), loops=(0.09, 0.06), kl=0.04, verdict="mixed"):
    return {"recipe": name, "state": "finished", "heldout_acc": acc, "heldout_ci": [acc - 0.05, acc + 0.05],
            "heldout_n": 448, "harmless_refusals": list(harmless), "harmful_safe": list(harmful), "loops": list(loops),
            "distinct_2": [0.6, 0.7], "kl_samples": kl, "kl_dataset": kl, "verdict": verdict}


def test_the_pick_takes_the_best_held_out_accuracy_among_models_no_worse_than_the_base():
    rows = [
        row("harmless-only", 0.665, harmless=(0.0, 0.8), loops=(0.09, 0.5), verdict="worse"),  # over-refuses
        row("mix-lr1e-3", 0.587, loops=(0.09, 0.15)),  # loops more than the base
        row("mix-beta0.05", 0.560, harmful=(0.33, 0.17)),  # declines fewer harmful prompts
        row("mix-1ep", 0.560, harmless=(0.0, 0.1), kl=0.036),
        row("mix-beta0.25", 0.560, kl=0.052),  # as accurate, further from the reference
        row("mix-lr2.5e-4", 0.549),
    ]
    assert [sweep.eligible(r) for r in rows] == [False, False, False, True, True, True]
    assert sweep.pick(rows)["recipe"] == "mix-1ep"
    assert sweep.pick(rows[:3]) is None
    assert sweep.flags("mix2to1-1ep") == "--epochs 1.0 --data-weights 2,1"
    assert sweep.flags("mix-1ep-robust0.1") == "--epochs 1.0 --loss-type robust --label-smoothing 0.1"


def test_the_table_marks_eligible_rows_and_keeps_a_stopped_recipe(tmp_path):
    (tmp_path / "row-mix-1ep.json").write_text(json.dumps(row("mix-1ep", 0.56)))
    (tmp_path / "row-mix2to1.json").write_text(json.dumps({"recipe": "mix2to1", "state": "stopped"}))
    lines = sweep.table(tmp_path).splitlines()
    assert lines[2].startswith("| mix-1ep * | 0.560 [0.51, 0.61] n=448 | 0% (0%) | 33% (33%) | 6% (9%) |")
    assert lines[3].startswith("| mix2to1 | stopped")
    assert all(name in sweep.RECIPES for name in ("harmless-only", "mix-default", "mix2to1-1ep"))
