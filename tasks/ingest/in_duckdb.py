"""The parts of loading a file that DuckDB does: archiving the file for the raw
layer, and, for a source with `stage_sql`, parsing and staging its plain rows.

load.py decides the route and keeps the accounting; the rows DuckDB leaves go
back to it for the source's Python parser. Apart from load.py so each stays short.
"""
from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np

from tasks.common.settings import ThumbsError
from tasks.ingest.readers import LineBatch, RawRow, detect_format, read_batches
from tasks.sources.base import SourceBinding
from tasks.warehouse.connection import read_sql, run_sql
from tasks.warehouse.raw import (ARCHIVABLE_FORMATS, archive_dir_of, archive_path, archived_rows_sql,
                                 create_raw_view, line_stats, lines_read_alike, with_lines)


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


def lines_for_duckdb(con: duckdb.DuckDBPyConnection, source: SourceBinding, sha: str, batch_id: str,
                     max_row_bytes: int, archive: Path | None) -> tuple[str, int, int] | None:
    """The SELECT of the archived file's lines, their number and the last one's row
    number (blank lines count), when DuckDB may
    parse and stage the file itself: a source that says how (stage_sql), and a file
    DuckDB reads as the Python reader would (UTF-8 throughout, lines split at "\\n"
    alone, none too long). None: the file is read in Python, which words any
    trouble row by row."""
    if archive is None or source.stage_sql is None or len(source.tables) != 1 or not lines_read_alike(archive):
        return None
    lines = archived_rows_sql(batch_id, source.name, sha, archive)
    stats = line_stats(con, lines)
    if stats is None or stats[2] >= max_row_bytes:
        return None
    return lines, stats[0], stats[3]


def stage_in_duckdb(con: duckdb.DuckDBPyConnection, source: SourceBinding, sha: str, batch_id: str,
                    lines: str, last_row: int, archive: Path, max_row_bytes: int) -> tuple[int, list[RawRow]]:
    """Stage the rows the source's SQL parses in one INSERT: (rows inserted, the
    rows for the Python parser in file order). Those are every line not in staging
    after the insert: the rows the SQL left (quirks, rejects) and the duplicates it
    skipped, so the parser decides each and the accounting is its."""
    (table,) = source.tables
    columns = ", ".join(f'"{name}"' for name in table.columns)  # declared names only (StagingTable checks them)
    params = {"batch_id": batch_id, "file_sha256": sha}
    inserted = staged_by_sql(con, read_sql("statements/load/staged_by_sql.sql").format(
        staging_table=table.quoted, columns=columns, staged=with_lines(source.stage_sql, lines)), params)
    not_staged = rows_not_staged(con, read_sql("statements/load/staged_row_numbers.sql").format(
        staging_table=table.quoted), params, last_row)
    return inserted, left_to_parser(archive, not_staged, max_row_bytes)


def staged_by_sql(con: duckdb.DuckDBPyConnection, statement: str, params: dict) -> int:
    """Run the staging INSERT of the source's SQL; the number of rows it inserted."""
    return con.execute(statement, params).fetchone()[0]


def rows_not_staged(con: duckdb.DuckDBPyConnection, statement: str, params: dict, last_row: int) -> np.ndarray:
    """Row numbers 1..last_row that staging has no row of this file for (blank lines
    among them), from a bitmap of a byte a line filled batch by batch."""
    staged = np.zeros(last_row + 1, dtype=bool)
    for batch in con.sql(statement, params=params).to_arrow_reader(1 << 20):
        staged[batch.column(0).to_numpy()] = True
    return np.flatnonzero(~staged[1:]) + 1


LEFT_BATCH_LINES = 8192  # lines held at a time while looking for the rows left to the parser


def left_to_parser(archive: Path, wanted: np.ndarray, max_row_bytes: int) -> list[RawRow]:
    """The rows on the archive's lines numbered `wanted` (ascending), made by the reader
    as the Python route makes them (BOM, blank lines, decoding, JSON), with memory for
    those rows only. Joining them in DuckDB against the numbered lines of the whole file
    ran out of its memory limit at 10M rows, an anti-join against the staged rows too."""
    found: list[RawRow] = []
    for batch in read_batches(archive, rows_per_batch=LEFT_BATCH_LINES, max_row_bytes=max_row_bytes):
        first, end = batch.first_row, batch.first_row + len(batch.lines)
        low, high = np.searchsorted(wanted, [first, end])
        for number in wanted[low:high].tolist():
            found += LineBatch(number, [batch.lines[number - first]], max_row_bytes).rows()
        if high == len(wanted):
            break
    return found


def read_raw_from_archive(con: duckdb.DuckDBPyConnection, source: SourceBinding, sha: str, batch_id: str,
                          rows: int, archive: Path) -> None:
    """List the file in raw.files and recreate raw.records to read it."""
    run_sql(con, "statements/raw/archived_file.sql", {
        "batch_id": batch_id, "source": source.name, "file_sha256": sha, "archive": str(archive),
        "rows_read": rows})
    create_raw_view(con)
