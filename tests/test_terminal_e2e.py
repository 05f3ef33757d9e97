"""The real terminal: `dpo-tutor` in tmux, driven with keys, its screen captured and read.

- default suite: lessons -> data -> train -> chat at 80x24, then resized to 60x20 (the app still answers);
- slow: the whole walk, training the tiny model on CPU from the Train form and chatting with the run;
- slow: the terminal hangs up (SIGHUP) while a run trains: the run finishes, and a new `dpo-tutor`
  re-attaches to it.

CI installs tmux; without it these tests are skipped, saying so.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import pytest
from dpo_tutor.engine.events import read_events
from dpo_tutor.engine.runs import pid_alive
from dpo_tutor.engine.train.machine import gpu_visible
from tmux_driver import Tmux, tmux_available

pytestmark = pytest.mark.skipif(not tmux_available(), reason="tmux is not installed (CI installs it: apt-get install tmux)")

def dpo_tutor_command() -> list[str]:
    """The console script of the Python running the tests (the venv's), else the module."""
    beside_python = Path(sys.executable).parent / "dpo-tutor"
    if beside_python.exists():
        return [str(beside_python)]
    found = shutil.which("dpo-tutor")
    return [found] if found else [sys.executable, "-m", "dpo_tutor"]


def start(tmp_path: Path, width: int, height: int) -> Tmux:
    env = {
        "DPO_TUTOR_RUNS_DIR": str(tmp_path / "runs"),
        "DPO_TUTOR_CACHE_DIR": str(tmp_path / "cache"),
        "HF_HUB_OFFLINE": "1",
        "PYTHONWARNINGS": "ignore",
        "TERM": "xterm-256color",
    }
    return Tmux.start(dpo_tutor_command(), width=width, height=height, env=env, cwd=tmp_path)


def fits(width: int, height: int):
    def check(screen: str) -> bool:
        lines = screen.rstrip("\n").split("\n")
        return len(lines) <= height and max((len(line) for line in lines), default=0) <= width

    check.__name__ = f"a {width}x{height} screen"
    return check


SCROLLBAR = "\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588\u258f\u2595 "  # a scrollbar's thumb glyphs


def form_lines(screen: str) -> list[str]:
    """The Train form's column of the screen (left of the divider), each line stripped, the form's
    scrollbar thumb too (where it sits depends on how long the form is)."""
    return [line.split("\u2502")[0].strip().rstrip(SCROLLBAR) for line in screen.split("\n")]


def field_shows(name: str, value: str):
    """A screen predicate: the form's field `name` shows `value` under its label."""

    def check(screen: str) -> bool:
        left = form_lines(screen)
        return any(text == name and value in left[i + 1:i + 3] for i, text in enumerate(left))

    check.__name__ = f"{name} = {value!r}"
    return check


def form_shows(text: str):
    """A screen predicate: the form shows `text`, wherever its lines wrap."""

    def check(screen: str) -> bool:
        return text in " ".join(" ".join(form_lines(screen)).split())

    check.__name__ = f"the form shows {text!r}"
    return check


def fill_train_form(tty: Tmux, **values: str) -> None:
    """From the Train screen as it opens (focus on its tabs): Tab to each field, clear it, type.

    The form's Tab is a priority binding (keys after it reach the next field); still, as a person
    does, each typed value is seen on the screen before the next Tab (typed again if it is not).
    """
    order = ["model", "pick-data", "data", "data_weights", "beta", "learning_rate", "batch_size", "grad_accum",
             "max_steps", "epochs", "max_pairs", "max_length", "lora_r"]
    tty.send("Tab", "Tab", "Tab", "Tab", "Tab")  # form, preset, run name, model picker, model
    for i, name in enumerate(order):
        if i:
            tty.send("Tab")
        if name in values:
            time.sleep(0.2)  # the focus has moved before the field is cleared
            for attempt in range(3):
                tty.send("C-a", "C-k")
                tty.type(values[name])
                try:
                    tty.wait_for(field_shows(name, values[name]), timeout=10)
                    break
                except AssertionError:
                    if attempt == 2:
                        raise
    # On to the Start button: the form scrolls to its end, where the summary that reads the values is
    # (at 80x24, with focus on the last field, the summary could sit just below the view; CI saw it).
    tty.send("Tab")


def go_to(tty: Tmux, area: str) -> None:
    """Switch areas through the command palette (works while a text field has the focus)."""
    tty.send("C-p")
    tty.wait_for("go to")
    tty.type(f"go to {area.lower()}")
    tty.wait_for(f"switch to the {area} area")
    tty.send("Enter")


def newest_run(tmp_path: Path) -> Path | None:
    runs = tmp_path / "runs"
    found = sorted(p for p in runs.iterdir() if p.is_dir()) if runs.is_dir() else []
    return found[-1] if found else None


def wait_until(predicate, timeout: float, what: str, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}")


def showing(*texts: str):
    """A screen predicate: every one of `texts` is on the screen."""

    def check(screen: str) -> bool:
        return all(text in screen for text in texts)

    check.__name__ = " and ".join(repr(t) for t in texts)
    return check


def lessons_then_data(tty: Tmux) -> None:
    tty.wait_for(showing("Lesson 1 of 14", "Why preference learning"), timeout=30)
    tty.send("n")
    tty.wait_for(showing("Lesson 2 of 14", "RLHF"))
    tty.send("2")
    tty.wait_for(showing("bundled sample", "usable", "How do I"))
    tty.send("3")
    tty.wait_for(showing("preset", "CPU look" if not gpu_visible() else "quick demo", "Start"))


def walk_without_training(tty: Tmux) -> None:
    lessons_then_data(tty)
    tty.send("5")
    # no run of its own yet: Chat opens the shipped default recording's saved answers, saying so
    tty.wait_for(showing("default-recipe-h200", "base", "aligned", "no model"))


def test_lessons_data_train_chat_at_80x24_then_resized_to_60x20(tmp_path):
    with start(tmp_path, 80, 24) as tty:
        screen = tty.wait_for("Lesson 1 of 14", timeout=30)
        assert fits(80, 24)(screen)
        walk_without_training(tty)
        tty.resize(60, 20)
        screen = tty.wait_for(fits(60, 20))
        assert tty.size() == (60, 20)
        assert "default-recipe-h200" in tty.wait_for("default-recipe-h200")  # redrawn at the new size
        # The app still answers keys at 60x20, in every area.
        tty.send("1")
        tty.wait_for("Lesson 2 of 14")
        tty.send("2")
        tty.wait_for(showing("bundled sample", "How do I"))
        tty.send("3")
        tty.wait_for(showing("preset", "Start"))
        tty.send("5")
        screen = tty.wait_for(showing("default-recipe-h200", "aligned"))
        assert fits(60, 20)(screen)
        assert not tty.program_exited()
        tty.send("C-q")
        wait_until(tty.program_exited, 10, "dpo-tutor to quit on ctrl+q")
        assert tty.exit_status() == 0, tty.capture()


def test_the_whole_walk_trains_the_tiny_model_and_chats_with_it(tmp_path):
    with start(tmp_path, 80, 24) as tty:
        lessons_then_data(tty)  # ends on the Train screen, as it first opens
        fill_train_form(tty, model="tiny", batch_size="2", grad_accum="1", max_steps="4", max_length="64")
        tty.wait_for(form_shows("2 x 1 = 2 pairs per step; 4 steps"))  # the form read what was typed
        tty.send("C-r")
        run = wait_until(lambda: newest_run(tmp_path), 60, "a run folder")  # the train process imports torch first
        screen = tty.wait_for("FINISHED", timeout=240)
        assert "4/4" in screen
        events = read_events(run)
        assert events[-1]["type"] == "finished" and events[-1]["step"] == 4
        config = events[0]["config"]  # what was typed into the form reached the engine
        assert (config["model"], config["max_steps"], config["batch_size"], config["max_length"]) == ("tiny", 4, 2, 64)

        # Digits would go into the focused form field: switch areas through the command palette.
        go_to(tty, "Chat")  # the run just trained is picked and loaded
        tty.wait_for(showing(run.name, "one model in memory"), timeout=120)
        tty.send("F1")
        screen = tty.wait_for(lambda s: s.count("> How do I bake a cake?") == 2, timeout=60)
        screen = tty.wait_for(lambda s: "Answering" not in s and "tokens" in s, timeout=180)
        assert screen.count("> How do I bake a cake?") == 2  # both columns, base and aligned

        tty.resize(60, 20)
        tty.wait_for(fits(60, 20))
        go_to(tty, "Train")
        tty.wait_for(showing("FINISHED", "4/4"))
        assert not tty.program_exited()


def test_a_hung_up_terminal_leaves_the_run_training_and_a_new_tutor_reattaches(tmp_path):
    with start(tmp_path, 120, 40) as first:
        first.wait_for("Lesson 1 of 14", timeout=30)
        first.send("3")
        first.wait_for("preset")
        # every pair (max_pairs 0): 100 steps over the CPU look's 48 would put a memorising warning above the summary
        fill_train_form(first, model="tiny", batch_size="2", grad_accum="1", max_steps="100", max_pairs="0",
                        max_length="64")
        first.wait_for(form_shows("2 x 1 = 2 pairs per step; 100 steps"))  # the form read what was typed
        first.send("C-r")
        run = wait_until(lambda: newest_run(tmp_path), 60, "a run folder")  # the train process imports torch first
        wait_until(lambda: len([e for e in read_events(run) if e["type"] == "step"]) >= 2, 180, "two steps")
        tui_pid = first.program_pid()
        started = next(e for e in read_events(run) if e["type"] == "run_started")
        train_pid = started["pid"]
        assert (started["config"]["model"], started["config"]["max_steps"]) == ("tiny", 100)
        first.kill()  # the terminal goes away: SIGHUP to the tutor
        wait_until(lambda: not pid_alive(tui_pid), 15, "the tutor to end on SIGHUP")
    assert pid_alive(train_pid), "the run died with the terminal"

    with start(tmp_path, 120, 40) as second:
        second.wait_for("Lesson 1 of 14", timeout=30)
        second.send("3")
        second.wait_for("preset")
        second.send("C-o")
        second.wait_for(run.name)
        second.send("Enter")
        screen = second.wait_for(lambda s: f"attached to {run.name}" in s or "FINISHED" in s, timeout=30)
        reattached_live = f"attached to {run.name}" in screen
        screen = second.wait_for("FINISHED at step 100/100", timeout=300)
    events = read_events(run)
    steps = [e["step"] for e in events if e["type"] == "step"]
    assert steps == list(range(1, 101)) and events[-1]["type"] == "finished"
    assert [e["type"] for e in events].count("run_started") == 1  # the same process, never restarted
    assert not any(e["type"] == "stopped" for e in events)
    assert reattached_live, "the run had finished before the new tutor opened it (nothing to re-attach to)"
