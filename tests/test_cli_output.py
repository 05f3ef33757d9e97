"""What the console script prints on bad input and in pipes: one clear line, never a traceback (issue 21)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures" / "data"


def run_cli(*args: str, tmp_path: Path, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "DPO_TUTOR_CACHE_DIR": str(tmp_path / "cache")}
    return subprocess.run([sys.executable, "-m", "dpo_tutor", *args], capture_output=True, text=True, env=env,
                          timeout=120, **kwargs)


def one_clear_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_a_closed_pipe_gives_one_line_not_a_traceback(tmp_path):
    """`dpo-tutor data stats FILE --json | head -c 600`: the reader is gone before the JSON is written."""
    env = {**os.environ, "DPO_TUTOR_CACHE_DIR": str(tmp_path / "cache")}
    process = subprocess.Popen([sys.executable, "-m", "dpo_tutor", "data", "stats", str(FIXTURES / "shp.jsonl"),
                                "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    process.stdout.close()  # no reader left: the first write gets EPIPE
    stderr = process.stderr.read()
    assert process.wait(timeout=120) == 141
    assert "broken pipe" in one_clear_line(stderr)


def test_json_nested_100000_levels_gives_one_line(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    lines = tmp_path / "deep.jsonl"
    lines.write_text('{"prompt": ' + '{"a": ' * 100_000 + "1" + "}" * 100_000 + "}\n")
    for path in (deep, lines):
        for command in ("stats", "show"):
            p = run_cli("data", command, str(path), tmp_path=tmp_path)
            assert p.returncode == 2
            line = one_clear_line(p.stderr)
            assert str(path) in line and "nested too deeply" in line


def test_the_quality_report_never_prints_a_python_dict(tmp_path):
    for name in ("shp.jsonl", "oasst_trees.jsonl"):
        p = run_cli("data", "stats", str(FIXTURES / name), tmp_path=tmp_path)
        assert p.returncode == 0, p.stderr
        assert "{" not in p.stdout and "'" not in p.stdout, p.stdout
        assert all(len(line) <= 80 for line in p.stdout.splitlines() if not line.startswith("source")), p.stdout


def test_chat_help_explains_every_option():
    from dpo_tutor.cli import build_parser

    parser = build_parser()
    chat = parser._subparsers._group_actions[0].choices["chat"]  # argparse keeps no public accessor
    for action in chat._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, f"{action.option_strings} has no help"


def test_library_progress_bars_are_off_unless_asked_for(monkeypatch):
    from dpo_tutor.cli import quiet_libraries

    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "info")
    quiet_libraries()
    assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
    assert os.environ["TRANSFORMERS_VERBOSITY"] == "info"  # a person's own setting wins


def test_bench_progress_lines_carry_no_raw_result_dict():
    from dpo_tutor.commands.bench import progress_text

    assert progress_text('bench: ours-hf: finished {"pairs_per_s": 298.6, "state": "finished"}') == \
        "bench: ours-hf: finished"
    assert progress_text("bench: ours-hf ...") == "bench: ours-hf ..."
