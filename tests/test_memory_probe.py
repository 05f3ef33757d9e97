"""The memory probe's table: live blocks grouped by the line that allocated them (benchmarks/memory_probe.py)."""

from __future__ import annotations

from dpo_tutor.benchmarks.memory_probe import MIB, format_sites, from_spec, live_blocks_by_site


def _frame(filename, line, name):
    return {"filename": filename, "line": line, "name": name}


SNAPSHOT = {"segments": [
    {"blocks": [
        {"state": "active_allocated", "size": 64 * MIB, "frames": [
            _frame("/usr/lib/python3/torch/_inductor/x.py", 9, "run"),
            _frame("/site/dpo_tutor/engine/train/fast/graphed_step.py", 480, "_record"),
            _frame("/site/trl/trainer/dpo_trainer.py", 10, "train")]},
        {"state": "active_allocated", "size": 64 * MIB, "frames": [
            _frame("/usr/lib/python3/torch/_inductor/x.py", 9, "run"),
            _frame("/site/dpo_tutor/engine/train/fast/graphed_step.py", 480, "_record"),
            _frame("/site/trl/trainer/dpo_trainer.py", 10, "train")]},
        {"state": "inactive", "size": 512 * MIB, "frames": []},  # cached, not live: not counted
    ]},
    {"blocks": [
        {"state": "active_allocated", "size": 2 * MIB, "frames": [_frame("/usr/lib/python3/torch/nn/x.py", 1, "f")]},
        {"state": "active_allocated", "size": 1 * MIB},  # allocated before the history began
    ]},
]}


def test_live_blocks_are_grouped_by_their_first_frames_in_our_code_largest_first():
    rows = live_blocks_by_site(SNAPSHOT, depth=2)
    assert rows == [
        ("graphed_step.py:480 _record < dpo_trainer.py:10 train", 2, 128 * MIB),
        ("x.py:1 f", 1, 2 * MIB),  # no frame of ours: the innermost frames
        ("(no history)", 1, 1 * MIB),
    ]
    table = format_sites(rows, "end")
    assert "## end: 131.0 MiB live in 4 blocks" in table
    assert "| 128.0 | 2 | graphed_step.py:480 _record < dpo_trainer.py:10 train |" in table


def test_the_spec_names_the_steps_and_the_file(tmp_path):
    probe = from_spec(f"1,12:{tmp_path / 'm.md'}")
    assert probe.steps == {1, 12} and probe.path == tmp_path / "m.md"
    assert from_spec(str(tmp_path / "m.md")).steps == set()
