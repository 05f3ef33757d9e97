"""The lesson parser: every shipped lesson parses; each malformed input names its file and line."""

from __future__ import annotations

import pytest
from conftest import REPO
from dpo_tutor.engine.dpo_math import dpo_pair
from dpo_tutor.engine.errors import UserError
from dpo_tutor.engine.lessons import (
    SEGMENTS,
    LessonError,
    MarkdownPart,
    WidgetSpec,
    find_lesson,
    lessons_folder,
    load_lessons,
    parse_lesson,
)

FRONT = """---
id: demo
title: Demo
order: 1
duration: 2
segment: Concepts
notes: Say hello.
---
"""

# the order the issue asks for
EXPECTED_ORDER = [
    "why-preferences", "rlhf-vs-dpo", "preference-data", "dpo-loss", "beta", "margins-and-accuracy",
    "training-in-practice", "evaluation-and-reward-hacking", "troubleshooting", "case-file-over-refusal",
    "saving-and-deploying", "beyond-sigmoid", "reference-and-off-policy", "under-the-hood",
]


def test_every_lesson_in_the_repo_parses_in_order_with_an_interactive_part():
    lessons = load_lessons(REPO / "lessons")
    assert [lesson.id for lesson in lessons] == EXPECTED_ORDER
    assert [lesson.order for lesson in lessons] == list(range(1, len(lessons) + 1))
    for lesson in lessons:
        assert lesson.segment in SEGMENTS
        assert lesson.widgets, f"{lesson.id} has no interactive block"
        assert lesson.notes and lesson.duration > 0
        assert lesson.markdown.lstrip().startswith("# "), f"{lesson.id} should open with a heading"
    kinds = {w.widget for lesson in lessons for w in lesson.widgets}
    assert kinds == {"beta-explorer", "worked-example", "quiz", "run-facts", "run-compare", "loss-compare"}


def test_installed_lessons_are_the_repo_lessons():
    assert [lesson.id for lesson in load_lessons()] == EXPECTED_ORDER
    assert lessons_folder().is_dir()


def test_the_seed_topics_are_covered():
    text = "\n".join(lesson.markdown for lesson in load_lessons(REPO / "lessons")).lower()
    for topic in ("bradley-terry", "implicit reward", "sigmoid", "reference", "likelihood displacement",
                  "rewards/accuracies", "strictly", "lora", "gradient accumulation", "unsloth",
                  "held-out", "length exploit", "evasive", "overfitting", "hh-rlhf", "oasst", "shp",
                  "reward model", "ppo", "merge", "out of memory", "stuck at 50%"):
        assert topic in text, topic


def test_worked_example_numbers_are_consistent():
    """The dpo-loss lesson's real pair: the reference prefers rejected; one DPO step flips the ranking."""
    lesson = load_lessons(REPO / "lessons")[find_lesson(load_lessons(REPO / "lessons"), "dpo-loss")]
    (example,) = [w for w in lesson.widgets if w.widget == "worked-example"]
    p = example.params
    assert p["ref_rejected"] > p["ref_chosen"]
    r = dpo_pair(p["beta"], p["policy_chosen"], p["policy_rejected"], p["ref_chosen"], p["ref_rejected"])
    assert r.accurate and 0 < r.loss < 0.6931


def test_parts_split_markdown_and_widgets_with_lines():
    text = FRONT + "# Title\n\nSome text.\n\n```python\nx = 1\n```\n\n```dpo-widget\nwidget: beta-explorer\nbetas: 0.1, 0.5\n```\n\nAfter.\n"
    lesson = parse_lesson(text, "demo.md")
    assert [type(p) for p in lesson.parts] == [MarkdownPart, WidgetSpec, MarkdownPart]
    assert "x = 1" in lesson.parts[0].text  # ordinary code blocks stay Markdown
    assert lesson.parts[1].params == {"betas": [0.1, 0.5]}
    assert lesson.parts[1].line == 17  # 8 front-matter lines, then 8 body lines
    assert lesson.parts[2].text == "After."


def test_quiz_answer_becomes_an_index_with_feedback():
    text = FRONT + "```dpo-widget\nwidget: quiz\nquestion: Q?\noptions: one | two | three\nanswer: 3\nfeedback_3: yes\nexplanation: because\n```\n"
    (quiz,) = parse_lesson(text, "demo.md").widgets
    assert quiz.params["answer_index"] == 2
    assert quiz.params["feedback"] == [None, None, "yes"]


def _err(text: str) -> LessonError:
    with pytest.raises(LessonError) as info:
        parse_lesson(text, "lessons/99-bad.md")
    assert isinstance(info.value, UserError)
    return info.value


BLOCK = "```dpo-widget\n{body}\n```\n"
# front matter is 8 lines, so the fence opens on line 9 and the first key is on line 10
MALFORMED = [
    ("unknown widget", "widget: slider\nbetas: 0.1", 10, "unknown widget 'slider'"),
    ("missing key", "widget: beta-explorer", 9, "missing key 'betas'"),
    ("bad number", ("widget: worked-example\nsource: s\nprompt: p\nchosen: c\nrejected: r\npolicy_chosen: -1.0\n"
     "policy_rejected: minus two\nref_chosen: -1\nref_rejected: -2\nbeta: 0.1"), 16, "not a number"),
    ("negative beta", "widget: beta-explorer\nbetas: 0.1, -0.5", 11, "must be positive"),
    ("answer out of range", "widget: quiz\nquestion: Q?\noptions: a | b\nanswer: 3\nexplanation: e", 13,
     "out of range 1..2"),
    ("answer not a number", "widget: quiz\nquestion: Q?\noptions: a | b\nanswer: b\nexplanation: e", 13,
     "not a whole number"),
    ("feedback for no option", ("widget: quiz\nquestion: Q?\noptions: a | b\nanswer: 1\nexplanation: e\n"
     "feedback_5: x"), 15, "feedback_5 names no option"),
    ("quiz without feedback", "widget: quiz\nquestion: Q?\noptions: a | b\nanswer: 1\nfeedback_1: x", 9,
     "explanation"),
    ("unknown key", "widget: beta-explorer\nbetas: 0.1\nbeta: 0.2", 12, "unknown key 'beta'"),
    ("not key: value", "widget: beta-explorer\nbetas 0.1", 11, "expected 'key: value'"),
    ("duplicate key", "widget: beta-explorer\nbetas: 0.1\nbetas: 0.2", 12, "given twice"),
    ("no widget key", "betas: 0.1", 9, "lacks 'widget"),
]


@pytest.mark.parametrize("case,body,line,message", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_directive_names_file_and_line(case, body, line, message):
    err = _err(FRONT + BLOCK.format(body=body))
    assert err.where == f"lessons/99-bad.md:{line}"
    assert message in err.one_line()
    assert err.one_line().startswith(f"lessons/99-bad.md:{line}: ")


def test_unclosed_fence_names_its_opening_line():
    err = _err(FRONT + "# T\n\ntext\n```dpo-widget\nwidget: beta-explorer\nbetas: 0.1\n")
    assert err.where == "lessons/99-bad.md:12"
    assert "never closed" in err.message


@pytest.mark.parametrize(
    "front,line,message",
    [
        ("id: demo\n", 1, "must start with a '---'"),
        ("---\nid: demo\ntitle: T\n", 1, "not closed"),
        (FRONT.replace("order: 1", "order: first"), 1, "'order' must be a whole number"),
        (FRONT.replace("segment: Concepts", "segment: Outro"), 1, "not one of"),
        (FRONT.replace("notes: Say hello.\n", ""), 1, "lacks 'notes'"),
        (FRONT.replace("title: Demo", "title Demo"), 3, "bad front matter line"),
        (FRONT.replace("notes:", "speaker: x\nnotes:"), 1, "unknown front matter key 'speaker'"),
    ],
)
def test_bad_front_matter(front, line, message):
    err = _err(front + "# body\n")
    assert err.where == f"lessons/99-bad.md:{line}"
    assert message in err.message


def test_load_lessons_rejects_duplicate_ids(tmp_path):
    (tmp_path / "01-a.md").write_text(FRONT + "# A\n", encoding="utf-8")
    (tmp_path / "02-b.md").write_text(FRONT.replace("order: 1", "order: 2") + "# B\n", encoding="utf-8")
    with pytest.raises(LessonError, match="also used by"):
        load_lessons(tmp_path)


def test_find_lesson_by_id_or_number_and_unknown():
    lessons = load_lessons(REPO / "lessons")
    assert find_lesson(lessons, "beta") == find_lesson(lessons, "5") == 4
    with pytest.raises(LessonError, match="no lesson 'nope'"):
        find_lesson(lessons, "nope")
