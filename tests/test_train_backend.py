"""Backend choice, the clear one-line failures of the train command, --detach, and import hygiene."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from conftest import set_switches, switches_env
from dpo_tutor.engine.errors import UserError
from dpo_tutor.engine.events import read_events
from dpo_tutor.engine.train.plan import select_backend


def test_auto_picks_hf_on_cpu_and_says_why():
    choice = select_backend("auto", cuda=False, unsloth=True)
    assert choice.name == "hf" and "no CUDA" in choice.reason
    assert select_backend("auto").name == "hf"  # this machine (CI) has no GPU


def test_auto_picks_unsloth_on_cuda_when_installed():
    assert select_backend("auto", cuda=True, unsloth=True).name == "unsloth"
    choice = select_backend("auto", cuda=True, unsloth=False)
    assert choice.name == "hf" and "not installed" in choice.reason
    assert select_backend("auto", cuda=True, unsloth=True, gpus=2).name == "hf"
    # a recipe whose steps CUDA graphs replay trains faster on hf (BENCHMARKS.md, fourth round)
    choice = select_backend("auto", cuda=True, unsloth=True, graphed_recipe=True)
    assert choice.name == "hf" and "graph" in choice.reason
    assert select_backend("auto", cuda=False, unsloth=True, graphed_recipe=True).name == "hf"
    assert select_backend("unsloth", cuda=True, unsloth=True, graphed_recipe=True).name == "unsloth"
    assert select_backend("hf", cuda=True, unsloth=True).name == "hf"


def test_unsloth_without_cuda_or_package_is_one_clear_line():
    with pytest.raises(UserError) as no_gpu:
        select_backend("unsloth", cuda=False, unsloth=True)
    assert "needs an NVIDIA GPU with CUDA" in no_gpu.value.one_line() and "\n" not in no_gpu.value.one_line()
    with pytest.raises(UserError, match="not installed"):
        select_backend("unsloth", cuda=True, unsloth=False)
    with pytest.raises(UserError, match="unknown backend"):
        select_backend("tpu")


def test_cli_backend_unsloth_on_this_machine(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "dpo_tutor", "train", "--model", "tiny", "--backend", "unsloth",
         "--runs-dir", str(tmp_path / "runs")],
        check=False, capture_output=True, text=True, timeout=60,
        env={**os.environ, **switches_env(no_cuda=True)},
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dpo-tutor train: ") and "CUDA" in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_cli_bad_data_is_one_line_and_leaves_no_run(tmp_path, capsys):
    from dpo_tutor.cli import main

    runs = tmp_path / "runs"
    code = main(["train", "--model", "tiny", "--data", str(tmp_path / "missing.jsonl"), "--runs-dir", str(runs),
                 "--quiet"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dpo-tutor train: ") and "missing.jsonl" in err[0]
    assert not runs.exists() or not any(runs.iterdir())  # refused before any run folder exists


def test_detach_prints_the_run_folder_at_once_and_the_run_finishes(tmp_path):
    runs = tmp_path / "runs"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "dpo_tutor", "train", "--model", "tiny", "--max-steps", "3", "--batch-size", "2",
         "--grad-accum", "1", "--max-length", "96", "--eval-steps", "0", "--name", "bg", "--detach",
         "--runs-dir", str(runs)],
        check=False, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 8  # it does not wait for the training
    from pathlib import Path

    run_dir = Path(done.stdout.strip())
    assert run_dir.parent == runs and run_dir.name.endswith("-bg")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        events = read_events(run_dir)
        if events and events[-1]["type"] in ("finished", "failed", "stopped"):
            break
        time.sleep(0.2)
    assert events[-1]["type"] == "finished", (run_dir / "train.log").read_text()[-2000:]
    started_event = events[0]
    assert started_event["pid"] != os.getpid()
    assert (run_dir / "train.log").exists() and (run_dir / "adapter" / "adapter_config.json").exists()


def test_cli_and_engine_imports_stay_light():
    code = (
        "import sys; import dpo_tutor.cli as c; c.build_parser(); "
        "import dpo_tutor.engine.runs, dpo_tutor.engine.models, dpo_tutor.engine.train.machine; "
        "import dpo_tutor.engine.train.run, dpo_tutor.engine.train.plan, dpo_tutor.engine.train.backends.unsloth; "
        "heavy = [m for m in ('torch', 'transformers', 'trl', 'peft', 'unsloth', 'datasets') if m in sys.modules]; "
        "print(heavy)"
    )
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    out = done.stdout.strip()
    assert out == "[]"


def smoke_config(**changes):
    from dpo_tutor.engine.config import TrainConfig

    return TrainConfig(model="tiny", max_steps=3, batch_size=4, grad_accum=1, max_length=128, learning_rate=5e-3,
                       warmup_ratio=0.0, eval_steps=0, save_steps=0, seed=0).replace(**changes)


def _fake_unsloth(calls: dict):
    """A stand-in `unsloth` module with the two calls the backend makes, over transformers + PEFT."""
    import types

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    class FastLanguageModel:
        @staticmethod
        def from_pretrained(model_name, **kwargs):
            calls["from_pretrained"] = {"model_name": model_name, **kwargs}
            return AutoModelForCausalLM.from_pretrained(model_name, dtype=kwargs["dtype"]), \
                AutoTokenizer.from_pretrained(model_name)

        @staticmethod
        def get_peft_model(model, **kwargs):
            calls["get_peft_model"] = kwargs
            config = LoraConfig(r=kwargs["r"], lora_alpha=kwargs["lora_alpha"], target_modules=kwargs["target_modules"],
                                lora_dropout=kwargs["lora_dropout"], task_type="CAUSAL_LM")
            return get_peft_model(model, config)

    module = types.ModuleType("unsloth")
    module.__version__ = "0-fake"
    module.FastLanguageModel = FastLanguageModel
    return module


def test_unsloth_backend_wiring_with_a_stand_in(tmp_path, monkeypatch):
    """The unsloth path end to end on CPU, with a fake `unsloth` module: what it asks Unsloth for, the
    PEFT model handed to TRL (which adds its frozen 'ref' adapter), and the adapter saved without 'ref'."""
    import json

    from dpo_tutor.engine.models import build_tiny_model
    from dpo_tutor.engine.train import plan
    from dpo_tutor.engine.train.plan import BackendChoice
    from dpo_tutor.engine.train.run import run_training

    model, tok = build_tiny_model()
    model.save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    calls: dict = {}
    monkeypatch.setitem(sys.modules, "unsloth", _fake_unsloth(calls))
    monkeypatch.delenv("UNSLOTH_DISABLE_CPU_FALLBACK", raising=False)
    from dpo_tutor.engine.train.backends.cpu_logprob import CpuChunkedLogProb
    from trl.trainer import utils

    # Real Unsloth routes TRL's fused LM head to its own CUDA kernel; on this CPU the stand-in does it.
    monkeypatch.setattr(utils, "_ChunkedLogProbFunction", CpuChunkedLogProb)
    monkeypatch.setattr(plan, "select_backend", lambda requested, **_: BackendChoice("unsloth", "test stand-in"))
    config = smoke_config(model=str(tmp_path / "base"), max_steps=3, eval_steps=0, save_steps=0,
                          gradient_checkpointing=True, compile="on")
    result = run_training(config, tmp_path / "run")
    events = read_events(tmp_path / "run")
    assert result.state == "finished", events[-1]
    assert events[0]["backend"] == "unsloth" and events[0]["versions"]["unsloth"] == "0-fake"
    assert [e["phase"] for e in events if e["type"] == "phase"].count("compiling") == 1
    assert any("compile on is ignored: Unsloth compiles its own kernels" in e.get("message", "") for e in events)
    assert not any(e.get("compiled_layers") for e in events)
    assert [e["step"] for e in events if e["type"] == "step"] == [1, 2, 3]
    loaded = calls["from_pretrained"]
    assert loaded["load_in_4bit"] is False and loaded["load_in_16bit"] is True
    assert loaded["max_seq_length"] == config.max_length and loaded["trust_remote_code"] is False
    peft_kwargs = calls["get_peft_model"]
    assert peft_kwargs["target_modules"] == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                             "down_proj"]
    assert peft_kwargs["use_gradient_checkpointing"] == "unsloth" and peft_kwargs["r"] == config.lora_r
    saved = json.loads((tmp_path / "run" / "adapter" / "adapter_config.json").read_text())
    assert saved["r"] == config.lora_r
    assert not (tmp_path / "run" / "adapter" / "ref").exists()  # TRL's frozen reference copy is not saved


def test_merge_writes_a_plain_transformers_model(tmp_path):
    import torch
    from dpo_tutor.engine.train.run import run_training
    from transformers import AutoModelForCausalLM

    result = run_training(smoke_config(max_steps=2, eval_steps=0, save_steps=0, merge=True), tmp_path / "run")
    events = read_events(tmp_path / "run")
    assert result.state == "finished" and events[-1]["merged"].endswith("merged")
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "merged")
    assert merged.dtype == torch.bfloat16
    assert not [n for n, _ in merged.named_parameters() if "lora" in n]


def test_gpu_visible_reads_the_driver_without_torch(tmp_path, monkeypatch):
    from dpo_tutor.engine.train.machine import gpu_visible

    monkeypatch.delenv("DPO_TUTOR_SWITCHES", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert not gpu_visible(str(tmp_path))  # nothing there
    (tmp_path / "proc" / "driver" / "nvidia" / "gpus" / "0000:01:00.0").mkdir(parents=True)
    assert gpu_visible(str(tmp_path))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # hidden, as torch would see it
    assert not gpu_visible(str(tmp_path))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    set_switches(monkeypatch, no_cuda=True)
    assert not gpu_visible(str(tmp_path))
