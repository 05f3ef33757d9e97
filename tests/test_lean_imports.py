"""A hf training run leaves out the optional packages it never uses (engine/train/backends/lean_imports.py): they
read as not installed for the run's life, and the installed distributions are listed once."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import switches_env
from dpo_tutor.engine.switches import Switches
from dpo_tutor.engine.train.backends import lean_imports

FAKES = ("sklearn", "torchao", "bitsandbytes")


def _fake_packages(root: Path, marks: Path) -> Path:
    """Packages named like the optional ones whose import leaves a mark (and then fails, so that a
    library importing one would show it)."""
    site = root / "fake-site"
    for name in FAKES:
        (site / name).mkdir(parents=True)
        (site / name / "__init__.py").write_text(
            f"open({str(marks / name)!r}, 'w').close()\nraise ImportError('a stand-in, not {name}')\n"
        )
    return site


def test_lean_hides_installed_packages_not_yet_imported_and_gives_them_back(tmp_path, monkeypatch):
    site = _fake_packages(tmp_path, tmp_path)
    monkeypatch.syspath_prepend(str(site))
    with lean_imports.lean(["sklearn", "not_installed_anywhere", "json"]) as hidden:
        assert hidden == ["sklearn"]  # json is imported already; the other is not installed
        assert importlib.util.find_spec("sklearn") is None
        with pytest.raises(ImportError):
            import sklearn  # noqa: F401
        assert not (tmp_path / "sklearn").exists()  # not even tried
    assert "sklearn" not in sys.modules
    assert importlib.util.find_spec("sklearn") is not None  # installed again after the run


def test_lean_lists_the_distributions_once(monkeypatch):
    calls = []

    def listing():
        calls.append(1)
        return {"torch": ["torch"]}

    monkeypatch.setattr(importlib.metadata, "packages_distributions", listing)
    with lean_imports.lean():
        assert importlib.metadata.packages_distributions() == {"torch": ["torch"]}
        assert importlib.metadata.packages_distributions() == {"torch": ["torch"]}
    assert len(calls) == 1
    assert importlib.metadata.packages_distributions is listing  # put back


def test_the_switch_turns_it_off(tmp_path, monkeypatch):
    site = _fake_packages(tmp_path, tmp_path)
    monkeypatch.syspath_prepend(str(site))
    with lean_imports.lean(["sklearn"], enabled=Switches.parse("lean_imports=0").lean_imports) as hidden:
        assert hidden == []
        assert importlib.util.find_spec("sklearn") is not None


def _source(kind: str, location: str = "") -> SimpleNamespace:
    return SimpleNamespace(kind=kind, location=location)


def test_what_a_hf_run_leaves_out_depends_on_the_optimizer_and_the_checkpoint(tmp_path):
    assert lean_imports.hidden_for_hf("adamw_torch", _source("tiny")) == list(FAKES)
    assert lean_imports.hidden_for_hf("adamw_torch", _source("gguf", "m.gguf")) == list(FAKES)
    assert "bitsandbytes" not in lean_imports.hidden_for_hf("adamw_8bit", _source("gguf", "m.gguf"))
    dense, quantized, unreadable = tmp_path / "dense", tmp_path / "quantized", tmp_path / "unreadable"
    for folder in (dense, quantized, unreadable):
        folder.mkdir()
    (dense / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (quantized / "config.json").write_text(json.dumps({"quantization_config": {"load_in_4bit": True}}))
    (unreadable / "config.json").write_text("{not json")
    assert lean_imports.hidden_for_hf("adamw_torch", _source("folder", str(dense))) == list(FAKES)
    assert lean_imports.hidden_for_hf("adamw_torch", _source("folder", str(quantized))) == []
    assert lean_imports.hidden_for_hf("adamw_torch", _source("folder", str(unreadable))) == []
    # a hub model whose config is not in the local cache: cannot tell before loading, so nothing hidden
    assert lean_imports.hidden_for_hf("adamw_torch", _source("hub", "nobody/not-cached-anywhere")) == []


def _train(tmp_path: Path, name: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dpo_tutor", "train", "--model", "tiny", "--max-steps", "1", "--eval-steps", "0",
         "--out", str(tmp_path / name), "--quiet"],
        env=env, capture_output=True, text=True, timeout=300,
    )


def test_a_hf_run_never_imports_them(tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    site = _fake_packages(tmp_path, marks)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "DPO_TUTOR_CACHE_DIR": str(tmp_path / "cache")}
    lean = _train(tmp_path, "lean", env)
    assert lean.returncode == 0, lean.stderr[-2000:]
    assert sorted(p.name for p in marks.iterdir()) == []  # none was even tried
    started = json.loads((tmp_path / "lean" / "events.jsonl").read_text().splitlines()[0])
    assert started["imports_left_out"] == list(FAKES)
    # The control: without it the libraries import them (and here fail on the stand-ins)
    off = _train(tmp_path, "off", {**env, **switches_env(lean_imports=False)})
    assert off.returncode != 0
    assert {p.name for p in marks.iterdir()} & set(FAKES)
