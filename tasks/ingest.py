"""Load one file into the warehouse: raw rows, parsed staging rows, quarantine.

One file is one transaction. Either every row of it is accounted for
(rows read = loaded + duplicate + quarantined, recorded in ingest_runs) or, if
the file itself is bad, nothing of it is written and a ThumbsError names the
file, the row and the reason.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import duckdb
import pyarrow as pa

from tasks.readers import DEFAULT_MAX_ROW_BYTES, Progress, RawRow, read_rows
from tasks.settings import ThumbsError, first_line
from tasks.sources.base import Quarantined, RowRejected, SourceBinding, Staged
from tasks.warehouse import rollback, run_sql

CHUNK_ROWS = 20_000
QUARANTINE_RAW_LIMIT = 65_536


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


class _Chunk:
    """Rows of one chunk, gathered column-wise for Arrow."""

    def __init__(self, batch_id: str, source: str, file: str, sha: str):
        self.batch_id, self.source, self.file, self.sha = batch_id, source, file, sha
        self.raw: dict[str, list] = defaultdict(list)
        self.quarantine: dict[str, list] = defaultdict(list)
        self.staged: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
        self.rows = 0

    def add_raw(self, row: RawRow) -> None:
        self.raw["row_number"].append(row.row_number)
        self.raw["record"].append(row.text)

    def add_quarantine(self, row_number: int, reason: str, raw: Any) -> None:
        text = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False, default=str)
        self.quarantine["row_number"].append(row_number)
        self.quarantine["reason"].append(reason)
        self.quarantine["raw"].append(text[:QUARANTINE_RAW_LIMIT])

    def add_staged(self, row_number: int, staged: Staged) -> None:
        columns = self.staged[staged.table]
        columns["row_key"].append(staged.row_key)
        columns["row_number"].append(row_number)
        for name, value in staged.values.items():
            columns[name].append(value)

    def flush(self, con: duckdb.DuckDBPyConnection, result: FileResult) -> None:
        constants = {"batch_id": self.batch_id, "file_sha256": self.sha}
        if self.raw:
            _insert(con, "raw_chunk", _arrow(self.raw, {**constants, "source": self.source}),
                    "load/raw_records.sql")
        if self.quarantine:
            _insert(con, "quarantine_chunk",
                    _arrow(self.quarantine, {**constants, "source": self.source, "file": self.file}),
                    "load/quarantine.sql")
        for table, columns in self.staged.items():
            offered = len(columns["row_key"])
            inserted = _insert(con, "staged_chunk", _arrow(columns, constants),
                               f"load/{table.removeprefix('staging.')}.sql")
            result.rows_loaded += inserted
            result.rows_duplicate += offered - inserted
            result.loaded_by_table[table] += inserted
        self.__init__(self.batch_id, self.source, self.file, self.sha)


def _insert(con: duckdb.DuckDBPyConnection, view: str, rows: pa.Table, sql_file: str) -> int:
    """Run a load/*.sql statement that reads `view`; the number of rows it inserted."""
    con.register(view, rows)
    try:
        return run_sql(con, sql_file).fetchone()[0]
    finally:
        con.unregister(view)


def _arrow(columns: Mapping[str, list], constants: Mapping[str, Any]) -> pa.Table:
    size = len(next(iter(columns.values())))
    data = {name: pa.array([value] * size, pa.string()) for name, value in constants.items()}
    data.update(columns)
    return pa.table(data)


def _check_required(path: Path, row: RawRow, required: Sequence[str]) -> None:
    missing = [name for name in required if name not in row.record]
    if missing:
        have = ", ".join(list(row.record)[:12]) or "none"
        raise ThumbsError(
            f"{path}: row {row.row_number}: missing column '{missing[0]}' (the file has: {have})"
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
    """Load `path` for `source` in one transaction; a file loaded before is skipped."""
    path = Path(path)
    sha = file_sha256(path)
    started_at = datetime.now(timezone.utc).replace(tzinfo=None)
    result = FileResult(file=str(path), file_sha256=sha, status="loaded")
    previous = run_sql(con, "load/previous_load.sql", {"source": source.name, "file_sha256": sha}).fetchone()
    con.execute("BEGIN TRANSACTION")
    try:
        if previous:
            result.status, result.previous_batch = "skipped", previous[0]
        else:
            _load_rows(con, source, path, sha, batch_id, result, max_row_bytes, progress)
        run_sql(con, "load/ingest_run.sql", {
            "batch_id": batch_id, "source": source.name, "file": str(path), "file_sha256": sha,
            "started_at": started_at, "rows_read": result.rows_read, "rows_loaded": result.rows_loaded,
            "rows_duplicate": result.rows_duplicate, "rows_quarantined": result.rows_quarantined,
            "status": result.status, "options": json.dumps(dict(source.options), default=str),
        })
        con.execute("COMMIT")
    except BaseException as exc:
        rollback(con)
        if isinstance(exc, duckdb.Error):
            raise ThumbsError(f"{path}: nothing loaded, the warehouse write failed: {first_line(exc)}") from exc
        raise
    return result


def _load_rows(con, source, path, sha, batch_id, result, max_row_bytes, progress) -> None:
    chunk = _Chunk(batch_id, source.name, str(path), sha)
    checked = False
    for row in read_rows(path, max_row_bytes=max_row_bytes, progress=progress):
        if source.redact is not None:
            row = _redacted(row, source.redact)
        chunk.add_raw(row)
        if row.error is None and not checked:
            _check_required(path, row, source.required_fields)
            checked = True
        for outcome in _outcomes(source, row):
            result.rows_read += 1
            if isinstance(outcome, Staged):
                chunk.add_staged(row.row_number, outcome)
            else:
                result.rows_quarantined += 1
                result.reasons[outcome.reason] += 1
                chunk.add_quarantine(row.row_number, outcome.reason, outcome.raw)
        chunk.rows += 1
        if chunk.rows >= CHUNK_ROWS:
            chunk.flush(con, result)
    chunk.flush(con, result)


WITHHELD = "[row withheld: it could not be parsed, so personal data in it could not be pseudonymized]"


def _redacted(row: RawRow, redact) -> RawRow:
    if row.record is None:
        return replace(row, text=WITHHELD)
    return replace(row, text=json.dumps(redact(row.record), ensure_ascii=False, default=str))


def _outcomes(source: SourceBinding, row: RawRow) -> list[Staged | Quarantined]:
    if row.error is not None:
        return [Quarantined(row.error, row.text)]
    try:
        return list(source.parse(row.record)) or [Quarantined("row holds nothing to load", row.text)]
    except RowRejected as exc:
        return [Quarantined(str(exc), row.text)]
    except Exception as exc:  # a parser bug must not lose the row: quarantine it, visibly
        return [Quarantined(f"parser error: {type(exc).__name__}: {exc}", row.text)]
