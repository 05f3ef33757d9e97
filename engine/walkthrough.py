"""The 15-minute video walkthrough: segments, stops in recording order, and the clocks.

Introduction 2 min, Concepts 3, Dataset 3, Training 4, Results 3: 15:00. Every stop has its own
share of its segment (seconds; a test checks that each segment's stops add up to its budget and the
segments to 15:00). A stop is a lesson (its presenter notes come from the lesson's front matter) or an
app area ("data", "train", "evaluate", "chat", with the notes below). Lessons whose segment is
"Appendix" are for reading, not for the video. Pure logic: the UI asks where it is, what comes next,
and how long the current segment and the whole walkthrough have run; time comes from an injectable
clock so tests can freeze it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .errors import UserError

SEGMENT_BUDGETS: dict[str, int] = {  # minutes, in recording order
    "Introduction": 2,
    "Concepts": 3,
    "Dataset": 3,
    "Training": 4,
    "Results": 3,
}
TOTAL_MINUTES = 15
AREAS = ("data", "train", "evaluate", "chat")
# presenter notes are read at 80x24 in a bar at most NOTE_LINES high (longer ones scroll)
NOTE_WIDTH, NOTE_LINES = 76, 5

# (segment, kind, target, seconds, note for areas; lesson stops take the lesson's own notes)
PLAN: tuple[tuple[str, str, str, int, str], ...] = (
    ("Introduction", "lesson", "why-preferences", 60, ""),
    ("Introduction", "lesson", "rlhf-vs-dpo", 60, ""),
    ("Concepts", "lesson", "dpo-loss", 90, ""),
    ("Concepts", "lesson", "beta", 90, ""),
    ("Dataset", "lesson", "preference-data", 75, ""),
    (
        "Dataset",
        "area",
        "data",
        105,
        ("Open the HH-RLHF harmless-base test file. Scroll a few triplets: same prompt, two answers. "
         "Point at one clear pair and one ambiguous pair, then the statistics: answer lengths, how "
         "often chosen is the longer answer, and the broken rows the loader drops."),
    ),
    ("Training", "lesson", "training-in-practice", 45, ""),
    (
        "Training",
        "area",
        "train",
        90,
        ("Replay the shipped default recording (ctrl+o) or start a run. Read the charts left to right: "
         "loss from 0.693 down, the margin opening, both rewards, and held-out accuracy on the eval "
         "markers: that, not the training loss, is what picks a recipe."),
    ),
    ("Training", "lesson", "margins-and-accuracy", 60, ""),
    ("Training", "lesson", "troubleshooting", 45, ""),
    (
        "Results",
        "area",
        "evaluate",
        40,
        ("Held-out pairs before and after: accuracy and margin on pairs the model never trained on, "
         "beside the training numbers. Then the checks: refusals, length, displacement, overfitting."),
    ),
    (
        "Results",
        "area",
        "chat",
        40,
        ("The same prompts to base and aligned side by side: a harmful request, a cake recipe, a "
         "factual question. Look for better answers and for exploits: longer, vaguer, refusing."),
    ),
    ("Results", "lesson", "evaluation-and-reward-hacking", 40, ""),
    ("Results", "lesson", "case-file-over-refusal", 40, ""),
    ("Results", "lesson", "saving-and-deploying", 20, ""),
)


class WalkthroughError(UserError):
    """The walkthrough plan and the lessons disagree."""


@dataclass(frozen=True)
class Stop:
    segment: str
    kind: str  # "lesson" or "area"
    target: str  # lesson id or area (mode) name
    title: str
    note: str
    seconds: int = 0  # this stop's share of its segment in the video


def build_stops(lessons: Sequence, plan: Sequence[tuple[str, str, str, int, str]] = PLAN) -> list[Stop]:
    """Resolve the plan against the loaded lessons (objects with id, title, notes)."""
    by_id = {lesson.id: lesson for lesson in lessons}
    stops = []
    for segment, kind, target, seconds, note in plan:
        if segment not in SEGMENT_BUDGETS:
            raise WalkthroughError(f"unknown segment {segment!r}")
        if kind == "lesson":
            if target not in by_id:
                raise WalkthroughError(f"the walkthrough names lesson {target!r}, which does not exist")
            lesson = by_id[target]
            stops.append(Stop(segment, kind, target, lesson.title, note or lesson.notes, seconds))
        elif kind == "area":
            if target not in AREAS:
                raise WalkthroughError(f"unknown app area {target!r}")
            stops.append(Stop(segment, kind, target, f"{target.capitalize()} area", note, seconds))
        else:
            raise WalkthroughError(f"unknown stop kind {kind!r}")
    return stops


def format_clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


@dataclass
class SegmentClock:
    """Time spent in each segment. Only the current segment's clock runs."""

    now: Callable[[], float] = time.monotonic
    spent: dict[str, float] = field(default_factory=dict)
    current: str | None = None
    since: float = 0.0

    def enter(self, segment: str) -> None:
        if segment == self.current:
            return
        self._bank()
        self.current = segment
        self.since = self.now()

    def _bank(self) -> None:
        if self.current is not None:
            self.spent[self.current] = self.spent.get(self.current, 0.0) + self.now() - self.since
            self.since = self.now()

    def elapsed(self, segment: str | None = None) -> float:
        segment = segment or self.current
        if segment is None:
            return 0.0
        running = self.now() - self.since if segment == self.current else 0.0
        return self.spent.get(segment, 0.0) + running

    def total(self) -> float:
        return sum(self.elapsed(s) for s in SEGMENT_BUDGETS)


@dataclass
class Walkthrough:
    """Where the presenter is in the plan, and the segment clock."""

    stops: list[Stop]
    clock: SegmentClock = field(default_factory=SegmentClock)
    index: int = 0

    def __post_init__(self) -> None:
        if not self.stops:
            raise WalkthroughError("the walkthrough has no stops")
        self.clock.enter(self.current.segment)

    @property
    def current(self) -> Stop:
        return self.stops[self.index]

    def go(self, index: int) -> Stop:
        self.index = max(0, min(index, len(self.stops) - 1))
        self.clock.enter(self.current.segment)
        return self.current

    def next(self) -> Stop:
        return self.go(self.index + 1)

    def previous(self) -> Stop:
        return self.go(self.index - 1)

    def sync_to(self, kind: str, target: str) -> bool:
        """Move to the first stop showing this lesson or area, if there is one (the user went there)."""
        for i, stop in enumerate(self.stops):
            if stop.kind == kind and stop.target == target:
                if i != self.index:
                    self.go(i)
                return True
        return False

    @property
    def at_start(self) -> bool:
        return self.index == 0

    @property
    def at_end(self) -> bool:
        return self.index == len(self.stops) - 1

    def budget_seconds(self, segment: str | None = None) -> int:
        return SEGMENT_BUDGETS[segment or self.current.segment] * 60

    def over_budget(self) -> bool:
        return self.clock.elapsed() > self.budget_seconds()

    def clock_text(self) -> str:
        """'1:05 / 2:00' for the current segment."""
        return f"{format_clock(self.clock.elapsed())} / {format_clock(self.budget_seconds())}"

    def total_text(self) -> str:
        """'3:12 / 15:00' for the whole walkthrough."""
        return f"{format_clock(self.clock.total())} / {format_clock(TOTAL_MINUTES * 60)}"

    def over_total(self) -> bool:
        return self.clock.total() > TOTAL_MINUTES * 60

    def position_text(self) -> str:
        segment_stops = [s for s in self.stops if s.segment == self.current.segment]
        k = segment_stops.index(self.current) + 1
        number = list(SEGMENT_BUDGETS).index(self.current.segment) + 1
        return f"{number}/{len(SEGMENT_BUDGETS)} {self.current.segment} · stop {k}/{len(segment_stops)}"


def segment_seconds(stops: Sequence[Stop]) -> dict[str, int]:
    """The stops' seconds added up per segment (a plan is right when this equals the budgets)."""
    out = {segment: 0 for segment in SEGMENT_BUDGETS}
    for stop in stops:
        out[stop.segment] += stop.seconds
    return out


def note_lines(note: str, width: int = NOTE_WIDTH) -> int:
    """How many lines a presenter note takes when wrapped at `width` columns."""
    import textwrap

    return len(textwrap.wrap(note, width)) or 1
