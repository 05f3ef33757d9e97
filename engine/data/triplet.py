"""The one canonical preference triplet every adapter produces and every consumer reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Message = dict[str, str]  # {"role": "user"|"assistant"|"system", "content": str}


@dataclass(frozen=True)
class Triplet:
    """A prompt (as chat messages, earlier turns included) with a preferred and a dispreferred reply."""

    prompt: tuple[Message, ...]
    chosen: str
    rejected: str
    source: str = ""
    id: str = ""
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def prompt_text(self) -> str:
        """The last user turn: what a table row shows as the prompt."""
        for message in reversed(self.prompt):
            if message["role"] == "user":
                return message["content"]
        return self.prompt[-1]["content"] if self.prompt else ""

    @property
    def turns(self) -> int:
        """Number of user turns in the prompt."""
        return sum(1 for m in self.prompt if m["role"] == "user")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "prompt": [dict(m) for m in self.prompt],
            "chosen": self.chosen,
            "rejected": self.rejected,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Triplet:
        return cls(
            prompt=tuple({"role": m["role"], "content": m["content"]} for m in d["prompt"]),
            chosen=d["chosen"],
            rejected=d["rejected"],
            source=d.get("source", ""),
            id=d.get("id", ""),
            metadata=dict(d.get("metadata", {})),
        )
