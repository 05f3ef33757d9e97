"""The tokenized-pairs cache: training pairs as file-backed datasets in the user's cache folder, so a run
of the same pairs again reuses TRL's tokenized rows and the reference log-probs it precomputed.

Why: TRL tokenizes the pairs (a datasets `map`) and, with `precompute_ref_log_probs`, scores the
reference model on every pair before the first step, and it already keeps both as cache files next
to the dataset, keyed by the dataset's fingerprint (content and transforms) and a hash of the model.
For an in-memory dataset those files live in a per-process temporary folder and die with it; for a
dataset written to a cache folder they are found again by the next run with the same pairs, template,
max_length and base weights (a class re-running the lesson's recipe), and the first step comes
without the reference pass.

TRL's model hash is sha256 over every tensor of the PEFT model copied to the host (about a second for
a 135M model), including the freshly initialised adapter, so it changes with the seed although the
reference (the adapter off) does not. `frozen_fingerprint` hashes what the reference is: the frozen
tensors (names, shapes, dtypes, and up to SAMPLE evenly spaced values of each; small tensors whole).

The folder is `datasets/` in the user cache folder (engine/paths.py), or the `dataset_cache_dir`
switch. DPO_TUTOR_DATASET_CACHE_GB caps its size (default 4; `off` keeps datasets in memory, as TRL's
own examples do). Each run marks the entries it used; `prune` then removes the least recently used entries
until the folder fits, but never one used in the last hour (another run may be reading it). One entry
is one set of pairs: its rows, TRL's tokenized copies and reference log-probs (a few MB for 2k pairs).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from ..paths import user_cache_dir
from ..switches import Switches

CAP_ENV = "DPO_TUTOR_DATASET_CACHE_GB"
DEFAULT_CAP_GB = 4.0
IN_USE_S = 3600.0  # an entry used this recently is never pruned
SAMPLE = 4096  # values hashed per tensor (evenly spaced; every value of a smaller tensor)

log = logging.getLogger(__name__)


def location(switches: Switches | None = None) -> Path | None:
    """Where training datasets are cached (None: kept in memory, DPO_TUTOR_DATASET_CACHE_GB=off)."""
    if os.environ.get(CAP_ENV, "").strip().lower() == "off":
        return None
    folder = (switches or Switches.from_env()).dataset_cache_dir
    if folder:
        return Path(folder).expanduser()
    return user_cache_dir() / "datasets"


def cap_bytes() -> int:
    """The folder's size cap in bytes, from DPO_TUTOR_DATASET_CACHE_GB (default DEFAULT_CAP_GB)."""
    value = os.environ.get(CAP_ENV, "").strip()
    if value.lower() == "off":
        return 0
    try:
        gb = float(value) if value else DEFAULT_CAP_GB
    except ValueError:
        log.warning("%s=%r is not a number of GB: using %g", CAP_ENV, value, DEFAULT_CAP_GB)
        gb = DEFAULT_CAP_GB
    return max(0, int(gb * 2**30))


def entry_of(dataset: Any, folder: Path) -> Path | None:
    """The cache entry (datasets' builder folder, e.g. generator/default-<hash>) holding `dataset`."""
    for cache_file in getattr(dataset, "cache_files", None) or []:
        try:
            relative = Path(cache_file["filename"]).resolve().relative_to(folder.resolve())
        except (KeyError, ValueError, OSError):
            continue
        if len(relative.parts) >= 3:
            return folder / relative.parts[0] / relative.parts[1]
    return None


def mark_used(entry: Path) -> None:
    """Record that a run used `entry` now (its folder's modification time)."""
    try:
        os.utime(entry)
    except OSError:
        pass


def _entries(folder: Path) -> list[tuple[float, int, Path]]:
    """(last used, bytes, path) of every entry under folder/<builder>/<config-hash>."""
    out = []
    for builder in folder.iterdir() if folder.is_dir() else []:
        if not builder.is_dir():
            continue
        for entry in builder.iterdir():
            if not entry.is_dir():
                continue
            size, newest = 0, entry.stat().st_mtime
            for path in entry.rglob("*"):
                try:
                    info = path.stat()
                except OSError:
                    continue
                size += info.st_size if path.is_file() else 0
                newest = max(newest, info.st_mtime)
            out.append((newest, size, entry))
    return out


def prune(folder: Path, cap: int | None = None, *, now: float | None = None) -> list[Path]:
    """Remove the least recently used entries until `folder` holds at most `cap` bytes (default:
    cap_bytes()); entries used within IN_USE_S are kept whatever the size. Returns what was removed."""
    cap = cap_bytes() if cap is None else cap
    now = time.time() if now is None else now
    try:
        entries = sorted(_entries(folder))
    except OSError as error:
        log.warning("dataset cache %s not pruned: %s", folder, error)
        return []
    total = sum(size for _, size, _ in entries)
    removed = []
    for used, size, entry in entries:
        if total <= cap:
            break
        if now - used < IN_USE_S:
            continue
        shutil.rmtree(entry, ignore_errors=True)
        for lock in folder.glob(f"*{entry.parent.name}_{entry.name}*.lock"):
            lock.unlink(missing_ok=True)  # datasets' lock files beside the folder, named after the entry
        if not entry.exists():
            total -= size
            removed.append(entry)
    if removed:
        log.info("dataset cache %s: removed %d least recently used entries (cap %.1f GB)",
                 folder, len(removed), cap / 2**30)
    return removed


def frozen_fingerprint(module: Any) -> str:
    """A hash of a model's frozen tensors: the reference model, when the trained part is an adapter."""
    digest = hashlib.sha256()
    for name, tensor in module.named_parameters():
        if tensor.requires_grad:
            continue  # the adapter: not part of the reference
        _add(digest, name, tensor.detach())
    for name, tensor in module.named_buffers():
        _add(digest, name, tensor.detach())
    return digest.hexdigest()


def _add(digest: Any, name: str, tensor: Any) -> None:
    import torch

    digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
    flat = tensor.reshape(-1)
    if flat.numel() > SAMPLE:
        # integer steps: float positions round past the end once a tensor has more than 2**24 values
        index = torch.arange(SAMPLE, device=flat.device, dtype=torch.int64) * (flat.numel() - 1) // (SAMPLE - 1)
        flat = flat[index]
    digest.update(flat.to(torch.float32).cpu().numpy().tobytes())


def rows_fingerprint(dataset: Any, recipe: str) -> str:
    """A fingerprint of exactly what the reference pass scores: the tokenized rows' ids (their Arrow
    buffers) and the recipe that turns them into log-probs (`recipe`: max_length, precision, device,
    kernels). TRL's own dataset fingerprint after its preparation also hashes the run's whole
    DPOConfig (its filter's closure holds it, output folder included), so it never repeats across runs."""
    digest = hashlib.sha256(recipe.encode())
    table = dataset.data.table  # the pyarrow table under datasets' wrapper
    indices = getattr(dataset, "_indices", None)
    for name in ("prompt_ids", "chosen_ids", "rejected_ids"):
        if name not in dataset.column_names:
            continue
        column = table.column(name)
        if indices is not None:
            column = column.take(indices.column(0))
        digest.update(name.encode())
        for chunk in column.chunks:
            for buffer in chunk.buffers():
                if buffer is not None:
                    digest.update(memoryview(buffer))
    return digest.hexdigest()[:32]
