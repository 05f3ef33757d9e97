"""One adapter per preference-data format, and the detection that picks one.

Each adapter module has `NAME`, `detect(row) -> int` (0: not this format; higher: a surer match) and
`convert(rows, ctx) -> Iterator[(where, Triplet)]`. Adapters call `ctx.drop(reason, where)` for rows
they cannot use; the shared checks (empty, identical, duplicate ...) run on what they yield.
"""

from __future__ import annotations

import importlib
from typing import Any

from ...errors import DataError

# format name -> module; the order is the order detection reports them in
ADAPTERS = {
    "hh": "hh",
    "shp": "shp",
    "oasst": "oasst",
    "oasst-tree": "oasst",
    "trl": "trl",
    "alpaca": "alpaca",
    "mapping": "mapping",
}
ALIASES = {"columns": "mapping", "hh-rlhf": "hh", "steamshp": "shp", "oasst1": "oasst"}
EXPECTED = (
    "chosen+rejected dialogues (hh), history+human_ref_A+human_ref_B+labels (shp), "
    "message_id+parent_id+role+text (oasst), prompt+chosen+rejected (trl), "
    "instruction+chosen+rejected (alpaca)"
)


def adapter(name: str):
    key = ALIASES.get(name, name)
    if key not in ADAPTERS:
        raise DataError(f"unknown format '{name}'", where="--format", remedy="one of: " + ", ".join(ADAPTERS))
    return key, importlib.import_module(f".{ADAPTERS[key]}", __name__)


def detect(row: dict[str, Any], where: str) -> str:
    """The format name of a data set, judged by its first row; a clear error when none or several fit."""
    scores: dict[str, int] = {}
    for name in ADAPTERS:
        if name == "mapping":
            continue
        _, mod = adapter(name)
        score = mod.detect(row, name) if name.startswith("oasst") else mod.detect(row)
        if score:
            scores[name] = score
    found = ", ".join(sorted(map(str, row))[:20]) or "no fields"
    if not scores:
        raise DataError(
            f"not preference data: found fields {found}; expected {EXPECTED}",
            where=where,
            remedy="or map your fields: --columns prompt=...,chosen=...,rejected=...",
        )
    best = max(scores.values())
    winners = [n for n, s in scores.items() if s == best]
    if len(winners) > 1:
        raise DataError(
            f"ambiguous format: the fields ({found}) fit {' and '.join(winners)}",
            where=where,
            remedy="pick one with --format " + "|".join(winners),
        )
    return winners[0]
