"""Read rows from feedback files: JSON Lines, JSON arrays, CSV and Parquet, each
optionally gzip-compressed, detected from the bytes as well as the name.

Two kinds of trouble, kept apart on purpose:
- a bad *row* (invalid JSON, not UTF-8, too large, wrong field count) is yielded
  as a RawRow with `error` set, so the loader quarantines it and carries on;
- a bad *file* (missing, unreadable, truncated gzip, unknown format, not Parquet)
  raises ThumbsError with one line naming the file and the row where it broke,
  and the loader rolls the whole file back.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from tasks.settings import ThumbsError

GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"
PARQUET_MAGIC = b"PAR1"
DEFAULT_MAX_ROW_BYTES = 4 * 1024 * 1024
FORMATS = ("jsonl", "json", "csv", "parquet")

Progress = Callable[[int], None]  # called with bytes of the file consumed so far


@dataclass(frozen=True)
class RawRow:
    row_number: int  # 1-based: the line of a JSONL file, the data row of CSV/Parquet/JSON
    text: str  # the row as read, for raw.records and quarantine
    record: dict[str, Any] | None
    error: str | None = None


def detect_format(path: Path) -> tuple[str, bool]:
    """(format, gzipped) from the file's first bytes and its name."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    gzipped = head[:2] == GZIP_MAGIC
    if head == PARQUET_MAGIC:
        return "parquet", False
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    name_format = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv",
                   ".parquet": "parquet"}.get(suffixes[-1] if suffixes else "")
    if name_format is None:
        raise ThumbsError(
            f"{path}: unknown format '{''.join(path.suffixes) or 'no extension'}' "
            "(expected .jsonl, .json, .csv or .parquet, optionally .gz)"
        )
    if name_format == "parquet":
        raise ThumbsError(f"{path}: not a Parquet file (no PAR1 header)")
    return name_format, gzipped


def read_rows(
    path: str | Path, *, max_row_bytes: int = DEFAULT_MAX_ROW_BYTES, progress: Progress | None = None
) -> Iterator[RawRow]:
    """Every row of the file, in order. Raises ThumbsError for a file that cannot be read."""
    path = Path(path)
    if not path.exists():
        raise ThumbsError(f"{path}: no such file")
    if not path.is_file():
        raise ThumbsError(f"{path}: not a regular file")
    try:
        fmt, gzipped = detect_format(path)
    except PermissionError as exc:
        raise ThumbsError(f"{path}: cannot read the file (permission denied)") from exc
    if fmt == "parquet":
        yield from _parquet_rows(path, progress)
        return
    row_number = 0
    try:
        with open(path, "rb") as raw_handle:
            stream = gzip.GzipFile(fileobj=raw_handle) if gzipped else raw_handle
            report = (lambda: progress(raw_handle.tell())) if progress else None
            if fmt == "csv":
                rows = _csv_rows(stream, max_row_bytes)
            elif fmt == "json" and _starts_with_array(stream):
                rows = _json_array_rows(stream, path)
            else:  # .jsonl, and .json files that are really JSON Lines (SHP ships those)
                rows = _jsonl_rows(stream, max_row_bytes)
            for row in rows:
                row_number = row.row_number
                if report and row_number % 4096 == 0:
                    report()
                yield row
            if report:
                report()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ThumbsError(f"{path}: corrupt or truncated gzip after row {row_number} ({exc})") from exc
    except PermissionError as exc:
        raise ThumbsError(f"{path}: cannot read the file (permission denied)") from exc
    except OSError as exc:
        raise ThumbsError(f"{path}: read failed after row {row_number} ({exc})") from exc


def decode_line(data: bytes) -> tuple[str, str | None]:
    """The text of a line, and an error if it is not UTF-8 (the text then shows the bad bytes escaped)."""
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return data.decode("utf-8", "backslashreplace"), f"not valid UTF-8 at byte {exc.start}"


def parse_json_object(text: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc.msg} (column {exc.colno})"
    except RecursionError:
        return None, "invalid JSON: nested too deeply"
    if not isinstance(value, dict):
        return None, f"expected a JSON object, got {type(value).__name__}"
    # JSON may escape a lone UTF-16 surrogate ("\ud800"): valid JSON, invalid
    # Unicode, and it would fail the whole chunk later when encoded to UTF-8.
    if "\\ud" in text.lower() and _has_lone_surrogate(value):
        return None, LONE_SURROGATE
    return value, None


LONE_SURROGATE = "invalid Unicode: a lone UTF-16 surrogate escape (\\ud800-\\udfff)"


def _has_lone_surrogate(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _too_large(size: int, limit: int) -> str:
    return f"row is {size / 1e6:.1f} MB, over the {limit / 2**20:.0f} MiB row limit"


def _jsonl_rows(stream: io.BufferedIOBase, max_row_bytes: int) -> Iterator[RawRow]:
    for row_number, data in enumerate(stream, start=1):
        if row_number == 1 and data.startswith(UTF8_BOM):
            data = data[len(UTF8_BOM):]  # some Windows tools write one; it is not part of the row
        if len(data) > max_row_bytes:
            preview, _ = decode_line(data[:65536])
            yield RawRow(row_number, preview, None, _too_large(len(data), max_row_bytes))
            continue
        text, error = decode_line(data.rstrip(b"\r\n"))
        if not error and not text.strip():
            continue  # blank lines separate nothing and hold no row
        record, error = (None, error) if error else parse_json_object(text)
        yield RawRow(row_number, text, record, error)


def _starts_with_array(stream: io.BufferedIOBase) -> bool:
    head = stream.peek(64) if hasattr(stream, "peek") else b""
    return head.lstrip()[:1] == b"["


def _json_array_rows(stream: io.BufferedIOBase, path: Path) -> Iterator[RawRow]:
    # A JSON array has to be parsed whole; the row limit does not apply per element.
    data = stream.read()
    text, error = decode_line(data[len(UTF8_BOM):] if data.startswith(UTF8_BOM) else data)
    if error:
        raise ThumbsError(f"{path}: {error}")
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ThumbsError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
    for row_number, item in enumerate(items, start=1):
        item_text = json.dumps(item)  # ASCII-escaped: a lone surrogate stays printable
        if isinstance(item, dict) and _has_lone_surrogate(item):
            yield RawRow(row_number, item_text, None, LONE_SURROGATE)
        elif isinstance(item, dict):
            yield RawRow(row_number, json.dumps(item, ensure_ascii=False), item)
        else:
            yield RawRow(row_number, item_text, None, f"expected a JSON object, got {type(item).__name__}")


def _csv_rows(stream: io.BufferedIOBase, max_row_bytes: int) -> Iterator[RawRow]:
    # surrogateescape keeps undecodable bytes visible per row instead of failing the file.
    text_stream = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    csv.field_size_limit(max_row_bytes)
    reader = csv.reader(text_stream)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error:
        header = []
    row_number = 0
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            row_number += 1
            yield RawRow(row_number, "", None, f"unreadable CSV row: {exc}")
            continue
        row_number += 1
        text = ",".join(values)
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            yield RawRow(row_number, _printable(text), None,
                         f"row has {len(values)} fields, the header has {len(header)}")
            continue
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            yield RawRow(row_number, _printable(text), None, f"not valid UTF-8 at character {exc.start}")
            continue
        yield RawRow(row_number, json.dumps(dict(zip(header, values)), ensure_ascii=False),
                     dict(zip(header, values)))


def _printable(text: str) -> str:
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _parquet_rows(path: Path, progress: Progress | None) -> Iterator[RawRow]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ThumbsError(f"{path}: not a readable Parquet file ({exc})") from exc
    row_number = 0
    try:
        for batch in parquet.iter_batches(batch_size=8192):
            for record in batch.to_pylist():
                row_number += 1
                yield RawRow(row_number, json.dumps(record, ensure_ascii=False, default=str), record)
            if progress:
                progress(int(path.stat().st_size * row_number / max(parquet.metadata.num_rows, 1)))
    except (pa.ArrowInvalid, OSError) as exc:
        raise ThumbsError(f"{path}: corrupt Parquet after row {row_number} ({exc})") from exc
