"""Run folders: naming, listing, states (interrupted included), and `dpo-tutor runs`."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys

import pytest
from dpo_tutor.engine.events import EventWriter, read_events
from dpo_tutor.engine.runs import default_runs_dir, list_runs, new_run_dir, resolve_run, run_info


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def make_run(runs_dir, name, *events, pid=None):
    path = new_run_dir(runs_dir, name)
    (path / "config.toml").write_text("[train]\nmodel = \"tiny\"\n")
    with EventWriter(path / "events.jsonl") as w:
        for kind, fields in events:
            if kind == "run_started":
                fields = {"pid": pid or os.getpid(), "host": socket.gethostname(), "backend": "hf",
                          "total_steps": 10, **fields}
            w.emit(kind, **fields)
    return path


def test_new_run_dir_names_and_never_collides(tmp_path):
    a = new_run_dir(tmp_path, "smollm2 / test")
    b = new_run_dir(tmp_path, "smollm2 / test")
    assert re.fullmatch(r"\d{8}-\d{6}-smollm2-test(-\d+)?", a.name) and a.is_dir()
    assert a != b and b.is_dir()
    assert new_run_dir(tmp_path, "../../etc").parent == tmp_path  # a name never escapes the runs folder


def test_default_runs_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("DPO_TUTOR_RUNS_DIR", raising=False)
    assert str(default_runs_dir()) == "runs"
    monkeypatch.setenv("DPO_TUTOR_RUNS_DIR", str(tmp_path))
    assert default_runs_dir() == tmp_path


def test_states(runs_dir):
    new = new_run_dir(runs_dir, "new")
    (new / "config.toml").write_text("")
    running = make_run(runs_dir, "running", ("run_started", {}), ("step", {"step": 1, "metrics": {"loss": 0.69}}))
    interrupted = make_run(runs_dir, "killed", ("run_started", {}), ("step", {"step": 2, "metrics": {}}),
                           pid=dead_pid())
    finished = make_run(runs_dir, "done", ("run_started", {}), ("finished", {"step": 10, "adapter": "a"}))
    stopped = make_run(runs_dir, "stopped", ("run_started", {}), ("stopped", {"step": 4, "reason": "SIGTERM"}))
    failed = make_run(runs_dir, "failed", ("run_started", {}),
                      ("failed", {"step": 2, "kind": "out_of_memory", "message": "m", "remedies": ["r"]}))
    states = {info.path: info.state for info in list_runs(runs_dir)}
    assert states == {new: "new", running: "running", interrupted: "interrupted", finished: "finished",
                      stopped: "stopped", failed: "failed"}
    assert run_info(running).summary.last_metrics == {"loss": 0.69}
    assert run_info(failed).summary.failure["remedies"] == ["r"]
    assert run_info(finished).name == "done"


def test_list_runs_newest_first(runs_dir):
    a = make_run(runs_dir, "a", ("run_started", {}))
    b = make_run(runs_dir, "b", ("run_started", {}))
    c = make_run(runs_dir, "c", ("run_started", {}))
    assert [r.path for r in list_runs(runs_dir)] == [c, b, a]
    assert list_runs(runs_dir / "missing") == []


def test_torn_last_line_is_ignored_and_the_next_event_starts_a_new_line(runs_dir):
    path = make_run(runs_dir, "torn", ("run_started", {}), ("step", {"step": 1, "metrics": {"loss": 0.6}}))
    with open(path / "events.jsonl", "a", encoding="utf-8") as f:
        f.write('{"v": 1, "type": "step", "step": 2, "metr')
    events = read_events(path)
    assert [e["type"] for e in events] == ["run_started", "step"]
    assert run_info(path).summary.step == 1
    with EventWriter(path / "events.jsonl") as w:  # a resumed writer does not glue onto the torn line
        w.emit("stopped", step=1, reason="x")
    assert [e["type"] for e in read_events(path)] == ["run_started", "step", "stopped"]


def test_resolve_run(runs_dir):
    path = make_run(runs_dir, "findme", ("run_started", {}))
    assert resolve_run(str(path), runs_dir) == path
    assert resolve_run(path.name, runs_dir) == path
    assert resolve_run("findme", runs_dir) == path
    from dpo_tutor.engine.errors import UserError

    with pytest.raises(UserError, match="no run folder"):
        resolve_run("nothing-like-it", runs_dir)


def test_resolve_run_says_what_a_wrong_folder_is(runs_dir, tmp_path):
    from dpo_tutor.engine.errors import UserError

    older = make_run(runs_dir, "20261130-090000-demo", ("run_started", {}))
    newer = make_run(runs_dir, "20261201-090000-demo", ("run_started", {}))
    with pytest.raises(UserError, match="folder of 2 runs, not a run") as caught:
        resolve_run(str(runs_dir), runs_dir)  # the runs folder itself, a common slip
    assert str(newer) in str(caught.value) and str(older) not in str(caught.value)
    with pytest.raises(UserError, match="'demo' matches 2 runs"):
        resolve_run("demo", runs_dir)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="is not a run folder"):
        resolve_run(str(tmp_path / "empty"), runs_dir)


def test_runs_command(runs_dir, capsys):
    from dpo_tutor.cli import main

    make_run(runs_dir, "listed", ("run_started", {}),
             ("step", {"step": 3, "total_steps": 10, "metrics": {"loss": 0.5, "rewards/accuracies": 0.75}}),
             ("stopped", {"step": 3, "reason": "SIGTERM"}))
    assert main(["runs", "--runs-dir", str(runs_dir)]) == 0
    out = capsys.readouterr().out
    assert "listed" in out and "stopped" in out and "3/10" in out and "0.5000" in out and "0.75" in out
    assert main(["runs", "--runs-dir", str(runs_dir), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[0]["state"] == "stopped" and rows[0]["last_metrics"]["loss"] == 0.5
    assert main(["runs"]) == 0  # the env var (runs_dir fixture) is honoured too
    assert "listed" in capsys.readouterr().out
