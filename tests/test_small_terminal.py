"""Issue 21's smaller fixes, tested through the widgets: one chart at a time where four do not fit, runs
listed whole, a warning before memorising a few pairs, a run still training re-attached at start, and
every shipped recording offered in Evaluate and Chat."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

from dpo_tutor.engine.presets import PRESETS
from dpo_tutor.engine.recorded.loader import recorded_runs
from dpo_tutor.tui.app import DpoTutorApp
from dpo_tutor.tui.context import AppContext

FIXTURES = Path(__file__).parent / "fixtures" / "runs"


async def test_at_60x20_the_charts_show_one_at_a_time_with_room_for_data(tmp_path):
    from dpo_tutor.tui.widgets.train_charts import MetricChart, TrainCharts

    run = tmp_path / "runs" / "20261125-100000-normal"
    shutil.copytree(FIXTURES / "normal", run)
    app = DpoTutorApp(AppContext(runs_dir=tmp_path / "runs", gpu=False))
    async with app.run_test(size=(60, 20)) as pilot:
        await pilot.press("3")
        await pilot.pause()
        app.screen.open_run(run)
        await app.workers.wait_for_complete()
        await pilot.pause()
        charts = app.screen.query_one(TrainCharts)
        app.screen.redraw_charts()
        await pilot.pause()
        shown = [c for c in charts.query(MetricChart) if c.display and c.size.height]
        assert charts.has_class("-one") and [c.id for c in shown] == ["chart-loss"]
        assert shown[0].size.height >= 8 and shown[0].points_drawn > 0
        await pilot.press("c")
        await pilot.pause()
        assert [c.id for c in charts.query(MetricChart) if c.has_class("-current")] == ["chart-margin"]


def test_the_runs_list_names_every_run_whole_in_short_lines():
    from dpo_tutor.engine.runs import run_info
    from dpo_tutor.tui.widgets.train_runs import RunRow, row_lines

    for path in [FIXTURES / "normal", *recorded_runs()]:
        text = row_lines(RunRow(run_info(path), recorded=path.parent != FIXTURES))
        assert path.name in text and "loss" in text and "step" in text
        assert all(len(line) <= 38 for line in text.splitlines()), text


def test_many_steps_over_a_few_pairs_warn_about_memorising():
    from dpo_tutor.tui.widgets.train_form import FIELDS, memorising_warning

    assert "max_pairs" in FIELDS  # the form shows it
    look = PRESETS["cpu-look"].apply()
    assert memorising_warning(look.replace(max_pairs=48, max_steps=12, batch_size=4, grad_accum=1)) is None
    warning = memorising_warning(look.replace(max_pairs=48, max_steps=1500, batch_size=4, grad_accum=1))
    assert warning and "125 passes" in warning and "memorise" in warning


async def test_a_run_still_training_is_reattached_when_the_app_opens(tmp_path):
    from dpo_tutor.tui.run_watcher import watcher_of

    run = tmp_path / "runs" / "20261125-100000-running"
    run.mkdir(parents=True)
    events = [json.loads(line) for line in (FIXTURES / "normal" / "events.jsonl").read_text().splitlines()]
    events = [e for e in events if e["type"] not in ("finished",)][:20]
    events[0].update(pid=os.getpid(), host=socket.gethostname())  # alive: this very process
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    app = DpoTutorApp(AppContext(runs_dir=tmp_path / "runs", gpu=False, reattach=True))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.5)
        state = watcher_of(app).state
        assert state is not None and state.mode == "attached" and state.path == run
        watcher_of(app).cancel()


def test_evaluate_and_chat_offer_every_shipped_recording(tmp_path):
    from dpo_tutor.tui.widgets.run_select import run_options

    offered = [path for _, path in run_options(tmp_path)]
    assert offered == [str(p) for p in recorded_runs() if (p / "report.json").is_file()]
    assert offered  # at least the over-refusal case file ships with its report
