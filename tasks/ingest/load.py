"""Load one file into the warehouse: raw rows, parsed staging rows, quarantine.

One file is one transaction. Either every row of it is accounted for
(rows read = loaded + duplicate + quarantined, recorded in ingest_runs) or, if
the file itself is bad, nothing of it is written and a ThumbsError names the
file, the row and the reason.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import queue
import threading
from collections import Counter
from contextlib import closing, suppress
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import duckdb
import pyarrow as pa

from tasks.ingest.in_duckdb import NotPlain, archive_target, read_raw_from_archive, stage_in_duckdb, stages_in_duckdb
from tasks.ingest.readers import (DEFAULT_MAX_ROW_BYTES, LineBatch, Progress, RawRow, RowBatch,
                                  read_batches)
from tasks.common.settings import ThumbsError, first_line
from tasks.sources.base import (Parser, Quarantined, RowRejected, SourceBinding, Staged, StagingTable,
                                create_staging_tables)
from tasks.warehouse.connection import memory_hint, read_sql, run_sql, transaction
from tasks.warehouse.raw import archive_file, archive_matches, archived_rows_sql
from tasks.ingest.workers import WorkerFailed, in_order

CHUNK_ROWS = 5_000  # rows per batch parsed and per insert: small enough that batches in flight stay a few MB
QUARANTINE_RAW_LIMIT = 65_536
PARALLEL_MIN_BYTES = 16 << 20  # files at least this big parse in worker processes ($THUMBS_INGEST_WORKERS overrides)

Redactor = Callable[[Mapping[str, Any]], Mapping[str, Any]]


@dataclass
class FileResult:
    file: str
    file_sha256: str
    status: str  # loaded | skipped
    rows_read: int = 0
    rows_loaded: int = 0
    rows_duplicate: int = 0
    rows_quarantined: int = 0
    reasons: Counter = field(default_factory=Counter)
    loaded_by_table: Counter = field(default_factory=Counter)
    previous_batch: str | None = None
    raw_rows: int = 0  # rows as read (lines of a JSONL file), and their characters: what the
    raw_characters: int = 0  # archived file must give back for raw.records to read it there


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except FileNotFoundError as exc:
        raise ThumbsError(f"{path}: no such file") from exc
    except PermissionError as exc:
        raise ThumbsError(f"{path}: cannot read the file (permission denied)") from exc
    except IsADirectoryError as exc:
        raise ThumbsError(f"{path}: not a regular file") from exc
    return digest.hexdigest()


@dataclass
class ParsedChunk:
    """One batch of a file's rows, parsed and laid out as Arrow tables for the load
    statements. Made by `parse_chunk`, in a worker process for big files."""

    raw: pa.Table | None = None
    quarantine: pa.Table | None = None
    staged: dict[str, pa.Table] = field(default_factory=dict)  # staging table -> its rows
    rows_read: int = 0  # outcomes, as counted in FileResult.rows_read
    raw_rows: int = 0
    raw_characters: int = 0
    reasons: Counter = field(default_factory=Counter)  # quarantine reason -> outcomes
    first_record: tuple[int, list[str]] | None = None  # row number and keys of the first readable row


def parse_chunk(parse: Parser, redact: Redactor | None, constants: Mapping[str, Any],
                batch: LineBatch | RowBatch) -> ParsedChunk:
    """Read, redact and parse one batch; everything but the warehouse writes.
    The rows as read become a raw table only if constants["store_raw"] (else the
    file's archive is where raw.records reads them).

    Pure and deterministic, so the loader may run it in worker processes: the
    chunks come back in file order and the result is the same as in-process.
    """
    raw: dict[str, list] = {"row_number": [], "record": []}
    quarantine: dict[str, list] = {"row_number": [], "reason": [], "raw": []}
    staged: dict[str, dict[str, list]] = {}
    chunk = ParsedChunk()
    for row in batch.rows():
        if redact is not None:
            row = _redacted(row, redact)
        chunk.raw_rows += 1
        chunk.raw_characters += len(row.text)
        if constants["store_raw"]:
            raw["row_number"].append(row.row_number)
            raw["record"].append(row.text)
        if row.error is None and chunk.first_record is None:
            chunk.first_record = (row.row_number, list(row.record))
        for outcome in _outcomes(parse, row):
            chunk.rows_read += 1
            if isinstance(outcome, Staged):
                columns = staged.get(outcome.table)
                if columns is None:
                    columns = staged[outcome.table] = {"row_key": [], "row_number": [],
                                                       **{name: [] for name in outcome.values}}
                columns["row_key"].append(outcome.row_key)
                columns["row_number"].append(row.row_number)
                for name, value in outcome.values.items():
                    columns[name].append(value)
            else:
                chunk.reasons[outcome.reason] += 1
                text = outcome.raw if isinstance(outcome.raw, str) \
                    else json.dumps(outcome.raw, ensure_ascii=False, default=str)
                quarantine["row_number"].append(row.row_number)
                quarantine["reason"].append(outcome.reason)
                quarantine["raw"].append(text[:QUARANTINE_RAW_LIMIT])
    file_constants = {"batch_id": constants["batch_id"], "file_sha256": constants["file_sha256"]}
    if raw["row_number"]:
        chunk.raw = _arrow(raw, {**file_constants, "source": constants["source"]})
    if quarantine["row_number"]:
        chunk.quarantine = _arrow(quarantine, {**file_constants, "source": constants["source"],
                                               "file": constants["file"]})
    chunk.staged = {table: _arrow(_keyed(columns), file_constants) for table, columns in staged.items()}
    return chunk


def row_key(identity: str) -> int:
    """The staging primary key of a row whose identity is `identity`: the first 128
    bits of its sha256, as the SQL macro thumbs_row_key_of computes them
    (migration 005 rekeyed the rows loaded before with it)."""
    return int.from_bytes(hashlib.sha256(identity.encode("utf-8", "surrogatepass")).digest()[:16], "big")


def _keyed(columns: dict[str, list]) -> dict[str, list | pa.Array]:
    """The staged columns with each row's identity replaced by its row_key, in the
    two UBIGINT halves the load statements put together, and each row's place in the
    chunk (of a key repeated in it, the first is loaded)."""
    keys = [row_key(identity) for identity in columns.pop("row_key")]
    return {"row_key_high": pa.array([key >> 64 for key in keys], pa.uint64()),
            "row_key_low": pa.array([key & 0xFFFF_FFFF_FFFF_FFFF for key in keys], pa.uint64()),
            "chunk_row": pa.array(range(len(keys)), pa.int64()), **columns}


def _load_chunk(con: duckdb.DuckDBPyConnection, chunk: ParsedChunk, result: FileResult,
                tables: Mapping[str, StagingTable]) -> None:
    result.rows_read += chunk.rows_read
    result.raw_rows += chunk.raw_rows
    result.raw_characters += chunk.raw_characters
    result.rows_quarantined += chunk.reasons.total()
    result.reasons.update(chunk.reasons)
    if chunk.raw is not None:
        _insert(con, "raw_chunk", chunk.raw, read_sql("statements/load/raw_records.sql"))
    if chunk.quarantine is not None:
        _insert(con, "quarantine_chunk", chunk.quarantine, read_sql("statements/load/quarantine.sql"))
    for table, rows in chunk.staged.items():
        if table not in tables:
            raise ThumbsError(f"the parser staged rows for {table}, which its source does not declare "
                              f"(it declares: {', '.join(tables) or 'none'})")
        derived = "".join(f', {sql} AS "{name}"' for name, sql in tables[table].derived.items())
        statement = read_sql("statements/load/staged_rows.sql").format(staging_table=tables[table].quoted,
                                                                       derived=derived)
        inserted = _insert(con, "staged_chunk", rows, statement)
        result.rows_loaded += inserted
        result.rows_duplicate += rows.num_rows - inserted
        result.loaded_by_table[table] += inserted


def _insert(con: duckdb.DuckDBPyConnection, view: str, rows: pa.Table, statement: str) -> int:
    """Run a load statement that reads `view`; the number of rows it inserted."""
    # As a stream that lets go of each batch once read: DuckDB holds what was
    # registered until COMMIT, so a registered Table (or Table.to_reader()) kept
    # every chunk of a big file in memory (GBs for a million HH rows).
    con.register(view, pa.RecordBatchReader.from_batches(rows.schema, iter(rows.to_batches())))
    try:
        return con.execute(statement).fetchone()[0]
    finally:
        # After a failed statement DuckDB has aborted the transaction and this fails
        # too; its "transaction is aborted" used to hide the statement's own error.
        with suppress(duckdb.Error):
            con.unregister(view)


def _arrow(columns: Mapping[str, list | pa.Array], constants: Mapping[str, Any]) -> pa.Table:
    size = len(next(iter(columns.values())))
    data = {name: pa.array([value] * size, pa.string()) for name, value in constants.items()}
    data.update((name, _column(values)) for name, values in columns.items())
    return pa.table(data)


MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])


def _column(values: list | pa.Array) -> pa.Array | list:
    """The Arrow array pyarrow would infer from `values`, built faster for the
    common kinds (inferring a type looks at every value, and did more than half
    of the Arrow conversion)."""
    if isinstance(values, pa.Array):
        return values
    kinds = set(map(type, values))
    if kinds == {str} or kinds == {str, type(None)}:
        return pa.array(values, pa.string())
    if kinds == {int} and min(values) >= -2**63 and max(values) < 2**63:
        return pa.array(values, pa.int64())
    if kinds == {list}:
        return _messages(values)
    return values


def _messages(prompts: list[list]) -> pa.Array | list:
    """Lists of {"role", "content"} messages as list<struct<role, content>>, from
    flat columns; anything else is left to pyarrow's inference."""
    offsets, roles, contents = [0], [], []
    for messages in prompts:
        for message in messages:
            if type(message) is not dict or len(message) != 2 or list(message) != ["role", "content"]:
                return prompts
            roles.append(message["role"])
            contents.append(message["content"])
        offsets.append(len(roles))
    if not roles or set(map(type, roles)) | set(map(type, contents)) != {str}:
        return prompts
    flat = pa.StructArray.from_arrays([pa.array(roles, pa.string()), pa.array(contents, pa.string())],
                                      fields=list(MESSAGE))
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), flat)


def _column_name(name: str) -> str:
    """A column name as an error shows it: plain, or quoted with escapes when it is empty,
    holds a comma, or holds a character that would break the one-line message."""
    return name if name and name.isprintable() and "," not in name else repr(name)


def _check_required(path: Path, row_number: int, keys: list[str], required: Sequence[str]) -> None:
    missing = [name for name in required if name not in keys]
    if missing:
        have = ", ".join(map(_column_name, keys[:12])) or "none"
        raise ThumbsError(
            f"{path}: row {row_number}: missing column '{missing[0]}' (the file has: {have})"
        )


def ingest_file(
    con: duckdb.DuckDBPyConnection,
    source: SourceBinding,
    path: str | Path,
    batch_id: str,
    *,
    max_row_bytes: int = DEFAULT_MAX_ROW_BYTES,
    progress: Progress | None = None,
) -> FileResult:
    """Load `path` for `source` in one transaction; a file loaded before is skipped.

    DuckDB stages the file when its source and its lines allow (in_duckdb.py); a file
    found not to (NotPlain) part-way is rolled back and loaded on the Python route."""
    with _INGESTING:
        return _ingest_file(con, source, Path(path), batch_id, max_row_bytes, progress)


# One file at a time in this process. Staging's row_key is kept unique by the loader (an
# anti-join inside the file's transaction), which holds only while no other transaction
# stages rows at once: DuckDB's file lock keeps other processes out, but connections of
# one process share the database, so two threads could each load the same rows.
_INGESTING = threading.Lock()


def _ingest_file(con: duckdb.DuckDBPyConnection, source: SourceBinding, path: Path, batch_id: str,
                 max_row_bytes: int, progress: Progress | None) -> FileResult:
    sha = file_sha256(path)
    archive = archive_target(con, source, path, sha)
    started_at = datetime.now(timezone.utc).replace(tzinfo=None)
    result = FileResult(file=str(path), file_sha256=sha, status="loaded")
    previous = run_sql(con, "statements/load/previous_load.sql",
                       {"source": source.name, "file_sha256": sha}).fetchone()
    run = {"batch_id": batch_id, "source": source.name, "file": str(path), "file_sha256": sha,
           "started_at": started_at, "options": json.dumps(dict(source.options), default=str)}
    try:
        if previous:
            result.status, result.previous_batch = "skipped", previous[0]
            with transaction(con):
                _record_run(con, run, result)
            return result
        if archive is not None:
            archive_file(path, archive)  # before the rows: a killed run leaves at most an unused archive
        if stages_in_duckdb(source, archive):
            try:
                with transaction(con):
                    create_staging_tables(con, source.tables)
                    _check_first_record(path, source, max_row_bytes)
                    _load_in_duckdb(con, source, path, sha, batch_id, result, max_row_bytes, archive, progress)
                    read_raw_from_archive(con, source, sha, batch_id, result.raw_rows, archive)
                    _record_run(con, run, result)
                return result
            except NotPlain:
                result = FileResult(file=str(path), file_sha256=sha, status="loaded")
        with transaction(con):
            create_staging_tables(con, source.tables)
            _load_rows(con, source, path, sha, batch_id, result, max_row_bytes, progress, archive is None)
            if archive is not None:
                _keep_raw_rows(con, source, path, sha, batch_id, result, max_row_bytes, archive)
            _record_run(con, run, result)
    except duckdb.Error as exc:
        raise ThumbsError(f"{path}: nothing loaded, the warehouse write failed: {first_line(exc)}"
                          f"{memory_hint(exc)}") from exc
    return result


def _record_run(con: duckdb.DuckDBPyConnection, run: dict[str, Any], result: FileResult) -> None:
    run_sql(con, "statements/load/ingest_run.sql", {
        **run, "rows_read": result.rows_read, "rows_loaded": result.rows_loaded,
        "rows_duplicate": result.rows_duplicate, "rows_quarantined": result.rows_quarantined,
        "status": result.status})


def _keep_raw_rows(con, source, path, sha, batch_id, result, max_row_bytes, archive: Path) -> None:
    """raw.records reads the archived file when DuckDB gives its rows back as the
    ingest read them; otherwise (a line that is not UTF-8, too long, a stray
    carriage return...) the rows are read again and stored as table rows."""
    lines = archived_rows_sql(batch_id, source.name, sha, archive)
    if archive_matches(con, lines, result.raw_rows, result.raw_characters):
        read_raw_from_archive(con, source, sha, batch_id, result.raw_rows, archive)
        return
    constants = {"batch_id": batch_id, "source": source.name, "file": str(path), "file_sha256": sha,
                 "store_raw": True}
    for batch in read_batches(path, rows_per_batch=CHUNK_ROWS, max_row_bytes=max_row_bytes):
        raw = parse_chunk(source.parse, source.redact, constants, batch).raw
        if raw is not None:
            _insert(con, "raw_chunk", raw, read_sql("statements/load/raw_records.sql"))


def _check_first_record(path: Path, source: SourceBinding, max_row_bytes: int) -> None:
    """The required columns, on the first readable row (the Python route checks them as it reads)."""
    for batch in read_batches(path, rows_per_batch=100, max_row_bytes=max_row_bytes):
        first = next((row for row in batch.rows() if row.record is not None), None)
        if first is not None:
            _check_required(path, first.row_number, list(first.record), source.required_fields)
            return


def _load_in_duckdb(con, source, path, sha, batch_id, result, max_row_bytes: int, archive: Path,
                    progress: Progress | None) -> None:
    """DuckDB stages the rows its SQL parses; the source's parser decides the rest."""
    inserted, left = stage_in_duckdb(con, source, sha, batch_id, archive, max_row_bytes, progress)
    (table,) = source.tables
    result.raw_rows = inserted + len(left)  # every row as read; blank lines made none
    result.rows_read += inserted
    result.rows_loaded += inserted
    result.loaded_by_table[table.name] += inserted
    constants = {"batch_id": batch_id, "source": source.name, "file": str(path), "file_sha256": sha,
                 "store_raw": False}
    for start in range(0, len(left), CHUNK_ROWS):
        chunk = parse_chunk(source.parse, source.redact, constants, RowBatch(left[start:start + CHUNK_ROWS]))
        chunk.raw_rows = 0  # counted above
        _load_chunk(con, chunk, result, {table.name: table})


def _load_rows(con, source, path, sha, batch_id, result, max_row_bytes, progress, store_raw: bool) -> None:
    constants = {"batch_id": batch_id, "source": source.name, "file": str(path), "file_sha256": sha,
                 "store_raw": store_raw}
    work = partial(parse_chunk, source.parse, source.redact, constants)
    batches = read_batches(path, rows_per_batch=CHUNK_ROWS, max_row_bytes=max_row_bytes, progress=progress)
    checked = False
    # closing: on an error the worker processes stop now, not when the traceback is collected
    with closing(in_order(work, batches, _workers(source, path))) as chunks, \
            _ChunkWriter(con, result, {table.name: table for table in source.tables}) as writer:
        try:
            for chunk in chunks:
                if not checked and chunk.first_record is not None:
                    _check_required(path, *chunk.first_record, source.required_fields)
                    checked = True
                writer.put(chunk)
        except WorkerFailed as exc:
            raise ThumbsError(f"{path}: nothing loaded, {exc}") from exc


class _ChunkWriter:
    """Writes parsed chunks to the warehouse from a thread of its own, in order,
    so reading and decompressing the next batches overlaps DuckDB's inserts
    (DuckDB lets go of the GIL while it works; the inserts were half of a big
    file's time in the reading process). One connection, one chunk at a time, and
    at most `depth` chunks waiting, so memory stays flat.

    Leaving the block waits for every chunk to be written and raises what a
    write raised; leaving it on an error first drops the chunks still waiting,
    so the caller's rollback never runs beside a write.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, result: FileResult, tables: Mapping[str, StagingTable],
                 depth: int = 2) -> None:
        self.waiting: queue.Queue = queue.Queue(maxsize=depth)
        self.failure: BaseException | None = None
        self.cancelled = False
        self.thread = threading.Thread(target=self._write, args=(con, result, tables), name="thumbs-chunk-writer",
                                       daemon=True)

    def _write(self, con: duckdb.DuckDBPyConnection, result: FileResult, tables: Mapping[str, StagingTable]) -> None:
        while (chunk := self.waiting.get()) is not None:
            if self.failure is None and not self.cancelled:
                try:
                    _load_chunk(con, chunk, result, tables)
                except BaseException as exc:  # raised in the caller's thread, by put() or on leaving
                    self.failure = exc

    def put(self, chunk: ParsedChunk) -> None:
        if self.failure is not None:
            raise self.failure
        self.waiting.put(chunk)

    def __enter__(self) -> _ChunkWriter:
        self.thread.start()
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        self.cancelled = exc_type is not None
        self.waiting.put(None)
        self.thread.join()
        if exc_type is None and self.failure is not None:
            raise self.failure


def _workers(source: SourceBinding, path: Path) -> int:
    """Worker processes to parse with: none for small files (starting one costs
    more than it saves) or parsers that cannot be sent to another process."""
    wanted = os.environ.get("THUMBS_INGEST_WORKERS")
    if wanted is not None:
        if not wanted.strip().isdigit():
            raise ThumbsError(f"THUMBS_INGEST_WORKERS must be a whole number, got '{wanted}'")
        workers = int(wanted)
    elif path.stat().st_size < PARALLEL_MIN_BYTES:
        return 0
    else:
        workers = os.cpu_count() or 1
    try:
        pickle.dumps((source.parse, source.redact))
    except Exception:  # e.g. a log source's parser closes over its mapping and key
        return 0
    return workers if workers > 1 else 0


WITHHELD = "[row withheld: it could not be parsed, so personal data in it could not be pseudonymized]"


def _redacted(row: RawRow, redact) -> RawRow:
    if row.record is None:
        return replace(row, text=WITHHELD)
    return replace(row, text=json.dumps(redact(row.record), ensure_ascii=False, default=str))


def _outcomes(parse: Parser, row: RawRow) -> list[Staged | Quarantined]:
    if row.error is not None:
        return [Quarantined(row.error, row.text)]
    try:
        return list(parse(row.record)) or [Quarantined("row holds nothing to load", row.text)]
    except RowRejected as exc:
        return [Quarantined(str(exc), row.text)]
    except Exception as exc:  # a parser bug must not lose the row: quarantine it, visibly
        return [Quarantined(f"parser error: {type(exc).__name__}: {exc}", row.text)]
