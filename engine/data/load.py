"""`load_triplets()`: any supported source in, canonical triplets and their quality report out.

    result = load_triplets("../shared/data/hh-rlhf/harmless-base-test.jsonl.gz")
    result.triplets[0].prompt, result.report.usable, result.format

No source (None or "") means the bundled sample. Every problem with the input is a `DataError` with
one clear line naming the file and line.
"""

from __future__ import annotations

import gc
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import DataError
from . import report_cache
from .formats import adapter, detect
from .formats._common import Context
from .quality import QualityReport, ReportBuilder
from .sample import sample_path
from .sources import HUB_PREFIX, open_rows
from .triplet import Triplet

Progress = Callable[[int], None]


@dataclass
class LoadResult:
    triplets: list[Triplet]
    report: QualityReport
    format: str
    source: str
    mix: Any = None  # mix.Mix (per source: name, weight, pairs used) when several sources were mixed
    parts: list[LoadResult] = field(default_factory=list)  # a mix's sources, each as read
    note: str = ""  # one sentence on where the default data came from (mix.load_default)


def load_triplets(
    source: str | list[str] | None = None,
    *,
    format: str | None = None,
    columns: dict[str, str] | None = None,
    split: str = "train",
    max_rows: int | None = None,
    config: str | None = None,
    data_dir: str | None = None,
    options: dict[str, Any] | None = None,
    tokenizer: Any = None,
    max_length: int | None = None,
    progress: Progress | None = None,
) -> LoadResult:
    """Read a data set and normalise it.

    format: hh, shp, oasst, oasst-tree, trl, alpaca or mapping; detected from the first row when None.
    columns: {"prompt": ..., "chosen": ..., "rejected": ...} for any other layout (implies "mapping").
    options: adapter options (hh_mismatch, shp_min_ratio, oasst_pairs, oasst_filter).
    tokenizer + max_length: also drop triplets longer than max_length tokens.
    progress: called with the number of rows read so far, every 5,000 rows.
    A list of sources is a mix at equal weights (engine/data/mix.py); format and columns apply to each.
    """
    if isinstance(source, (list, tuple)) and len(source) == 1:
        source = source[0]
    if isinstance(source, (list, tuple)):
        from .mix import Source, load_mix

        return load_mix([Source(str(s), format=format, columns=columns, split=split) for s in source],
                        max_rows=max_rows, progress=progress)
    source = source or str(sample_path())
    if data_dir is None and source.startswith(HUB_PREFIX):  # hf:owner/name/data_dir names a hub folder
        from .mix import Source

        hub = Source(source).hub
        if hub is not None and hub[1]:
            source, data_dir = HUB_PREFIX + hub[0], hub[1]
    if max_rows is not None and max_rows < 1:
        raise DataError(f"max_rows must be at least 1, not {max_rows}", where="max_rows")
    opened = open_rows(source, split=split, config=config, data_dir=data_dir, max_rows=max_rows)
    rows = opened.rows
    first = next(rows, None)
    if first is None:
        raise DataError("no rows: the file holds no data", where=opened.name)
    rows = itertools.chain([first], rows)
    folder = str(opened.path.parent) if opened.path is not None else ""
    first_where = f"{folder}/{first[0]}" if folder else first[0]
    if columns:
        fmt_name = "mapping"
        if format and adapter(format)[0] != "mapping":
            raise DataError("--columns goes with --format mapping (or no --format)", where="--columns")
    elif format:
        fmt_name = adapter(format)[0]
        if fmt_name == "mapping":
            raise DataError("--format mapping needs --columns prompt=...,chosen=...,rejected=...",
                            where="--format")
    else:
        fmt_name = detect(first[1], first_where)
    _, module = adapter(fmt_name)
    if fmt_name not in ("mapping",) and not (
        module.detect(first[1], fmt_name) if fmt_name.startswith("oasst") else module.detect(first[1])
    ):
        found = ", ".join(sorted(map(str, first[1]))[:20])
        raise DataError(f"not {fmt_name} data: found fields {found}", where=first_where,
                        remedy="leave out --format to detect it, or give --columns")

    builder = ReportBuilder(opened.name, fmt_name, tokenizer=tokenizer, max_length=max_length)
    ctx = Context(builder=builder, source=opened.name, options=dict(options or {}), columns=columns,
                  folder=folder)
    if progress is not None:
        rows = _with_progress(rows, progress)
    # Hundreds of thousands of small objects and no cycles: the cyclic GC only slows this loop down.
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        triplets = [t for where, t in module.convert(rows, ctx) if builder.accept(t, where)]
    finally:
        if gc_was_on:
            gc.enable()
    report = builder.finish()
    if report.rows_read and not triplets:
        raise DataError(
            f"no usable triplets in {report.rows_read:,} rows (dropped: "
            + ", ".join(f"{k} {v}" for k, v in report.dropped.items()) + ")",
            where=opened.name,
        )
    options_key = _options_key(format and adapter(format)[0], columns, split, max_rows, config, data_dir, options,
                               tokenizer, max_length)
    report_cache.save_report(report_cache.cache_key(source, options_key), report)
    return LoadResult(triplets=triplets, report=report, format=fmt_name, source=opened.name)


def quality_report(source: str | None = None, **kwargs: Any) -> QualityReport:
    """The report of a source, from the cache when this file with these options was read before."""
    source = source or str(sample_path())
    key = report_cache.cache_key(source, _options_key(
        kwargs.get("format") and adapter(kwargs["format"])[0], kwargs.get("columns"), kwargs.get("split", "train"),
        kwargs.get("max_rows"), kwargs.get("config"), kwargs.get("data_dir"), kwargs.get("options"),
        kwargs.get("tokenizer"), kwargs.get("max_length")))
    cached = report_cache.load_report(key)
    if cached is not None:
        return cached
    report = load_triplets(source, **kwargs).report
    report_cache.save_report(key, report)
    return report


def _options_key(fmt, columns, split, max_rows, config, data_dir, options, tokenizer, max_length) -> dict:
    return {
        "format": fmt or "",
        "columns": columns or {},
        "split": split,
        "max_rows": max_rows,
        "config": config,
        "data_dir": data_dir,
        "options": options or {},
        "tokenizer": getattr(tokenizer, "name_or_path", None) if tokenizer is not None else None,
        "max_length": max_length,
    }


def _with_progress(rows, progress: Progress, every: int = 5000):
    n = 0
    for item in rows:
        n += 1
        if n % every == 0:
            progress(n)
        yield item
    progress(n)
