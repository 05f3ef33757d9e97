"""The Evaluate screen: evaluates in a worker with progress, shows the table, generations and checks."""

from __future__ import annotations

import json

import pytest
from aligned_run import make_aligned_run
from dpo_tutor.tui.app import DpoTutorApp
from dpo_tutor.tui.context import AppContext

RUN = "20261125-100000-fixture"


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    runs = tmp_path_factory.mktemp("eval-screen") / "runs"
    make_aligned_run(runs / RUN)
    return runs


async def test_evaluate_in_a_worker_then_show_table_generations_checks_and_open_a_lesson(runs_dir):
    from dpo_tutor.engine.evaluate import EvalOptions
    from dpo_tutor.tui.widgets.eval_generations import GenerationPair
    from textual.widgets import DataTable, Select

    app = DpoTutorApp(AppContext(runs_dir=runs_dir))
    async with app.run_test(size=(120, 40)) as pilot:
        app.switch_mode("evaluate")
        await pilot.pause()
        screen = app.screen
        screen.options = EvalOptions(pairs=0, max_new_tokens=4, heldout_probes=1)
        screen.query_one("#eval-run", Select).value = str(runs_dir / RUN)
        await pilot.pause()
        assert "no report yet" in str(screen.query_one("#eval-status").content)
        await pilot.press("e")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert not screen.running
        # Progress came from the worker thread as messages, and the bar reached its end.
        assert {"scoring held-out pairs", "generating answers"} <= set(screen.stages)
        bar = screen.query_one("#eval-progress")
        assert bar.total and bar.progress == bar.total
        report = json.loads((runs_dir / RUN / "report.json").read_text(encoding="utf-8"))
        assert "Wrote report.md" in str(screen.query_one("#eval-status").content)
        table = screen.query_one("#eval-table").query_one(DataTable)
        assert table.row_count == 6
        first = [str(c) for c in table.get_row_at(0)]
        assert first[0] == "DPO implicit reward\naccuracy" and "T/0L" in first[1]  # the base: all ties
        assert str(report["before_after"]["implicit_reward"]["base"]["ties"]) + "T" in first[1]
        assert len(screen.query(GenerationPair)) == len(report["generations"]) == 8
        checks = screen.query_one("#eval-checks")
        assert [c["id"] for c in checks.checks] == [c["id"] for c in report["checks"]]
        # The lesson link: the highlighted check's lesson opens in the Learn area.
        screen.query_one("#eval-tabs").active = "eval-tab-checks"
        await pilot.pause()
        row = next(i for i, c in enumerate(checks.checks) if c["id"] == "kl_to_reference")  # KL -> beta
        checks.query_one(DataTable).move_cursor(row=row)
        await pilot.pause()
        await pilot.press("l")
        await pilot.pause()
        assert app.current_mode == "learn"
        assert app.screen.current_lesson_id == checks.checks[row]["lesson"] == "beta"


async def test_a_run_with_a_report_shows_it_without_evaluating(runs_dir):
    from dpo_tutor.engine.evaluate import EvalOptions, evaluate_run
    from dpo_tutor.engine.report import build_report, write_report
    from textual.widgets import DataTable, Select

    run = runs_dir / RUN
    write_report(run, build_report(run, evaluate_run(run, EvalOptions(pairs=2, generations=False))))
    app = DpoTutorApp(AppContext(runs_dir=runs_dir))
    async with app.run_test(size=(80, 24)) as pilot:
        app.switch_mode("evaluate")
        await pilot.pause()
        app.screen.query_one("#eval-run", Select).value = str(run)
        await pilot.pause()
        assert app.screen.query_one("#eval-table").query_one(DataTable).row_count == 6
        assert not app.screen.running
        assert "Report of" in str(app.screen.query_one(".eval-note").content)
