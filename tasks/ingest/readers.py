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

import orjson  # installed with prefect

from tasks.common.settings import ThumbsError

GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"
PARQUET_MAGIC = b"PAR1"
DEFAULT_MAX_ROW_BYTES = 4 * 1024 * 1024

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


@dataclass(frozen=True)
class LineBatch:
    """Consecutive lines of a JSON Lines file, read but not yet decoded.

    Decoding and JSON parsing are most of a row's reading cost, so they wait for
    `rows()`, which the loader may call in a worker process (a batch pickles as bytes).
    """

    first_row: int  # the line number of lines[0]
    lines: list[bytes]  # each without its b"\n"
    max_row_bytes: int
    ends_unterminated: bool = False  # the file's last line, with no newline after it

    def rows(self) -> Iterator[RawRow]:
        last = len(self.lines) - 1
        for index, data in enumerate(self.lines):
            row_number = self.first_row + index
            if row_number == 1 and data.startswith(UTF8_BOM):
                data = data[len(UTF8_BOM):]  # some Windows tools write one; it is not part of the row
            newline = 0 if index == last and self.ends_unterminated else 1
            if len(data) + newline > self.max_row_bytes:
                preview, _ = decode_line((data[:65536] + b"\n" * newline)[:65536])
                yield RawRow(row_number, preview, None, _too_large(len(data) + newline, self.max_row_bytes))
                continue
            text, error = decode_line(data.rstrip(b"\r\n"))
            if not error and (not text or text.isspace()):
                continue  # blank lines separate nothing and hold no row
            record, error = (None, error) if error else parse_json_object(text)
            yield RawRow(row_number, text, record, error)


@dataclass(frozen=True)
class RowBatch:
    """Consecutive rows already made (CSV, JSON arrays, Parquet: reading them is the parse)."""

    made: list[RawRow]

    def rows(self) -> Iterator[RawRow]:
        return iter(self.made)


def read_batches(
    path: str | Path, *, rows_per_batch: int, max_row_bytes: int = DEFAULT_MAX_ROW_BYTES,
    progress: Progress | None = None,
) -> Iterator[LineBatch | RowBatch]:
    """The file's rows in batches of `rows_per_batch` lines or rows, in order.

    Raises ThumbsError for a file that cannot be read; a bad row is the batch's to report.
    """
    path = Path(path)
    if not path.exists():
        raise ThumbsError(f"{path}: no such file")
    if not path.is_file():
        raise ThumbsError(f"{path}: not a regular file")
    try:
        fmt, gzipped = detect_format(path)
    except PermissionError as exc:
        raise ThumbsError(f"{path}: cannot read the file (permission denied)") from exc
    read_whole = [0]  # rows (lines) read whole so far, for the error message
    if fmt == "parquet":
        yield from _row_batches(_parquet_rows(path, progress), rows_per_batch, read_whole)
        return
    try:
        with open(path, "rb") as raw_handle:
            stream = gzip.GzipFile(fileobj=raw_handle) if gzipped else raw_handle
            if fmt == "csv":
                batches = _row_batches(_csv_rows(stream, max_row_bytes), rows_per_batch, read_whole)
            elif fmt == "json" and _starts_with_array(stream):
                batches = _row_batches(_json_array_rows(stream, path), rows_per_batch, read_whole)
            else:  # .jsonl, and .json files that are really JSON Lines (SHP ships those)
                batches = _line_batches(stream, rows_per_batch, max_row_bytes, read_whole)
            for batch in batches:
                if progress:
                    progress(raw_handle.tell())
                yield batch
            if progress:
                progress(raw_handle.tell())
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ThumbsError(f"{path}: corrupt or truncated gzip after row {read_whole[0]} ({exc})") from exc
    except PermissionError as exc:
        raise ThumbsError(f"{path}: cannot read the file (permission denied)") from exc
    except OSError as exc:
        raise ThumbsError(f"{path}: read failed after row {read_whole[0]} ({exc})") from exc


def _row_batches(rows: Iterator[RawRow], size: int, read_whole: list[int]) -> Iterator[RowBatch]:
    batch: list[RawRow] = []
    for row in rows:
        read_whole[0] = row.row_number
        batch.append(row)
        if len(batch) >= size:
            yield RowBatch(batch)
            batch = []
    if batch:
        yield RowBatch(batch)


BLOCK_BYTES = 1 << 20


def _line_batches(stream: io.BufferedIOBase, size: int, max_row_bytes: int,
                  read_whole: list[int]) -> Iterator[LineBatch]:
    """Lines in batches of `size`, read block by block: a readline per row cost
    more than decompressing the row."""
    lines: list[bytes] = []
    first_row = 1
    partial: list[bytes] = []  # the start of a line that has not ended yet
    while block := stream.read1(BLOCK_BYTES):  # read1: what one inflate step gives, so a
        # truncated gzip loses little and the error names a row close to where it broke
        pieces = block.split(b"\n")
        if len(pieces) == 1:
            partial.append(block)
            continue
        if partial:
            pieces[0] = b"".join(partial) + pieces[0]
        last = pieces.pop()
        partial = [last] if last else []
        lines += pieces
        read_whole[0] = first_row - 1 + len(lines)
        while len(lines) >= size:
            yield LineBatch(first_row, lines[:size], max_row_bytes)
            lines, first_row = lines[size:], first_row + size
    if partial:
        lines.append(b"".join(partial))
    if lines:
        yield LineBatch(first_row, lines, max_row_bytes, ends_unterminated=bool(partial))


def decode_line(data: bytes) -> tuple[str, str | None]:
    """The text of a line, and an error if it is not UTF-8 (the text then shows the bad bytes escaped)."""
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return data.decode("utf-8", "backslashreplace"), f"not valid UTF-8 at byte {exc.start}"


def parse_json_object(text: str) -> tuple[dict[str, Any] | None, str | None]:
    # orjson decodes a row in a fraction of json's time. Its result is kept when it
    # must equal json's: an object of texts, whole numbers, booleans and nulls
    # (orjson reads an integer past 64 bits as a float). Anything else, and what
    # it rejects (NaN, a lone surrogate escape, bad JSON), json decodes or words
    # the error for, as before.
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return _parse_json_object_slowly(text)
    if type(value) is dict and all(type(v) in _PLAIN for v in value.values()):
        return value, None
    return _parse_json_object_slowly(text)


_PLAIN = {str, int, bool, type(None)}


def _parse_json_object_slowly(text: str) -> tuple[dict[str, Any] | None, str | None]:
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
    # (a real escape is "\\ud..." or "\\uD...": "\\U" is not JSON)
    if ("\\ud" in text or "\\uD" in text) and _has_lone_surrogate(value):
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
