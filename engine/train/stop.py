"""The stop request: set by a signal handler, obeyed by the callback at the end of the current step.
Light (no heavy imports): the run installs its signal handlers before loading anything."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class StopRequest:
    """Set by a signal handler; the callback ends training at the end of the current step."""

    requested: bool = False
    reason: str = ""

    def request(self, reason: str) -> None:
        self.requested = True
        self.reason = reason
