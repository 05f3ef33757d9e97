"""What the dataset browser needs, kept free of any UI: per-row flags and lengths, filtering, recents.

`BrowseIndex(triplets)` computes each triplet's lengths and quality flags once (a 160,800-row file
takes well under a second); `filter()` returns the row numbers that match a search, a flag, a group
and a length bucket. The UI shows rows through these indices and never copies the triplets.
"""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..paths import user_cache_dir
from .mix import DATA_DIR_ENV
from .triplet import Triplet

# flag name -> (short label shown in the table, test)
LONG_CHARS = 4000
FLAGS: dict[str, tuple[str, Callable[[Triplet, int, int], bool]]] = {
    "chosen longer": ("C>", lambda t, c, r: c > r),
    "rejected longer": ("R>", lambda t, c, r: r > c),
    "multi-turn": ("MT", lambda t, c, r: t.turns > 1),
    "long": ("LONG", lambda t, c, r: c + r + sum(len(m["content"]) for m in t.prompt) > LONG_CHARS),
    "near-identical": ("~=", lambda t, c, r: _near_identical(t.chosen, t.rejected)),
}
LENGTH_BUCKETS: dict[str, tuple[int, int]] = {
    "any length": (0, 1 << 62),
    "short (< 300 chars)": (0, 300),
    "medium (300-2,000)": (300, 2000),
    "long (> 2,000)": (2000, 1 << 62),
}
GROUP_KEYS = ("category", "domain", "lang")


def _near_identical(a: str, b: str) -> bool:
    """Replies that differ only in case, punctuation or spacing."""
    if abs(len(a) - len(b)) > 3:
        return False
    def norm(s: str) -> str:
        return "".join(ch for ch in s.lower() if ch.isalnum())
    return norm(a) == norm(b)


def group_of(t: Triplet) -> str:
    for key in GROUP_KEYS:
        value = t.metadata.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


@dataclass
class RowInfo:
    prompt_len: int
    chosen_len: int
    rejected_len: int
    flags: tuple[str, ...]


class BrowseIndex:
    """Lengths, flags and groups of every triplet, and filtering over them."""

    def __init__(self, triplets: list[Triplet]):
        self.triplets = triplets
        self.rows: list[RowInfo] = []
        self.groups: list[str] = []
        flag_items = list(FLAGS.items())
        gc_was_on = gc.isenabled()
        gc.disable()  # many small objects, no cycles
        try:
            for t in triplets:
                c, r = len(t.chosen), len(t.rejected)
                flags = tuple(name for name, (_, test) in flag_items if test(t, c, r))
                self.rows.append(RowInfo(sum(len(m["content"]) for m in t.prompt), c, r, flags))
                self.groups.append(group_of(t))
        finally:
            if gc_was_on:
                gc.enable()
        if len({t.source for t in triplets}) > 1:  # a mix (engine/data/mix.py): a group is a source
            self.groups = [t.source for t in triplets]
        self.group_names = sorted(set(self.groups) - {""})

    def __len__(self) -> int:
        return len(self.triplets)

    def flag_labels(self, i: int) -> str:
        return " ".join(FLAGS[f][0] for f in self.rows[i].flags)

    def filter(
        self, query: str = "", flag: str | None = None, group: str | None = None, length: str | None = None
    ) -> list[int]:
        """Row numbers matching all given criteria; a case-insensitive search over prompt and replies."""
        needle = query.strip().lower()
        low, high = LENGTH_BUCKETS.get(length or "any length", LENGTH_BUCKETS["any length"])
        out = []
        for i, t in enumerate(self.triplets):
            info = self.rows[i]
            if flag and flag not in info.flags:
                continue
            if group and self.groups[i] != group:
                continue
            total = info.prompt_len + info.chosen_len + info.rejected_len
            if not low <= total < high:
                continue
            if needle and not (
                needle in t.chosen.lower()
                or needle in t.rejected.lower()
                or any(needle in m["content"].lower() for m in t.prompt)
                or needle in t.id.lower()
            ):
                continue
            out.append(i)
        return out


# --- recently opened sources and the shared data files --------------------------------------------

def _state_file() -> Path:
    return user_cache_dir() / "recent-datasets.json"


def recent_sources(limit: int = 8) -> list[str]:
    try:
        items = json.loads(_state_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [s for s in items if isinstance(s, str)][:limit]


def remember_source(source: str, limit: int = 8) -> None:
    if not source:
        return
    items = [source] + [s for s in recent_sources(limit) if s != source]
    path = _state_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(items[:limit]), encoding="utf-8")
    except OSError:
        pass  # recents are a convenience; a read-only cache folder just means none are kept


DATA_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".parquet", ".csv")


def shared_data_files() -> list[Path]:
    """Data files under $DPO_TUTOR_DATA_DIR, else ../shared/data (beside the checkout or the working folder)."""
    env = os.environ.get(DATA_DIR_ENV)  # the same folder the default data is looked for in
    candidates = [Path(env)] if env else [
        Path.cwd().parent / "shared" / "data",
        Path(__file__).resolve().parents[2] / "shared" / "data",
        Path(__file__).resolve().parents[3] / "shared" / "data",
    ]
    for folder in candidates:
        if folder.is_dir():
            return sorted(p for p in folder.glob("*/*") if p.name.endswith(DATA_SUFFIXES))
    return []
