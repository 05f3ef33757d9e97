"""The quality report is computed once per source and kept in the user's cache folder.

The key is the file's resolved path, size and modification time plus the load options, so an edited
file or other options give a fresh report. It lives in the user cache folder (engine/paths.py).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..paths import user_cache_dir
from .quality import QualityReport

VERSION = 1


def cache_dir() -> Path:
    return user_cache_dir() / "data-reports"


def cache_key(source: str, options: dict[str, Any]) -> str:
    path = Path(source)
    if path.exists() and path.is_file():
        st = path.stat()
        ident: list[Any] = [str(path.resolve()), st.st_size, st.st_mtime_ns]
    else:
        ident = [source]
    text = json.dumps([VERSION, ident, options], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def load_report(key: str) -> QualityReport | None:
    path = cache_dir() / f"{key}.json"
    try:
        return QualityReport.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, AttributeError):
        return None  # no cached report, or an unreadable one: compute it again


def save_report(key: str, report: QualityReport) -> None:
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f"{key}.json.tmp{os.getpid()}"
        tmp.write_text(json.dumps(report.to_dict()), encoding="utf-8")
        tmp.replace(folder / f"{key}.json")
    except OSError:
        pass  # a read-only cache folder only costs recomputing the report next time
