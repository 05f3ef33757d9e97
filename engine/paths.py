"""The user's cache folder, the one home of its resolution: converted models, data quality reports and
the tokenized-pairs cache live under it. `DPO_TUTOR_CACHE_DIR` moves it (tests and classrooms do)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "DPO_TUTOR_CACHE_DIR"
APP_NAME = "dpo-tutor"


def user_cache_dir() -> Path:
    """`$DPO_TUTOR_CACHE_DIR`, else the platform's user cache folder for dpo-tutor."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir as platform_cache_dir

    return Path(platform_cache_dir(APP_NAME))


def display_path(source: str) -> str:
    """`source` as a person reads it: relative to the working folder when that is shorter (so
    `../shared/data/x.jsonl` on every machine), else with `~` for home; names that are not local paths
    (hub ids, URLs) unchanged."""
    if not source or "://" in source or not os.path.isabs(source):
        return source
    candidates = [source]
    try:
        candidates.append(os.path.relpath(source))
    except ValueError:  # another drive on Windows
        pass
    home = os.path.expanduser("~")
    if home not in ("", "/") and source.startswith(home + os.sep):
        candidates.append("~" + source[len(home):])
    return min(candidates, key=len)
