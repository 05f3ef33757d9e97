"""The product reads at most six `DPO_TUTOR_*` environment variables, and README's table lists each one."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PRODUCT = ("engine", "tui", "dpo_tutor")
NAME = re.compile(r"DPO_TUTOR_[A-Z_]+[A-Z]")


def product_variables() -> dict[str, list[str]]:
    """Each DPO_TUTOR_* name written in product code, with the files that write it."""
    found: dict[str, list[str]] = {}
    for folder in PRODUCT:
        for path in sorted((REPO / folder).rglob("*.py")):
            for name in set(NAME.findall(path.read_text(encoding="utf-8"))):
                found.setdefault(name, []).append(str(path.relative_to(REPO)))
    return found


def readme_table() -> set[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Environment variables", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(DPO_TUTOR_[A-Z_]+)` \|", section, flags=re.M))


def test_at_most_six_variables_each_in_readme():
    found = product_variables()
    assert len(found) <= 6, found
    assert set(found) == readme_table(), (sorted(found), sorted(readme_table()))


def test_the_scan_sees_the_variables_it_must():
    found = product_variables()
    assert "DPO_TUTOR_SWITCHES" in found and "engine/switches.py" in found["DPO_TUTOR_SWITCHES"]
    assert "DPO_TUTOR_RUNS_DIR" in found
