"""The Learn area: the lesson list and the lesson body (Markdown parts and interactive widgets).

At launch the lesson text has focus, so Down and Page Down read on (the list is one Tab or a click
away). Below 100 columns the list folds away to give tables the width they need; `l` shows it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import ClassVar

from dpo_tutor.engine.errors import UserError
from dpo_tutor.engine.lessons import (
    Lesson,
    MarkdownPart,
    WidgetSpec,
    find_lesson,
    load_learner,
    load_lessons,
)
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Header, Markdown, OptionList, Static
from textual.widgets.option_list import Option

from ..widgets.lesson_context import LessonContext
from ..widgets.quiz import Quiz

# directive name -> (module under dpo_tutor.tui.widgets, class); imported when a lesson needs it,
# so plotext is loaded only when the beta explorer is first shown.
WIDGETS: dict[str, tuple[str, str]] = {
    "beta-explorer": ("beta_explorer", "BetaExplorer"),
    "worked-example": ("worked_example", "WorkedExample"),
    "quiz": ("quiz", "Quiz"),
    "run-facts": ("run_facts", "RunFactsView"),
    "run-compare": ("run_compare", "RunCompare"),
    "loss-compare": ("loss_compare", "LossCompare"),
}


def build_widget(spec: WidgetSpec, context: LessonContext | None = None) -> Widget:
    module, cls = WIDGETS[spec.widget]
    widget_class = getattr(importlib.import_module(f"dpo_tutor.tui.widgets.{module}"), cls)
    return widget_class(spec.params, context)


class LearnScreen(Screen):
    area_title = "Learn"
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-narrow"), (100, "-wide")]
    DEFAULT_CSS = """
    LearnScreen #lesson-list { width: 30; border-right: vkey $panel-lighten-2; }
    LearnScreen.-narrow #lesson-list { display: none; }
    LearnScreen.-narrow.-list-shown #lesson-list { display: block; }
    LearnScreen #lesson-body { padding: 0 1; }
    LearnScreen #lesson-body:focus { background-tint: $foreground 0%; }
    LearnScreen #lesson-meta { color: $text-muted; }
    LearnScreen .-until-answered { display: none; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "next_lesson", "Next lesson", id="learn-next"),
        Binding("p", "previous_lesson", "Prev lesson", id="learn-prev"),
        Binding("right", "next_lesson", "Next lesson", id="learn-next-arrow", show=False, priority=True),
        Binding("left", "previous_lesson", "Prev lesson", id="learn-prev-arrow", show=False, priority=True),
        Binding("tab", "app.focus_next", "Next part", id="learn-focus-next"),
        Binding("l", "toggle_list", "Lessons", id="learn-toggle-list"),
    ]

    @dataclass
    class LessonShown(Message):
        lesson_id: str

    index: reactive[int] = reactive(0, init=False)

    def __init__(self) -> None:
        super().__init__()
        self.lessons: list[Lesson] = load_lessons()
        self.learner = load_learner()
        self.lesson_context = LessonContext(learner=self.learner)

    @property
    def lesson(self) -> Lesson:
        return self.lessons[self.index]

    @property
    def current_lesson_id(self) -> str:
        return self.lesson.id

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            yield OptionList(
                *(Option(f"{lesson.order:>2}. {lesson.title}", id=lesson.id) for lesson in self.lessons),
                id="lesson-list",
            )
            yield VerticalScroll(id="lesson-body")
        yield Footer()

    async def on_mount(self) -> None:
        context = getattr(self.app, "context", None)
        self.lesson_context.runs_dir = getattr(context, "runs_dir", None)
        wanted = context and context.lesson
        start = 0
        if wanted:
            try:
                start = find_lesson(self.lessons, wanted)
            except UserError as exc:
                self.notify(exc.one_line(), title="--lesson", severity="warning")
        self.set_reactive(LearnScreen.index, start)
        await self.show_lesson()
        self.query_one("#lesson-body", VerticalScroll).focus()

    def validate_index(self, value: int) -> int:
        return max(0, min(value, len(self.lessons) - 1))

    async def watch_index(self) -> None:
        await self.show_lesson()

    def select_lesson(self, lesson_id: str) -> None:
        index = find_lesson(self.lessons, lesson_id)
        if self.is_mounted:
            self.index = index
        else:
            self.set_reactive(LearnScreen.index, index)

    def action_next_lesson(self) -> None:
        self.index += 1

    def action_previous_lesson(self) -> None:
        self.index -= 1

    def action_toggle_list(self) -> None:
        """Show or hide the lesson list (it folds away below 100 columns)."""
        if self.has_class("-narrow"):
            shown = not self.has_class("-list-shown")
            self.set_class(shown, "-list-shown")
            if shown:
                self.query_one("#lesson-list", OptionList).focus()
            else:
                self.query_one("#lesson-body", VerticalScroll).focus()
        else:
            self.query_one("#lesson-list", OptionList).focus()

    @on(Quiz.Answered)
    def _quiz_answered(self, event: Quiz.Answered) -> None:
        """Keep the first answer as the lesson's score, and show what a prediction was hiding."""
        for widget in event.quiz.reveals:
            widget.remove_class("-until-answered")
        if self.learner.record(event.quiz.quiz_id, event.correct) and not self.learner.save():
            self.notify("Quiz scores cannot be saved here; they last this session.", severity="warning")
        self.query_one("#lesson-meta", Static).update(self._meta_text(self.lesson))
    @on(OptionList.OptionSelected, "#lesson-list")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.index = event.option_index
        if self.has_class("-list-shown"):
            self.remove_class("-list-shown")
            self.query_one("#lesson-body", VerticalScroll).focus()

    async def show_lesson(self) -> None:
        lesson = self.lesson
        self.query_one("#lesson-list", OptionList).highlighted = self.index
        body = self.query_one("#lesson-body", VerticalScroll)
        self.lesson_context.forget_runs()
        with self.app.batch_update():
            await body.remove_children()
            await body.mount_all(self._lesson_widgets(lesson))
            body.scroll_home(animate=False)
        self.sub_title = f"Lesson {lesson.order}: {lesson.title}"
        walkthrough = getattr(self.app, "walkthrough_controller", None)
        if walkthrough is not None:
            walkthrough.lesson_shown(lesson.id)
        self.post_message(self.LessonShown(lesson.id))

    def _meta_text(self, lesson: Lesson) -> str:
        text = f"Lesson {lesson.order} of {len(self.lessons)} · {lesson.segment} · {lesson.duration} min"
        right, answered, total = self.learner.lesson_score(lesson)
        if total:
            text += f" · quiz {right}/{total} right first time" if answered else f" · {total} questions"
        return text

    def _lesson_widgets(self, lesson: Lesson) -> list[Widget]:
        widgets: list[Widget] = [Static(self._meta_text(lesson), id="lesson-meta", markup=False)]
        predicting: Quiz | None = None
        for part in lesson.parts:
            if isinstance(part, MarkdownPart):
                widget: Widget = Markdown(part.text)
            else:
                widget = build_widget(part, self.lesson_context)
            if predicting is not None:  # a "predict, then reveal" quiz hides up to the next widget
                predicting.reveals.append(widget)
                widget.add_class("-until-answered")
                if not isinstance(part, MarkdownPart):
                    predicting = None
            if isinstance(widget, Quiz) and widget.predict and widget.quiz_id not in self.learner.answers:
                predicting = widget  # a prediction made in an earlier session hides nothing
            widgets.append(widget)
        return widgets


def open_lesson(app, lesson_id: str) -> None:
    """Show the Learn area at this lesson (palette, walkthrough, --lesson)."""
    app.switch_mode("learn")
    screen = app.screen
    if isinstance(screen, LearnScreen):
        screen.select_lesson(lesson_id)
