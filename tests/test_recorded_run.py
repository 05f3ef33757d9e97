"""The real recorded run that ships for classrooms without a GPU: it is real, and it replays as a replay."""

from __future__ import annotations

from dpo_tutor.engine.events import read_events, summarize
from dpo_tutor.engine.recorded.loader import recorded_runs
from dpo_tutor.tui.app import DpoTutorApp
from dpo_tutor.tui.context import AppContext
from dpo_tutor.tui.metrics_store import LOSS
from dpo_tutor.tui.run_watcher import watcher_of
from dpo_tutor.tui.screens.train import TrainScreen


def test_a_real_gpu_recording_ships_with_the_package():
    runs = recorded_runs()
    assert runs, "no recorded run ships with the package"
    events = read_events(runs[0])
    started = events[0]
    assert started["type"] == "run_started" and "H100" in started["gpu_name"] and started["device"] == "cuda"
    summary = summarize(events)
    assert summary.state == "finished" and summary.step == summary.total_steps == 128
    steps = [e for e in events if e["type"] == "step"]
    assert len(steps) == 128
    # The default recipe's promise, as recorded: train loss <= 0.45 and accuracy >= 0.75 at the end.
    tail = [s["metrics"] for s in steps[-10:]]
    assert sum(m["loss"] for m in tail) / 10 <= 0.45
    assert sum(m["rewards/accuracies"] for m in tail) / 10 >= 0.75
    assert (runs[0] / "report.md").exists()


async def test_the_recording_replays_and_says_it_is_a_replay(tmp_path):
    run = recorded_runs()[0]
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
        assert state.store.steps_logged() == 128
        text = str(screen.query_one("#status-line").render())
        assert text.startswith("REPLAY of") and "NVIDIA H100" in text
        assert state.store.last(LOSS) < 0.5
