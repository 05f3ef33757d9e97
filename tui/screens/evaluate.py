"""The Evaluate area. Not built yet: it says what it will do and which command gets there."""

from __future__ import annotations

from .placeholder import AreaPlaceholder


class EvaluateScreen(AreaPlaceholder):
    def __init__(self) -> None:
        super().__init__("Evaluate", "Before/after held-out accuracy, generations and reward-hacking checks. Command: dpo-tutor eval RUN")
