"""The DuckDB warehouse: connections, macros, migrations, transactions and
running the SQL files.

All SQL lives in warehouse/: migrations/ (the tables), macros/, models/ (the
layers binarize builds) and statements/ (what the other stages run). Python only
chooses which file to run and binds its parameters; it never builds SQL text
from values.
"""
from __future__ import annotations

import hashlib
import os
import time
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Iterator

import duckdb

from tasks.common.home import Home, HomeLike
from tasks.common.settings import WAREHOUSE_SQL, ThumbsError, first_line

# DuckDB's own default is 80% of RAM, and it keeps what it may: a 1M-pair ingest
# and binarize reached 8 GB. Past the limit it spills to disk, a little slower.
DEFAULT_MEMORY = "512MB"


def read_sql(relative: str) -> str:
    """The text of warehouse/<relative>, e.g. 'models/marts/feedback.sql'."""
    return (WAREHOUSE_SQL / relative).read_text(encoding="utf-8")


def run_sql(con: duckdb.DuckDBPyConnection, relative: str, params: dict[str, Any] | None = None):
    """Run one SQL file of warehouse/; a file with parameters must hold one statement."""
    text = read_sql(relative)
    return con.execute(text, params) if params else con.execute(text)


def column_names(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> set[str]:
    """The columns of table or view `schema`.`name` (a temp view's schema is main)."""
    return {column for (column,) in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = $schema AND table_name = $name",
        {"schema": schema, "name": name}).fetchall()}


def query_arrow(con: duckdb.DuckDBPyConnection, relative: str, params: dict[str, Any]):
    """The rows of one SELECT file of warehouse/ as an Arrow table."""
    return con.sql(read_sql(relative), params=params).to_arrow_table()


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run the block in one transaction: COMMIT at its end, ROLLBACK on any error,
    Ctrl-C included, and the error raised as it was.

    When a write failed (a full disk, even at COMMIT), DuckDB may already have
    ended the transaction; ROLLBACK's own "no transaction is active" would then
    hide the error that matters, so it is ignored."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
        con.execute("COMMIT")
    except BaseException:
        with suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise


def memory_hint(exc: duckdb.Error) -> str:
    """What to do when DuckDB ran out of its memory limit; '' for any other error."""
    text = str(exc)
    if not isinstance(exc, duckdb.OutOfMemoryException) and "failed to pin block" not in text:
        return ""
    limit = os.environ.get("THUMBS_DUCKDB_MEMORY") or DEFAULT_MEMORY
    return f" (DuckDB may hold {limit}: set THUMBS_DUCKDB_MEMORY higher, e.g. THUMBS_DUCKDB_MEMORY=2GB)"


def duckdb_config(path: Path) -> dict[str, str]:
    """Memory limit ($THUMBS_DUCKDB_MEMORY, e.g. '2GB') and where DuckDB spills past it:
    next to the warehouse file, which only one process at a time writes.

    Texts are compressed with zstd: DuckDB's default tries several methods on each
    block and picks one, which made writing the long HH texts most of an ingest's
    time. zstd wrote them in half the time, into under half the space (200 MB of
    JSON lines: 5.7 s and 104 MB by default, 2.7 s and 45 MB with zstd). Types
    zstd does not apply to keep DuckDB's own choice."""
    return {"memory_limit": os.environ.get("THUMBS_DUCKDB_MEMORY") or DEFAULT_MEMORY,
            "temp_directory": str(path.with_name(path.name + ".tmp")),
            "force_compression": "zstd"}


def _open(path: Path, read_only: bool, wait_seconds: float) -> duckdb.DuckDBPyConnection:
    # DuckDB allows one writer process per file. A second writer waits here for
    # the first to finish rather than failing a nightly run on a transient lock.
    deadline = time.monotonic() + wait_seconds
    config = duckdb_config(path)
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=config)
        except duckdb.ParserException as exc:  # of the settings, only a memory limit can fail to parse
            raise ThumbsError(f"THUMBS_DUCKDB_MEMORY: {first_line(exc)} "
                              f"(got '{config['memory_limit']}')") from exc
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise ThumbsError(f"{path}: cannot open the warehouse ({exc})") from exc
            if time.monotonic() >= deadline:
                raise ThumbsError(
                    f"{path}: the warehouse is busy: another thumbs run is writing it "
                    f"(waited {wait_seconds:.0f}s; {str(exc).splitlines()[0]})"
                ) from exc
            time.sleep(0.5)


def create_macros(con: duckdb.DuckDBPyConnection) -> None:
    """Define the macros of warehouse/macros/*.sql on this connection.

    As TEMP macros, which live in the connection rather than the file: a read-only
    connection gets them too, and DuckDB resolves a temp macro before a stored one
    of the same name, so these shadow the copies migrations 002, 004 and 005
    stored in every warehouse (with the same values: tests/sql/test_macros.py)."""
    for macros in sorted((WAREHOUSE_SQL / "macros").glob("*.sql")):
        con.execute(macros.read_text(encoding="utf-8"))


def migrate(con: duckdb.DuckDBPyConnection, until: str | None = None) -> list[str]:
    """Apply warehouse/migrations/NNN_*.sql not yet applied, in order, up to and
    including `until` (a migration's name, e.g. '004_cheaper_ids'; default: all).
    Idempotent."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version VARCHAR PRIMARY KEY, sha256 VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)"
    )
    applied = dict(con.execute("SELECT version, sha256 FROM schema_migrations").fetchall())
    newly = []
    for migration in sorted((WAREHOUSE_SQL / "migrations").glob("[0-9][0-9][0-9]_*.sql")):
        if until is not None and migration.stem > until:
            break
        text = migration.read_text(encoding="utf-8")
        digest = hashlib.sha256(text.encode()).hexdigest()
        if migration.stem in applied:
            if applied[migration.stem] != digest:
                raise ThumbsError(
                    f"{migration}: this migration was edited after it was applied; "
                    "add a new migration instead"
                )
            continue
        with transaction(con):
            con.execute(text)
            con.execute(
                "INSERT INTO schema_migrations VALUES ($version, $sha256, now())",
                {"version": migration.stem, "sha256": digest},
            )
        newly.append(migration.stem)
    return newly


@contextmanager
def connect(
    home: HomeLike = None, *, read_only: bool = False, wait_seconds: float = 600.0
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to THUMBS_HOME/warehouse.duckdb with the macros, migrated when
    writable (after the macros are defined, so a migration may call them)."""
    path = Home.of(home).warehouse
    if read_only and not path.exists():
        raise ThumbsError(f"{path}: no warehouse yet; run `thumbs ingest` first")
    con = _open(path, read_only, wait_seconds)
    try:
        create_macros(con)
        if not read_only:
            migrate(con)
        yield con
    finally:
        con.close()
