"""The Data area. Not built yet: it says what it will do and which command gets there."""

from __future__ import annotations

from .placeholder import AreaPlaceholder


class DataScreen(AreaPlaceholder):
    def __init__(self) -> None:
        super().__init__("Data", "Browse real preference triplets (prompt / chosen / rejected) and their quality report. Command: dpo-tutor data stats SOURCE")
