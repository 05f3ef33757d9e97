"""The five areas of the app (Textual modes), in the order of their number keys.

Its own module so that the App, the command palette and the help screen read it without importing
each other.
"""

from __future__ import annotations

# mode name -> (module under dpo_tutor.tui.screens, class name, label)
AREAS: dict[str, tuple[str, str, str]] = {
    "learn": ("learn", "LearnScreen", "Learn"),
    "data": ("data", "DataScreen", "Data"),
    "train": ("train", "TrainScreen", "Train"),
    "evaluate": ("evaluate", "EvaluateScreen", "Evaluate"),
    "chat": ("chat", "ChatScreen", "Chat"),
}


def area_label(mode: str | None) -> str:
    return AREAS[mode][2] if mode in AREAS else (mode or "")
