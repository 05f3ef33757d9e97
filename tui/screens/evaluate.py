"""The Evaluate area: pick a run, evaluate it (in a worker, with progress), read the report.

At the top, the report's verdict in one line (when it has one). Three tabs: the before/after table on
held-out pairs, the generations side by side, and the checks, each with its verdict and the lesson that
explains it (l, or enter on a check, opens the lesson). A run that already has a report.json shows it at
once; `e` (re)evaluates and rewrites it. The run just trained is picked for you; the shipped recordings
(`recorded_runs()`) are offered too, with their saved reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Header, ProgressBar, Select, Static, TabbedContent, TabPane

from ..widgets.eval_checks import ChecksView
from ..widgets.eval_generations import GenerationsView
from ..widgets.eval_table import BeforeAfterTable
from ..widgets.run_select import is_recording, no_runs_message, preferred_run, refill_run_select

VERDICT_STYLE = {"better": "-better", "worse": "-worse", "mixed": "-mixed"}


class EvaluateScreen(Screen):
    DEFAULT_CSS = """
    EvaluateScreen #eval-top { height: 1; }
    EvaluateScreen #eval-run { width: 1fr; }
    EvaluateScreen #eval-progress { width: 24; padding: 0 1; display: none; }
    EvaluateScreen.-running #eval-progress { display: block; }
    EvaluateScreen #eval-verdict { height: auto; padding: 0 1; text-style: bold; display: none; }
    EvaluateScreen #eval-verdict.-shown { display: block; }
    EvaluateScreen #eval-verdict.-better { background: $success-muted; }
    EvaluateScreen #eval-verdict.-worse { background: $error-muted; }
    EvaluateScreen #eval-verdict.-mixed { background: $warning-muted; }
    EvaluateScreen #eval-status { height: auto; padding: 0 1; color: $text-muted; }
    EvaluateScreen #eval-tabs { height: 1fr; }
    EvaluateScreen #eval-tabs ContentSwitcher { height: 1fr; }
    EvaluateScreen #eval-tabs TabPane { height: 1fr; padding: 0; }
    EvaluateScreen .eval-scroll { height: 1fr; }
    """
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("e", "evaluate", "Evaluate", id="eval-run"),
        Binding("ctrl+o,o", "pick_run", "Pick run", id="eval-pick-run"),
        Binding("t", "next_tab", "Next tab (table, generations, checks)", show=False, id="eval-next-tab"),
        Binding("l", "open_lesson", "Lesson", tooltip="open the lesson that explains the check", id="eval-lesson"),
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
        self.auto_picked: str | None = None  # the run this screen picked for the learner

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="eval-top"):
            yield Select([], prompt="Pick a run to evaluate (ctrl+o)", id="eval-run", compact=True)
            yield ProgressBar(id="eval-progress", show_eta=False)
        yield Static("", id="eval-verdict", markup=False)
        yield Static("", id="eval-status", markup=False)
        with TabbedContent(id="eval-tabs"):
            with TabPane("Before / after", id="eval-tab-table"):
                with VerticalScroll(classes="eval-scroll"):
                    yield BeforeAfterTable(id="eval-table")
            with TabPane("Generations", id="eval-tab-generations"):
                yield GenerationsView(id="eval-generations", classes="eval-scroll")
            with TabPane("Checks", id="eval-tab-checks"):
                with VerticalScroll(classes="eval-scroll"):
                    yield ChecksView(id="eval-checks")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.refresh_runs()
        if self.wanted_run:
            self.query_one("#eval-run", Select).value = self.wanted_run

    def on_screen_resume(self) -> None:
        if not self.running:
            self.refresh_runs()

    def refresh_runs(self) -> None:
        select = self.query_one("#eval-run", Select)
        options = refill_run_select(select, self.app.context.runs_dir)
        if not options:
            self.set_status(no_runs_message(self.app.context.runs_dir))
            return
        wanted = preferred_run(self.app, options)
        # Pick for the learner while they have not picked themselves (a run trained since then wins).
        if wanted and not self.wanted_run and (self.run_path is None or self.run_path == self.auto_picked):
            self.auto_picked = wanted
            select.value = wanted
        if self.run_path is None and not self.wanted_run:
            self.set_status("Pick a run (ctrl+o). Its report shows if it has one; e evaluates it (held-out "
                            "pairs, generations, checks) and writes report.md and report.json.")

    def set_status(self, text: str) -> None:
        status = self.query_one("#eval-status", Static)
        status.update(text)
        status.display = bool(text)

    def watch_running(self, running: bool) -> None:
        self.set_class(running, "-running")  # the progress bar shows only while it means something

    def action_pick_run(self) -> None:
        select = self.query_one("#eval-run", Select)
        select.focus()
        select.expanded = True

    def action_next_tab(self) -> None:
        tabs = self.query_one("#eval-tabs", TabbedContent)
        order = ["eval-tab-table", "eval-tab-generations", "eval-tab-checks"]
        tabs.active = order[(order.index(tabs.active) + 1) % len(order)] if tabs.active in order else order[0]

    @on(Select.Changed, "#eval-run")
    async def _run_picked(self, event: Select.Changed) -> None:
        if not isinstance(event.value, str) or self.running:
            return
        self.run_path = str(event.value)
        from dpo_tutor.engine.report import read_report

        name = Path(self.run_path).name
        try:
            report = read_report(self.run_path)
        except (ValueError, RecursionError, OSError) as exc:  # a broken or hand-edited report.json
            report = None
            self.set_status(f"{name}: its report.json cannot be read ({type(exc).__name__}); e evaluates again.")
        if isinstance(report, dict) and isinstance(report.get("before_after"), dict):
            await self.show_report(report)
            # Said under the table, where it does not take a row from it at 80x24.
            if is_recording(self.run_path):
                self.query_one(BeforeAfterTable).add_note(
                    f"Shipped recording: its saved report of {report.get('created', '?')} (no model here to "
                    "evaluate again).")
            else:
                self.query_one(BeforeAfterTable).add_note(f"Report of {report.get('created', '?')}; e evaluates "
                                                          "again.")
            self.set_status("")
        else:
            await self.clear_report()
            if report is not None:
                self.set_status(f"{name}: its report.json has no before/after table; e evaluates again.")
            elif not str(self.query_one("#eval-status", Static).content).startswith(name):
                self.set_status(f"{name} has no report yet: press e to evaluate it.")

    # ---- evaluating --------------------------------------------------------------------------------
    def action_evaluate(self) -> None:
        if self.running:
            self.notify("An evaluation is already running.", title="evaluate")
            return
        if not self.run_path:
            self.notify("Pick a run first (ctrl+o).", title="evaluate", severity="warning")
            return
        if is_recording(self.run_path):
            self.notify("A shipped recording has no adapter to evaluate: its saved report is shown. "
                        "Train a run (3) to evaluate your own.", title="evaluate", severity="warning")
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
        self.show_verdict(report.get("verdict"))
        self.query_one(BeforeAfterTable).show(report)
        await self.query_one(GenerationsView).show(report.get("generations", []))
        verdict = report.get("verdict") if isinstance(report.get("verdict"), dict) else {}
        reasons = verdict.get("reasons") if isinstance(verdict.get("reasons"), list) else None
        self.query_one(ChecksView).show(report.get("checks", []), reasons)

    async def clear_report(self) -> None:
        self.report = None
        self.show_verdict(None)
        self.query_one(BeforeAfterTable).show({"before_after": None})
        await self.query_one(GenerationsView).show(None)
        self.query_one(ChecksView).show([])

    def show_verdict(self, verdict: object) -> str:
        """The report's verdict in one line at the top ("" and hidden when the report has none)."""
        line = self.query_one("#eval-verdict", Static)
        text = ""
        if isinstance(verdict, dict) and (verdict.get("line") or verdict.get("label")):
            label = str(verdict.get("label") or "unknown")
            text = f"Verdict: {verdict.get('line') or label}"
            for cls in VERDICT_STYLE.values():
                line.remove_class(cls)
            if label in VERDICT_STYLE:
                line.add_class(VERDICT_STYLE[label])
        line.update(text)
        line.set_class(bool(text), "-shown")
        return text

    # ---- lessons -----------------------------------------------------------------------------------
    def action_open_lesson(self) -> None:
        check = self.query_one(ChecksView).current
        if check is None or not check.get("lesson"):
            self.notify("No check selected: evaluate or pick a run with a report first.", title="evaluate")
            return
        self.query_one("#eval-tabs", TabbedContent).active = "eval-tab-checks"
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
