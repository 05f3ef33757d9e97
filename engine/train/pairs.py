"""The run's pairs as TRL datasets: read, split off the held-out slice, rendered as TRL records, and
written file-backed so TRL's tokenized rows and reference log-probs are cached beside them.

With one process the files go to the tokenized-pairs cache (pairs_cache.py), where the next run of
the same pairs finds them; with several, to a folder the processes share (written by rank 0, read by
every rank); where neither can be written, the dataset stays in memory.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..data.render import to_trl_record
from ..data.split import split_for_run
from ..switches import Switches
from . import pairs_cache
from .launch import SHARED_DIR

log = logging.getLogger("dpo_tutor.train")

def prepare_data(config: TrainConfig, *, preloaded: Any, run_dir: Path, world: int, switches: Switches):
    """(load result, train dataset, held-out dataset or None)."""
    result, train, heldout = split_for_run(config, preloaded)
    heldout = heldout[: config.eval_pairs] if config.eval_pairs > 0 and config.eval_steps > 0 else []
    shared = run_dir / SHARED_DIR if world > 1 else None
    folder = None if world > 1 else pairs_cache.location(switches)
    train_ds = _dataset([to_trl_record(t) for t in train], shared=shared, folder=folder)
    eval_ds = _dataset([to_trl_record(t) for t in heldout], shared=shared, folder=folder) if heldout else None
    if folder is not None:
        _keep_cache_in_bounds(folder, train_ds, eval_ds)
    return result, train_ds, eval_ds


def _keep_cache_in_bounds(folder: Path, *datasets) -> None:
    """Mark the cache entries this run uses, then prune the least recently used others."""
    for dataset in datasets:
        entry = pairs_cache.entry_of(dataset, folder) if dataset is not None else None
        if entry is not None:
            pairs_cache.mark_used(entry)
    pairs_cache.prune(folder)


def _dataset(records: list[dict], *, shared: Path | None, folder: Path | None):
    """A datasets.Dataset of the records, file-backed where a folder can hold it (TRL caches the
    tokenized rows and reference log-probs next to a dataset's files; an in-memory dataset's cache path
    is per process)."""
    from datasets import Dataset

    if shared is not None:
        shared.mkdir(parents=True, exist_ok=True)
        return Dataset.from_generator(_yield_records, gen_kwargs={"records": records}, cache_dir=str(shared))
    if folder is not None and records:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return Dataset.from_generator(_yield_records, gen_kwargs={"records": records}, cache_dir=str(folder))
        except Exception as error:  # noqa: BLE001 - a cache must never cost the run: in memory instead
            log.warning("dataset cache %s not usable (%s): tokenizing in memory", folder, error)
    return Dataset.from_list(records)


def _yield_records(records: list[dict]):
    yield from records
