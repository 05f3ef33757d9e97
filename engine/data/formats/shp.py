"""Stanford SHP: `history`, `human_ref_A`, `human_ref_B`, `labels` (1: A preferred), scores when present.

Also the SteamSHP re-packaging of HH-RLHF, whose `history` holds "HUMAN: " / "ASSISTANT: " turns.
SHP's authors recommend keeping only pairs whose score ratio is at least 2: pass
`options["shp_min_ratio"] = 2.0` (pairs without scores are kept).
"""

from __future__ import annotations

import re
from collections import Counter

from ..quality import NOT_A_STRING
from ..triplet import Triplet
from ._common import Context

NAME = "shp"
FIELDS = ("history", "human_ref_A", "human_ref_B", "labels")
LOW_RATIO = "score ratio below minimum"
BAD_LABEL = "label not 0 or 1"
_TURN = re.compile(r"(?:^|\n\n)(HUMAN|ASSISTANT): ?")


def detect(row: dict) -> int:
    return 3 if all(f in row for f in FIELDS) else 0


def history_messages(history: str) -> tuple[dict[str, str], ...]:
    if not history.startswith(("HUMAN:", "ASSISTANT:")):
        return ({"role": "user", "content": history.strip()},)
    parts = _TURN.split(history)
    messages = []
    for i in range(1, len(parts) - 1, 2):
        role = "user" if parts[i] == "HUMAN" else "assistant"
        messages.append({"role": role, "content": parts[i + 1].strip()})
    return tuple(messages)


def convert(rows, ctx: Context):
    min_ratio = ctx.options.get("shp_min_ratio")
    labels: Counter[str] = Counter()
    ratios: list[float] = []
    for where, row in ctx.counted(rows):
        history, a, b, label = (row.get(f) for f in FIELDS)
        if not isinstance(history, str) or not isinstance(a, str) or not isinstance(b, str):
            ctx.drop(NOT_A_STRING, where)
            continue
        if label not in (0, 1, "0", "1") or isinstance(label, bool):
            ctx.drop(BAD_LABEL, where)
            continue
        a_wins = int(label) == 1
        labels["A preferred" if a_wins else "B preferred"] += 1
        score_a, score_b = row.get("score_A"), row.get("score_B")
        ratio = None
        if isinstance(score_a, (int, float)) and isinstance(score_b, (int, float)):
            high, low = (score_a, score_b) if a_wins else (score_b, score_a)
            ratio = high / low if low > 0 else float("inf")
            ratios.append(ratio)
            if min_ratio is not None and ratio < float(min_ratio):
                ctx.drop(LOW_RATIO, where)
                continue
        chosen, rejected = (a, b) if a_wins else (b, a)
        meta = {"label": int(label)}
        if ratio is not None:
            meta["score_ratio"] = round(ratio, 3)
        if "domain" in row:
            meta["domain"] = str(row["domain"])
        yield where, Triplet(
            prompt=history_messages(history),
            chosen=chosen.strip(),
            rejected=rejected.strip(),
            source=ctx.source,
            id=str(row.get("post_id") or where),
            metadata=meta,
        )
    ctx.builder.report.labels["labels"] = dict(labels)
    if ratios:
        finite = sorted(r for r in ratios if r != float("inf"))
        ctx.builder.report.labels["score_ratio"] = {
            "rows with scores": len(ratios),
            "median": round(finite[len(finite) // 2], 2) if finite else None,
            "below 2": sum(1 for r in ratios if r < 2),
        }
