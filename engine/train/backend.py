"""Choosing the training backend: `unsloth` (CUDA + Unsloth installed) or `hf` (transformers + PEFT + TRL).

Both train through TRL's DPOTrainer. The choice comes with a reason a person can read ("auto: no CUDA
GPU here, so hf"). Nothing here imports Unsloth, transformers or TRL: Unsloth patches them globally
when imported, so it is imported only by the training process that uses it (unsloth_backend.prepare),
before anything else heavy.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

BACKENDS = ("auto", "unsloth", "hf")


@dataclass(frozen=True)
class BackendChoice:
    name: str  # unsloth | hf
    reason: str


def cuda_available() -> bool:
    """Whether torch sees a CUDA GPU (`DPO_TUTOR_FORCE_NO_CUDA=1` says no, for tests)."""
    if os.environ.get("DPO_TUTOR_FORCE_NO_CUDA"):
        return False
    import torch

    return bool(torch.cuda.is_available())


def gpu_visible(root: str = "/") -> bool:
    """Whether this machine shows a GPU torch could train on, without importing torch (the UI asks at
    start-up): an NVIDIA driver's GPU list or device node, or ROCm's /dev/kfd; CUDA_VISIBLE_DEVICES=""
    or -1 hides them, as it does from torch. A guess for choosing defaults; `cuda_available()` decides."""
    if os.environ.get("DPO_TUTOR_FORCE_NO_CUDA"):
        return False
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    base = Path(root)
    gpus = base / "proc" / "driver" / "nvidia" / "gpus"
    try:
        if gpus.is_dir() and any(gpus.iterdir()):
            return True
    except OSError:
        pass
    return (base / "dev" / "nvidia0").exists() or (base / "dev" / "kfd").exists()


def unsloth_installed() -> bool:
    try:
        return importlib.util.find_spec("unsloth") is not None
    except (ImportError, ValueError):
        return False


def select_backend(
    requested: str = "auto", *, cuda: bool | None = None, unsloth: bool | None = None, gpus: int = 1,
    graphed_recipe: bool = False,
) -> BackendChoice:
    """Pick the backend for `requested` (auto|unsloth|hf), or raise a one-line UserError.

    graphed_recipe: the recipe's steps can be replayed as CUDA graphs on hf (graphed_step.py). On one
    CUDA GPU, auto then picks hf: measured faster than Unsloth for our default recipe, with a first
    step ~4x sooner (BENCHMARKS.md, fourth round). Otherwise Unsloth is the fast path on CUDA.
    """
    requested = (requested or "auto").lower()
    if requested not in BACKENDS:
        raise UserError(f"unknown backend '{requested}'", where="--backend", remedy="use auto, unsloth or hf")
    cuda = cuda_available() if cuda is None else cuda
    unsloth = unsloth_installed() if unsloth is None else unsloth
    if requested == "hf":
        return BackendChoice("hf", "asked for hf (transformers + PEFT + TRL)")
    if requested == "unsloth":
        if not cuda:
            raise UserError(
                "--backend unsloth needs an NVIDIA GPU with CUDA, and this machine has none",
                where="backend",
                remedy="use --backend hf (or auto), which trains on CPU too",
            )
        if not unsloth:
            raise UserError(
                "--backend unsloth needs the unsloth package, which is not installed",
                where="backend",
                remedy="pip install 'dpo-tutor[gpu]', or use --backend hf",
            )
        if gpus > 1:
            raise UserError("Unsloth trains on one GPU here", where="backend", remedy="use --backend hf with --gpus")
        return BackendChoice("unsloth", "asked for unsloth (CUDA and Unsloth present)")
    # auto
    if not cuda:
        return BackendChoice("hf", "auto: no CUDA GPU here, so transformers + PEFT + TRL (hf) on CPU")
    if gpus > 1:
        return BackendChoice("hf", f"auto: {gpus} GPUs requested and Unsloth trains on one, so hf via accelerate")
    if graphed_recipe:
        return BackendChoice(
            "hf", "auto: one CUDA GPU and a recipe recorded CUDA graphs can replay, so hf with graphed steps "
            "(faster than Unsloth for it)"
        )
    if not unsloth:
        return BackendChoice("hf", "auto: CUDA present but Unsloth is not installed, so hf")
    return BackendChoice("unsloth", "auto: CUDA GPU and Unsloth present, so unsloth")
