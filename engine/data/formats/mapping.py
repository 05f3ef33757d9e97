"""Any other layout, through an explicit column mapping: `--columns prompt=question,chosen=good,rejected=bad`.

Column names are only looked up as keys of each row; their values are text, never paths.
"""

from __future__ import annotations

from ...errors import DataError
from ..quality import NOT_A_STRING
from ..triplet import Triplet
from ._common import Context, as_messages, reply_text

NAME = "mapping"
ROLES = ("prompt", "chosen", "rejected")


def detect(row: dict) -> int:
    return 0  # never guessed: a mapping is always given


def check_columns(columns: dict[str, str] | None, row: dict, where: str) -> dict[str, str]:
    """The mapping, filled with same-named defaults; a clear error when a mapped column is not there."""
    columns = dict(columns or {})
    unknown = [role for role in columns if role not in ROLES]
    if unknown:
        raise DataError(f"unknown role(s) {', '.join(unknown)} in the column mapping; use prompt, chosen, rejected",
                        where="--columns")
    mapping = {role: columns.get(role, role) for role in ROLES}
    missing = [f"{role}={col}" for role, col in mapping.items() if col not in row]
    if missing:
        found = ", ".join(sorted(map(str, row))[:20])
        raise DataError(
            f"missing columns: expected {', '.join(missing)}; found {found}",
            where=where,
            remedy="fix --columns prompt=...,chosen=...,rejected=...",
        )
    return mapping


def convert(rows, ctx: Context):
    mapping: dict[str, str] | None = None
    for where, row in ctx.counted(rows):
        if mapping is None:
            mapping = check_columns(ctx.columns, row, ctx.full(where))
        prompt = as_messages(row.get(mapping["prompt"]))
        chosen, rejected = reply_text(row.get(mapping["chosen"])), reply_text(row.get(mapping["rejected"]))
        if prompt is None or not isinstance(chosen, str) or not isinstance(rejected, str):
            ctx.drop(NOT_A_STRING, where)
            continue
        yield where, Triplet(prompt=prompt, chosen=chosen.strip(), rejected=rejected.strip(),
                             source=ctx.source, id=where)
