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
