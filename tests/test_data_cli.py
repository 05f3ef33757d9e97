"""`dpo-tutor data stats|show`, driven through the real console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "data"


def cli(*args: str, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DPO_TUTOR_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, "-m", "dpo_tutor", "data", *args], capture_output=True, text=True,
                          env=env, timeout=120)


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "cache"


def test_stats_json_has_the_promised_keys(cache):
    p = cli("stats", str(FIXTURES / "hh.jsonl"), "--json", cache=cache)
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["format"] == "hh" and d["rows_read"] == 7 and d["usable"] == 2
    assert d["dropped"] == {"empty side": 1, "chosen == rejected": 1, "prompts disagree": 1,
                            "not a string": 1, "duplicate": 1}
    assert {"lengths", "chosen_longer_share", "turns"} <= set(d)


def test_stats_text_and_the_sample_default(cache):
    p = cli("stats", cache=cache)
    assert p.returncode == 0, p.stderr
    assert any(line.split() == ["format", "trl"] for line in p.stdout.splitlines()) and "length bias" in p.stdout
    assert "sample_preferences.jsonl" in p.stdout


def test_stats_with_columns_and_format_options(cache):
    p = cli("stats", str(FIXTURES / "mapped.csv"), "--columns", "prompt=question,chosen=good,rejected=bad",
            "--json", cache=cache)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["usable"] == 3
    p = cli("stats", str(FIXTURES / "oasst_flat.jsonl"), "--pairs", "best-vs-worst", "--json", cache=cache)
    assert json.loads(p.stdout)["usable"] == 2


def test_show_prints_one_triplet(cache):
    p = cli("show", str(FIXTURES / "hh.jsonl"), "--index", "1", cache=cache)
    assert p.returncode == 0, p.stderr
    assert "[user]\nWhat is 2+2?" in p.stdout and "[chosen]\n4." in p.stdout and "[rejected]\n5." in p.stdout
    p = cli("show", str(FIXTURES / "hh.jsonl"), "--index", "0", "--json", cache=cache)
    assert json.loads(p.stdout)["rejected"] == "Buy one."


@pytest.mark.parametrize("args,expected", [
    (("stats", "broken.jsonl"), "broken.jsonl:3: broken JSON"),
    (("stats", "empty.jsonl"), "empty.jsonl: the file is empty"),
    (("stats", "not_preference.jsonl"), "not preference data: found fields label, text"),
    (("stats", "ambiguous.jsonl"), "ambiguous format"),
    (("stats", "mapped.csv", "--columns", "prompt=q,chosen=good,rejected=bad"), "missing columns: expected prompt=q"),
    (("stats", "mapped.csv", "--columns", "answer=good"), "'answer' is not prompt, chosen or rejected"),
    (("stats", "hh.jsonl", "--format", "nope"), "unknown format 'nope'"),
    (("show", "hh.jsonl", "--index", "9"), "--index 9 is out of range: there are 2 usable triplets"),
    (("stats", "no-such-file.jsonl"), "no such file"),
])
def test_bad_input_is_one_line_on_stderr_and_exit_2(cache, args, expected):
    action, name, *rest = args
    p = cli(action, str(FIXTURES / name), *rest, cache=cache)
    assert p.returncode == 2
    assert p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dpo-tutor data: "), p.stderr
    assert expected in lines[0]
    assert "Traceback" not in p.stderr
