"""What this machine offers a run: a CUDA GPU, the Unsloth package. Nothing heavy is imported until asked:
the UI and the train command ask before torch is loaded."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from ..switches import Switches


def cuda_available() -> bool:
    """Whether torch sees a CUDA GPU (the `no_cuda` switch says no, for tests)."""
    if Switches.from_env().no_cuda:
        return False
    import torch

    return bool(torch.cuda.is_available())


def gpu_visible(root: str = "/") -> bool:
    """Whether this machine shows a GPU torch could train on, without importing torch (the UI asks at
    start-up): an NVIDIA driver's GPU list or device node, or ROCm's /dev/kfd; CUDA_VISIBLE_DEVICES=""
    or -1 hides them, as it does from torch. A guess for choosing defaults; `cuda_available()` decides."""
    if Switches.from_env().no_cuda:
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


def bf16_supported() -> bool:
    import torch

    return bool(torch.cuda.is_bf16_supported())


def gpu_name(local_rank: int = 0) -> str:
    import torch

    return torch.cuda.get_device_name(local_rank)


def process_devices(world: int, cuda: bool) -> list[str]:
    """The device each rank trains on (one host: rank r uses cuda:r), for the run_started event."""
    if not cuda:
        return ["cpu"] * world
    return [f"cuda:{r} ({gpu_name(r)})" for r in range(world)]
