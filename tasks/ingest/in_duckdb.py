"""The parts of loading a file that DuckDB does: archiving the file for the raw
layer, and, for a source with `stage_sql`, parsing and staging its plain rows.

load.py decides the route and keeps the accounting; the rows DuckDB leaves go
back to it for the source's Python parser. Apart from load.py so each stays short.

Staging streams the archived file once: the Python reader cuts it into batches of
lines (decompression and line splitting, which gzip allows on one thread only), in a
thread that keeps one batch ahead, and each batch goes to DuckDB as a stream of small
Arrow record batches for one INSERT, which DuckDB runs on all its threads. The INSERT
returns the row numbers it staged; the batch's other lines (quirks, rejects,
duplicates, blank lines) go to the parser from the lines in hand. Memory holds three
batches (one staged, one ready, one being read), whatever the file's size. A file
whose lines DuckDB would read back differently for raw.records (NotPlain) is the
Python route's, from the start.
"""
from __future__ import annotations

import queue
import threading
from contextlib import suppress
from pathlib import Path
from typing import Iterator, TypeVar

import duckdb
import numpy as np
import pyarrow as pa

from tasks.common.settings import ThumbsError
from tasks.ingest.readers import UTF8_BOM, LineBatch, Progress, RawRow, detect_format, read_batches
from tasks.sources.base import SourceBinding
from tasks.warehouse.connection import read_sql, run_sql
from tasks.warehouse.raw import ARCHIVABLE_FORMATS, archive_dir_of, archive_path, archived_rows_sql, create_raw_view

LINE_BATCH = 20_000  # lines per INSERT, ~40 MB of HH text; three batches are in memory at once (read_ahead)
ARROW_ROWS = 2_048  # lines per Arrow record batch: DuckDB's vector size, the unit its threads share out
BATCH_VIEW = "thumbs_line_batch"
T = TypeVar("T")
# DuckDB's CSV reader (raw.records reads the archive with it) refuses a line of 2,000,000
# bytes or more: a file with such a line keeps its raw rows as table rows (the Python route).
DUCKDB_LINE_BYTES = 2_000_000
# Bytes that make DuckDB's lines differ from the Python reader's: it also ends a line at a
# carriage return, byte 30 is archived_lines.sql's field separator (a broken row may hold
# it), and NUL is best kept from its CSV reader.
UNALIKE_BYTES = (b"\r", b"\x1e", b"\x00")


class NotPlain(Exception):
    """The file is one DuckDB would read differently from the Python reader; the loader
    rolls back what was staged of it and loads it on the Python route."""


def archive_target(con: duckdb.DuckDBPyConnection, source: SourceBinding, path: Path, sha: str) -> Path | None:
    """Where to archive the file for raw.records to read, or None to store its raw
    rows as table rows (pseudonymized sources; formats whose rows are not lines)."""
    archive_dir = archive_dir_of(con)
    if archive_dir is None or source.redact is not None or not path.is_file():
        return None
    try:
        fmt, _ = detect_format(path)
    except (ThumbsError, OSError):
        return None  # the read reports it, naming the file
    return archive_path(archive_dir, sha, path) if fmt in ARCHIVABLE_FORMATS else None


def stages_in_duckdb(source: SourceBinding, archive: Path | None) -> bool:
    """Whether DuckDB may parse and stage the file itself: an archived JSON Lines file
    of a source that says how (stage_sql) into its one staging table."""
    return archive is not None and source.stage_sql is not None and len(source.tables) == 1


def line_table(batch: LineBatch, max_row_bytes: int) -> pa.RecordBatchReader:
    """The batch's lines as (row_number, record), as DuckDB's CSV reader would give them
    back; NotPlain when it would not, or when a line is the Python reader's to refuse.

    A stream of record batches of ARROW_ROWS lines: DuckDB scans an Arrow table one
    record batch per thread, so the batch as one array ran the whole staging INSERT on
    one thread; and it lets go of a streamed batch once read, where it held every
    registered table until COMMIT (GBs over a 1M-line file)."""
    lines = batch.lines
    if batch.first_row == 1 and lines and lines[0].startswith(UTF8_BOM):
        raise NotPlain("a byte-order mark")
    if lines and max(map(len, lines)) >= min(max_row_bytes, DUCKDB_LINE_BYTES):
        raise NotPlain("a line too long")
    # bytes.__contains__ is a memchr per line: 0.06 s for 50,000 HH lines, where three Arrow
    # substring passes took 0.57 s
    if any(byte in line for byte in UNALIKE_BYTES for line in lines):
        raise NotPlain("a carriage return, byte 30 or NUL")
    try:
        records = pa.array(lines, pa.binary()).cast(pa.string())  # the cast checks UTF-8
    except pa.ArrowInvalid as exc:
        raise NotPlain("a line that is not UTF-8") from exc
    numbers = pa.array(np.arange(batch.first_row, batch.first_row + len(lines), dtype=np.int64))
    table = pa.table({"row_number": numbers, "record": records})
    return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=ARROW_ROWS))


def stage_in_duckdb(con: duckdb.DuckDBPyConnection, source: SourceBinding, sha: str, batch_id: str, archive: Path,
                    max_row_bytes: int, progress: Progress | None = None) -> tuple[int, list[RawRow]]:
    """Stage the rows the source's SQL parses, batch by batch: (rows inserted, the rows
    for the Python parser in file order). Those are every line the INSERT did not
    stage: the rows the SQL left (quirks, rejects) and the duplicates it skipped, so
    the parser decides each and the accounting is its; blank lines make no row."""
    (table,) = source.tables
    declared = [f'"{name}"' for name in table.columns]  # declared names only (StagingTable checks them)
    columns = ", ".join(declared + [f'"{name}"' for name in table.derived])
    values = ", ".join(declared + list(table.derived.values()))
    rows = archived_rows_sql(batch_id, source.name, sha, numbered_lines=f"SELECT row_number, record FROM {BATCH_VIEW}")
    statement = read_sql("statements/load/staged_by_sql.sql").format(
        staging_table=table.quoted, columns=columns, values=values,
        staged=read_sql(source.stage_sql).replace("{lines}", rows))
    params = {"batch_id": batch_id, "file_sha256": sha}
    inserted, left, registered = 0, [], False
    batches = read_batches(archive, rows_per_batch=LINE_BATCH, max_row_bytes=max_row_bytes, progress=progress)
    try:
        for batch, lines in read_ahead((batch, line_table(batch, max_row_bytes)) for batch in batches):
            con.register(BATCH_VIEW, lines)
            registered = True
            staged = staged_by_sql(con, statement, params)
            inserted += len(staged)
            not_staged = np.ones(len(batch.lines), dtype=bool)
            not_staged[staged - batch.first_row] = False
            for index in np.flatnonzero(not_staged).tolist():
                left += LineBatch(batch.first_row + index, [batch.lines[index]], max_row_bytes).rows()
    except ThumbsError as exc:  # a broken file: the Python route reads it again and says where, naming the file
        raise NotPlain(str(exc)) from exc
    finally:
        if registered:  # after a failed write DuckDB refuses this until the rollback: the error that matters is raised
            with suppress(duckdb.Error):
                con.unregister(BATCH_VIEW)
    return inserted, left


def read_ahead(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """`items`, made in a thread of its own up to `depth` ahead of the caller: the next
    batch is decompressed and checked while DuckDB stages this one (DuckDB, zlib and
    Arrow let go of the GIL), instead of the two taking turns. What the thread raises
    is raised here, in order; a caller that stops early stops the thread."""
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stopped = threading.Event()

    def offer(entry: tuple) -> bool:
        """Put `entry` once there is room; False when the caller has stopped taking."""
        while not stopped.is_set():
            try:
                ready.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def make() -> None:
        try:
            for item in items:
                if not offer((item, None)):
                    return
            offer((None, _END))
        except BaseException as exc:  # noqa: BLE001 - every failure is the caller's to raise
            offer((None, exc))

    thread = threading.Thread(target=make, name="thumbs-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, end = ready.get()
            if end is _END:
                return
            if end is not None:
                raise end
            yield item
    finally:
        stopped.set()
        thread.join()


_END = object()


def staged_by_sql(con: duckdb.DuckDBPyConnection, statement: str, params: dict) -> np.ndarray:
    """Run the staging INSERT over one batch of lines; the row numbers it staged."""
    return con.execute(statement, params).fetchnumpy()["row_number"]


def read_raw_from_archive(con: duckdb.DuckDBPyConnection, source: SourceBinding, sha: str, batch_id: str,
                          rows: int, archive: Path) -> None:
    """List the file in raw.files and recreate raw.records to read it."""
    run_sql(con, "statements/raw/archived_file.sql", {
        "batch_id": batch_id, "source": source.name, "file_sha256": sha, "archive": str(archive),
        "rows_read": rows})
    create_raw_view(con)
