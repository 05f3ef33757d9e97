"""Light pieces of run control (no heavy imports): the stop request and the injected-OOM switch."""

from __future__ import annotations

import os
from dataclasses import dataclass

INJECT_OOM_ENV = "DPO_TUTOR_INJECT_OOM_AT_STEP"


@dataclass
class StopRequest:
    """Set by a signal handler; the callback ends training at the end of the current step."""

    requested: bool = False
    reason: str = ""

    def request(self, reason: str) -> None:
        self.requested = True
        self.reason = reason


def injected_oom_step() -> int | None:
    value = os.environ.get(INJECT_OOM_ENV, "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def make_oom_error(step: int) -> BaseException:
    """A real `torch.OutOfMemoryError` (what CUDA raises), for the injected fault."""
    import torch

    return torch.OutOfMemoryError(
        f"CUDA out of memory (injected at step {step} by {INJECT_OOM_ENV}). Tried to allocate 2.00 GiB."
    )
