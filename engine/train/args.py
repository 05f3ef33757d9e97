"""TrainConfig + TrainPlan -> TRL's DPOConfig, in one place: what is learned comes from the config, how
it is computed from the plan."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..runs import CHECKPOINTS_DIR
from .plan import TrainPlan


def loss_settings(config: TrainConfig) -> dict[str, Any]:
    """TRL's loss fields: the preference loss, plus its "sft" term on the chosen answers (RPO) when
    nll_weight is set."""
    return {
        "beta": config.beta,
        "loss_type": [config.loss_type] + (["sft"] if config.nll_weight else []),
        "loss_weights": [1.0, config.nll_weight] if config.nll_weight else None,
        "label_smoothing": config.label_smoothing,
    }


def dpo_config(config: TrainConfig, plan: TrainPlan, run_dir: Path, *, evaluates: bool):
    """The DPOConfig of a run. evaluates: a held-out set is there and eval_steps asks for it."""
    from trl import DPOConfig

    workers = plan.dataloader_workers
    return DPOConfig(
        output_dir=str(run_dir / CHECKPOINTS_DIR),
        **loss_settings(config),
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=max(0, config.warmup_ratio),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps if config.max_steps > 0 else -1,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        max_length=config.max_length,
        seed=config.seed,
        bf16=plan.bf16,
        fp16=plan.fp16,
        use_cpu=not plan.cuda,
        gradient_checkpointing=plan.gradient_checkpointing,
        precompute_ref_log_probs=config.precompute_ref,
        precompute_ref_batch_size=plan.reference_batch,
        optim=config.optim,
        logging_steps=1,
        report_to="none",
        disable_tqdm=True,
        eval_strategy="steps" if evaluates else "no",
        eval_steps=config.eval_steps if config.eval_steps > 0 else None,
        save_strategy="steps" if config.save_steps > 0 else "no",
        save_steps=config.save_steps if config.save_steps > 0 else 500,
        save_total_limit=3,
        dataloader_pin_memory=plan.cuda,
        # Workers collate the next batches while the GPU replays a step.
        dataloader_num_workers=workers,
        dataloader_persistent_workers=workers > 0,
        dataloader_prefetch_factor=4 if workers > 0 else None,
        # Fewer distinct shapes for the compiled layers, and tensor-core friendly widths; padding is masked.
        pad_to_multiple_of=16 if plan.compile else None,
        # Recorded steps leave the loss on the GPU until the step is logged; TRL's default filter
        # would read it (a wait for the GPU) right after every step to drop NaN/inf losses.
        logging_nan_inf_filter=not plan.graphs,
        # Recorded steps: each batch is copied to the GPU without the host waiting for the copy (it is
        # queued behind the step the GPU is running; the rows are in pinned memory).
        **({"accelerator_config": {"non_blocking": True}} if plan.nonblocking_copies else {}),
    )
