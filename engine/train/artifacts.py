"""What a run leaves in its folder, written so that a half-written file or folder is never taken for
done: config.toml (atomically), checkpoints (complete once trainer_state.json is there), `adapter/`,
`merged/` and the tiny model's `base/` (each written under a temporary name, then renamed)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..runs import ADAPTER_DIR, CHECKPOINTS_DIR, MERGED_DIR
from .backends.unsloth import save_merged as unsloth_merged

TINY_BASE_DIR = "base"  # the tiny random model's exact weights, so its adapter can be reloaded


def checkpoint_complete(path: Path) -> bool:
    """Whether a checkpoint folder was written to the end: its trainer_state.json, which the Trainer
    writes last, is there and reads as JSON (a kill while it is written leaves it empty or torn)."""
    try:
        return isinstance(json.loads((path / "trainer_state.json").read_text(encoding="utf-8")), dict)
    except (OSError, ValueError):
        return False


def last_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint (`checkpoint_complete`)."""
    folder = run_dir / CHECKPOINTS_DIR
    if not folder.is_dir():
        return None
    found = []
    for path in folder.glob("checkpoint-*"):
        tail = path.name.rsplit("-", 1)[-1]
        if tail.isdigit() and checkpoint_complete(path):
            found.append((int(tail), path))
    return max(found)[1] if found else None


def checkpoint_step(checkpoint: Path | None) -> int | None:
    return None if checkpoint is None else int(checkpoint.name.rsplit("-", 1)[-1])


def atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_folder(target: Path, write: Callable[[Path], None]) -> Path:
    """Write a folder under a temporary name, then swap it into place."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        write(tmp)
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def save_tiny_base(model, tokenizer, run_dir: Path) -> Path:
    """The tiny random model's weights in the run folder (once), and the model pointed at them."""
    base = run_dir / TINY_BASE_DIR
    if not (base / "config.json").exists():
        save_folder(base, lambda p: (model.save_pretrained(p), tokenizer.save_pretrained(p)))
    return base


def save_adapter(trainer, tokenizer, run_dir: Path) -> Path:
    """The trained LoRA (only `default`: TRL's frozen `ref` copy is not saved) and the tokenizer."""
    model = trainer.model

    def write(path: Path) -> None:
        names = getattr(model, "peft_config", {}) or {}
        kwargs = {"selected_adapters": ["default"]} if len(names) > 1 and "default" in names else {}
        model.save_pretrained(str(path), safe_serialization=True, **kwargs)
        tokenizer.save_pretrained(str(path))

    return save_folder(run_dir / ADAPTER_DIR, write)


def save_merged(trainer, tokenizer, run_dir: Path, backend: str) -> Path:
    """The adapter merged into a 16-bit copy of the base model."""
    import torch

    model = trainer.model
    if "ref" in (getattr(model, "peft_config", {}) or {}):
        model.delete_adapter("ref")
        model.set_adapter("default")
    if backend == "unsloth":
        return save_folder(run_dir / MERGED_DIR, lambda p: unsloth_merged(model, tokenizer, str(p)))

    def write(path: Path) -> None:
        merged = model.merge_and_unload()
        merged = merged.to(torch.bfloat16)
        merged.save_pretrained(str(path), safe_serialization=True)
        tokenizer.save_pretrained(str(path))

    return save_folder(run_dir / MERGED_DIR, write)
