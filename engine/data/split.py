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


def stratified_split(
    triplets: list[Triplet], fraction: float = 0.1, seed: int = 42
) -> tuple[list[Triplet], list[Triplet]]:
    """`train_heldout_split` within each source (`Triplet.source`): about `fraction` of every source's
    pairs is held out, so a mix's held-out set has every source. Still grouped by prompt across sources:
    a prompt that two sources share belongs to the source it appears in first, and all its pairs go to
    the same side. The input order is kept within each side."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), not {fraction}")
    groups: dict[str, list[int]] = {}
    home: dict[str, str] = {}
    for i, t in enumerate(triplets):
        key = prompt_key(t)
        groups.setdefault(key, []).append(i)
        home.setdefault(key, t.source)
    strata: dict[str, list[str]] = {}
    for key in groups:
        strata.setdefault(home[key], []).append(key)
    held: set[int] = set()
    for name in sorted(strata):
        keys = strata[name]
        if fraction == 0.0 or len(keys) < 2:
            continue
        size = sum(len(groups[k]) for k in keys)
        target = max(1, round(fraction * size))
        taken = 0
        for key in sorted(keys, key=lambda k: hashlib.sha256(f"{seed}\x00{k}".encode()).hexdigest()):
            if taken >= target:
                break
            if taken + len(groups[key]) > target and taken:
                continue  # a big group would overshoot; a smaller one further on may fit
            held.update(groups[key])
            taken += len(groups[key])
    train = [t for i, t in enumerate(triplets) if i not in held]
    heldout = [t for i, t in enumerate(triplets) if i in held]
    return train, heldout


def run_row_limit(config) -> int | None:
    """Rows a run reads (from each source of a mix): a margin beyond `max_pairs` (some rows are dropped,
    some held out), or all."""
    if config.max_pairs <= 0:
        return None
    return math.ceil(config.max_pairs / (1 - config.heldout_fraction) * 1.3) + config.eval_pairs + 16


def run_sources(config):
    """The sources of a config that names several (`mix.Source` list), else None (one source, or the default)."""
    from .mix import Source

    data = config.data_sources
    if len(data) < 2:
        return None
    weights = list(config.data_weights) or [1.0] * len(data)
    return [Source(d, weight=w, format=config.data_format or None, columns=config.columns or None)
            for d, w in zip(data, weights, strict=False)]


def load_for_run(config, preloaded=None, progress=None):
    """The LoadResult a run with this TrainConfig trains on: its one source, its mix, or the default data.

    `preloaded` is what a preflight read (engine/safety.py reads `config.data` with `load_triplets`): it is
    used when it is that very reading; a mix read at other weights is mixed again from its parts."""
    from . import mix
    from .load import load_triplets

    max_rows = run_row_limit(config)
    sources = run_sources(config)
    if sources is not None:
        names = [s.location for s in sources]
        if preloaded is not None and [u.location for u in (preloaded.mix or [])] == names:
            return mix.combine(sources, preloaded.parts, seed=config.seed)
        return mix.load_mix(sources, seed=config.seed, max_rows=max_rows, progress=progress)
    if config.data_sources:
        if preloaded is not None and preloaded.mix is None:
            return preloaded
        return load_triplets(config.data_sources[0], format=config.data_format or None,
                             columns=config.columns or None, max_rows=max_rows, progress=progress)
    default = mix.resolve_default(config.data_weights or None)
    if default.origin == "sample" and preloaded is not None and preloaded.mix is None:
        preloaded.note = default.note
        return preloaded
    return mix.load_default(config.data_weights or None, seed=config.seed, max_rows=max_rows,
                            hub=default.origin == "hub", progress=progress)


def split_for_run(config, preloaded=None):
    """(LoadResult, train, heldout) exactly as a run with this TrainConfig splits its data.

    Training and evaluation both call this, so evaluation holds out the very prompts training never saw:
    the split depends on which rows were read, so the row limit must be the same too. A mix is held out
    source by source (`stratified_split`); one source exactly as before (`train_heldout_split`).
    """
    import logging

    result = load_for_run(config, preloaded)
    if result.note:
        logging.getLogger("dpo_tutor").info("%s", result.note)
    if result.mix is not None:
        train, heldout = stratified_split(result.triplets, config.heldout_fraction, config.seed)
    else:
        train, heldout = train_heldout_split(result.triplets, config.heldout_fraction, config.seed)
    if config.max_pairs > 0:
        train = train[: config.max_pairs]
    return result, train, heldout
