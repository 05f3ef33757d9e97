"""A real DPO run of the tiny random model on the bundled sample, on CPU, through TRL's DPOTrainer."""

from __future__ import annotations

import math
import statistics

import pytest
from conftest import set_switches
from dpo_tutor.engine.config import TrainConfig
from dpo_tutor.engine.events import read_events
from dpo_tutor.engine.runs import run_info

LN2 = math.log(2)
STEPS = 30


def smoke_config(**changes) -> TrainConfig:
    """Checked over seeds 0-5 (beta 0.5 so a tiny model's small log-prob moves show): the mean of the
    last five train losses ends at 0.01-0.11 and the mean margin at 3.4-5.0. (With beta 0.1 and 20
    steps of 4 pairs, 12 seeds ended anywhere from 0.41 to 0.60: not reliable enough for CI.)"""
    base = TrainConfig(
        model="tiny", max_steps=STEPS, batch_size=8, grad_accum=1, max_length=128, learning_rate=5e-3,
        beta=0.5, warmup_ratio=0.0, eval_steps=15, eval_pairs=16, save_steps=15, seed=0,
    )
    return base.replace(**changes)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    from dpo_tutor.engine.train.run import run_training

    run_dir = tmp_path_factory.mktemp("runs") / "smoke"
    seen: list[dict] = []
    with pytest.MonkeyPatch.context() as patch:  # the autouse fixtures are per test, this run per module
        # the bundled sample and an own dataset cache, as conftest's test_switches fixture sets per test
        patch.setenv("DPO_TUTOR_SWITCHES", f"dataset_cache_dir={run_dir.parent / 'dataset-cache'},default_data=sample")
        result = run_training(smoke_config(), run_dir, on_event=seen.append)
    return run_dir, result, seen


def test_event_sequence(smoke_run):
    run_dir, result, seen = smoke_run
    assert result.state == "finished" and result.exit_code == 0 and result.step == STEPS
    events = read_events(run_dir)
    assert [e["type"] for e in events] == [e["type"] for e in seen]  # the callback saw what the log holds
    types = [e["type"] for e in events]
    assert types[0] == "run_started" and types[-1] == "finished"
    phases = [e["phase"] for e in events if e["type"] == "phase"]
    assert phases.index("loading_data") < phases.index("loading_model") < phases.index("training")
    assert phases[-1] == "saving"
    steps = [e["step"] for e in events if e["type"] == "step"]
    assert steps == list(range(1, STEPS + 1))
    assert [e["step"] for e in events if e["type"] == "checkpoint"] == [15, 30]
    assert [e["step"] for e in events if e["type"] == "eval"] == [15, 30]
    # Order: each checkpoint comes after its step, the finish after the last checkpoint.
    assert types.index("checkpoint") > types.index("step")
    assert types.index("finished") > max(i for i, t in enumerate(types) if t == "checkpoint")

    started = events[0]
    assert started["backend"] == "hf" and "no CUDA" in started["backend_reason"]
    assert started["device"] == "cpu" and started["pid"] > 0 and started["host"]
    assert {"torch", "transformers", "trl", "peft"} <= set(started["versions"])
    assert started["config"]["model"] == "tiny" and started["resumed_from"] is None
    step = next(e for e in events if e["type"] == "step")
    for key in ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies",
                "logps/chosen", "logps/rejected", "learning_rate", "grad_norm", "pairs_per_s", "tokens_per_s"):
        assert key in step["metrics"], key
    assert step["total_steps"] == STEPS
    # Step 1: policy == reference, every pair a tie: loss ln 2, strict-> accuracy 0.
    assert step["metrics"]["loss"] == pytest.approx(LN2, abs=1e-4)
    assert step["metrics"]["rewards/accuracies"] == 0.0
    evals = [e for e in events if e["type"] == "eval"]
    assert "eval_loss" in evals[0]["metrics"] and "eval_rewards/margins" in evals[0]["metrics"]


def test_loss_falls_below_ln2(smoke_run):
    run_dir, _, _ = smoke_run
    events = read_events(run_dir)
    losses = [e["metrics"]["loss"] for e in events if e["type"] == "step"]
    assert statistics.mean(losses[-5:]) < LN2 - 0.35, losses
    margins = [e["metrics"]["rewards/margins"] for e in events if e["type"] == "step"]
    assert statistics.mean(margins[-5:]) > 1.5
    accuracies = [e["metrics"]["rewards/accuracies"] for e in events if e["type"] == "step"]
    assert statistics.mean(accuracies[-5:]) > 0.8
    # Held out (6 pairs of the sample): a tiny random model mostly memorises, so only check it is scored.
    eval_loss = [e["metrics"]["eval_loss"] for e in events if e["type"] == "eval"]
    assert len(eval_loss) == 2 and all(math.isfinite(x) for x in eval_loss)
    summary = events[-1]["summary"]
    assert summary["last"]["loss"] == losses[-1] and summary["first"]["loss"] == pytest.approx(LN2, abs=1e-4)


def test_run_folder_contents(smoke_run):
    run_dir, _, _ = smoke_run
    assert (run_dir / "config.toml").exists() and (run_dir / "train.log").exists()
    assert TrainConfig.from_toml(run_dir / "config.toml") == smoke_config()
    adapter = run_dir / "adapter"
    assert (adapter / "adapter_model.safetensors").exists() and (adapter / "adapter_config.json").exists()
    assert not list(adapter.glob("*.bin"))
    assert (run_dir / "checkpoints" / "checkpoint-30" / "trainer_state.json").exists()
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".")]  # no temporary folders left
    info = run_info(run_dir)
    assert info.state == "finished" and info.summary.step == STEPS and info.has_adapter


def test_load_aligned_differs_from_base(smoke_run):
    import torch
    from dpo_tutor.engine.models import load_aligned

    run_dir, _, _ = smoke_run
    model, tokenizer, config = load_aligned(run_dir)
    assert config.model == "tiny"
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "How do I bake a cake?"}], add_generation_prompt=True, return_tensors="pt",
        return_dict=True,
    )["input_ids"]
    with torch.no_grad():
        aligned = model(input_ids=ids).logits
        with model.disable_adapter():
            base = model(input_ids=ids).logits
    assert not torch.allclose(aligned, base, atol=1e-4)
    assert torch.isfinite(aligned).all()


def test_injected_oom_fails_with_remedies(tmp_path, monkeypatch):
    from dpo_tutor.engine.train.run import run_training

    set_switches(monkeypatch, inject_oom_at_step=3)
    result = run_training(smoke_config(max_steps=6, eval_steps=0), tmp_path / "oom")
    assert result.state == "failed" and result.exit_code != 0
    events = read_events(tmp_path / "oom")
    assert [e["step"] for e in events if e["type"] == "step"] == [1, 2]
    failed = events[-1]
    assert failed["type"] == "failed" and failed["kind"] == "out_of_memory" and failed["step"] == 2
    text = " ".join(failed["remedies"])
    for hint in ("--batch-size 1", "--grad-accum", "--max-length", "gradient checkpointing"):
        assert hint in text
    info = run_info(tmp_path / "oom")
    assert info.state == "failed" and info.summary.failure["kind"] == "out_of_memory"


def test_disk_full_while_saving_fails_cleanly(tmp_path, monkeypatch):
    """A write that fails (disk full) ends the run `failed` with remedies; nothing half-written is left."""
    import errno

    from dpo_tutor.engine.train import artifacts
    from dpo_tutor.engine.train.run import run_training

    def full_disk(path):
        (path / "adapter_model.safetensors").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    real = artifacts.save_folder
    monkeypatch.setattr(artifacts, "save_folder",
                        lambda target, write: real(target, full_disk if target.name == "adapter" else write))
    result = run_training(smoke_config(max_steps=2, eval_steps=0, save_steps=0), tmp_path / "run")
    assert result.state == "failed"
    failed = read_events(tmp_path / "run")[-1]
    assert failed["type"] == "failed" and failed["kind"] == "disk" and "No space left" in failed["message"]
    assert failed["remedies"]
    assert not (tmp_path / "run" / "adapter").exists()
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.startswith(".adapter")]


def test_save_folder_replaces_atomically(tmp_path):
    from dpo_tutor.engine.train.artifacts import save_folder as _save_folder

    target = tmp_path / "adapter"
    _save_folder(target, lambda p: (p / "v").write_text("1"))
    assert (target / "v").read_text() == "1"
    with pytest.raises(RuntimeError):
        _save_folder(target, lambda p: ((p / "v").write_text("2"), (_ for _ in ()).throw(RuntimeError("x"))))
    assert (target / "v").read_text() == "1"  # the old one stays whole
    _save_folder(target, lambda p: (p / "v").write_text("3"))
    assert (target / "v").read_text() == "3"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]
