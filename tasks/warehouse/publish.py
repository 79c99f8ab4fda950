"""The analysts' copy of the warehouse.

DuckDB lets one process write a file and no other process open it meanwhile, so
analysts never query the live warehouse. After each write, the tables and views
analysts use are copied into a new file and swapped in by rename: a reader keeps
the version it opened, the next query sees the new one, and no query ever waits
for or blocks an ingest or a training run.
"""
from __future__ import annotations

from pathlib import Path

import duckdb

from tasks.binarize.marts import create_views
from tasks.common.files import replaced_file
from tasks.common.home import Home, HomeLike
from tasks.common.settings import ThumbsError
from tasks.warehouse.connection import run_sql
from tasks.warehouse.raw import create_raw_view

PUBLISHED_TABLES = (
    "feedback", "preference_pairs", "feedback_ties", "quarantine", "ingest_runs",
    "lineage_runs", "snapshots", "checkpoints", "promotions", "experiments",
    # raw.records is a view over these two and the archived files (tasks/warehouse/raw.py)
    "raw.stored_records", "raw.files",
)


def publish(con: duckdb.DuckDBPyConnection, home: HomeLike = None) -> Path:
    """Copy the analyst tables from `con` into a new read-only copy, swapped in atomically."""
    target = Home.of(home).published
    target.parent.mkdir(parents=True, exist_ok=True)
    # Publishing runs under the warehouse's writer lock, so any other scratch copy
    # (and its WAL) was left by a publish that was killed: remove it rather than keep a stale copy.
    for stale in target.parent.glob(f".{target.name}.*"):
        stale.unlink(missing_ok=True)
    try:
        with replaced_file(target) as scratch:
            copy = duckdb.connect(str(scratch))
            try:
                copy.execute("CREATE SCHEMA raw")
                for table in PUBLISHED_TABLES:
                    copy.from_arrow(con.table(table).to_arrow_reader(65_536)).create(table)
                create_views(copy)
                create_raw_view(copy)
                run_sql(copy, "models/marts/feedback_one_per_prompt.sql")
                copy.execute("CHECKPOINT")
            finally:
                copy.close()
                scratch.with_name(scratch.name + ".wal").unlink(missing_ok=True)  # left only by a failed copy
    except OSError as exc:
        raise ThumbsError(f"{target}: cannot publish the analysts' copy ({exc.strerror or exc})") from exc
    return target
