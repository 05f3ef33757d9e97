"""TRL's preference formats: standard (strings) or conversational (message lists), prompt explicit or implicit.

Explicit: `prompt`, `chosen`, `rejected`. Implicit: only `chosen` and `rejected`, each holding the whole
text or conversation; the prompt is their common start (leading messages, or the longest common
prefix of the strings), as TRL's `extract_prompt` does.
"""

from __future__ import annotations

from ..quality import NOT_A_STRING, PROMPTS_DISAGREE
from ..triplet import Triplet
from ._common import Context, as_messages, reply_text

NAME = "trl"
EXTRA_KEEP = ("category", "kind", "source", "note")


def detect(row: dict) -> int:
    if "chosen" not in row or "rejected" not in row:
        return 0
    if "prompt" in row:
        return 3
    chosen = row.get("chosen")
    if isinstance(chosen, list):
        return 2
    return 1 if isinstance(chosen, str) else 0


def _implicit(chosen, rejected):
    """(prompt messages, chosen text, rejected text) from two whole conversations or texts, or None."""
    if isinstance(chosen, list) and isinstance(rejected, list):
        c, r = as_messages(chosen), as_messages(rejected)
        if c is None or r is None or not c or not r:
            return None
        if c[:-1] != r[:-1] or c[-1]["role"] != "assistant" or r[-1]["role"] != "assistant":
            return "disagree"
        return c[:-1], c[-1]["content"], r[-1]["content"]
    if isinstance(chosen, str) and isinstance(rejected, str):
        n = 0
        limit = min(len(chosen), len(rejected))
        while n < limit and chosen[n] == rejected[n]:
            n += 1
        # cut back to a word boundary so a shared first letter of the replies stays in the replies
        while n > 0 and not chosen[n - 1].isspace():
            n -= 1
        prompt = chosen[:n].strip()
        if not prompt:
            return "disagree"
        return ({"role": "user", "content": prompt},), chosen[n:], rejected[n:]
    return None


def convert(rows, ctx: Context):
    for where, row in ctx.counted(rows):
        chosen, rejected = row.get("chosen"), row.get("rejected")
        if "prompt" in row:
            prompt = as_messages(row.get("prompt"))
            chosen, rejected = reply_text(chosen), reply_text(rejected)
            if prompt is None:
                ctx.drop(NOT_A_STRING, where)
                continue
        else:
            split = _implicit(chosen, rejected)
            if split is None:
                ctx.drop(NOT_A_STRING, where)
                continue
            if split == "disagree":
                ctx.drop(PROMPTS_DISAGREE, where)
                continue
            prompt, chosen, rejected = split
        if not isinstance(chosen, str) or not isinstance(rejected, str):
            ctx.drop(NOT_A_STRING, where)
            continue
        meta = {k: row[k] for k in EXTRA_KEEP if isinstance(row.get(k), str)}
        yield where, Triplet(
            prompt=prompt,
            chosen=chosen.strip(),
            rejected=rejected.strip(),
            source=ctx.source,
            id=str(row["id"]) if isinstance(row.get("id"), (str, int)) else where,
            metadata=meta,
        )
