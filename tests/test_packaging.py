"""Packaging and import hygiene: the engine never pulls in the UI, the CLI answers fast, the wheel is whole."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

ENGINE_MODULES = [
    "dpo_tutor.engine",
    "dpo_tutor.engine.config",
    "dpo_tutor.engine.events",
    "dpo_tutor.engine.errors",
    "dpo_tutor.engine.data.triplet",
]
OPTIONAL_ENGINE_MODULES = [
    "dpo_tutor.engine.lessons",
    "dpo_tutor.engine.dpo_math",
    "dpo_tutor.engine.walkthrough",
    "dpo_tutor.engine.run_facts",
    "dpo_tutor.engine.runs",
    "dpo_tutor.engine.data.load",
    "dpo_tutor.engine.data.quality",
    "dpo_tutor.engine.models",
    "dpo_tutor.engine.evaluate",
    "dpo_tutor.engine.report",
]


def _modules_after_import(modules: list[str]) -> set[str]:
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}:\n"
        "    try:\n"
        "        importlib.import_module(m)\n"
        "    except ModuleNotFoundError as e:\n"
        "        if e.name != m: raise\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def test_engine_imports_no_ui_modules():
    loaded = _modules_after_import(ENGINE_MODULES + OPTIONAL_ENGINE_MODULES)
    assert "dpo_tutor.engine" in loaded
    forbidden = {m for m in loaded if m.split(".")[0] in {"textual", "rich", "plotext", "textual_plotext"}}
    forbidden |= {m for m in loaded if m.startswith("dpo_tutor.tui")}
    assert not forbidden, f"the engine pulled in UI modules: {sorted(forbidden)[:10]}"


def test_cli_help_and_version_import_nothing_heavy():
    code = (
        "import sys, json, contextlib, io\n"
        "from dpo_tutor import cli\n"
        "for argv in (['--help'], ['--version'], ['train', '--help']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try: cli.main(argv)\n"
        "        except SystemExit: pass\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    heavy = {m for m in loaded if m.split(".")[0] in {"torch", "transformers", "trl", "textual", "datasets", "peft"}}
    assert not heavy, f"--help imported: {sorted(heavy)[:10]}"


def _installed_layout(dest: Path) -> Path:
    """The package as installed (dpo_tutor/{engine,tui,lessons}), which import-linter can walk."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    root = dest / "dpo_tutor"
    shutil.copytree(REPO / "dpo_tutor", root, ignore=ignore)
    for folder in ("engine", "tui", "lessons", "benchmarks"):
        shutil.copytree(REPO / folder, root / folder, ignore=ignore)
    return dest


def test_import_linter_contract_holds(tmp_path):
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.skip("import-linter is not installed in this environment")
    layout = _installed_layout(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(layout)}
    result = subprocess.run(
        [str(lint), "--no-cache", "--config", str(REPO / "pyproject.toml")],
        cwd=layout, capture_output=True, text=True, env=env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "4 kept, 0 broken" in result.stdout


def test_python_dash_m_runs_the_same_cli():
    result = subprocess.run(
        [sys.executable, "-m", "dpo_tutor", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.startswith("dpo-tutor ")


def test_wheel_contains_the_lessons_and_no_generic_top_level_packages(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(REPO)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    wheel = next(tmp_path.glob("dpo_tutor-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    lessons = [n for n in names if n.startswith("dpo_tutor/lessons/") and n.endswith(".md")]
    assert len(lessons) >= 9, lessons
    assert "dpo_tutor/engine/events.py" in names
    assert "dpo_tutor/tui/app.tcss" in names
    top = {n.split("/")[0] for n in names if not n.startswith("dpo_tutor-")}
    assert top == {"dpo_tutor"}, top
