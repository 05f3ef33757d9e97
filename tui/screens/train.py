"""The Train area. Not built yet: it says what it will do and which command gets there."""

from __future__ import annotations

from .placeholder import AreaPlaceholder


class TrainScreen(AreaPlaceholder):
    def __init__(self) -> None:
        super().__init__("Train", "Configure and start a DPO run and watch loss, margin and accuracy live. Command: dpo-tutor train")
