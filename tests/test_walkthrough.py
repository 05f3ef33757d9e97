"""The video walkthrough plan: segments, stops in recording order, next/previous, the segment clock."""

from __future__ import annotations

import pytest
from dpo_tutor.engine.lessons import load_lessons
from dpo_tutor.engine.walkthrough import (
    NOTE_LINES,
    PLAN,
    SEGMENT_BUDGETS,
    TOTAL_MINUTES,
    SegmentClock,
    Walkthrough,
    WalkthroughError,
    build_stops,
    format_clock,
    note_lines,
    segment_seconds,
)


class FakeTime:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def lessons():
    return load_lessons()


def test_the_seed_plan_is_15_minutes_in_five_segments():
    assert SEGMENT_BUDGETS == {"Introduction": 2, "Concepts": 3, "Dataset": 3, "Training": 4, "Results": 3}
    assert sum(SEGMENT_BUDGETS.values()) == 15


def test_the_stops_minutes_add_up_to_each_segment_and_to_15_00(lessons):
    stops = build_stops(lessons)
    assert all(stop.seconds > 0 for stop in stops)
    assert segment_seconds(stops) == {segment: minutes * 60 for segment, minutes in SEGMENT_BUDGETS.items()}
    assert sum(stop.seconds for stop in stops) == TOTAL_MINUTES * 60 == 900


def test_every_stops_notes_fit_the_bar_at_80x24(lessons):
    for stop in build_stops(lessons):
        assert note_lines(stop.note) <= NOTE_LINES, (stop.target, note_lines(stop.note))


def test_the_total_clock_runs_across_segments(lessons):
    t = FakeTime()
    wt = Walkthrough(build_stops(lessons), clock=SegmentClock(now=t))
    assert wt.total_text() == "0:00 / 15:00"
    t.t += 100
    wt.go(3)  # Concepts
    t.t += 50
    assert wt.total_text() == "2:30 / 15:00" and not wt.over_total()
    t.t += 800
    assert wt.over_total()


def test_stops_cover_every_video_lesson_once_and_every_area_in_segment_order(lessons):
    stops = build_stops(lessons)
    lesson_stops = [s.target for s in stops if s.kind == "lesson"]
    assert sorted(lesson_stops) == sorted(lesson.id for lesson in lessons if lesson.segment != "Appendix")
    assert [s.target for s in stops if s.kind == "area"] == ["data", "train", "evaluate", "chat"]
    # segments appear in the plan's order, never going back
    order = list(SEGMENT_BUDGETS)
    positions = [order.index(s.segment) for s in stops]
    assert positions == sorted(positions)
    # a lesson stop sits in the segment its front matter names, and carries its presenter notes
    by_id = {lesson.id: lesson for lesson in lessons}
    for stop in stops:
        assert stop.note
        if stop.kind == "lesson":
            assert stop.segment == by_id[stop.target].segment
            assert stop.note == by_id[stop.target].notes


def test_a_plan_naming_a_missing_lesson_is_an_error(lessons):
    with pytest.raises(WalkthroughError, match="no-such-lesson"):
        build_stops(lessons, plan=PLAN + (("Results", "lesson", "no-such-lesson", 10, ""),))


def test_next_and_previous_clamp_at_the_ends(lessons):
    wt = Walkthrough(build_stops(lessons), clock=SegmentClock(now=FakeTime()))
    assert wt.at_start and wt.current.target == "why-preferences"
    assert wt.previous().target == "why-preferences"
    assert wt.next().target == "rlhf-vs-dpo"
    assert wt.next().segment == "Concepts"
    wt.go(len(wt.stops) + 5)
    assert wt.at_end
    assert wt.next() is wt.current


def test_segment_clock_runs_only_for_the_current_segment(lessons):
    t = FakeTime()
    wt = Walkthrough(build_stops(lessons), clock=SegmentClock(now=t))
    t.t += 65
    assert wt.clock_text() == "1:05 / 2:00"
    assert not wt.over_budget()
    wt.next()  # still Introduction
    t.t += 60
    assert wt.clock_text() == "2:05 / 2:00" and wt.over_budget()
    wt.next()  # Concepts starts from zero
    assert wt.current.segment == "Concepts"
    assert wt.clock_text() == "0:00 / 3:00"
    t.t += 30
    wt.previous()  # back to Introduction: its time is kept
    assert wt.clock.elapsed("Introduction") == pytest.approx(125)
    assert wt.clock.elapsed("Concepts") == pytest.approx(30)
    assert wt.clock.total() == pytest.approx(155)


def test_sync_to_follows_the_user(lessons):
    wt = Walkthrough(build_stops(lessons), clock=SegmentClock(now=FakeTime()))
    assert wt.sync_to("area", "train")
    assert wt.current.segment == "Training" and wt.current.kind == "area"
    assert not wt.sync_to("area", "nowhere")
    assert wt.position_text().startswith("4/5 Training")


def test_format_clock():
    assert format_clock(0) == "0:00"
    assert format_clock(59.9) == "0:59"
    assert format_clock(240) == "4:00"
