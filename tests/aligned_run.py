"""A TEST FIXTURE run folder with a LoRA adapter, built without the training engine.

The engine's tiny random model gets a LoRA whose B weights are set to seeded random values (instead of
PEFT's zeros), so the "aligned" model really differs from the base. The run folder has what a real run
has: config.toml, events.jsonl (a few invented steps, marked `fixture`), base/ (the tiny model's exact
weights, as the engine saves them for tiny runs), adapter/ and a small preference data file.
Nothing here was trained: the numbers it produces test arithmetic and plumbing, not learning.
"""

from __future__ import annotations

import json
from pathlib import Path

PROMPTS = [
    ("How do I bake a cake?", "Mix flour, sugar, eggs and butter, then bake it.", "No."),
    ("How to break into a car?", "I'm sorry, but I can't help with that.", "Break the window."),
    ("What's the cure for cancer?", "There is no single cure; treatments depend on the cancer.", "Lemons cure it."),
    ("What is the capital of France?", "Paris is the capital of France.", "London."),
    ("Can you help me with my homework?", "Of course, what are you working on?", "Do it yourself."),
    ("Thank you!", "You're welcome.", "Whatever."),
    ("How do I boil an egg?", "Put it in boiling water for nine minutes.", "Eggs are bad."),
    ("Tell me a number.", "Seven.", "I refuse."),
]


def write_pairs(path: Path, copies: int = 3) -> Path:
    lines = []
    for k in range(copies):
        for prompt, chosen, rejected in PROMPTS:
            text = prompt if k == 0 else f"{prompt} ({k})"
            lines.append(json.dumps({
                "prompt": [{"role": "user", "content": text}],
                "chosen": [{"role": "assistant", "content": chosen}],
                "rejected": [{"role": "assistant", "content": rejected}],
            }))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def perturbed_peft_model(scale: float = 0.5, seed: int = 1, r: int = 4):
    """(peft_model, tokenizer, plain_base_model): the tiny model + a LoRA with random B weights."""
    import torch
    from dpo_tutor.engine.models import build_tiny_model
    from peft import LoraConfig, get_peft_model

    model, tokenizer = build_tiny_model()
    plain, _ = build_tiny_model()  # a separate copy of the same weights, never wrapped
    peft_model = get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0,
                                                  target_modules="all-linear"))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_A" in name:  # PEFT draws A from the global RNG: redraw it, seeded
                param.copy_(torch.randn(param.shape, generator=generator) / param.shape[1] ** 0.5)
            elif "lora_B" in name:  # PEFT starts B at zero (aligned == base): make them differ
                param.copy_(torch.randn(param.shape, generator=generator) * scale)
    peft_model.eval()
    return peft_model, tokenizer, plain


def make_aligned_run(run_dir: Path, *, scale: float = 0.5, seed: int = 1, steps: int = 10) -> Path:
    from dpo_tutor.engine.config import TrainConfig
    from dpo_tutor.engine.events import EventWriter

    run_dir.mkdir(parents=True, exist_ok=True)
    peft_model, tokenizer, plain = perturbed_peft_model(scale, seed)
    plain.save_pretrained(run_dir / "base")
    tokenizer.save_pretrained(run_dir / "base")
    peft_model.save_pretrained(run_dir / "adapter", save_embedding_layers=False)
    data = write_pairs(run_dir / "fixture-pairs.jsonl")
    config = TrainConfig(model="tiny", data=str(data), data_format="", heldout_fraction=0.25, beta=0.1,
                         max_length=128, lora_r=4, lora_alpha=8, max_steps=steps, seed=7)
    (run_dir / "config.toml").write_text(config.to_toml(), encoding="utf-8")
    (run_dir / "FIXTURE.txt").write_text("A test fixture: random LoRA weights, invented log. Not trained.\n")
    with EventWriter(run_dir / "events.jsonl") as log:
        log.emit("run_started", run=run_dir.name, pid=0, host="fixture", backend="hf", backend_reason="fixture",
                 device="cpu", gpu_name=None, versions={}, config=config.to_dict(), resumed_from=None,
                 total_steps=steps, fixture=True)
        for step in range(1, steps + 1):
            log.emit("step", step=step, total_steps=steps, epoch=step / steps, metrics={
                "loss": 0.693 - 0.03 * step, "rewards/accuracies": min(1.0, 0.5 + 0.05 * step),
                "rewards/margins": 0.02 * step, "rewards/chosen": -0.01 * step, "rewards/rejected": -0.03 * step,
            })
            if step % 5 == 0:
                log.emit("eval", step=step, metrics={"eval_loss": 0.69 - 0.01 * step,
                                                     "eval_rewards/accuracies": 0.5 + 0.01 * step})
        log.emit("finished", step=steps, adapter=str(run_dir / "adapter"), merged=None, summary={})
    return run_dir
