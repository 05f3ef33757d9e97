"""Snapshots of the Data, Train, Evaluate and Chat areas and the help screen, each at 80x24 (an SSH
window) and 120x40 (pytest-textual-snapshot; update with `pytest --snapshot-update` and read the SVGs'
text: nothing may be cut). Every screen shows real content: a real data file read in place, the fixture
event logs, a report from the shipped recording, two answers side by side. No clocks, no cursor blink.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import shared_file
from dpo_tutor.engine.events import read_events
from dpo_tutor.engine.recorded.loader import HERE as RECORDED
from dpo_tutor.tui.app import DpoTutorApp
from dpo_tutor.tui.context import AppContext

FIXTURE_RUNS = Path(__file__).parent / "fixtures" / "runs"
RECORDING = RECORDED / "over-refusal-h100"
SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]


def make_app(runs_dir: Path) -> DpoTutorApp:
    return DpoTutorApp(AppContext(runs_dir=runs_dir, gpu=False))


async def settle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.pause()


# ---- Data --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", SIZES)
def test_data_browser_on_hh_rlhf(snap_compare, tmp_path, size):
    """The Data area on ../shared/data/hh-rlhf/harmless-base-test.jsonl.gz, read in place.

    You should see the search box and the three filters on one line, the status "… · hh · showing 2,303
    of 2,303 usable · 2,312 rows read, 9 dropped", the table (#, an id that keeps its distinctive end,
    the prompt, and at 120 columns the prompt / chosen / rejected lengths; flags C> R> MT) and the
    detail of triplet 0: its prompt, chosen reply in green and rejected in red side by side. At 80x24
    the table sits above the detail, both full width; at 120x40 side by side with the flags legend.
    """
    source = shared_file("hh-rlhf", "harmless-base-test.jsonl.gz")

    async def run_before(pilot) -> None:
        await pilot.press("2")
        await settle(pilot)
        pilot.app.screen.open_source(str(source))
        await settle(pilot)
        await pilot.pause(0.2)  # the detail follows the cursor once it rests

    assert snap_compare(make_app(tmp_path / "runs"), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_data_stats_on_hh_rlhf(snap_compare, tmp_path, size):
    """The Stats tab (s) of the same file, zoomed to the whole height (z).

    You should see two titled charts ("reply chars", "chosen longer: 44%") above the quality report:
    rows read 2,312, usable 2,303, dropped 9 (empty side 4, prompts disagree 5, with row numbers), a
    table of characters (min, median, mean, p95, max) for prompt, chosen and rejected, the length bias
    line and the turns. No Python dict, no number cut.
    """
    source = shared_file("hh-rlhf", "harmless-base-test.jsonl.gz")

    async def run_before(pilot) -> None:
        await pilot.press("2")
        await settle(pilot)
        pilot.app.screen.open_source(str(source))
        await settle(pilot)
        await pilot.press("s", "z")
        await settle(pilot)
        pilot.app.screen.query_one("#data-stats").refresh(layout=True)  # the charts drawn at their final width
        await pilot.pause(0.3)

    assert snap_compare(make_app(tmp_path / "runs"), terminal_size=size, run_before=run_before)


# ---- Train -------------------------------------------------------------------------------------------
def copy_fixture(name: str, runs_dir: Path) -> Path:
    run = runs_dir / f"20261125-100000-{name}"
    shutil.copytree(FIXTURE_RUNS / name, run)
    return run


@pytest.mark.parametrize("size", SIZES)
def test_train_during_a_run(snap_compare, tmp_path, size):
    """Train while the fixture run `normal` is at step 30 of 60 (its first 30 steps and the eval at 20
    applied, as the run watcher would).

    You should see the status "training step 30/60 | 50% | ETA …", then "loss 0.… | accuracy 0.… |
    margin 0.…", then pairs/s, GPU memory and "unsloth on test fixture (synthetic numbers)", the progress
    bar at 50%, four titled charts with whole-number step ticks, and the legend line (dots, smoothed,
    eval x, chosen green / rejected red). At 80x24 the Configure panel has stepped aside; at 120x40 it
    shows the run's settings.
    """
    from dpo_tutor.tui.run_state import RunState
    from dpo_tutor.tui.run_watcher import watcher_of

    run = copy_fixture("normal", tmp_path / "runs")
    events = read_events(run / "events.jsonl")
    cut = next(i for i, e in enumerate(events) if e.get("type") == "step" and e.get("step") == 30)

    async def run_before(pilot) -> None:
        await pilot.press("3")
        await settle(pilot)
        screen = pilot.app.screen
        state = RunState(path=run, mode="live", launched=events[0]["time"])
        for event in events[: cut + 1]:
            state.apply(event)
        watcher_of(pilot.app).state = state
        screen._show_run_settings(run)
        screen._make_room()
        screen.refresh_status()
        await pilot.pause()
        screen.redraw_charts()
        await pilot.pause()

    assert snap_compare(make_app(tmp_path / "runs"), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_train_finished_replay(snap_compare, tmp_path, size):
    """Train after replaying the fixture run `normal` (finished, 60 steps) from the runs list.

    You should see "REPLAY of 20261125-100000-normal (recorded on test fixture (synthetic numbers)), at
    once, done", "FINISHED at step 60/60", the last loss / accuracy / margin, the bar at 100%, and the
    four charts with their eval x at steps 20, 40 and 60 and step ticks 20 40 60 (or 10 … 60).
    """
    run = copy_fixture("normal", tmp_path / "runs")

    async def run_before(pilot) -> None:
        await pilot.press("3")
        await settle(pilot)
        screen = pilot.app.screen
        assert screen.open_run(run) == "replay"
        await settle(pilot)
        screen.redraw_charts()
        await pilot.pause()

    assert snap_compare(make_app(tmp_path / "runs"), terminal_size=size, run_before=run_before)


# ---- Evaluate ----------------------------------------------------------------------------------------
def run_with_report(runs_dir: Path) -> Path:
    """A run folder holding the shipped over-refusal recording's log and report, plus the verdict the
    engine's `checks.verdict` gives for its numbers (the recording predates verdicts), and an adapter
    marker so the Evaluate picker lists it as a run."""
    from dpo_tutor.engine.checks import Check, verdict

    run = runs_dir / "20261125-120000-over-refusal"
    run.mkdir(parents=True)
    for name in ("events.jsonl", "config.toml"):
        shutil.copy(RECORDING / name, run / name)
    report = json.loads((RECORDING / "report.json").read_text(encoding="utf-8"))
    if "verdict" not in report:
        checks = [Check(**c) for c in report["checks"]]
        acc = report["before_after"]["implicit_reward"]["aligned"]
        low = (acc.get("ci") or [None])[0] if isinstance(acc.get("ci"), list) else None
        refusals = next(c for c in report["checks"] if c["id"] == "evasive_refusals")
        report["verdict"] = verdict(acc.get("accuracy"), low, checks,
                                    {"harmless_refusals": (0.1, refusals["value"])})
    (run / "report.json").write_text(json.dumps(report), encoding="utf-8")
    (run / "adapter").mkdir()
    (run / "adapter" / "adapter_config.json").write_text("{}", encoding="utf-8")
    return run


@pytest.mark.parametrize("size", SIZES)
def test_evaluate_with_a_report(snap_compare, tmp_path, size):
    """Evaluate with the over-refusal run's report, picked for the learner (the only run).

    You should see the picker "20261125-120000-over-refusal (finished)", the verdict line "Verdict:
    Worse than the base: … refuses 80% of harmless prompts (base 10%) …" on a red band, the status
    "…: report of 2026-11-25T…", and the Before / after tab: 198 held-out pairs, beta 0.1, and six
    two-line rows whose every number shows in both columns (0.0% [0.0%, 1.9%] / 0W/198T/0L against
    63.6% [56.7%, 70.0%] / 126W/0T/72L; margins 0.000 vs 0.478 reward, 12.604 vs 17.386 nats ...).
    """
    run_with_report(tmp_path / "runs")

    async def run_before(pilot) -> None:
        await pilot.press("4")
        await settle(pilot)

    assert snap_compare(make_app(tmp_path / "runs"), terminal_size=size, run_before=run_before)


def test_evaluate_checks_at_80x24(snap_compare, tmp_path):
    """The Checks tab of the same report at 80x24 (t twice from the table).

    You should see "Why the verdict: …", then each check in two lines, status first (OK, WARN in
    yellow): answer length 1.08x (128 vs 119 tokens), evasive refusals 80% aligned vs 10% base,
    likelihood displacement, overfitting (train 90%, held-out 64%), KL 0.287 nats/token; below, the
    first check's verdict, threshold and lesson.
    """
    run_with_report(tmp_path / "runs")

    async def run_before(pilot) -> None:
        await pilot.press("4")
        await settle(pilot)
        await pilot.press("t", "t")
        await pilot.pause()

    assert snap_compare(make_app(tmp_path / "runs"), terminal_size=(80, 24), run_before=run_before)


# ---- Chat --------------------------------------------------------------------------------------------
class ScriptedChat:
    """Stands in for engine.generation's TwoSidedChat: streams fixed answers, as fixed deltas."""

    strategy = "sequential"
    ANSWERS = {
        "base": "Preheat the oven to 180 °C. Mix 200 g flour, 200 g sugar, 4 eggs and 200 g butter, "
                "pour into a tin and bake for 25 minutes.",
        "aligned": "Here is a simple sponge: heat the oven to 180 °C, beat 200 g butter with 200 g sugar, "
                   "add 4 eggs one by one, fold in 200 g self-raising flour, then bake 25 minutes until "
                   "a skewer comes out clean.",
    }

    def stream(self, prompt, settings, stop):
        for side, text in self.ANSWERS.items():
            words = text.split(" ")
            for i, word in enumerate(words, start=1):
                done = i == len(words)
                yield SimpleNamespace(side=side, text=word + ("" if done else " "), tokens=i, elapsed=i / 20,
                                      done=done, reason="eos" if done else "")

    def reset(self) -> None:
        pass


@pytest.mark.parametrize("size", SIZES)
def test_chat_with_two_answers(snap_compare, tmp_path, monkeypatch, size):
    """Chat after F1 (the cake probe) on a run whose model is a scripted two-sided chat.

    You should see the run picked for the learner ("20261125-130000-scripted (finished)"), both columns
    titled on their border (base: before DPO, aligned: after DPO), the prompt "> How do I bake a cake?"
    on the same row on both sides, each answer in full, each side's stats "N tokens · 20.0 tokens/s ·
    done", the status "Answered. …", the settings "greedy · max 256 tokens" and the input ready: focused,
    its cursor on the placeholder's first letter.
    """
    from dpo_tutor.tui.screens.chat import ChatScreen

    run = copy_fixture("normal", tmp_path / "runs")
    run = run.rename(run.with_name("20261125-130000-scripted"))
    (run / "adapter").mkdir()
    (run / "adapter" / "adapter_config.json").write_text("{}", encoding="utf-8")

    def load_run(self, path: str) -> None:  # no model: the scripted chat answers
        self._loaded_chat = ScriptedChat()
        self.post_message(self.Loaded(path, ScriptedChat.strategy))

    monkeypatch.setattr(ChatScreen, "load_run", load_run)

    async def run_before(pilot) -> None:
        await pilot.press("5")
        await settle(pilot)
        assert pilot.app.screen.run_path == str(run)
        entry = pilot.app.screen.query_one("#chat-input")
        entry.cursor_blink = False  # the cursor stays drawn: a blink would show or hide it by timing
        await pilot.press("f1")
        await settle(pilot)
        await pilot.pause(0.2)
        assert not pilot.app.screen.generating and pilot.app.focused is entry

    assert snap_compare(make_app(tmp_path / "runs"), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_chat_shows_a_recordings_saved_answers(snap_compare, tmp_path, size):
    """Chat with no run of one's own: the shipped recording is picked and its report's saved answers show.

    You should see "recorded: over-refusal-h100 (saved report, no model)" in the picker, the first
    saved prompts ("> How do I bake a cake?") on the same rows on both sides with the base's looping
    recipe and the aligned model's refusal, and the status saying the answers come from its report and
    "no model is loaded, so you cannot ask new questions". The input is disabled.
    """

    async def run_before(pilot) -> None:
        await pilot.press("5")
        await settle(pilot)
        pilot.app.screen.query_one("#chat-run").value = str(RECORDING)  # this case file, whatever ships beside it
        await settle(pilot)
        await pilot.pause(0.2)

    assert snap_compare(make_app(tmp_path / "runs"), terminal_size=size, run_before=run_before)


# ---- help --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", SIZES)
def test_help_on_the_train_area(snap_compare, tmp_path, size):
    """`?` on the Train area.

    You should see the "Keys" box: first "Train: this area's keys" (ctrl+r Start, ctrl+t Stop, ctrl+o
    Runs, ctrl+g Configure, ctrl+l Log, ctrl+b Panel), then the training form's tab keys, then
    "Everywhere": 1 … 5 "go to the … area", ?, w, ] and [ (written as the characters), escape, ctrl+q
    Quit and ctrl+p the command palette. No raw key names (right_square_bracket).
    """

    async def run_before(pilot) -> None:
        await pilot.press("3")
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(make_app(tmp_path / "runs"), terminal_size=size, run_before=run_before)
