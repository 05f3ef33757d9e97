"""OpenAssistant (oasst1/oasst2): flat messages, or the nested message-tree export, into ranked pairs.

Flat rows carry `message_id`, `parent_id`, `role` ("prompter"/"assistant"), `text`, `rank`, `deleted`,
`review_result`. The trees are rebuilt from `parent_id`; for every message with at least two ranked
assistant replies, the prompt is the conversation from the root down to it and the replies become
pairs by relative rank (`options["oasst_pairs"]`): "all" (every better/worse pair, the default),
"best-vs-each" or "best-vs-worst". Deleted replies and replies whose review did not pass are
dropped unless `options["oasst_filter"]` is False; messages whose parent is missing (orphans) are
dropped. The nested export (`message_tree_id`, `prompt` with `replies`) is flattened first; trees seen
twice are read once.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from ..triplet import Triplet
from ._common import Context

NAME = "oasst"
FLAT = ("message_id", "parent_id", "role", "text")
ORPHAN = "orphan (parent not in file)"
DELETED = "deleted reply"
REVIEW = "review not passed"
UNRANKED = "unranked reply"
PAIR_MODES = ("all", "best-vs-each", "best-vs-worst")


def detect(row: dict, name: str = "oasst") -> int:
    if name == "oasst-tree":
        return 3 if "message_tree_id" in row and isinstance(row.get("prompt"), dict) else 0
    return 3 if all(k in row for k in FLAT) else 0


def _flatten(tree: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    stack: list[tuple[dict[str, Any], Any]] = [(tree["prompt"], None)]
    while stack:
        node, parent = stack.pop()
        if not isinstance(node, dict):
            continue
        message = {k: v for k, v in node.items() if k != "replies"}
        message.setdefault("parent_id", parent)
        message.setdefault("message_tree_id", tree.get("message_tree_id"))
        out.append(message)
        for reply in node.get("replies") or []:
            stack.append((reply, node.get("message_id")))
    return out


def convert(rows, ctx: Context):
    mode = ctx.options.get("oasst_pairs", "all")
    if mode not in PAIR_MODES:
        from ...errors import DataError

        raise DataError(f"oasst_pairs must be one of {', '.join(PAIR_MODES)}, not '{mode}'", where="options")
    use_filter = ctx.options.get("oasst_filter", True)
    messages: dict[str, dict[str, Any]] = {}
    where_of: dict[str, str] = {}
    trees_seen: set[str] = set()
    for where, row in ctx.counted(rows):
        if "prompt" in row and isinstance(row.get("prompt"), dict):
            tree_id = str(row.get("message_tree_id") or row["prompt"].get("message_id"))
            if tree_id in trees_seen:
                ctx.drop("duplicate tree", where)
                continue
            trees_seen.add(tree_id)
            found = _flatten(row)
        else:
            found = [row]
        for m in found:
            mid = m.get("message_id")
            if not isinstance(mid, str) or mid in messages:
                continue
            messages[mid] = m
            where_of[mid] = where

    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    unranked_parents: Counter[str] = Counter()
    for mid, m in messages.items():
        parent = m.get("parent_id")
        if parent is not None and parent not in messages:
            ctx.drop(ORPHAN, where_of[mid])
            continue
        if m.get("role") != "assistant" or parent is None:
            continue
        if use_filter and m.get("deleted"):
            ctx.drop(DELETED, where_of[mid])
            continue
        if use_filter and m.get("review_result") is not True:
            ctx.drop(REVIEW, where_of[mid])
            continue
        if not isinstance(m.get("rank"), int):
            unranked_parents[parent] += 1
            continue
        groups[parent].append(m)

    group_sizes: Counter[int] = Counter()
    gaps = 0
    made = 0
    for parent, replies in groups.items():
        if len(replies) < 2:
            continue
        if unranked_parents[parent]:
            for _ in range(unranked_parents[parent]):
                ctx.drop(UNRANKED, where_of[parent])
        prompt = _conversation(messages, parent)
        if prompt is None:
            ctx.drop(ORPHAN, where_of[parent])
            continue
        replies.sort(key=lambda m: m["rank"])
        group_sizes[len(replies)] += 1
        if [m["rank"] for m in replies] != list(range(len(replies))):
            gaps += 1
        if mode == "best-vs-worst":
            pairs = [(replies[0], replies[-1])]
        elif mode == "best-vs-each":
            pairs = [(replies[0], worse) for worse in replies[1:]]
        else:
            pairs = [(replies[i], replies[j]) for i in range(len(replies)) for j in range(i + 1, len(replies))]
        made += len(pairs)
        for better, worse in pairs:
            yield where_of[worse["message_id"]], Triplet(
                prompt=prompt,
                chosen=better.get("text").strip() if isinstance(better.get("text"), str) else better.get("text"),
                rejected=worse.get("text").strip() if isinstance(worse.get("text"), str) else worse.get("text"),
                source=ctx.source,
                id=f"{better['message_id'][:8]}>{worse['message_id'][:8]}",
                metadata={
                    "rank_chosen": better["rank"],
                    "rank_rejected": worse["rank"],
                    "lang": str(better.get("lang", "")),
                    "tree": str(better.get("message_tree_id", "")),
                },
            )
    ctx.builder.report.labels["ranks"] = {
        "messages": len(messages),
        "parents with >=2 ranked replies": sum(group_sizes.values()),
        "replies per parent": dict(sorted(group_sizes.items())),
        "groups with rank gaps": gaps,
        "pairs": mode,
        "pairs made": made,
    }


def _conversation(messages: dict[str, dict[str, Any]], parent_id: str):
    """Messages from the root down to parent_id, or None when the chain breaks."""
    chain = []
    current: str | None = parent_id
    seen = set()
    while current is not None:
        if current in seen or current not in messages:
            return None
        seen.add(current)
        m = messages[current]
        chain.append(m)
        current = m.get("parent_id")
    chain.reverse()
    out = []
    for m in chain:
        text = m.get("text")
        role = "user" if m.get("role") == "prompter" else "assistant"
        out.append({"role": role, "content": text.strip() if isinstance(text, str) else text})
    return tuple(out)
