"""The Evaluate area: pick a run, evaluate it (in a worker, with progress), read the report.

Three tabs: the before/after table on held-out pairs, the generations side by side, and the checks,
each with its verdict and the lesson that explains it (l, or enter on a check, opens the lesson).
A run that already has a report.json shows it at once; `e` (re)evaluates and rewrites it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Header, ProgressBar, Select, Static, TabbedContent, TabPane

from ..widgets.eval_checks import ChecksView
from ..widgets.eval_generations import GenerationsView
from ..widgets.eval_table import BeforeAfterTable
from ..widgets.run_select import no_runs_message, refill_run_select


class EvaluateScreen(Screen):
    DEFAULT_CSS = """
    EvaluateScreen #eval-top { height: 3; }
    EvaluateScreen #eval-run { width: 1fr; }
    EvaluateScreen #eval-progress { width: 30; padding: 1 1 0 1; }
    EvaluateScreen #eval-status { height: auto; padding: 0 1; color: $text-muted; }
    """
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("e", "evaluate", "Evaluate", id="eval-run"),
        Binding("l", "open_lesson", "Lesson for check", id="eval-lesson"),
        Binding("o", "pick_run", "Pick run", id="eval-pick-run"),
    ]

    running: reactive[bool] = reactive(False)

    @dataclass
    class Progress(Message):
        stage: str
        done: int
        total: int

    @dataclass
    class Done(Message):
        run: str
        report: dict | None
        error: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.run_path: str | None = None
        self.wanted_run: str | None = None  # picked once mounted (command palette)
        self.report: dict | None = None
        self.options = None  # EvalOptions; None = the engine's defaults
        self.stages: list[str] = []  # the stages the running evaluation went through, in order

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="eval-top"):
            yield Select([], prompt="Pick a run to evaluate", id="eval-run")
            yield ProgressBar(id="eval-progress", show_eta=False)
        yield Static("", id="eval-status")
        with TabbedContent(id="eval-tabs"):
            with TabPane("Before / after", id="eval-tab-table"):
                yield BeforeAfterTable(id="eval-table")
            with TabPane("Generations", id="eval-tab-generations"):
                yield GenerationsView(id="eval-generations")
            with TabPane("Checks", id="eval-tab-checks"):
                yield ChecksView(id="eval-checks")
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_runs()
        self.query_one("#eval-run", Select).focus()  # enter or space opens the run list
        if self.wanted_run:
            self.query_one("#eval-run", Select).value = self.wanted_run

    def on_screen_resume(self) -> None:
        if not self.running:
            self.refresh_runs()

    def refresh_runs(self) -> None:
        if not refill_run_select(self.query_one("#eval-run", Select), self.app.context.runs_dir):
            self.set_status(no_runs_message(self.app.context.runs_dir))
        elif self.run_path is None:
            self.set_status("Pick a run. Its report shows if it has one; e evaluates it (held-out pairs, "
                            "generations, checks) and writes report.md and report.json.")

    def set_status(self, text: str) -> None:
        self.query_one("#eval-status", Static).update(text)

    def action_pick_run(self) -> None:
        self.query_one("#eval-run", Select).focus()

    @on(Select.Changed, "#eval-run")
    async def _run_picked(self, event: Select.Changed) -> None:
        if event.value is Select.BLANK or self.running:
            return
        self.run_path = str(event.value)
        from dpo_tutor.engine.report import read_report

        try:
            report = read_report(self.run_path)
        except ValueError:
            report = None
        if report and report.get("before_after"):
            await self.show_report(report)
            self.set_status(f"{Path(self.run_path).name}: report of {report.get('created', '?')}. "
                            "e evaluates again.")
        else:
            self.report = None
            self.set_status(f"{Path(self.run_path).name} has no report yet: press e to evaluate it.")

    # ---- evaluating --------------------------------------------------------------------------------
    def action_evaluate(self) -> None:
        if self.running:
            self.notify("An evaluation is already running.", title="evaluate")
            return
        if not self.run_path:
            self.notify("Pick a run first.", title="evaluate", severity="warning")
            return
        self.running = True
        self.stages = []
        self.query_one("#eval-progress", ProgressBar).update(total=None, progress=0)
        self.set_status(f"Evaluating {Path(self.run_path).name} …")
        self.evaluate(self.run_path)

    @work(thread=True, exclusive=True, group="evaluate", exit_on_error=False)
    def evaluate(self, run: str) -> None:
        from dpo_tutor.engine.errors import UserError
        from dpo_tutor.engine.evaluate import evaluate_run
        from dpo_tutor.engine.report import build_report, write_report

        def progress(stage: str, done: int, total: int) -> None:
            self.post_message(self.Progress(stage, done, total))

        try:
            result = evaluate_run(run, self.options, progress)
            report = build_report(run, result)
            write_report(run, report)
        except Exception as exc:  # noqa: BLE001 - shown to the user, not swallowed
            text = exc.one_line() if isinstance(exc, UserError) else (str(exc) or repr(exc))
            self.post_message(self.Done(run, None, error=text))
            return
        self.post_message(self.Done(run, report))

    @on(Progress)
    def _progress(self, message: Progress) -> None:
        if not self.stages or self.stages[-1] != message.stage:
            self.stages.append(message.stage)
        bar = self.query_one("#eval-progress", ProgressBar)
        bar.update(total=max(1, message.total), progress=message.done)
        self.set_status(f"{message.stage} {message.done}/{message.total}")

    @on(Done)
    async def _done(self, message: Done) -> None:
        self.running = False
        if message.error or message.report is None:
            self.set_status(f"Evaluation failed: {message.error}")
            self.notify(message.error, title="evaluate", severity="error")
            return
        await self.show_report(message.report)
        self.set_status(f"Wrote report.md and report.json into {message.run} "
                        f"({message.report.get('eval_seconds', 0):.0f} s).")

    async def show_report(self, report: dict) -> None:
        self.report = report
        self.query_one(BeforeAfterTable).show(report)
        await self.query_one(GenerationsView).show(report.get("generations", []))
        self.query_one(ChecksView).show(report.get("checks", []))

    # ---- lessons -----------------------------------------------------------------------------------
    def action_open_lesson(self) -> None:
        check = self.query_one(ChecksView).current
        if check is None:
            self.notify("No check selected.", title="evaluate")
            return
        self._open(check["lesson"])

    @on(ChecksView.LessonRequested)
    def _lesson_requested(self, message: ChecksView.LessonRequested) -> None:
        self._open(message.lesson)

    def _open(self, lesson_id: str) -> None:
        from dpo_tutor.engine.errors import UserError

        from .learn import open_lesson

        try:
            open_lesson(self.app, lesson_id)
        except UserError as exc:
            self.notify(exc.one_line(), title="lesson", severity="warning")
