"""A check question: options picked with letter keys (or arrows and enter, or a click), feedback shown.

The options appear in an order fixed per learner (the learner's seed and the quiz's id), so the right
answer is not always (b). A quiz with `run:` fills `{margin}`, `{delta}`, ... from that run's numbers.
A quiz with `reveal: yes` asks for a prediction; the Learn screen shows the part after it once answered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from dpo_tutor.engine.lessons import option_order
from dpo_tutor.engine.run_facts import Missing, fill
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Static

from .lesson_context import LessonContext

LETTERS = "abcdefgh"


class QuizOption(Static):
    """One answer, at display position `index`; a click picks it."""

    def __init__(self, index: int, text: str) -> None:
        super().__init__(f"{LETTERS[index]}) {text}", classes="quiz-option", markup=False)
        self.index = index

    def on_click(self) -> None:
        quiz = next(a for a in self.ancestors if isinstance(a, Quiz))
        quiz.focus()
        quiz.choose(self.index)


class Quiz(Vertical, can_focus=True):
    """`spec` is a quiz WidgetSpec's params: question, options, answer_index, feedback, explanation."""

    DEFAULT_CSS = """
    Quiz {
        height: auto; border: round $secondary; padding: 0 1; margin: 1 0;
    }
    Quiz:focus-within, Quiz:focus { border: round $accent; }
    Quiz .quiz-question { text-style: bold; margin-bottom: 1; }
    Quiz .quiz-option { padding-left: 1; }
    Quiz .quiz-option.-cursor { background: $boost; text-style: bold; }
    Quiz .quiz-option.-right { color: $success; }
    Quiz .quiz-option.-wrong { color: $error; }
    Quiz .quiz-feedback { margin-top: 1; display: none; }
    Quiz.-answered .quiz-feedback { display: block; }
    Quiz .quiz-hint { color: $text-muted; }
    Quiz .quiz-predict { color: $accent; text-style: bold; }
    Quiz .quiz-missing { color: $warning; }
    Quiz.-answered .quiz-hint { display: none; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "choose(0)", "Answer a", id="quiz-a", show=False),
        Binding("b", "choose(1)", "Answer b", id="quiz-b", show=False),
        Binding("c", "choose(2)", "Answer c", id="quiz-c", show=False),
        Binding("d", "choose(3)", "Answer d", id="quiz-d", show=False),
        Binding("e", "choose(4)", "Answer e", id="quiz-e", show=False),
        Binding("up", "move(-1)", "Previous option", id="quiz-up", show=False),
        Binding("down", "move(1)", "Next option", id="quiz-down", show=False),
        Binding("enter", "choose_cursor", "Answer", id="quiz-enter"),
    ]

    @dataclass
    class Answered(Message):
        quiz: Quiz
        choice: int
        correct: bool

    cursor: reactive[int] = reactive(0)
    choice: reactive[int | None] = reactive(None)

    def __init__(self, params: dict, context: LessonContext | None = None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.params = params
        self.context = context or LessonContext()
        self.quiz_id: str = params.get("quiz_id", params["question"])
        self.missing: str | None = None
        self._text = self._filler()
        authored = [self._text(o) for o in params["options"]]
        # order[k] is the authored index of the option shown at position k
        self.order = option_order(self.context.learner.seed, self.quiz_id, len(authored))
        self.options: list[str] = [authored[i] for i in self.order]
        self.answer_index: int = self.order.index(params["answer_index"])
        self.predict: bool = bool(params.get("reveal"))
        self.reveals: list = []  # what the Learn screen shows once this quiz is answered

    def _filler(self):
        which = self.params.get("run")
        if not which:
            return lambda text: text
        facts = self.context.facts(which)
        if isinstance(facts, Missing):
            self.missing = facts.why
        return lambda text: fill(text, facts)

    def compose(self) -> ComposeResult:
        if self.predict:
            yield Static("Predict first: the part below appears once you answer.", classes="quiz-predict")
        yield Static(self._text(self.params["question"]), classes="quiz-question", markup=False)
        for i, text in enumerate(self.options):
            yield QuizOption(i, text)
        if self.missing:
            yield Static(f"(numbers unavailable: {self.missing})", classes="quiz-missing", markup=False)
        letters = "/".join(LETTERS[: len(self.options)])
        yield Static(f"press {letters}, or up/down and enter", classes="quiz-hint")
        yield Static("", classes="quiz-feedback", markup=False)

    def on_mount(self) -> None:
        self.watch_cursor(self.cursor)

    def validate_cursor(self, value: int) -> int:
        return max(0, min(value, len(self.options) - 1))

    def watch_cursor(self, value: int) -> None:
        for option in self.query(QuizOption):
            option.set_class(option.index == value and self.has_focus, "-cursor")

    def on_focus(self) -> None:
        self.watch_cursor(self.cursor)

    def on_blur(self) -> None:
        self.watch_cursor(self.cursor)

    def action_move(self, step: int) -> None:
        self.cursor += step

    def action_choose_cursor(self) -> None:
        self.choose(self.cursor)

    def action_choose(self, index: int) -> None:
        if index < len(self.options):
            self.choose(index)

    def choose(self, index: int) -> None:
        self.cursor = index
        self.choice = index

    def watch_choice(self, choice: int | None) -> None:
        if choice is None:
            return
        correct = choice == self.answer_index
        for option in self.query(QuizOption):
            option.set_class(option.index == choice and correct, "-right")
            option.set_class(option.index == choice and not correct, "-wrong")
        self.query_one(".quiz-feedback", Static).update(self.feedback_text(choice))
        self.add_class("-answered")
        self.post_message(self.Answered(self, choice, correct))

    def feedback_text(self, choice: int) -> str:
        correct = choice == self.answer_index
        verdict = "Correct." if correct else f"Not quite: the answer is {LETTERS[self.answer_index]})."
        parts = [verdict]
        specific = self.params["feedback"][self.order[choice]]
        if specific:
            text = self._text(specific)
            if correct:  # "Correct." already says it: no "Correct. Right." twice
                text = re.sub(r"^(Right|Yes)[.:]\s+", "", text)
                text = text[:1].upper() + text[1:]
            parts.append(text)
        if self.params.get("explanation"):
            parts.append(self._text(self.params["explanation"]))
        return " ".join(parts)
