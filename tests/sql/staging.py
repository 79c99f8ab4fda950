"""Staging rows made from a real file by its source's parser, for SQL tests that
start from staging rather than from an ingest."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tasks.ingest.readers import read_batches
from tasks.sources.base import Parser, RowRejected, Staged


def staged_rows(path: Path, parse: Parser, batch_id: str) -> dict[str, list[dict[str, Any]]]:
    """Staging table -> its rows from `path`, each with its identity as `row_key` (as
    text: the loader of migrations 001-004 stored it so). Rows the parser rejects
    are left out."""
    tables: dict[str, list[dict[str, Any]]] = {}
    for batch in read_batches(path, rows_per_batch=1000):
        for row in batch.rows():
            try:
                outcomes = list(parse(row.record))
            except RowRejected:
                continue
            for outcome in outcomes:
                if isinstance(outcome, Staged):
                    tables.setdefault(outcome.table, []).append(
                        {"row_key": outcome.row_key, **outcome.values, "batch_id": batch_id,
                         "file_sha256": "sha", "row_number": row.row_number})
    return tables
