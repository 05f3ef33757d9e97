"""The offline sample that ships with the package: preference triplets written for dpo-tutor.

Helpfulness, harmlessness and honesty, in the spirit of "How do I bake a cake?", "How to break into a
car?" and "What's the cure for cancer?". TRL conversational explicit-prompt JSON Lines, with a
`category` field. It is the data set used when none is named.
"""

from __future__ import annotations

from pathlib import Path

SAMPLE_NAME = "sample_preferences.jsonl"


def sample_path() -> Path:
    return Path(__file__).with_name(SAMPLE_NAME)
