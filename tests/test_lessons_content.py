"""What the lessons say: issue 20's corrections each have a check question, lesson 7 is short, the
durations are honest, nothing points at material a learner does not have, and the learner's quiz
order and scores behave."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from dpo_tutor.engine.lessons import (
    LearnerState,
    LessonError,
    load_learner,
    load_lessons,
    option_order,
    parse_lesson,
)

REPO = Path(__file__).resolve().parents[1]
LESSONS = {lesson.id: lesson for lesson in load_lessons(REPO / "lessons")}

# issue 20's table: row -> (lesson, words of the check question that catches the misconception)
CHECKS = {
    "05: a larger beta takes larger first steps": ("beta", "You double beta and keep AdamW"),
    "05: delta measures distance from the reference": ("beta", "Which statement holds?"),
    "06/09: accuracy reads 0.0 at step 0": ("margins-and-accuracy", "The first logged step of {run}"),
    "07: lr 5e-4 justified by the training loss": ("training-in-practice", "Recipe A ends at train loss"),
    "08: a 0.86 / 0.66 gap is typical": ("evaluation-and-reward-hacking", "Typical, or a problem?"),
    "06/08: SmolLM2's 0.615 as a comparison": ("margins-and-accuracy", "model card reports 0.615"),
    "06: both rewards falling is healthy": ("margins-and-accuracy", "rewards/chosen = -0.8"),
    "04: DPO does not chase pairs it gets right": ("dpo-loss", "How hard does it still pull"),
    "05: beta as an enforced KL leash": ("beta", "contain a KL penalty"),
    "09: margin not increasing -> lower beta": ("troubleshooting", "it looks flat"),
    "04: wrong forever (raw-likelihood ranking)": ("dpo-loss", "by raw log-probability"),
    "07: batch 1 x accumulation 8 is one pair per log": ("training-in-practice", "What does one logged"),
}


@pytest.mark.parametrize("row", sorted(CHECKS))
def test_every_corrected_row_has_a_check_question(row):
    lesson_id, words = CHECKS[row]
    questions = [w.params["question"] for w in LESSONS[lesson_id].widgets if w.widget == "quiz"]
    assert any(words in q for q in questions), (row, questions)


@pytest.mark.parametrize("wrong", [
    "takes larger first steps", "reads **0.0**", "Loss 0.6931 is the signature", "accuracy leaving 0", "typical gap", "does not chase pairs", "wrong forever",
    "one pair per log line", "Colab", "seed course", "lr 5e-4 at batch 32 for two",
])
def test_the_corrected_statements_are_gone(wrong):
    for lesson in LESSONS.values():
        assert wrong.lower() not in (lesson.markdown + lesson.notes).lower(), (lesson.id, wrong)


def test_lesson_7_is_short_and_the_engineering_is_an_appendix():
    assert len(LESSONS["training-in-practice"].markdown.split()) <= 350
    assert "## Why a small model trains faster with CUDA graphs" not in LESSONS["training-in-practice"].markdown
    appendix = LESSONS["under-the-hood"]
    assert appendix.segment == "Appendix" and "CUDA graph" in appendix.markdown and "packed" in appendix.markdown


def test_durations_are_honest():
    """Reading at 200 words a minute, half a minute per interactive part: the label is that, or a minute more."""
    for lesson in LESSONS.values():
        estimate = math.ceil(len(lesson.markdown.split()) / 200 + 0.5 * len(lesson.widgets))
        assert estimate <= lesson.duration <= estimate + 1, (lesson.id, lesson.duration, estimate)


def test_quiz_answers_are_spread_over_positions_as_authored():
    answers = [w.params["answer_index"] for lesson in LESSONS.values() for w in lesson.widgets if w.widget == "quiz"]
    counts = {i: answers.count(i) for i in set(answers)}
    assert max(counts.values()) <= 0.5 * len(answers), counts


def test_option_order_is_fixed_per_learner_and_varies_between_learners():
    quizzes = [w.params for lesson in LESSONS.values() for w in lesson.widgets if w.widget == "quiz"]
    assert option_order(7, "beta#1", 3) == option_order(7, "beta#1", 3)
    positions = {}
    for seed in range(40):
        for q in quizzes:
            order = option_order(seed, q["quiz_id"], len(q["options"]))
            assert sorted(order) == list(range(len(q["options"])))
            positions.setdefault(q["quiz_id"], set()).add(order.index(q["answer_index"]))
    # across learners every quiz's right answer shows up in more than one place ...
    assert all(len(p) > 1 for p in positions.values())
    # ... and for one learner the right answers do not all sit at the same letter
    one = [option_order(3, q["quiz_id"], len(q["options"])).index(q["answer_index"]) for q in quizzes]
    assert len(set(one)) == 3


def test_learner_state_keeps_first_answers_and_survives_a_broken_file(tmp_path):
    path = tmp_path / "state" / "learner.json"
    state = load_learner(path)
    assert state.answers == {}
    lesson = LESSONS["beta"]
    ids = [w.params["quiz_id"] for w in lesson.widgets if w.widget == "quiz"]
    assert state.record(ids[0], False) and not state.record(ids[0], True)  # the first answer counts
    assert state.record(ids[1], True)
    assert state.save()
    again = load_learner(path)
    assert again.seed == state.seed and again.answers == {ids[0]: False, ids[1]: True}
    assert again.lesson_score(lesson) == (1, 2, len(ids))
    path.write_text("{not json")
    assert load_learner(path).answers == {}
    assert json.loads(json.dumps(LearnerState().answers)) == {}


def test_state_path_follows_xdg_state_home(tmp_path, monkeypatch):
    from dpo_tutor.engine.lessons import state_path

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert state_path().is_relative_to(tmp_path)


FRONT = "---\nid: t\ntitle: T\norder: 1\nduration: 1\nsegment: Concepts\nnotes: n\n---\n# T\n"


def test_run_facts_and_reveal_directives_parse_and_are_checked():
    lesson = parse_lesson(FRONT + "```dpo-widget\nwidget: quiz\nreveal: yes\nquestion: q\noptions: a | b\n"
                          "answer: 1\nexplanation: e\n```\n\n```dpo-widget\nwidget: run-facts\nrun: latest\n"
                          "show: margin, refusal\n```\n")
    quiz, facts = lesson.widgets
    assert quiz.params["reveal"] is True and quiz.params["quiz_id"] == "t#1"
    assert facts.params == {"run": "latest", "show": ["margin", "refusal"]}
    with pytest.raises(LessonError, match="unknown facts"):
        parse_lesson(FRONT + "```dpo-widget\nwidget: run-facts\nrun: latest\nshow: vibes\n```\n")
    with pytest.raises(LessonError, match="recording:<name>"):
        parse_lesson(FRONT + "```dpo-widget\nwidget: run-facts\nrun: newest\nshow: margin\n```\n")
    with pytest.raises(LessonError, match="needs a widget after"):
        parse_lesson(FRONT + "```dpo-widget\nwidget: quiz\nreveal: yes\nquestion: q\noptions: a | b\n"
                     "answer: 1\nexplanation: e\n```\n")


def test_lessons_read_the_default_recording_through_the_directive_not_typed_numbers():
    lesson7 = LESSONS["training-in-practice"]
    runs = [w.params.get("run") for w in lesson7.widgets if w.widget == "run-facts"]
    assert "recording:default-recipe-h200" in runs
    case = LESSONS["case-file-over-refusal"]
    (compare,) = [w for w in case.widgets if w.widget == "run-compare"]
    assert compare.params == {"left": "recording:over-refusal-h100", "right": "recording:default-recipe-h200"} | (
        {"title": compare.params["title"]})


def test_the_case_files_numbers_are_read_not_typed():
    text = "\n".join(str(w.params) for w in LESSONS["case-file-over-refusal"].widgets)
    assert "{heldout_peak_step}" in text and "step 50" not in text
