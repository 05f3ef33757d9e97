"""The real recorded runs that ship for classrooms without a GPU: they are real, and they replay as replays."""

from __future__ import annotations

import json

from dpo_tutor.engine.events import read_events, summarize
from dpo_tutor.engine.recorded.loader import recorded_runs
from dpo_tutor.tui.app import DpoTutorApp
from dpo_tutor.tui.context import AppContext
from dpo_tutor.tui.metrics_store import LOSS
from dpo_tutor.tui.run_watcher import watcher_of
from dpo_tutor.tui.screens.train import TrainScreen

RECORDED = {p.name: p for p in recorded_runs()}


def test_the_default_recipe_and_the_over_refusal_case_ship_with_the_package():
    assert set(RECORDED) >= {"default-recipe-h200", "over-refusal-h100"}
    # the default recipe: one epoch, every check ok, its answers as fluent as the base's
    events = read_events(RECORDED["default-recipe-h200"])
    assert events[0]["type"] == "run_started" and "H200" in events[0]["gpu_name"] and events[0]["device"] == "cuda"
    summary = summarize(events)
    assert summary.state == "finished" and summary.step == summary.total_steps == 96
    report = json.loads((RECORDED["default-recipe-h200"] / "report.json").read_text(encoding="utf-8"))
    assert [c["status"] for c in report["checks"]] == ["ok"] * len(report["checks"])
    assert report["verdict"]["label"] == "mixed" and report["degeneration"]["aligned"]["loops"] <= 0.1
    # the over-refusal case: its charts look healthy (loss <= 0.45, accuracy >= 0.75 at the end) ...
    events = read_events(RECORDED["over-refusal-h100"])
    assert "H100" in events[0]["gpu_name"] and summarize(events).step == 128
    tail = [e["metrics"] for e in events if e["type"] == "step"][-10:]
    assert sum(m["loss"] for m in tail) / 10 <= 0.45
    assert sum(m["rewards/accuracies"] for m in tail) / 10 >= 0.75
    # ... while its report found the model refusing harmless questions
    report = (RECORDED["over-refusal-h100"] / "report.md").read_text(encoding="utf-8")
    assert "80% aligned vs 10% base" in report


async def test_the_recording_replays_and_says_it_is_a_replay(tmp_path):
    run = RECORDED["default-recipe-h200"]
    app = DpoTutorApp(AppContext(runs_dir=tmp_path))
    async with app.run_test(size=(140, 44)) as pilot:
        await pilot.press("3")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, TrainScreen)
        assert screen.open_run(run) == "replay"
        await app.workers.wait_for_complete()
        await pilot.pause()
        state = watcher_of(app).state
        assert state.store.steps_logged() == 96
        text = str(screen.query_one("#status-line").render())
        assert text.startswith("REPLAY of") and "NVIDIA H200" in text
        assert state.store.last(LOSS) < 0.69
