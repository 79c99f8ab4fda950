"""The raw layer: every row as read, answerable by SQL, without a second copy of
each row in the warehouse.

A JSON Lines file is archived once under THUMBS_HOME/raw, named by its sha256,
and `raw.records` is a view that reads the archived files (one SELECT per file,
warehouse/statements/raw/archived_rows.sql) next to `raw.stored_records`, the
rows kept as table rows: those of sources whose raw rows are pseudonymized (the
original file holds the personal data), of CSV, Parquet and JSON-array files (the
reader's row is not a line of the file), and of any file whose archived lines
DuckDB does not read back exactly as the ingest read them (checked per file).

The per-file SELECTs hold the archive's path and the file's batch, source and
sha256 as quoted literals: a view cannot take bound parameters and DuckDB's
readers take a constant path. Each value comes from the warehouse (raw.files)
or the loader, never from a query, and is quoted by `_literal`.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb

from tasks.common.files import replaced_file
from tasks.common.home import Home
from tasks.warehouse.connection import read_sql

ARCHIVABLE_FORMATS = ("jsonl",)  # a row is a line of the file, as read_csv gives it back


def archive_dir_of(con: duckdb.DuckDBPyConnection) -> Path | None:
    """The archive of the THUMBS_HOME whose warehouse `con` is; None for an in-memory
    warehouse (SQL tests), which keeps its raw rows as table rows."""
    found = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
    return Home(Path(found[0]).parent).raw_archive if found and found[0] else None


def archive_path(archive_dir: Path, sha256: str, original: Path) -> Path:
    """Where the file with this content is kept: its sha256 plus its compression suffix
    (DuckDB picks gzip from the name)."""
    gzipped = original.suffix.lower() == ".gz" or _starts_with_gzip(original)
    return archive_dir / sha256[:2] / (sha256 + (".jsonl.gz" if gzipped else ".jsonl"))


def _starts_with_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def archive_file(original: Path, target: Path) -> None:
    """Copy `original` to `target` atomically, once: a file of the same content
    archived before (the name is its sha256) is kept as it is."""
    if target.exists():
        return
    with replaced_file(target) as scratch:
        shutil.copyfile(original, scratch)


def _literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def archived_rows_sql(batch_id: str, source: str, file_sha256: str, archive: str | os.PathLike | None = None, *,
                      numbered_lines: str | None = None) -> str:
    """The SELECT of one archived file's rows, with its literals quoted: from the
    archive, or from `numbered_lines` (a SELECT of row_number, record: the loader's
    batch of the file's lines)."""
    if numbered_lines is None:
        numbered_lines = read_sql("statements/raw/archived_lines.sql").format(archive=_literal(os.fspath(archive)))
    return read_sql("statements/raw/archived_rows.sql").format(
        batch_id=_literal(batch_id), source=_literal(source), file_sha256=_literal(file_sha256),
        numbered_lines=numbered_lines)


def with_lines(relative: str, lines: str) -> str:
    """A statement of warehouse/ over `lines` (a SELECT of row_number, record)."""
    return read_sql(relative).replace("{lines}", lines)


def _fetch_one(con: duckdb.DuckDBPyConnection, statement: str) -> tuple:
    return con.execute(statement).fetchone()


def archive_matches(con: duckdb.DuckDBPyConnection, lines: str, rows: int, characters: int) -> bool:
    """Whether DuckDB reads the archived file back as the ingest read it: the same
    number of rows and of characters. A file DuckDB cannot read (e.g. a line that
    is not UTF-8) does not; that failure is on a cursor of its own, so it does not
    end the caller's transaction."""
    try:
        with con.cursor() as cursor:
            return _fetch_one(cursor, with_lines("statements/raw/line_stats.sql", lines)) == (rows, characters)
    except duckdb.Error:
        return False


def create_raw_view(con: duckdb.DuckDBPyConnection) -> None:
    """(Re)create raw.records over raw.stored_records and every archived file in raw.files."""
    files = con.execute(
        "SELECT batch_id, source, file_sha256, archive FROM raw.files ORDER BY source, file_sha256").fetchall()
    archived = "".join(f"UNION ALL\n{archived_rows_sql(*file)}\n" for file in files)
    _fetch_one(con, read_sql("statements/raw/records_view.sql").replace("{archived_files}", archived))
