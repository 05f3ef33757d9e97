"""Helpers the adapters share: turning dialogue text into chat messages, and the context they write to."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..quality import ReportBuilder
from ..triplet import Message

ROLES = {"user": "user", "human": "user", "prompter": "user", "assistant": "assistant", "gpt": "assistant",
         "system": "system"}


@dataclass
class Context:
    """What an adapter is handed: where results go, the source's name, and format options."""

    builder: ReportBuilder
    source: str
    options: dict[str, Any] = field(default_factory=dict)
    columns: dict[str, str] | None = None
    folder: str = ""  # the source's folder, so error messages can name the whole path

    def full(self, where: str) -> str:
        return f"{self.folder}/{where}" if self.folder else where

    def drop(self, reason: str, where: str) -> None:
        self.builder.drop(reason, where)

    def read(self, n: int = 1) -> None:
        self.builder.read(n)

    def counted(self, rows):
        """Pass rows through, counting each as read."""
        for item in rows:
            self.builder.read()
            yield item


_HH_TURN = re.compile(r"\n\n(Human|Assistant):")


def hh_messages(text: str) -> tuple[Message, ...]:
    """`"\\n\\nHuman: hi\\n\\nAssistant: hello\\n\\nHuman: ..."` -> user/assistant messages."""
    parts = _HH_TURN.split(text)
    messages: list[Message] = []
    lead = parts[0].strip()
    if lead:
        messages.append({"role": "user", "content": lead})
    for i in range(1, len(parts) - 1, 2):
        role = "user" if parts[i] == "Human" else "assistant"
        content = parts[i + 1].strip()
        if content or role == "user":
            messages.append({"role": role, "content": content})
    return tuple(messages)


def as_messages(value: Any, default_role: str = "user") -> tuple[Message, ...] | None:
    """A string or a list of {role, content} messages as messages; None when it is neither."""
    if isinstance(value, str):
        return ({"role": default_role, "content": value},)
    if isinstance(value, list) and all(isinstance(m, dict) for m in value):
        out = []
        for m in value:
            role = ROLES.get(str(m.get("role", m.get("from", ""))).lower())
            content = m.get("content", m.get("value"))
            if role is None or not isinstance(content, str):
                return None
            out.append({"role": role, "content": content})
        return tuple(out)
    return None


def reply_text(value: Any) -> Any:
    """A reply given as a string or as a one-message list ([{"role": "assistant", "content": ...}])."""
    if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
        if len(value) == 1:
            return value[0].get("content")
        return None
    return value
