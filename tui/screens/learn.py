"""The Learn area: the lesson list and the lesson body (Markdown parts and interactive widgets)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import ClassVar

from dpo_tutor.engine.errors import UserError
from dpo_tutor.engine.lessons import Lesson, MarkdownPart, WidgetSpec, find_lesson, load_lessons
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

# directive name -> (module under dpo_tutor.tui.widgets, class); imported when a lesson needs it,
# so plotext is loaded only when the beta explorer is first shown.
WIDGETS: dict[str, tuple[str, str]] = {
    "beta-explorer": ("beta_explorer", "BetaExplorer"),
    "worked-example": ("worked_example", "WorkedExample"),
    "quiz": ("quiz", "Quiz"),
}


def build_widget(spec: WidgetSpec) -> Widget:
    module, cls = WIDGETS[spec.widget]
    widget_class = getattr(importlib.import_module(f"dpo_tutor.tui.widgets.{module}"), cls)
    return widget_class(spec.params)


class LearnScreen(Screen):
    area_title = "Learn"
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-narrow"), (76, "-wide")]
    DEFAULT_CSS = """
    LearnScreen #lesson-list { width: 30; border-right: vkey $panel-lighten-2; }
    LearnScreen.-narrow #lesson-list { display: none; }
    LearnScreen #lesson-body { padding: 0 1; }
    LearnScreen #lesson-meta { color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "next_lesson", "Next lesson", id="learn-next"),
        Binding("p", "previous_lesson", "Prev lesson", id="learn-prev"),
        Binding("right", "next_lesson", "Next lesson", id="learn-next-arrow", show=False, priority=True),
        Binding("left", "previous_lesson", "Prev lesson", id="learn-prev-arrow", show=False, priority=True),
        Binding("tab", "app.focus_next", "Next part", id="learn-focus-next"),
    ]

    @dataclass
    class LessonShown(Message):
        lesson_id: str

    index: reactive[int] = reactive(0, init=False)

    def __init__(self) -> None:
        super().__init__()
        self.lessons: list[Lesson] = load_lessons()

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
        wanted = getattr(self.app, "context", None) and self.app.context.lesson
        start = 0
        if wanted:
            try:
                start = find_lesson(self.lessons, wanted)
            except UserError as exc:
                self.notify(exc.one_line(), title="--lesson", severity="warning")
        self.set_reactive(LearnScreen.index, start)
        await self.show_lesson()

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

    @on(OptionList.OptionSelected, "#lesson-list")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.index = event.option_index

    async def show_lesson(self) -> None:
        lesson = self.lesson
        self.query_one("#lesson-list", OptionList).highlighted = self.index
        body = self.query_one("#lesson-body", VerticalScroll)
        with self.app.batch_update():
            await body.remove_children()
            await body.mount_all(self._lesson_widgets(lesson))
            body.scroll_home(animate=False)
        self.sub_title = f"Lesson {lesson.order}: {lesson.title}"
        walkthrough = getattr(self.app, "walkthrough_controller", None)
        if walkthrough is not None:
            walkthrough.lesson_shown(lesson.id)
        self.post_message(self.LessonShown(lesson.id))

    def _lesson_widgets(self, lesson: Lesson) -> list[Widget]:
        widgets: list[Widget] = [
            Static(
                f"Lesson {lesson.order} of {len(self.lessons)} · {lesson.segment} · {lesson.duration} min",
                id="lesson-meta",
                markup=False,
            )
        ]
        for part in lesson.parts:
            if isinstance(part, MarkdownPart):
                widgets.append(Markdown(part.text))
            else:
                widgets.append(build_widget(part))
        return widgets


def open_lesson(app, lesson_id: str) -> None:
    """Show the Learn area at this lesson (palette, walkthrough, --lesson)."""
    app.switch_mode("learn")
    screen = app.screen
    if isinstance(screen, LearnScreen):
        screen.select_lesson(lesson_id)
