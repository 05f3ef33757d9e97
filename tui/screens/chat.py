"""The Chat area. Not built yet: it says what it will do and which command gets there."""

from __future__ import annotations

from .placeholder import AreaPlaceholder


class ChatScreen(AreaPlaceholder):
    def __init__(self) -> None:
        super().__init__("Chat", "One prompt, the base and the aligned model answering side by side. Command: dpo-tutor chat RUN --prompt ...")
