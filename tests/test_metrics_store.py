"""The Train screen's metrics store, replay pacing, presets and the recorded-run loader (no UI)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from dpo_tutor.engine.config import TrainConfig
from dpo_tutor.engine.events import read_events
from dpo_tutor.engine.presets import PRESETS, preset
from dpo_tutor.engine.recorded.loader import recorded_runs
from dpo_tutor.tui.metrics_store import LOSS, MARGIN, MetricsStore, Series, downsample
from dpo_tutor.tui.replay import MAX_GAP_S, replay_delays

FIXTURES = Path(__file__).parent / "fixtures" / "runs"


def test_smoothing_is_debiased_ema():
    s = Series(weight=0.5)
    for step, v in enumerate([1.0, 0.0, 0.0], start=1):
        s.add(step, v)
    # EMA without debias: 0.5, 0.25, 0.125; debiased by 1-0.5^t: 1.0, 0.333.., 0.142857..
    assert s.smooth == pytest.approx([1.0, 0.25 / 0.75, 0.125 / 0.875])
    assert s.values == [1.0, 0.0, 0.0]


def test_downsample_averages_buckets_and_keeps_the_newest_point():
    xs = [float(i) for i in range(1, 1001)]
    ys = [float(i % 2) for i in range(1, 1001)]
    dx, dy = downsample(xs, ys, 100)
    assert len(dx) == 100
    assert dx[0] == pytest.approx(5.5)  # mean of steps 1..10
    assert dy[0] == pytest.approx(0.5)
    assert (dx[-1], dy[-1]) == (1000.0, 0.0)
    assert downsample([1.0, 2.0], [3.0, 4.0], 100) == ([1.0, 2.0], [3.0, 4.0])


def test_view_of_a_long_series_is_downsampled_but_counts_every_point():
    store = MetricsStore()
    for step in range(1, 5001):
        store.add_step(step, {"loss": 0.7 * math.exp(-step / 1000), "note": "text is ignored"})
    view = store.view(LOSS, max_points=120)
    assert view.total_points == 5000
    assert len(view.steps) == len(view.raw) == len(view.smooth) == 120
    assert view.raw[0] > view.raw[-1]
    assert "note" not in store.train


def test_a_logged_again_step_replaces_what_came_after_it():
    store = MetricsStore()
    for step in range(1, 11):
        store.add_step(step, {"loss": 1.0})
    store.add_step(6, {"loss": 0.5})
    assert store.train[LOSS].steps == [1, 2, 3, 4, 5, 6]
    assert store.train[LOSS].values[-1] == 0.5


def test_resumed_fixture_gives_one_clean_curve():
    store = MetricsStore()
    for event in read_events(FIXTURES / "resumed"):
        store.apply(event)
    steps = store.train[LOSS].steps
    assert steps == [float(s) for s in range(1, 61)]
    assert len(store.eval["eval_loss"]) == 3  # evals at 20 (first segment), 40, 60


def test_normal_fixture_curves_move_the_way_dpo_moves():
    store = MetricsStore()
    for event in read_events(FIXTURES / "normal"):
        store.apply(event)
    loss = store.train[LOSS]
    margin = store.train[MARGIN]
    assert len(loss) == 60
    assert loss.smooth[0] > 0.6 and loss.smooth[-1] < 0.5
    assert margin.smooth[-1] > margin.smooth[0] + 0.5
    assert store.eval_view(LOSS).steps == [20.0, 40.0, 60.0]


def test_replay_delays_follow_recorded_time_scaled_and_capped():
    events = [{"type": "a", "time": 0.0}, {"type": "b", "time": 1.0}, {"type": "c", "time": 41.0}]
    assert replay_delays(events, 0) == [0.0, 0.0, 0.0]
    assert replay_delays(events, 2.0) == [0.0, 0.5, MAX_GAP_S]
    assert replay_delays(events, 100.0) == [0.0, 0.01, 0.4]


def test_presets_are_valid_configs():
    assert [p.label for p in PRESETS.values()] == [
        "quick demo (1 min)", "CPU look (~2 min, no GPU)", "lesson run (~1 min on a GPU, the video segment)",
        "two epochs (an overfitting experiment)", "low memory (< 1.5 GiB of GPU memory)"]
    for p in PRESETS.values():
        config = p.apply()
        assert isinstance(config, TrainConfig)
        assert config.validate()[0] == []
    assert preset("quick-demo").apply().max_steps == PRESETS["quick-demo"].overrides["max_steps"]


def test_recorded_runs_lists_only_folders_with_a_log(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "run-a").mkdir()
    (tmp_path / "run-a" / "events.jsonl").write_text("")
    assert recorded_runs(tmp_path) == [tmp_path / "run-a"]
    assert all((p / "events.jsonl").is_file() for p in recorded_runs())


def test_every_preset_sets_what_another_preset_changes():
    """Presets apply over the form's current settings: a key one preset sets, every preset must set,
    or switching from it leaves its value behind (the CPU look's checkpointing off in the GPU demo)."""
    keys = {key for p in PRESETS.values() for key in p.overrides}
    for p in PRESETS.values():
        assert keys - set(p.overrides) == set(), p.key


def test_cpu_time_warning_and_the_default_preset():
    from dpo_tutor.engine.presets import cpu_time_warning, default_preset

    assert default_preset(gpu=True) == "quick-demo" and default_preset(gpu=False) == "cpu-look"
    demo = preset("quick-demo").apply()
    assert cpu_time_warning(demo, gpu=True) is None
    warning = cpu_time_warning(demo, gpu=False)
    assert warning.startswith("No GPU found") and "1,280 pairs: ~21-71 min" in warning
    assert cpu_time_warning(preset("cpu-look").apply(), gpu=False) is None  # 48 pairs: minutes
    assert cpu_time_warning(demo.replace(model="tiny"), gpu=False) is None  # the random test model is quick
    assert "every pair for 1 epoch: hours" in cpu_time_warning(preset("lesson-run").apply(), gpu=False)
