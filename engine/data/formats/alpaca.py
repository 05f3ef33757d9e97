"""Alpaca-style instruction preference data: `instruction`, optional `input`, `chosen`, `rejected`.

The shape of the DPO chapter of "Build a Large Language Model (From Scratch)". The prompt is the
instruction, followed by the input after a blank line when there is one.
"""

from __future__ import annotations

from ..quality import NOT_A_STRING
from ..triplet import Triplet
from ._common import Context

NAME = "alpaca"


def detect(row: dict) -> int:
    return 3 if all(k in row for k in ("instruction", "chosen", "rejected")) and "prompt" not in row else 0


def convert(rows, ctx: Context):
    for where, row in ctx.counted(rows):
        instruction, extra = row.get("instruction"), row.get("input", "")
        chosen, rejected = row.get("chosen"), row.get("rejected")
        if extra is None:
            extra = ""
        if not all(isinstance(v, str) for v in (instruction, extra, chosen, rejected)):
            ctx.drop(NOT_A_STRING, where)
            continue
        prompt = instruction.strip() + ("\n\n" + extra.strip() if extra.strip() else "")
        meta = {"output": row["output"]} if isinstance(row.get("output"), str) else {}
        yield where, Triplet(
            prompt=({"role": "user", "content": prompt},),
            chosen=chosen.strip(),
            rejected=rejected.strip(),
            source=ctx.source,
            id=where,
            metadata=meta,
        )
