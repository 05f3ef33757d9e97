"""A deterministic train / held-out split, grouped by prompt so one prompt never lands on both sides."""

from __future__ import annotations

import hashlib
import math

from .triplet import Triplet


def prompt_key(t: Triplet) -> str:
    return "\x1e".join(f"{m['role']}\x1f{m['content']}" for m in t.prompt)


def train_heldout_split(
    triplets: list[Triplet], fraction: float = 0.1, seed: int = 42
) -> tuple[list[Triplet], list[Triplet]]:
    """(train, held_out). Prompt groups are ordered by a seeded hash and taken into held-out until
    about `fraction` of the triplets are there; the input order is kept within each side."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), not {fraction}")
    groups: dict[str, list[int]] = {}
    for i, t in enumerate(triplets):
        groups.setdefault(prompt_key(t), []).append(i)
    if fraction == 0.0 or len(groups) < 2:
        return list(triplets), []

    def rank(key: str) -> str:
        return hashlib.sha256(f"{seed}\x00{key}".encode()).hexdigest()

    target = max(1, round(fraction * len(triplets)))
    held: set[int] = set()
    for key in sorted(groups, key=rank):
        if len(held) >= target:
            break
        if len(held) + len(groups[key]) > target and held:
            continue  # a big group would overshoot; a smaller one further on may fit
        held.update(groups[key])
    train = [t for i, t in enumerate(triplets) if i not in held]
    heldout = [t for i, t in enumerate(triplets) if i in held]
    return train, heldout


def run_row_limit(config) -> int | None:
    """Rows a run reads: a margin beyond `max_pairs` (some rows are dropped, some held out), or all."""
    if config.max_pairs <= 0:
        return None
    return math.ceil(config.max_pairs / (1 - config.heldout_fraction) * 1.3) + config.eval_pairs + 16


def split_for_run(config, preloaded=None):
    """(LoadResult, train, heldout) exactly as a run with this TrainConfig splits its data.

    Training and evaluation both call this, so evaluation holds out the very prompts training never saw:
    the split depends on which rows were read, so the row limit must be the same too.
    """
    from .load import load_triplets

    result = preloaded or load_triplets(
        config.data or None,
        format=config.data_format or None,
        columns=config.columns or None,
        max_rows=run_row_limit(config),
    )
    train, heldout = train_heldout_split(result.triplets, config.heldout_fraction, config.seed)
    if config.max_pairs > 0:
        train = train[: config.max_pairs]
    return result, train, heldout
