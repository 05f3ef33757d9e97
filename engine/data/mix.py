"""Several preference sources mixed by weight, and the default data: HH-RLHF's two halves, harmless 2 : helpful 1.

    result = load_mix([Source("a.jsonl.gz", weight=1), Source("hf:Anthropic/hh-rlhf/helpful-base", weight=1)])
    result.triplets[0].source      # "a" or "hh-rlhf/helpful-base": which source the pair came from
    result.mix                     # per source: name, weight, rows read, usable pairs, pairs used

Weights decide each source's share of the pairs: the mix is the largest one in which every source has
its weight's share without repeating a pair, so the over-represented sources are subsampled (seeded,
file order kept) and the scarcest source is used whole. The mixed list interleaves the sources in
proportion, so any prefix of it (a `max_pairs` cut, the first held-out pairs) keeps the shares.

The default data (no source named) is the balanced helpful + harmless mix HH-RLHF was built as: a model
trained on the harmless half alone learns to refuse everything (issue 19). `resolve_default()` picks:

1. the hub, `Anthropic/hh-rlhf` with data_dir `harmless-base` and `helpful-base`, split train, when it
   is reachable: not with `HF_HUB_OFFLINE` / `HF_DATASETS_OFFLINE` set, and only if a TCP connection to
   the hub (or the HTTPS proxy) opens within `HUB_TIMEOUT_S` seconds;
2. the local copies (`LOCAL_FILES`) in the first folder that has both: `$DPO_TUTOR_DATA_DIR`, then
   `./data`, then `../shared/data`;
3. the bundled sample, with one sentence saying so.

The switch `default_data=sample` (`DPO_TUTOR_SWITCHES`, engine/switches.py) skips 1 and 2: the test
suite sets it so tiny runs stay tiny.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ..errors import DataError
from ..switches import Switches
from .quality import ReportBuilder
from .sources import HUB_PREFIX, is_hub_id
from .triplet import Triplet

HUB_ID = "Anthropic/hh-rlhf"
HUB_TIMEOUT_S = 2.0
DATA_DIR_ENV = "DPO_TUTOR_DATA_DIR"
LEFT_OUT = "left out by the weights"


@dataclass(frozen=True)
class Half:
    """One half of the default mix: its stable name, hub data_dir and local copy (relative to a data folder)."""

    name: str
    data_dir: str
    local: str


# harmless first, helpful second: `data_weights` for the default mix are given in this order.
DEFAULT_HALVES = (
    Half("hh-rlhf/harmless-base", "harmless-base", "hh-rlhf/harmless-base-test.jsonl.gz"),
    Half("hh-rlhf/helpful-base", "helpful-base", "hh-rlhf-helpful-steamshp/anthropic_helpful_test.jsonl.gz"),
)
# The recipe sweep's choice (RECIPES.md): the harmless half twice the helpful one declined more red-team
# prompts than 1:1 (42 % vs 33 %, the base 33 %) with no more refusals of everyday questions.
DEFAULT_WEIGHTS = (2.0, 1.0)
LOCAL_FILES = tuple(h.local for h in DEFAULT_HALVES)
# A local copy of a half is named like the half, so a run on the hub and one on the copies read alike.
_KNOWN_NAMES = {Path(h.local).name: h.name for h in DEFAULT_HALVES}
_FILE_SUFFIXES = (".gz", ".gzip", ".jsonl", ".json", ".parquet", ".pq", ".csv", ".tsv")


@dataclass(frozen=True)
class Source:
    """One source of a mix: a local file or a hub id (`hf:owner/name/data_dir` names a hub folder)."""

    location: str
    weight: float = 1.0
    name: str = ""
    format: str | None = None
    columns: dict[str, str] | None = None
    split: str = "train"

    @property
    def hub(self) -> tuple[str, str | None] | None:
        """(hub id, data_dir) for a hub source, None for a local file."""
        if not is_hub_id(self.location):
            return None
        parts = self.location.removeprefix(HUB_PREFIX).strip("/").split("/")
        if len(parts) > 2 and not Path(self.location.removeprefix(HUB_PREFIX)).exists():
            return "/".join(parts[:2]), "/".join(parts[2:])
        return "/".join(parts), None

    @property
    def short_name(self) -> str:
        """The name its triplets carry: given, else `name/data_dir` of a hub id, else the file's stem."""
        if self.name:
            return self.name
        hub = self.hub
        if hub is not None and not self.location.lower().endswith(_FILE_SUFFIXES):
            repo, data_dir = hub
            tail = repo.split("/")[-1]
            return f"{tail}/{data_dir}" if data_dir else tail
        file = Path(self.location).name
        if file in _KNOWN_NAMES:
            return _KNOWN_NAMES[file]
        for suffix in _FILE_SUFFIXES:
            file = file.removesuffix(suffix)
        return file or self.location


@dataclass
class SourceUse:
    """What one source gave a mix."""

    name: str
    location: str
    weight: float
    format: str
    rows_read: int
    usable: int
    used: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Mix:
    """The per-source counts of a mixed LoadResult (`result.mix`)."""

    uses: list[SourceUse] = field(default_factory=list)

    def __iter__(self):
        return iter(self.uses)

    def __len__(self) -> int:
        return len(self.uses)

    @property
    def total(self) -> int:
        return sum(u.used for u in self.uses)

    def describe(self) -> str:
        """`hh-rlhf/harmless-base x1 (2,307 pairs) + hh-rlhf/helpful-base x1 (2,307 pairs)`."""
        return " + ".join(f"{u.name} x{u.weight:g} ({u.used:,} pairs)" for u in self.uses)

    def to_dict(self) -> list[dict[str, Any]]:
        return [u.to_dict() for u in self.uses]


def unique_names(sources: list[Source]) -> list[str]:
    """Each source's short name; a repeated name gets -2, -3... in order."""
    names: list[str] = []
    for s in sources:
        base = s.short_name
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base}-{n}"
        names.append(name)
    return names


def check_weights(weights: list[float], n_sources: int) -> list[float]:
    """The weights of n sources (all 1 when none are given), or a DataError in a plain sentence."""
    if not weights:
        return [1.0] * n_sources
    if len(weights) != n_sources:
        raise DataError(f"{len(weights)} weights for {n_sources} sources: give one weight per source",
                        where="data_weights")
    for w in weights:
        if not (isinstance(w, (int, float)) and math.isfinite(w) and w > 0):
            raise DataError(f"weight {w} is not a number above 0", where="data_weights",
                            remedy="leave a source out of the list instead of giving it weight 0")
    return [float(w) for w in weights]


# ---- loading ----------------------------------------------------------------------------------------


def read_sources(sources: list[Source], *, max_rows: int | None = None, progress=None) -> list:
    """Each source read whole (up to max_rows rows) with `load_triplets`: one LoadResult per source."""
    from .load import load_triplets

    parts = []
    for s in sources:
        hub = s.hub
        location, data_dir = (HUB_PREFIX + hub[0], hub[1]) if hub is not None else (s.location, None)
        parts.append(load_triplets(location, format=s.format or None, columns=s.columns or None, split=s.split,
                                   data_dir=data_dir, max_rows=max_rows, progress=progress))
    return parts


def load_mix(sources: list[Source], *, seed: int = 42, max_rows: int | None = None, progress=None):
    """Read every source and mix them by weight (see `combine`)."""
    if not sources:
        raise DataError("a mix needs at least one source", where="data")
    return combine(sources, read_sources(sources, max_rows=max_rows, progress=progress), seed=seed)


def shares(available: list[int], weights: list[float]) -> list[int]:
    """Pairs each source gives: the largest total where each has its weight's share and none repeats."""
    total_w = sum(weights)
    fractions = [w / total_w for w in weights]
    total = min(n / f for n, f in zip(available, fractions, strict=True))
    return [min(n, math.floor(f * total + 1e-9)) for n, f in zip(available, fractions, strict=True)]


def combine(sources: list[Source], parts: list, *, seed: int = 42):
    """One LoadResult from the sources' LoadResults: weighted, tagged with each source's name, interleaved.

    An over-represented source keeps a seeded random subset of its pairs (in file order); the report
    counts the rest as "left out by the weights". `result.parts` keeps the sources' own results, so the
    same reading can be mixed again with other weights."""
    from .load import LoadResult

    weights = check_weights([s.weight for s in sources], len(sources))
    names = unique_names(sources)
    counts = shares([len(p.triplets) for p in parts], weights)
    chosen: list[list[Triplet]] = []
    for name, part, k in zip(names, parts, counts, strict=True):
        items = part.triplets
        if k < len(items):
            keep = sorted(random.Random(f"{seed}\x00{name}").sample(range(len(items)), k))
            items = [items[i] for i in keep]
        chosen.append([dataclasses.replace(t, source=name) for t in items])
    mixed = interleave(chosen)

    # The mix's own report: every row read, what the sources dropped, what the weights left out, and the
    # lengths of the pairs used (a pair that two sources share counts once, as a duplicate).
    builder = ReportBuilder(" + ".join(names), _format_name(parts))
    triplets = [t for t in mixed if builder.accept(t, t.id or t.source)]
    report = builder.finish()
    dropped: dict[str, int] = {}
    for part in parts:
        for reason, n in part.report.dropped.items():
            dropped[reason] = dropped.get(reason, 0) + n
    for reason, n in report.dropped.items():
        dropped[reason] = dropped.get(reason, 0) + n
    left_out = sum(len(p.triplets) for p in parts) - len(mixed)
    if left_out:
        dropped[LEFT_OUT] = left_out
    report.dropped = dropped
    report.rows_read = sum(p.report.rows_read for p in parts)
    used = {name: 0 for name in names}
    for t in triplets:
        used[t.source] += 1
    mix = Mix([
        SourceUse(name=name, location=s.location, weight=w, format=p.format, rows_read=p.report.rows_read,
                  usable=len(p.triplets), used=used[name])
        for name, s, w, p in zip(names, sources, weights, parts, strict=True)
    ])
    return LoadResult(triplets=triplets, report=report, format=_format_name(parts), source=mix.describe(),
                      mix=mix, parts=list(parts))


def interleave(groups: list[list[Triplet]]) -> list[Triplet]:
    """The groups merged so that every prefix holds each group in proportion to its size (stable)."""
    keyed = [((j + 0.5) / len(g), gi, j) for gi, g in enumerate(groups) for j in range(len(g))]
    keyed.sort()
    return [groups[gi][j] for _, gi, j in keyed]


def _format_name(parts: list) -> str:
    formats: list[str] = []
    for p in parts:
        if p.format not in formats:
            formats.append(p.format)
    return "+".join(formats)


# ---- the default data -------------------------------------------------------------------------------


@dataclass
class DefaultData:
    """What the default data resolved to: the sources (empty for the bundled sample), where from, and why."""

    sources: list[Source]
    origin: str  # "hub", "local" or "sample"
    note: str
    forced: bool = False  # the default_data=sample switch asked for the sample

    @property
    def data(self) -> list[str]:
        """The sources as TrainConfig.data names them."""
        return [s.location for s in self.sources]


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def hub_reachable(timeout: float = HUB_TIMEOUT_S) -> bool:
    """Whether the Hugging Face hub answers, decided within `timeout` seconds and never hanging offline.

    False at once with HF_HUB_OFFLINE / HF_DATASETS_OFFLINE set; otherwise a TCP connection to the hub's
    host (HF_ENDPOINT) or to the HTTPS proxy must open in time (name lookup included: it runs in a
    daemon thread that is abandoned when it takes too long)."""
    if _truthy("HF_HUB_OFFLINE") or _truthy("HF_DATASETS_OFFLINE"):
        return False
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    url = urlparse(proxy if proxy else os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host = url.hostname
    if not host:
        return False
    port = url.port or (443 if url.scheme == "https" else 80)
    answered: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                answered.append(True)
        except OSError:
            answered.append(False)

    thread = threading.Thread(target=probe, name="dpo-tutor-hub-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(answered and answered[0])


def data_dirs(cwd: Path | None = None) -> list[Path]:
    """Folders searched for the local copies, in order: $DPO_TUTOR_DATA_DIR, ./data, ../shared/data."""
    cwd = cwd or Path.cwd()
    folders = []
    env = os.environ.get(DATA_DIR_ENV, "").strip()
    if env:
        folders.append(Path(env).expanduser().absolute())  # a run's config.toml names files from anywhere
    folders += [cwd / "data", cwd.parent / "shared" / "data"]
    return folders


def local_default(cwd: Path | None = None) -> Path | None:
    """The first data folder that holds both halves' local copies, or None."""
    for folder in data_dirs(cwd):
        if all((folder / name).is_file() for name in LOCAL_FILES):
            return folder
    return None


def _weights(weights: list[float] | None) -> list[float]:
    return check_weights(list(weights or DEFAULT_WEIGHTS), len(DEFAULT_HALVES))


def hub_default(weights: list[float] | None = None) -> list[Source]:
    return [Source(f"{HUB_PREFIX}{HUB_ID}/{h.data_dir}", weight=w, name=h.name, split="train")
            for h, w in zip(DEFAULT_HALVES, _weights(weights), strict=True)]


def local_sources(folder: Path, weights: list[float] | None = None) -> list[Source]:
    return [Source(str(folder / h.local), weight=w, name=h.name)
            for h, w in zip(DEFAULT_HALVES, _weights(weights), strict=True)]


def resolve_default(weights: list[float] | None = None, *, hub: bool | None = None,
                    cwd: Path | None = None) -> DefaultData:
    """Where the default data comes from now: hub, local copies or the bundled sample (module notes).

    weights: harmless, helpful (DEFAULT_WEIGHTS, 2:1, when None). hub: skip the probe (True/False) when already known."""
    ratio = ":".join(f"{w:g}" for w in _weights(weights))
    if Switches.from_env().default_data.strip().lower() == "sample":
        return DefaultData([], "sample", "switch default_data=sample: training on the bundled sample.", forced=True)
    if hub is None:
        hub = hub_reachable()
    if hub:
        return DefaultData(hub_default(weights), "hub",
                           f"data: HH-RLHF harmless-base + helpful-base {ratio} from the hub ({HUB_ID}, train).")
    folder = local_default(cwd)
    if folder is not None:
        return DefaultData(local_sources(folder, weights), "local",
                           f"data: HH-RLHF harmless-base + helpful-base {ratio} from the local copies in "
                           f"{folder} (the hub is out of reach).")
    looked = ", ".join(str(f) for f in data_dirs(cwd))
    return DefaultData([], "sample",
                       "The hub is out of reach and no local HH-RLHF copies were found (looked in "
                       f"{looked}; set {DATA_DIR_ENV}): training on the bundled sample instead.")


def load_default(weights: list[float] | None = None, *, seed: int = 42, max_rows: int | None = None,
                 hub: bool | None = None, progress=None):
    """The default data loaded: the hub's halves, else the local copies, else the sample (`result.note` says
    which and why). A hub that passed the probe but fails to load falls back to the local copies."""
    from .load import load_triplets

    chosen = resolve_default(weights, hub=hub)
    if chosen.origin == "hub":
        try:
            result = load_mix(chosen.sources, seed=seed, max_rows=max_rows, progress=progress)
            result.note = chosen.note
            return result
        except DataError as e:
            failed = e.one_line()
            chosen = resolve_default(weights, hub=False)
            chosen.note = f"the hub did not give the data ({failed}); {chosen.note}"
    if chosen.origin == "local":
        result = load_mix(chosen.sources, seed=seed, max_rows=max_rows, progress=progress)
    else:
        result = load_triplets(None, max_rows=max_rows, progress=progress)
    result.note = chosen.note
    return result
