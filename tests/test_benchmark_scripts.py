"""The benchmark scripts keep working (their numbers live in BENCHMARKS.md, never in a test)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ui_latency_prints_its_table_and_puts_the_app_back(capsys):
    from dpo_tutor.tui.widgets.train_charts import MetricChart
    from textual.screen import Screen

    before = (MetricChart.draw, Screen._refresh_layout)
    assert load("ui_latency").main(["--seconds", "0.5", "--presses", "2", "--size", "120x40"]) == 0
    out = capsys.readouterr().out
    assert "| ctrl+l to effect, median of 2 |" in out and "| screen layouts per second, streaming only |" in out
    assert (MetricChart.draw, Screen._refresh_layout) == before  # the timers were taken off again


def run_script(name: str, *args: str) -> str:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(BENCHMARKS / f"{name}.py"), *args], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_startup_benchmark_runs():
    out = run_script("startup", "--runs", "1")
    assert "| dpo-tutor --help |" in out and "| first frame: dpo-tutor (lesson 1) |" in out


def test_data_load_benchmark_runs_on_the_real_rows():
    out = run_script("data_load", "--rows", "2000")
    assert "load + normalise (load_triplets)" in out and "2,000 rows" in out


def test_chat_benchmark_runs_on_the_tiny_model():
    out = run_script("chat_bench")
    assert "sequential (eager)" in out and "greedy answers identical" in out


def test_preset_run_times_a_preset_on_the_tiny_model():
    out = run_script("preset_run", "--preset", "cpu-look", "--model", "tiny")
    assert "| first step logged |" in out and "| seconds per step (median from step 2) |" in out
    assert "model tiny" in out and "loss: step 1 -> mean of the last 3 | 0.693 ->" in out


def test_padding_counts_the_packed_layout_against_trls_two_rows():
    padding = load("padding")
    pieces = [(100, 20, 30), (10, 5, 5)]  # (prompt, chosen, rejected) tokens
    pairs = [(p + c, p + r) for p, c, r in pieces]
    batch = [[0, 1]]
    assert padding.two_row_tokens(pairs, batch) == 2 * 2 * 130  # 4 rows padded to the longest, 130
    assert padding.packed_tokens(pieces, batch) == 2 * 192  # 2 rows of 150 real tokens at most, to 192


def test_graph_shapes_counts_recordings_with_the_trainers_reuse_rule():
    shapes = load("graph_shapes")
    keys = [("packed", 32, 512, 1024, 32), ("packed", 32, 448, 1024, 32), ("packed", 32, 512, 1024, 32)]
    assert shapes.replay(keys, 1.0, 1.0) == (2, 32 * 512 + 32 * 448 + 32 * 512)  # every shape its own
    assert shapes.replay(keys, 1.2, 1.0) == (1, 3 * 32 * 512)  # 448 rides in the recorded 512


def test_graph_shapes_lists_each_batch_with_the_parts_the_plan_makes(capsys):
    shapes = load("graph_shapes")
    pieces = [(300, 200, 180)] * 8  # rows of 680 tokens, padded to 704; TRL's two rows hold 980

    def rows(step_tokens):
        shapes.per_step(pieces, 4, 2, seed=0, step_tokens=step_tokens)
        return [line for line in capsys.readouterr().out.splitlines() if line[:3] in ("| 1", "| 2")]

    assert rows(4 * 512) == [f"| {n} | 4 x 704 | 2,816 | 3,920 | 2 + 2 |" for n in (1, 2)]
    assert rows(4 * 704) == [f"| {n} | 4 x 704 | 2,816 | 3,920 | whole |" for n in (1, 2)]


def test_lean_imports_benchmark_times_both_ways_on_the_tiny_model():
    out = run_script("lean_imports", "--runs", "1")
    assert "| all (lean_imports=0) | 1 |" in out and "| lean | 1 |" in out
