"""Lessons: Markdown files with front matter and `dpo-widget` directive blocks, parsed without any UI.

A lesson file looks like this::

    ---
    id: dpo-loss
    title: The DPO loss
    order: 4
    duration: 4
    segment: Concepts
    notes: What the presenter says on this screen, one paragraph.
    ---
    # Markdown ...

    ```dpo-widget
    widget: beta-explorer
    betas: 0.1, 0.5, 1.0
    ```

`parse_lesson` splits the body into `MarkdownPart`s and `WidgetSpec`s, checking every directive
against its schema; anything malformed raises `LessonError` naming the file and the line.
"""

from __future__ import annotations

import json
import math
import random
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError

# the video's five segments, then "Appendix": lessons the 15-minute walkthrough does not stop at
SEGMENTS = ("Introduction", "Concepts", "Dataset", "Training", "Results", "Appendix")
DIRECTIVE = "dpo-widget"
FILE_PATTERN = re.compile(r"^\d\d-[a-z0-9-]+\.md$")


class LessonError(UserError):
    """A lesson file is malformed; `where` is `file:line`."""


@dataclass(frozen=True)
class MarkdownPart:
    text: str
    line: int


@dataclass(frozen=True)
class WidgetSpec:
    """One interactive block: `widget` names it, `params` holds the checked, typed values."""

    widget: str
    params: dict = field(default_factory=dict)
    line: int = 0


@dataclass(frozen=True)
class Lesson:
    id: str
    title: str
    order: int
    duration: int
    segment: str
    notes: str
    parts: list = field(default_factory=list)
    path: str = ""

    @property
    def widgets(self) -> list[WidgetSpec]:
        return [p for p in self.parts if isinstance(p, WidgetSpec)]

    @property
    def markdown(self) -> str:
        return "\n\n".join(p.text for p in self.parts if isinstance(p, MarkdownPart))


# -- value parsers: each takes the raw string and returns a value or raises ValueError ---------------


def _text(raw: str) -> str:
    if not raw.strip():
        raise ValueError("is empty")
    return raw.strip()


def _float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"is not a number: {raw!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"is not a finite number: {raw!r}")
    return value


def _positive(raw: str) -> float:
    value = _float(raw)
    if value <= 0:
        raise ValueError(f"must be positive, got {raw}")
    return value


def _int(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"is not a whole number: {raw!r}") from None


def _betas(raw: str) -> list[float]:
    values = [_positive(part.strip()) for part in raw.split(",") if part.strip()]
    if not values:
        raise ValueError("lists no beta")
    return values


def _run(raw: str) -> str:
    value = raw.strip()
    if value == "latest" or (value.startswith("recording:") and value.split(":", 1)[1].strip()):
        return value
    raise ValueError(f"must be 'latest' or 'recording:<name>', got {raw!r}")


def _facts(raw: str) -> list[str]:
    from .run_facts import FACT_KEYS

    values = [part.strip() for part in raw.split(",") if part.strip()]
    unknown = [v for v in values if v not in FACT_KEYS]
    if not values or unknown:
        raise ValueError(f"names unknown facts {unknown} (known: {', '.join(FACT_KEYS)})")
    return values


def _count(raw: str) -> int:
    value = _int(raw)
    if value <= 0:
        raise ValueError(f"must be a positive whole number, got {raw}")
    return value


def _yes(raw: str) -> bool:
    if raw.strip() not in ("yes", "no"):
        raise ValueError(f"must be yes or no, got {raw!r}")
    return raw.strip() == "yes"


def _options(raw: str) -> list[str]:
    values = [part.strip() for part in raw.split("|")]
    if len(values) < 2 or not all(values):
        raise ValueError("needs at least two non-empty options separated by ' | '")
    return values


# widget -> key -> (parser, required)
SCHEMAS: dict[str, dict[str, tuple[Callable[[str], object], bool]]] = {
    "beta-explorer": {
        "betas": (_betas, True),
        "caption": (_text, False),
        # overlay the run's logged deltas (rewards/margins / beta per step) on the curves
        "run": (_run, False),
    },
    # sentences with the numbers of the learner's latest run, or of a shipped recording
    "run-facts": {
        "run": (_run, True),
        "show": (_facts, True),
        "title": (_text, False),
    },
    # two runs side by side (the case file: the failure and the fixed default)
    "run-compare": {
        "left": (_run, True),
        "right": (_run, True),
        "title": (_text, False),
    },
    # sigmoid, IPO, robust and SimPO-style losses on one real pair (engine/dpo_math.loss_variants)
    "loss-compare": {
        "source": (_text, True),
        "policy_chosen": (_float, True),
        "policy_rejected": (_float, True),
        "ref_chosen": (_float, True),
        "ref_rejected": (_float, True),
        "chosen_tokens": (_count, True),
        "rejected_tokens": (_count, True),
        "beta": (_positive, True),
        "note": (_text, False),
    },
    "worked-example": {
        "source": (_text, True),
        "prompt": (_text, True),
        "chosen": (_text, True),
        "rejected": (_text, True),
        "policy_chosen": (_float, True),
        "policy_rejected": (_float, True),
        "ref_chosen": (_float, True),
        "ref_rejected": (_float, True),
        "beta": (_positive, True),
        "betas": (_betas, False),
        "policy_note": (_text, False),
        "ref_note": (_text, False),
    },
    "quiz": {
        "question": (_text, True),
        "options": (_options, True),
        "answer": (_int, True),
        "explanation": (_text, False),
        # "predict, then reveal": the parts after this quiz, up to and including the next widget,
        # stay hidden until it is answered
        "reveal": (_yes, False),
        # fill {margin}, {delta}, ... in the question, options and feedback from this run's numbers
        "run": (_run, False),
        # feedback_1 ... feedback_N are checked in _check_quiz
    },
}

FEEDBACK_KEY = re.compile(r"^feedback_(\d+)$")


def _fail(path: str, line: int, message: str) -> LessonError:
    return LessonError(message, where=f"{path}:{line}")


def _split_front_matter(lines: list[str], path: str) -> tuple[dict[str, str], int]:
    """The `key: value` lines between the first two `---`, and the index of the first body line."""
    if not lines or lines[0].strip() != "---":
        raise _fail(path, 1, "front matter missing: the file must start with a '---' line")
    if not any(line.strip() == "---" for line in lines[1:]):
        raise _fail(path, 1, "front matter not closed: no second '---' line")
    meta: dict[str, str] = {}
    for i in range(1, len(lines)):
        stripped = lines[i].strip()
        if stripped == "---":
            return meta, i + 1
        if not stripped:
            continue
        key, sep, value = stripped.partition(":")
        key = key.strip()
        if not sep or not key:
            raise _fail(path, i + 1, f"bad front matter line {stripped!r}: expected 'key: value'")
        if key in meta:
            raise _fail(path, i + 1, f"front matter key {key!r} given twice")
        meta[key] = value.strip()
    raise _fail(path, 1, "front matter not closed: no second '---' line")


FRONT_KEYS = ("id", "title", "order", "duration", "segment", "notes")


def _check_front_matter(meta: dict[str, str], path: str) -> dict:
    for key in FRONT_KEYS:
        if not meta.get(key):
            raise _fail(path, 1, f"front matter lacks {key!r}")
    unknown = sorted(set(meta) - set(FRONT_KEYS))
    if unknown:
        raise _fail(path, 1, f"unknown front matter key {unknown[0]!r} (known: {', '.join(FRONT_KEYS)})")
    out: dict = dict(meta)
    for key in ("order", "duration"):
        try:
            out[key] = int(meta[key])
        except ValueError:
            raise _fail(path, 1, f"front matter {key!r} must be a whole number, got {meta[key]!r}") from None
    if out["duration"] <= 0:
        raise _fail(path, 1, "front matter 'duration' must be positive (minutes)")
    if meta["segment"] not in SEGMENTS:
        raise _fail(path, 1, f"segment {meta['segment']!r} is not one of {', '.join(SEGMENTS)}")
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", meta["id"]):
        raise _fail(path, 1, f"id {meta['id']!r} must be lower-case letters, digits and '-'")
    return out


def _parse_directive(body: list[tuple[int, str]], path: str, fence_line: int) -> WidgetSpec:
    raw: dict[str, tuple[str, int]] = {}
    for line_no, line in body:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition(":")
        key = key.strip()
        if not sep or not key or " " in key:
            raise _fail(path, line_no, f"bad directive line {stripped!r}: expected 'key: value'")
        if key in raw:
            raise _fail(path, line_no, f"directive key {key!r} given twice")
        raw[key] = (value.strip(), line_no)
    if "widget" not in raw:
        raise _fail(path, fence_line, "directive lacks 'widget: <name>'")
    name, name_line = raw.pop("widget")
    if name not in SCHEMAS:
        raise _fail(path, name_line, f"unknown widget {name!r} (known: {', '.join(SCHEMAS)})")
    schema = SCHEMAS[name]
    params: dict = {}
    for key, (value, line_no) in raw.items():
        if key in schema:
            parser = schema[key][0]
        elif name == "quiz" and FEEDBACK_KEY.match(key):
            parser = _text
        else:
            raise _fail(path, line_no, f"{name}: unknown key {key!r} (known: {', '.join(schema)})")
        try:
            params[key] = parser(value)
        except ValueError as exc:
            raise _fail(path, line_no, f"{name}: {key} {exc}") from None
    for key, (_, required) in schema.items():
        if required and key not in params:
            raise _fail(path, fence_line, f"{name}: missing key {key!r}")
    if name == "quiz":
        params = _check_quiz(params, raw, path, fence_line)
    return WidgetSpec(widget=name, params=params, line=fence_line)


def _check_quiz(params: dict, raw: dict, path: str, fence_line: int) -> dict:
    """Turn the 1-based `answer` and `feedback_N` keys into `answer_index` and a `feedback` list."""
    n = len(params["options"])
    answer = params["answer"]
    if not 1 <= answer <= n:
        raise _fail(path, raw["answer"][1], f"quiz: answer {answer} is out of range 1..{n}")
    feedback: list[str | None] = [None] * n
    for key in list(params):
        match = FEEDBACK_KEY.match(key)
        if match:
            k = int(match.group(1))
            if not 1 <= k <= n:
                raise _fail(path, raw[key][1], f"quiz: {key} names no option (1..{n})")
            feedback[k - 1] = params.pop(key)
    if "explanation" not in params and not all(feedback):
        raise _fail(path, fence_line, "quiz: give an 'explanation' or a feedback_N for every option")
    params["answer_index"] = answer - 1
    params["feedback"] = feedback
    return params


FENCE = re.compile(r"^(\s{0,3})(`{3,}|~{3,})\s*([^`\s]*)?.*$")


def parse_lesson(text: str, path: str | Path = "<lesson>") -> Lesson:
    """Parse one lesson file's text. Raises `LessonError` with `file:line` on anything malformed."""
    path = str(path)
    lines = text.splitlines()
    meta, start = _split_front_matter(lines, path)
    front = _check_front_matter(meta, path)
    parts: list = []
    md: list[str] = []
    md_start = start + 1
    i = start
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            md.append(lines[i])
            i += 1
            continue
        fence, info = match.group(2), (match.group(3) or "")
        fence_line = i + 1
        close = None
        for j in range(i + 1, len(lines)):
            stripped = lines[j].strip()
            if stripped.startswith(fence[0] * len(fence)) and not stripped.strip(fence[0]):
                close = j
                break
        if close is None:
            raise _fail(path, fence_line, f"code fence {fence} opened here is never closed")
        if info == DIRECTIVE:
            if "".join(md).strip():
                parts.append(MarkdownPart("\n".join(md).strip("\n"), md_start))
            md = []
            body = [(k + 1, lines[k]) for k in range(i + 1, close)]
            parts.append(_parse_directive(body, path, fence_line))
            md_start = close + 2
        else:
            md.extend(lines[i : close + 1])
        i = close + 1
    if "".join(md).strip():
        parts.append(MarkdownPart("\n".join(md).strip("\n"), md_start))
    quizzes = [p for p in parts if isinstance(p, WidgetSpec) and p.widget == "quiz"]
    for n, quiz in enumerate(quizzes, start=1):
        quiz.params["quiz_id"] = f"{front['id']}#{n}"
        after = parts[parts.index(quiz) + 1:]
        if quiz.params.get("reveal") and not any(isinstance(p, WidgetSpec) for p in after):
            raise _fail(path, quiz.line, "quiz: reveal: yes needs a widget after the quiz to reveal")
    return Lesson(
        id=front["id"],
        title=front["title"],
        order=front["order"],
        duration=front["duration"],
        segment=front["segment"],
        notes=front["notes"],
        parts=parts,
        path=path,
    )


def lessons_folder() -> Path:
    """Where the installed lessons live (the `dpo_tutor.lessons` package)."""
    from importlib.resources import files

    return Path(str(files("dpo_tutor.lessons")))


def load_lessons(folder: str | Path | None = None) -> list[Lesson]:
    """Every `NN-slug.md` lesson in `folder` (default: the installed lessons), in `order`."""
    folder = Path(folder) if folder is not None else lessons_folder()
    if not folder.is_dir():
        raise LessonError("lessons folder not found", where=str(folder))
    lessons = []
    for path in sorted(folder.iterdir()):
        if FILE_PATTERN.match(path.name):
            lessons.append(parse_lesson(path.read_text(encoding="utf-8"), path))
    seen: dict[str, str] = {}
    for lesson in lessons:
        if lesson.id in seen:
            raise LessonError(f"lesson id {lesson.id!r} also used by {seen[lesson.id]}", where=f"{lesson.path}:1")
        seen[lesson.id] = lesson.path
    return sorted(lessons, key=lambda lesson: (lesson.order, lesson.id))


def find_lesson(lessons: list[Lesson], lesson_id: str) -> int:
    """Index of the lesson with this id (or this order number); raises LessonError if none."""
    for index, lesson in enumerate(lessons):
        if lesson.id == lesson_id or str(lesson.order) == lesson_id:
            return index
    known = ", ".join(lesson.id for lesson in lessons)
    raise LessonError(f"no lesson {lesson_id!r}", remedy=f"known: {known}")


# -- the learner: a seed that shuffles quiz options, and a score per lesson kept between sessions ----

STATE_FILE = "learner.json"


def option_order(seed: int, quiz_id: str, n: int) -> list[int]:
    """The order a learner sees a quiz's n options in: fixed for (seed, quiz), different across learners."""
    order = list(range(n))
    random.Random(f"{seed}:{quiz_id}").shuffle(order)
    return order


def state_path() -> Path:
    """`learner.json` in the user's state folder (platformdirs; XDG_STATE_HOME moves it on Linux)."""
    from platformdirs import user_state_dir

    return Path(user_state_dir("dpo-tutor")) / STATE_FILE


def _default_seed() -> int:
    """Stable for one user on one machine until a state file records it; differs between learners."""
    import getpass
    import uuid

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "learner"
    return zlib.crc32(f"{user}@{uuid.getnode()}".encode())


@dataclass
class LearnerState:
    """`seed` shuffles quiz options; `answers[quiz_id]` is whether the first answer was right."""

    path: Path | None = None
    seed: int = 0
    answers: dict[str, bool] = field(default_factory=dict)

    def record(self, quiz_id: str, correct: bool) -> bool:
        """Keep the first answer to a quiz (a retry after seeing the feedback does not count); True if new.
        The caller saves."""
        if quiz_id in self.answers:
            return False
        self.answers[quiz_id] = bool(correct)
        return True

    def lesson_score(self, lesson: Lesson) -> tuple[int, int, int]:
        """(right on first try, answered, quizzes) for one lesson."""
        ids = [w.params["quiz_id"] for w in lesson.widgets if w.widget == "quiz"]
        answered = [self.answers[i] for i in ids if i in self.answers]
        return sum(answered), len(answered), len(ids)

    def save(self) -> bool:
        """Write the state; False when the folder cannot be written (scores then last one session)."""
        if self.path is None:
            return False
        data = {"version": 1, "seed": self.seed, "answers": self.answers}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
            tmp.replace(self.path)
        except OSError:
            return False
        return True


def load_learner(path: str | Path | None = None) -> LearnerState:
    """The learner's state from `path` (default `state_path()`); a missing or broken file starts afresh."""
    path = Path(path) if path is not None else state_path()
    state = LearnerState(path=path, seed=_default_seed())
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return state
    if isinstance(data, dict):
        if isinstance(data.get("seed"), int):
            state.seed = data["seed"]
        answers = data.get("answers")
        if isinstance(answers, dict):
            state.answers = {str(k): bool(v) for k, v in answers.items() if isinstance(v, bool)}
    return state
