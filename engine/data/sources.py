"""Where rows come from: local files (JSONL, JSONL.gz, JSON arrays, Parquet, CSV) or a Hugging Face hub id.

`open_rows()` returns an iterator of `(where, row)` pairs: `where` names the file and line (or the row
index) so every error can point at it, `row` is a plain dict. Rows are read lazily, one line at a time,
so a 160,800-row file never sits in memory twice. Nothing a row contains is ever used as a path.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DataError

MAX_ROW_BYTES = 32 * 1024 * 1024  # one preference row larger than this is not a preference row
MAX_ARRAY_BYTES = 2 * 1024 * 1024 * 1024  # a JSON array is parsed whole
HUB_PREFIX = "hf:"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

Rows = Iterator[tuple[str, dict[str, Any]]]


@dataclass
class RowSource:
    """An opened source: its display name, kind (jsonl/json/parquet/csv/hub) and its rows."""

    name: str
    kind: str
    rows: Rows
    path: Path | None = None


def is_hub_id(source: str) -> bool:
    """`hf:anything` or `owner/name` that is not a local path."""
    if source.startswith(HUB_PREFIX):
        return True
    return bool(_HUB_ID.match(source)) and not Path(source).exists()


def open_rows(
    source: str,
    *,
    split: str = "train",
    config: str | None = None,
    data_dir: str | None = None,
    max_rows: int | None = None,
) -> RowSource:
    if is_hub_id(source):
        name = source.removeprefix(HUB_PREFIX)
        return RowSource(name, "hub", _limit(_hub_rows(name, config, data_dir, split, max_rows), max_rows))
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError("no such file", where=source, remedy="give a local file, a hub id like owner/name, or no source for the sample")
    if path.is_dir():
        raise DataError("is a folder, not a data file", where=source, remedy="name one .jsonl/.json/.parquet/.csv file inside it")
    if path.stat().st_size == 0:
        raise DataError("the file is empty", where=source)
    kind = _kind(path)
    reader = {"jsonl": _jsonl_rows, "json": _json_rows, "parquet": _parquet_rows, "csv": _csv_rows}[kind]
    return RowSource(str(path), kind, _limit(reader(path), max_rows), path)


def _limit(rows: Rows, max_rows: int | None) -> Rows:
    if max_rows is None:
        yield from rows
        return
    for i, item in enumerate(rows):
        if i >= max_rows:
            return
        yield item


def _kind(path: Path) -> str:
    name = path.name.lower()
    for suffix in (".gz", ".gzip"):
        name = name.removesuffix(suffix)
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".csv", ".tsv")):
        return "csv"
    if _magic(path) == b"PAR1":
        return "parquet"
    first = _first_byte(path)
    if first == b"[":
        return "json"
    if first == b"{":
        return "jsonl"  # JSON Lines (also what many ".json" files really are) or one object
    shown = repr(first.decode("latin-1")) if first else "nothing but whitespace"
    raise DataError(
        f"not JSON, JSON Lines, Parquet or CSV: the first character is {shown}",
        where=str(path),
        remedy="preference data is one JSON object per line, a JSON array, Parquet or CSV",
    )


def _magic(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(4)


def _open_binary(path: Path) -> io.BufferedIOBase:
    raw = open(path, "rb")  # noqa: SIM115 - returned to the caller, closed there
    magic = raw.read(2)
    raw.seek(0)
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    return raw


def _first_byte(path: Path) -> bytes:
    with _open_binary(path) as f:
        try:
            head = f.read(4096)
        except (OSError, EOFError) as e:
            raise DataError(f"cannot read the file: {e}", where=str(path)) from None
    head = head.removeprefix(b"\xef\xbb\xbf")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError("the file is UTF-16 text", where=str(path), remedy="save it as UTF-8")
    stripped = head.lstrip()
    return stripped[:1]


def _decode_error(path: Path, line: int, e: UnicodeDecodeError) -> DataError:
    byte = e.object[e.start : e.start + 1].hex() if isinstance(e.object, (bytes, bytearray)) else "?"
    return DataError(
        f"not UTF-8 text (byte 0x{byte} at column {e.start + 1})",
        where=f"{path}:{line}",
        remedy="save the file as UTF-8",
    )


def _json_error(path: Path, line: int, e: json.JSONDecodeError, column: int | None = None) -> DataError:
    # One JSON Lines row is parsed alone: an error at its closing newline is still on that line.
    column = column or (e.colno if e.lineno == 1 else e.pos + 1)
    return DataError(f"broken JSON: {e.msg} at column {column}", where=f"{path}:{line}")


def _jsonl_rows(path: Path) -> Rows:
    with _open_binary(path) as f:
        line_no = 0
        while True:
            try:
                line = f.readline(MAX_ROW_BYTES + 1)
            except (OSError, EOFError, gzip.BadGzipFile) as e:
                raise DataError(f"cannot read the file: {e}", where=f"{path}:{line_no + 1}") from None
            if not line:
                break
            line_no += 1
            if len(line) > MAX_ROW_BYTES:
                raise DataError(
                    f"one row is over {MAX_ROW_BYTES // (1024 * 1024)} MiB; that is not a preference row",
                    where=f"{path}:{line_no}",
                    remedy="check the file is JSON Lines with one row per line",
                )
            if line_no == 1:
                line = line.removeprefix(b"\xef\xbb\xbf")
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except UnicodeDecodeError as e:
                raise _decode_error(path, line_no, e) from None
            except json.JSONDecodeError as e:
                if line_no == 1 and e.msg.startswith("Expecting") and line.strip() == b"{":
                    yield from _whole_object(path)
                    return
                raise _json_error(path, line_no, e) from None
            if not isinstance(row, dict):
                raise DataError(
                    f"expected a JSON object per line, found {_json_kind(row)}", where=f"{path}:{line_no}"
                )
            yield f"{path.name}:{line_no}", row


def _whole_object(path: Path) -> Rows:
    """A pretty-printed single JSON object (one row)."""
    with _open_binary(path) as f:
        text = f.read(MAX_ROW_BYTES + 1)
    try:
        row = json.loads(text)
    except UnicodeDecodeError as e:
        raise _decode_error(path, 1, e) from None
    except json.JSONDecodeError as e:
        raise _json_error(path, e.lineno, e, column=e.colno) from None
    yield f"{path.name}:1", row


def _json_rows(path: Path) -> Rows:
    with _open_binary(path) as f:
        data = f.read(MAX_ARRAY_BYTES + 1)
    if len(data) > MAX_ARRAY_BYTES:
        raise DataError("a JSON array over 2 GiB", where=str(path), remedy="convert it to JSON Lines")
    try:
        items = json.loads(data)
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DataError("not UTF-8 text", where=f"{path}:{line}", remedy="save the file as UTF-8") from None
    except json.JSONDecodeError as e:
        raise _json_error(path, e.lineno, e, column=e.colno) from None
    del data
    if not isinstance(items, list):
        raise DataError(f"expected a JSON array of objects, found {_json_kind(items)}", where=str(path))
    if not items:
        raise DataError("the JSON array is empty", where=str(path))
    for i, row in enumerate(items):
        if not isinstance(row, dict):
            raise DataError(f"expected an object, found {_json_kind(row)}", where=f"{path}[{i}]")
        yield f"{path.name}[{i}]", row


def _csv_rows(path: Path) -> Rows:
    csv.field_size_limit(MAX_ROW_BYTES)
    delimiter = "\t" if path.name.lower().removesuffix(".gz").endswith(".tsv") else ","
    with _open_binary(path) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        reader = csv.DictReader(text, delimiter=delimiter)
        try:
            for row in reader:
                yield f"{path.name}:{reader.line_num}", {k: v for k, v in row.items() if k is not None}
        except UnicodeDecodeError:
            raise DataError(
                "not UTF-8 text", where=f"{path}:{reader.line_num + 1}", remedy="save the file as UTF-8"
            ) from None
        except csv.Error as e:
            raise DataError(f"broken CSV: {e}", where=f"{path}:{reader.line_num}") from None
    if reader.line_num == 0:
        raise DataError("the file is empty", where=str(path))


def _parquet_rows(path: Path) -> Rows:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError, ValueError) as e:
        raise DataError(f"not a readable Parquet file ({type(e).__name__})", where=str(path)) from None
    index = 0
    for batch in pf.iter_batches(batch_size=8192):
        for row in batch.to_pylist():
            yield f"{path.name}#{index}", row
            index += 1


def _hub_rows(name: str, config: str | None, data_dir: str | None, split: str, max_rows: int | None) -> Rows:
    """Rows of a hub data set through `datasets.load_dataset` (a local folder works the same way)."""
    import datasets

    split_arg = f"{split}[:{max_rows}]" if max_rows else split
    try:
        ds = datasets.load_dataset(name, name=config, data_dir=data_dir, split=split_arg)
    except (ConnectionError, OSError, ValueError, datasets.exceptions.DatasetsError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(
            f"cannot load the hub data set: {first[:200]}",
            where=name,
            remedy="no network here? use a local file, or no source for the bundled sample",
        ) from None
    for i, row in enumerate(ds):
        yield f"{name}[{split}]#{i}", row


def _json_kind(value: object) -> str:
    """How a JSON value reads in a sentence: 'a number', 'a list', 'a string'..."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if value is None:
        return "null"
    return {"list": "a list", "str": "a string", "dict": "an object"}.get(type(value).__name__, "a value")
