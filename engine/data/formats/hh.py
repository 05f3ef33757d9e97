"""Anthropic HH-RLHF: `chosen` and `rejected` are whole dialogues that share all but the last reply.

Each pair is split at the longest common prefix ending in "\\n\\nAssistant:"; the turns before it become
the prompt's messages. When the two dialogues' last "Assistant:" splits disagree (a reply that itself
holds "Human:"/"Assistant:" text, or dialogues of different length) the row is dropped as
"prompts disagree"; `options["hh_mismatch"] = "lcp"` keeps it, split at the common prefix instead.
"""

from __future__ import annotations

from ..quality import NOT_A_STRING, PROMPTS_DISAGREE
from ..triplet import Triplet
from ._common import Context, hh_messages

NAME = "hh"
MARK = "\n\nAssistant:"


def detect(row: dict) -> int:
    chosen = row.get("chosen")
    if "prompt" in row or not isinstance(chosen, str) or "rejected" not in row:
        return 0
    return 3 if MARK in chosen else 0


def _common_prefix_at_mark(a: str, b: str) -> int:
    """Length of the longest common prefix of a and b that ends in MARK (-1 when none)."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return a.rfind(MARK, 0, i)


def convert(rows, ctx: Context):
    keep_mismatch = ctx.options.get("hh_mismatch", "drop") == "lcp"
    for where, row in ctx.counted(rows):
        chosen, rejected = row.get("chosen"), row.get("rejected")
        if not isinstance(chosen, str) or not isinstance(rejected, str):
            ctx.drop(NOT_A_STRING, where)
            continue
        ic, ir = chosen.rfind(MARK), rejected.rfind(MARK)
        if ic >= 0 and ic == ir and chosen[:ic] == rejected[:ir]:
            cut_c = cut_r = ic + len(MARK)
        else:
            if not keep_mismatch:
                ctx.drop(PROMPTS_DISAGREE, where)
                continue
            k = _common_prefix_at_mark(chosen, rejected)
            if k < 0:
                ctx.drop(PROMPTS_DISAGREE, where)
                continue
            cut_c = cut_r = k + len(MARK)
        prompt = hh_messages(chosen[:cut_c])
        yield where, Triplet(
            prompt=prompt,
            chosen=chosen[cut_c:].strip(),
            rejected=rejected[cut_r:].strip(),
            source=ctx.source,
            id=where,
        )
