"""The Learn area. Not built yet: it says what it will do and which command gets there."""

from __future__ import annotations

from .placeholder import AreaPlaceholder


class LearnScreen(AreaPlaceholder):
    def __init__(self) -> None:
        super().__init__("Learn", "The lessons: why preference learning, DPO's loss, beta, margins, training, evaluation.")
